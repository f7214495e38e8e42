//! Deterministic cost of the policy stack, for callgrind (wall-clock numbers on a shared 2-core
//! machine swing by ±30% between runs; instruction counts do not).
//!
//! `MODE` is `bare` (a ractor call), `slot` (the same through an `ActorSlot`), `stack`
//! (slot + bulkhead + breaker + timeout), or `retry` (the stack with a retry policy, for an
//! idempotent call). Run each for two counts and take the difference:
//!
//! Set `WITH_TIMER=1` to keep one idle timer armed in the runtime, as a server always has: the
//! route's deadline reaper is a timer, and the first armed timer makes every scheduler park
//! walk the timer wheel, which the bare call would otherwise not pay for.
//!
//! ```sh
//! cargo build --release --bench policy_cost
//! bin=$(ls -t ${CARGO_TARGET_DIR:-target}/release/deps/policy_cost-* | grep -v '\.d$' | head -1)
//! for m in bare slot stack retry; do
//!   a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin $m 10000 2>&1 | awk '/Collected/{print $4}')
//!   b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin $m 20000 2>&1 | awk '/Collected/{print $4}')
//!   echo "$m $(( (b - a) / 10000 )) instructions per call"
//! done
//! ```

use std::hint::black_box;
use std::time::Duration;

use ensemble::supervision::*;

#[path = "common/echo.rs"]
mod echo;
use echo::{Echo, Msg};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "stack".to_string());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        if std::env::var_os("WITH_TIMER").is_some() {
            // A server always has some timer armed (keep-alives, session expiry).
            tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
        }
        let slot = ActorSlot::new("echo");
        let spec = SupervisorSpec::new("bench").child(ChildSpec::actor(&slot, || (Echo, ())));
        let (sup, _) = Supervisor::start(spec).await.expect("supervisor");
        let builder = RoutePolicy::builder("echo")
            .bulkhead(1024)
            .breaker(BreakerConfig::default())
            .timeout(Duration::from_secs(30));
        let idempotent = mode == "retry";
        let policy = match idempotent {
            true => builder.retry(RetryPolicy::default()).build(),
            false => builder.build(),
        };
        let actor = slot.get().expect("running");
        let slot = &slot;
        for _ in 0..n {
            match mode.as_str() {
                "bare" => {
                    let t = CancellationToken::new();
                    black_box(
                        actor
                            .call(|r| Msg::Work(1, t, r), None)
                            .await
                            .expect("sent"),
                    );
                }
                "slot" => {
                    let t = CancellationToken::new();
                    black_box(slot.ask(|r| Msg::Work(1, t, r)).await.expect("answer"));
                }
                _ => {
                    let r: Result<u64, PolicyError<String>> = policy
                        .call(
                            CallOptions {
                                idempotent,
                                ..CallOptions::default()
                            },
                            |ctx| async move {
                                Ok(slot
                                    .call_with_cancel(ctx, |t, r| Msg::Work(1, t, r))
                                    .await?)
                            },
                        )
                        .await;
                    black_box(r.expect("answer"));
                }
            }
        }
        sup.stop_and_wait(None, None).await.expect("stop");
    });
}
