//! Call policies around real supervised actors.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ensemble_supervision::*;
use ractor::ActorRef;

async fn supervised(name: &str) -> (ActorRef<SupervisorMsg>, ActorSlot<WorkerMsg>, Arc<Control>) {
    let log = Log::default();
    let (slot, spec, control) = worker(name, &log);
    let spec = SupervisorSpec::new("root")
        .backoff(Backoff::ZERO)
        .intensity(1000, Duration::from_secs(1))
        .child(spec);
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    (sup, slot, control)
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_rejects_fast_half_opens_and_closes() {
    let (sup, slot, control) = supervised("flaky").await;
    let policy = RoutePolicy::builder("flaky")
        .breaker(BreakerConfig {
            sliding_window_size: 4,
            minimum_calls: 4,
            failure_rate_threshold: 50.0,
            wait_in_open: Duration::from_secs(5),
            permitted_calls_in_half_open: 2,
            // The failure-rate rule alone (crashes are counted by their own rule, tested in
            // tests/tree.rs).
            crash_threshold: 0,
            ..BreakerConfig::default()
        })
        .build();
    let breaker = policy.breaker().unwrap().clone();
    let mut states = breaker.subscribe();

    control.failing.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        let err = work(&policy, &slot, CallOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PolicyError::Actor(_)), "{err:?}");
        // Wait for the restart, so each failure is the actor's, not the restart gap's.
        slot.ready().await;
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert!(states.has_changed().unwrap());
    assert_eq!(*states.borrow_and_update(), BreakerState::Open);

    // While open, calls are rejected without reaching the actor.
    let handled = control.handled.load(Ordering::SeqCst);
    let err = work(&policy, &slot, CallOptions::default())
        .await
        .unwrap_err();
    match &err {
        PolicyError::CircuitOpen { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(5)));
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(err.to_string().contains("retry in 5s"), "{err}");
    assert_eq!(control.handled.load(Ordering::SeqCst), handled);

    // After the wait the breaker lets probes through; two successes close it.
    tokio::time::advance(Duration::from_secs(5)).await;
    control.failing.store(false, Ordering::SeqCst);
    assert_eq!(work(&policy, &slot, CallOptions::default()).await, Ok(2));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(work(&policy, &slot, CallOptions::default()).await, Ok(2));
    assert_eq!(breaker.state(), BreakerState::Closed);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn engine_errors_are_answers_not_breaker_failures() {
    let policy = RoutePolicy::builder("strict")
        .breaker(BreakerConfig {
            sliding_window_size: 2,
            minimum_calls: 2,
            ..BreakerConfig::default()
        })
        .build();
    for _ in 0..10 {
        let r: Result<(), _> = policy
            .call(CallOptions::default(), |_| async {
                Err(CallError::Engine("field `name` is required".to_string()))
            })
            .await;
        assert_eq!(
            r,
            Err(PolicyError::Engine("field `name` is required".to_string()))
        );
    }
    assert_eq!(policy.breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_timeout_cancels_the_work_in_the_actor() {
    let (sup, slot, control) = supervised("slow").await;
    let policy = RoutePolicy::builder("slow")
        .timeout(Duration::from_millis(50))
        .build();
    let err = policy
        .call(CallOptions::default(), |ctx| {
            let slot = slot.clone();
            async move {
                let token = ctx.cancel.clone();
                Ok::<_, CallError<String>>(
                    slot.call(&ctx, |r| WorkerMsg::Slow(Duration::from_secs(30), token, r))
                        .await?,
                )
            }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::Timeout { after, .. } if after == Duration::from_millis(50))
    );
    // The actor saw the cancellation and is free again at once, not after 30 s.
    let r = tokio::time::timeout(Duration::from_secs(5), slot.ask(|r| WorkerMsg::Work(1, r))).await;
    assert_eq!(r.unwrap(), Ok(2));
    assert!(control.saw_cancel.load(Ordering::SeqCst));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_caller_cancelling_stops_the_work() {
    let (sup, slot, control) = supervised("slow").await;
    let policy = RoutePolicy::builder("slow").build();
    let cancel = CancellationToken::new();
    let opts = CallOptions {
        cancel: Some(cancel.clone()),
        ..CallOptions::default()
    };
    let call = policy.call(opts, |ctx| {
        let slot = slot.clone();
        async move {
            let token = ctx.cancel.clone();
            Ok::<_, CallError<String>>(
                slot.call(&ctx, |r| WorkerMsg::Slow(Duration::from_secs(30), token, r))
                    .await?,
            )
        }
    });
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        cancel.cancel();
    };
    let (r, ()) = tokio::join!(call, canceller);
    assert!(matches!(r, Err(PolicyError::Cancelled { .. })), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), slot.ask(|r| WorkerMsg::Work(1, r))).await;
    assert_eq!(r.unwrap(), Ok(2));
    assert!(control.saw_cancel.load(Ordering::SeqCst));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn dropping_the_call_future_cancels_the_work() {
    let (sup, slot, control) = supervised("slow").await;
    let policy = RoutePolicy::builder("slow").build();
    let call = policy.call(CallOptions::default(), |ctx| {
        let slot = slot.clone();
        async move {
            let token = ctx.cancel.clone();
            Ok::<_, CallError<String>>(
                slot.call(&ctx, |r| WorkerMsg::Slow(Duration::from_secs(30), token, r))
                    .await?,
            )
        }
    });
    // The client went away: the future is dropped after 30 ms.
    let _ = tokio::time::timeout(Duration::from_millis(30), call).await;
    let r = tokio::time::timeout(Duration::from_secs(5), slot.ask(|r| WorkerMsg::Work(1, r))).await;
    assert_eq!(r.unwrap(), Ok(2));
    assert!(control.saw_cancel.load(Ordering::SeqCst));
    sup.stop_and_wait(None, None).await.unwrap();
}

/// A route that retries idempotent calls up to three attempts, with a short backoff.
fn retrying_policy() -> RoutePolicy {
    RoutePolicy::builder("w")
        .timeout(Duration::from_secs(10))
        .retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
            budget: Arc::new(RetryBudget::new(0.2, 10)),
            ..RetryPolicy::default()
        })
        .build()
}

/// Makes the actor fail its next call; the returned future, once the supervisor has restarted
/// it, makes it healthy again.
fn fail_until_restarted(
    slot: &ActorSlot<WorkerMsg>,
    control: &Arc<Control>,
) -> impl std::future::Future<Output = ()> + use<> {
    control.failing.store(true, Ordering::SeqCst);
    let (slot, control) = (slot.clone(), control.clone());
    async move {
        slot.next_generation(1).await;
        control.failing.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn idempotent_calls_are_retried_once_the_child_is_back() {
    let (sup, slot, control) = supervised("w").await;
    let policy = retrying_policy();

    // The actor dies on the first call; it is restarted healthy.
    let flip = fail_until_restarted(&slot, &control);
    let (r, ()) = tokio::join!(work(&policy, &slot, CallOptions::idempotent()), flip);
    assert_eq!(r, Ok(2));
    assert_eq!(
        control.handled.load(Ordering::SeqCst),
        2,
        "one failure, one retry"
    );

    // A call that is not idempotent is never retried.
    control.failing.store(true, Ordering::SeqCst);
    let r = work(&policy, &slot, CallOptions::default()).await;
    assert!(
        matches!(r, Err(PolicyError::Actor(ActorFault::Failed { .. }))),
        "{r:?}"
    );
    assert_eq!(control.handled.load(Ordering::SeqCst), 3);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_when_the_budget_is_spent() {
    let (sup, slot, control) = supervised("w").await;
    control.failing.store(true, Ordering::SeqCst);
    let budget = Arc::new(RetryBudget::new(0.0, 0));
    let policy = RoutePolicy::builder("w")
        .retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::ZERO,
            budget: budget.clone(),
            ..RetryPolicy::default()
        })
        .build();
    // An empty budget: no retry at all, however many attempts are allowed.
    let r = work(&policy, &slot, CallOptions::idempotent()).await;
    assert!(matches!(r, Err(PolicyError::Actor(_))));
    assert_eq!(control.handled.load(Ordering::SeqCst), 1);

    let policy = RoutePolicy::builder("w")
        .retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::ZERO,
            budget: Arc::new(RetryBudget::new(1.0, 100)),
            ..RetryPolicy::default()
        })
        .build();
    let r = work(&policy, &slot, CallOptions::idempotent()).await;
    assert!(matches!(r, Err(PolicyError::Actor(_))));
    assert_eq!(control.handled.load(Ordering::SeqCst), 4, "1 + 3 attempts");
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_full_bulkhead_fails_fast_and_frees_up() {
    let (sup, slot, _) = supervised("w").await;
    let policy = RoutePolicy::builder("w").bulkhead(1).build();
    let token = CancellationToken::new();
    let hold = {
        let policy = policy.clone();
        let slot = slot.clone();
        let token = token.clone();
        tokio::spawn(async move {
            policy
                .call(CallOptions::default(), |_| {
                    let slot = slot.clone();
                    let token = token.clone();
                    async move {
                        Ok::<_, CallError<String>>(
                            slot.ask(|r| WorkerMsg::Slow(Duration::from_secs(30), token, r))
                                .await?,
                        )
                    }
                })
                .await
        })
    };
    while policy.bulkhead().unwrap().in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let err = work(&policy, &slot, CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::BulkheadFull {
            route: "w".into(),
            max_in_flight: 1
        }
    );
    assert!(err.to_string().contains("limit of 1 calls in flight"));
    token.cancel();
    assert_eq!(hold.await.unwrap(), Ok(false));
    assert_eq!(work(&policy, &slot, CallOptions::default()).await, Ok(2));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_may_let_excess_calls_wait_a_bounded_time() {
    let policy = RoutePolicy::builder("w")
        .bulkhead_with(Bulkhead::new(1).with_max_wait(Duration::from_millis(100)))
        .build();
    let slow = policy.call(CallOptions::default(), |_| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, CallError<String>>(1)
    });
    let waiting = async {
        tokio::task::yield_now().await;
        policy
            .call(CallOptions::default(), |_| async {
                Ok::<_, CallError<String>>(2)
            })
            .await
    };
    let (a, b) = tokio::join!(slow, waiting);
    assert_eq!((a, b), (Ok(1), Ok(2)));
}

#[tokio::test(start_paused = true)]
async fn long_deadlines_fire_within_two_ticks_and_cancel_the_token() {
    let policy = RoutePolicy::builder("slow")
        .timeout(Duration::from_secs(1))
        .build();
    let started = tokio::time::Instant::now();
    let token = Arc::new(std::sync::Mutex::new(None));
    let keep = token.clone();
    let r: Result<(), _> = policy
        .call(CallOptions::default(), move |ctx| {
            *keep.lock().unwrap() = Some(ctx.cancel.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), CallError<String>>(())
            }
        })
        .await;
    let took = started.elapsed();
    assert!(
        matches!(r, Err(PolicyError::Timeout { after, .. }) if after == Duration::from_secs(1))
    );
    assert!(
        took >= Duration::from_secs(1) && took <= Duration::from_millis(1020),
        "{took:?}"
    );
    // The token handed to the actor is cancelled, so work it started stops too.
    let token = token.lock().unwrap().take().unwrap();
    assert!(token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker() {
    let policy = RoutePolicy::builder("sluggish")
        .breaker(BreakerConfig {
            sliding_window_size: 2,
            minimum_calls: 2,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_millis(100),
            ..BreakerConfig::default()
        })
        .build();
    let sluggish = || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, CallError<String>>(())
    };
    assert_eq!(
        policy.call(CallOptions::default(), |_| sluggish()).await,
        Ok(())
    );
    assert_eq!(policy.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(
        policy.call(CallOptions::default(), |_| sluggish()).await,
        Ok(())
    );
    assert_eq!(policy.breaker().unwrap().state(), BreakerState::Open);

    // Fast calls do not count as slow.
    let policy = RoutePolicy::builder("brisk")
        .breaker(BreakerConfig {
            sliding_window_size: 2,
            minimum_calls: 2,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_millis(100),
            ..BreakerConfig::default()
        })
        .build();
    for _ in 0..4 {
        let r = policy
            .call(CallOptions::default(), |_| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, CallError<String>>(())
            })
            .await;
        assert_eq!(r, Ok(()));
    }
    assert_eq!(policy.breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test]
async fn call_with_cancel_hands_the_calls_token_to_the_actor() {
    let (sup, slot, control) = supervised("slow").await;
    let policy = RoutePolicy::builder("slow")
        .timeout(Duration::from_millis(50))
        .build();
    let err = policy
        .call(CallOptions::default(), |ctx| {
            let slot = &slot;
            async move {
                Ok::<_, CallError<String>>(
                    slot.call_with_cancel(ctx, |cancel, r| {
                        WorkerMsg::Slow(Duration::from_secs(30), cancel, r)
                    })
                    .await?,
                )
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PolicyError::Timeout { .. }), "{err:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), slot.ask(|r| WorkerMsg::Work(1, r))).await;
    assert_eq!(r.unwrap(), Ok(2));
    assert!(control.saw_cancel.load(Ordering::SeqCst));

    // A quick call answers.
    let r = policy
        .call(CallOptions::default(), |ctx| {
            let slot = &slot;
            async move {
                Ok::<_, CallError<String>>(
                    slot.call_with_cancel(ctx, |cancel, r| {
                        WorkerMsg::Slow(Duration::ZERO, cancel, r)
                    })
                    .await?,
                )
            }
        })
        .await;
    assert_eq!(r, Ok(true));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn call_with_cancel_retries_once_the_child_is_back() {
    let (sup, slot, control) = supervised("w").await;
    let policy = retrying_policy();
    let flip = fail_until_restarted(&slot, &control);
    let call = policy.call(CallOptions::idempotent(), |ctx| {
        let slot = &slot;
        async move {
            // The token moves into the message; Work does not carry one, so drop it here.
            Ok::<_, CallError<String>>(
                slot.call_with_cancel(ctx, |_cancel, r| WorkerMsg::Work(1, r))
                    .await?,
            )
        }
    });
    let (r, ()) = tokio::join!(call, flip);
    assert_eq!(r, Ok(2));
    assert_eq!(control.handled.load(Ordering::SeqCst), 2);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_call_to_a_slot_with_no_actor_fails_fast() {
    let slot: ActorSlot<WorkerMsg> = ActorSlot::new("nobody");
    let r = slot.ask(|r| WorkerMsg::Work(1, r)).await;
    assert!(
        matches!(
            r,
            Err(ActorFault::Unavailable {
                retry_after: None,
                ..
            })
        ),
        "{r:?}"
    );
}
