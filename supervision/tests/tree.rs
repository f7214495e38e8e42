//! The runtime's tree shape: each engine under a supervisor of its own, all of them under a
//! one-for-one root that restarts a given-up engine after a growing backoff, within a
//! top-level budget that is final.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ensemble_supervision::*;
use tokio::time::Instant;

/// An engine: a worker under a supervisor of its own that tolerates `max_restarts` in a minute.
fn engine(name: &str, log: &Log, events: &EventBus, max_restarts: u32) -> Engine {
    let (slot, spec, control) = worker(name, log);
    let sup = SupervisorSpec::new(name)
        .events(events.clone())
        .intensity(max_restarts, Duration::from_secs(60))
        .backoff(Backoff::ZERO)
        .child(spec);
    let sup_slot = ActorSlot::new(name);
    Engine {
        slot,
        control,
        child: ChildSpec::supervisor(sup, &sup_slot),
        sup_slot,
    }
}

struct Engine {
    slot: ActorSlot<WorkerMsg>,
    control: Arc<Control>,
    child: ChildSpec,
    sup_slot: ActorSlot<SupervisorMsg>,
}

fn root(events: &EventBus, budget: u32) -> SupervisorSpec {
    SupervisorSpec::new("engines")
        .events(events.clone())
        .intensity(budget, Duration::from_secs(600))
        .backoff(Backoff::new(Duration::from_secs(1), Duration::from_secs(8)))
        .backoff_reset_after(Duration::from_secs(60))
}

/// Crashes the engine's actor until its supervisor gives up (`max_restarts + 1` crashes).
async fn crash_until_it_gives_up(e: &Engine, max_restarts: u32) {
    for _ in 0..=max_restarts {
        let mut rx = e.slot.subscribe();
        let (actor, seen) = rx
            .wait_for(|s| matches!(s, SlotState::Running { .. }))
            .await
            .map(|s| match &*s {
                SlotState::Running { actor, generation } => (actor.clone(), *generation),
                _ => unreachable!(),
            })
            .expect("slot");
        actor.cast(WorkerMsg::Panic).expect("cast");
        // Gone from the slot (a restart may already have replaced it).
        rx.wait_for(|s| !matches!(s, SlotState::Running { generation, .. } if *generation == seen))
            .await
            .expect("slot");
    }
}

