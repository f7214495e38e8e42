//! A supervised actor called through a route's policy stack, surviving its own crash.
//!
//! Run: `cargo run --example supervised`

use std::time::Duration;

use ensemble::supervision::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

enum CounterMsg {
    /// Adds to the count and answers the new total; crashes on a negative amount.
    Add(i64, CancellationToken, RpcReplyPort<i64>),
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = i64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<i64, ActorProcessingErr> {
        println!("counter started");
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        total: &mut i64,
    ) -> Result<(), ActorProcessingErr> {
        let CounterMsg::Add(n, cancel, reply) = msg;
        if cancel.is_cancelled() {
            return Ok(());
        }
        assert!(n >= 0, "negative amounts are a bug in the caller");
        *total += n;
        let _ = reply.send(*total);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let slot = ActorSlot::new("counter");
    let events = EventBus::default();
    let mut watch = events.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = watch.recv().await {
            println!("event: {} / {}: {:?}", e.supervisor, e.child, e.kind);
        }
    });
    let spec = SupervisorSpec::new("engines")
        .events(events)
        .backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_secs(1),
        ))
        .child(ChildSpec::actor(&slot, || (Counter, ())));
    let (supervisor, _) = Supervisor::start(spec).await?;

    let policy = RoutePolicy::builder("counter_add")
        .bulkhead(64)
        .breaker(BreakerConfig::default())
        .timeout(Duration::from_secs(2))
        .retry(RetryPolicy::default())
        .build();
    let add = |n: i64| {
        let (policy, slot) = (policy.clone(), slot.clone());
        async move {
            policy
                .call(CallOptions::default(), |ctx| {
                    let slot = slot.clone();
                    async move {
                        let cancel = ctx.cancel.clone();
                        Ok::<_, CallError<String>>(
                            slot.call(&ctx, |r| CounterMsg::Add(n, cancel, r)).await?,
                        )
                    }
                })
                .await
        }
    };

    println!("add 2 -> {:?}", add(2).await);
    println!("add -1 -> {}", add(-1).await.unwrap_err());
    // The counter restarts from its initial state after the backoff.
    slot.ready().await;
    println!("add 5 -> {:?}", add(5).await);
    supervisor.stop_and_wait(None, None).await?;
    Ok(())
}