fn scheduled_for(events: &mut tokio::sync::broadcast::Receiver<SupervisorEvent>) -> Vec<Duration> {
    std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| &*e.supervisor == "engines")
        .filter_map(|e| match e.kind {
            EventKind::RestartScheduled { delay, .. } => Some(delay),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_given_up_engine_restarts_after_a_backoff_while_its_siblings_serve() {
    let log = Log::default();
    let events = EventBus::default();
    let mut rx = events.subscribe();
    let a = engine("a", &log, &events, 2);
    let b = engine("b", &log, &events, 2);
    let (sup, _) = Supervisor::start(root(&events, 10).child(a.child.clone()).child(b.child))
        .await
        .unwrap();
    let b_generation = b.slot.generation();

    crash_until_it_gives_up(&a, 2).await;
    // The subtree waits for its restart: callers of the engine are told when to come back.
    let mut a_rx = a.slot.subscribe();
    a_rx.wait_for(|s| matches!(s, SlotState::Restarting { .. }))
        .await
        .unwrap();
    let err = a.slot.ask(|r| WorkerMsg::Work(1, r)).await.unwrap_err();
    let retry_after = err.retry_after().expect("a restart is scheduled");
    assert!(
        retry_after >= Duration::from_millis(400) && retry_after <= Duration::from_secs(1),
        "{retry_after:?}"
    );
    assert!(err.to_string().contains("is restarting; retry in"), "{err}");
    // The sibling never noticed.
    assert_eq!(b.slot.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    assert_eq!(b.slot.generation(), b_generation);

    // After the backoff the whole subtree is back.
    let before = Instant::now();
    let fresh = tokio::time::timeout(Duration::from_secs(5), a.slot.ready())
        .await
        .expect("engine a back");
    assert!(before.elapsed() >= retry_after - Duration::from_millis(1));
    assert_eq!(fresh.get_id(), a.slot.get().unwrap().get_id());
    assert_eq!(a.slot.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    assert_eq!(a.sup_slot.generation(), Some(2));

    let all: Vec<SupervisorEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    let gave_up: Vec<&str> = all
        .iter()
        .filter(|e| matches!(e.kind, EventKind::GaveUp { .. }))
        .map(|e| &*e.supervisor)
        .collect();
    assert_eq!(gave_up, ["a"], "only engine a's supervisor gave up");
    assert!(all.iter().any(|e| &*e.supervisor == "engines"
        && &*e.child == "a"
        && matches!(e.kind, EventKind::RestartScheduled { attempt: 1, .. })));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_give_up_in_a_row_waits_longer_and_a_stable_run_resets_the_wait() {
    let log = Log::default();
    let events = EventBus::default();
    let mut rx = events.subscribe();
    let a = engine("a", &log, &events, 1);
    let (sup, _) = Supervisor::start(root(&events, 100).child(a.child.clone()))
        .await
        .unwrap();
    for _ in 0..5 {
        crash_until_it_gives_up(&a, 1).await;
        tokio::time::timeout(Duration::from_secs(30), a.slot.ready())
            .await
            .expect("engine a back");
    }
    let delays = scheduled_for(&mut rx);
    // Equal jitter on 1 s doubling to a cap of 8 s: [0.5, 1], [1, 2], [2, 4], [4, 8], [4, 8].
    let bounds = [
        (500, 1000),
        (1000, 2000),
        (2000, 4000),
        (4000, 8000),
        (4000, 8000),
    ];
    assert_eq!(delays.len(), bounds.len(), "{delays:?}");
    for (d, (lo, hi)) in delays.iter().zip(bounds) {
        assert!(
            *d >= Duration::from_millis(lo) && *d <= Duration::from_millis(hi),
            "{delays:?}"
        );
    }
    // A minute of good service: the next give-up waits the base delay again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    crash_until_it_gives_up(&a, 1).await;
    tokio::time::timeout(Duration::from_secs(30), a.slot.ready())
        .await
        .expect("engine a back");
    let last = scheduled_for(&mut rx);
    assert_eq!(last.len(), 1);
    assert!(last[0] <= Duration::from_secs(1), "{last:?}");
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_spent_top_level_budget_is_final_and_every_engine_is_gone() {
    let log = Log::default();
    let events = EventBus::default();
    let a = engine("a", &log, &events, 1);
    let b = engine("b", &log, &events, 1);
    let (sup, stopped) = Supervisor::start(root(&events, 1).child(a.child.clone()).child(b.child))
        .await
        .unwrap();
    // One subtree restart is within the budget...
    crash_until_it_gives_up(&a, 1).await;
    tokio::time::timeout(Duration::from_secs(30), a.slot.ready())
        .await
        .expect("engine a back");
    // ...the second give-up spends it: the root stops everything and fails.
    crash_until_it_gives_up(&a, 1).await;
    tokio::time::timeout(Duration::from_secs(30), stopped)
        .await
        .expect("the root stopped")
        .unwrap();
    assert_eq!(sup.get_status(), ractor::ActorStatus::Stopped);
    assert!(matches!(b.slot.state(), SlotState::Gone));
    assert!(matches!(a.slot.state(), SlotState::Gone));
    // Calls fail at once, retries included: nothing is coming back.
    let err = b.slot.ask(|r| WorkerMsg::Work(1, r)).await.unwrap_err();
    assert_eq!(err.retry_after(), None);
    let policy = RoutePolicy::builder("b")
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::default())
        .build();
    let started = Instant::now();
    let r = work(&policy, &b.slot, CallOptions::idempotent()).await;
    assert!(matches!(r, Err(PolicyError::Actor(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "a retry waited");
    assert_eq!(b.control.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_call_is_not_held_through_a_long_subtree_backoff() {
    let log = Log::default();
    let events = EventBus::default();
    let a = engine("a", &log, &events, 0);
    let (sup, _) = Supervisor::start(
        root(&events, 10)
            .backoff(Backoff::new(
                Duration::from_secs(20),
                Duration::from_secs(20),
            ))
            .child(a.child.clone()),
    )
    .await
    .unwrap();
    crash_until_it_gives_up(&a, 0).await;
    let mut a_rx = a.slot.subscribe();
    a_rx.wait_for(|s| matches!(s, SlotState::Restarting { .. }))
        .await
        .unwrap();
    let policy = RoutePolicy::builder("a")
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::default())
        .build();
    let started = Instant::now();
    let r = work(&policy, &a.slot, CallOptions::idempotent()).await;
    let err = r.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        err.retry_after().unwrap() > Duration::from_secs(9),
        "{err:?}"
    );
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn calls_that_die_with_one_crash_are_one_breaker_failure() {
    let log = Log::default();
    let events = EventBus::default();
    let a = engine("a", &log, &events, 100);
    let (sup, _) = Supervisor::start(root(&events, 10).child(a.child.clone()))
        .await
        .unwrap();
    let policy = RoutePolicy::builder("a")
        .breaker(BreakerConfig {
            crash_threshold: 2,
            ..BreakerConfig::default()
        })
        .build();
    let breaker = policy.breaker().unwrap().clone();
    // Eight calls wait behind a slow one in the mailbox; the slow one's actor dies with them.
    let blocker = a.slot.get().unwrap();
    let slow = tokio::spawn({
        let slot = a.slot.clone();
        async move {
            slot.ask(|r| WorkerMsg::Slow(Duration::from_millis(300), CancellationToken::new(), r))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.control.failing.store(true, Ordering::SeqCst);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (policy, slot) = (policy.clone(), a.slot.clone());
            tokio::spawn(async move { work(&policy, &slot, CallOptions::default()).await })
        })
        .collect();
    let _ = slow.await;
    let mut crashed = 0;
    for c in calls {
        if let Err(PolicyError::Actor(ActorFault::Failed {
            crashed: Some(_), ..
        })) = c.await.unwrap()
        {
            crashed += 1;
        }
    }
    assert_eq!(crashed, 8, "all eight died with the actor");
    assert_eq!(blocker.get_status(), ractor::ActorStatus::Stopped);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "one crash, not eight"
    );
    // A second crash of another actor is the second failure of the engine.
    tokio::time::timeout(Duration::from_secs(5), a.slot.ready())
        .await
        .unwrap();
    let _ = work(&policy, &a.slot, CallOptions::default()).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    sup.stop_and_wait(None, None).await.unwrap();
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Engine `i` tolerates `INTENSITY[i]` restarts within a minute.
    const INTENSITY: [u32; 3] = [0, 1, 2];

    /// What the model says a script of crashes does: give-ups per engine, and whether the root
    /// spent its budget (and after which step).
    fn model(script: &[usize], budget: u32) -> ([u32; 3], Option<usize>) {
        let mut crashes = [0u32; 3];
        let mut giveups = [0u32; 3];
        for (step, &e) in script.iter().enumerate() {
            crashes[e] += 1;
            // A fresh subtree after each give-up: its history starts empty.
            if crashes[e] == INTENSITY[e] + 1 {
                crashes[e] = 0;
                giveups[e] += 1;
                if giveups.iter().sum::<u32>() > budget {
                    return (giveups, Some(step));
                }
            }
        }
        (giveups, None)
    }

    async fn run(script: Vec<usize>, budget: u32) -> Result<(), TestCaseError> {
        let log = Log::default();
        let events = EventBus::default();
        let mut rx = events.subscribe();
        let engines: Vec<Engine> = (0..3)
            .map(|i| engine(&format!("e{i}"), &log, &events, INTENSITY[i]))
            .collect();
        // A fourth engine that never crashes.
        let calm = engine("calm", &log, &events, 0);
        let mut spec = root(&events, budget);
        for e in &engines {
            spec = spec.child(e.child.clone());
        }
        let (sup, stopped) = Supervisor::start(spec.child(calm.child.clone()))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut calm_states = calm.slot.subscribe();
        let (expected, final_step) = model(&script, budget);
        for (step, &e) in script.iter().enumerate() {
            let e = &engines[e];
            let mut rx = e.slot.subscribe();
            let (actor, seen) = match rx
                .wait_for(|s| matches!(s, SlotState::Running { .. }))
                .await
                .map(|s| match &*s {
                    SlotState::Running { actor, generation } => (actor.clone(), *generation),
                    _ => unreachable!(),
                }) {
                Ok(v) => v,
                Err(_) => return Err(TestCaseError::fail("slot closed")),
            };
            let _ = actor.cast(WorkerMsg::Panic);
            if Some(step) == final_step {
                break;
            }
            let _ = rx
                .wait_for(
                    |s| !matches!(s, SlotState::Running { generation, .. } if *generation == seen),
                )
                .await;
            // The calm engine never left its first actor.
            let calm_running = matches!(
                &*calm_states.borrow_and_update(),
                SlotState::Running { generation: 1, .. }
            );
            prop_assert!(calm_running, "the calm engine was disturbed");
        }
        if final_step.is_some() {
            tokio::time::timeout(Duration::from_secs(120), stopped)
                .await
                .map_err(|_| TestCaseError::fail("the root did not stop"))?
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(matches!(calm.slot.state(), SlotState::Gone));
        } else {
            // Every engine comes back; nothing more gave up than the model says.
            for e in &engines {
                tokio::time::timeout(Duration::from_secs(120), e.slot.ready())
                    .await
                    .map_err(|_| TestCaseError::fail("an engine did not come back"))?;
            }
            prop_assert_eq!(calm.slot.generation(), Some(1));
            sup.stop_and_wait(None, None)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut giveups = [0u32; 3];
        let mut root_gave_up = false;
        while let Ok(ev) = rx.try_recv() {
            if let EventKind::GaveUp { .. } = ev.kind {
                match &*ev.supervisor {
                    "engines" => root_gave_up = true,
                    name => {
                        let i: usize = name[1..].parse().map_err(|_| {
                            TestCaseError::fail(format!("unexpected give-up of {name}"))
                        })?;
                        giveups[i] += 1;
                    }
                }
            }
        }
        prop_assert_eq!(giveups, expected);
        prop_assert_eq!(root_gave_up, final_step.is_some());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// For any sequence of crashes across three engines: each engine's supervisor gives up
        /// exactly when its own intensity says, the root restarts only that engine (an engine
        /// that never crashed keeps its first actor), and the root gives up exactly when the
        /// give-ups exceed the top-level budget, leaving every engine gone.
        #[test]
        fn the_tree_decides_as_the_model(script in proptest::collection::vec(0usize..3, 0..14),
                                         budget in 0u32..4) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            rt.block_on(run(script, budget))?;
        }
    }
}
