//! The supervisor with real ractor actors.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ensemble_supervision::*;

fn zero_backoff(spec: SupervisorSpec) -> SupervisorSpec {
    spec.backoff(Backoff::ZERO)
}

#[tokio::test]
async fn a_panicking_child_is_restarted_and_the_next_call_succeeds() {
    let log = Log::default();
    let (slot, spec, _) = worker("w", &log);
    let events = EventBus::default();
    let mut rx = events.subscribe();
    let (sup, _) =
        Supervisor::start(zero_backoff(SupervisorSpec::new("root").events(events)).child(spec))
            .await
            .unwrap();
    assert_eq!(slot.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    let first = slot.generation().unwrap();

    // A call that is in the actor when it dies fails, and says so.
    slot.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&slot, first).await;
    assert_eq!(slot.ask(|r| WorkerMsg::Work(41, r)).await, Ok(42));

    let kinds: Vec<EventKind> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.kind)
        .collect();
    assert!(matches!(kinds[0], EventKind::Started { starts: 1 }));
    assert!(
        matches!(&kinds[1], EventKind::Failed { reason } if reason.contains("panicked on purpose"))
    );
    assert!(matches!(
        kinds[2],
        EventKind::RestartScheduled {
            delay: Duration::ZERO,
            attempt: 1
        }
    ));
    assert!(matches!(kinds[3], EventKind::Started { starts: 2 }));

    let info = Supervisor::children(&sup).await.unwrap();
    assert_eq!(info[0].starts, 2);
    assert_eq!(info[0].status, ChildStatus::Running);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_call_held_by_a_dying_actor_fails_with_the_reason() {
    let log = Log::default();
    let (slot, spec, control) = worker("w", &log);
    let (sup, _) = Supervisor::start(zero_backoff(SupervisorSpec::new("root")).child(spec))
        .await
        .unwrap();
    control.failing.store(true, Ordering::SeqCst);
    let err = slot.ask(|r| WorkerMsg::Work(1, r)).await.unwrap_err();
    assert!(matches!(err, ActorFault::Failed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("engine `w` failed and is restarting")
    );
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn an_error_returned_by_a_handler_is_a_failure_too() {
    let log = Log::default();
    let (slot, spec, _) = worker("w", &log);
    let (sup, _) = Supervisor::start(zero_backoff(SupervisorSpec::new("root")).child(spec))
        .await
        .unwrap();
    let first = slot.generation().unwrap();
    slot.get().unwrap().cast(WorkerMsg::Fail).unwrap();
    restarted(&slot, first).await;
    assert_eq!(slot.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    sup.stop_and_wait(None, None).await.unwrap();
}

async fn three(
    strategy: Strategy,
    log: &Log,
) -> (ractor::ActorRef<SupervisorMsg>, Vec<ActorSlot<WorkerMsg>>) {
    let mut spec = zero_backoff(SupervisorSpec::new("root").strategy(strategy));
    let mut slots = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (slot, child, _) = worker(name, log);
        spec = spec.child(child);
        slots.push(slot);
    }
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    assert_eq!(
        log_lines(log, 4).await,
        ["start:a", "start:b", "start:c", "start:d"]
    );
    (sup, slots)
}

#[tokio::test]
async fn one_for_all_restarts_every_sibling_in_order() {
    let log = Log::default();
    let (sup, slots) = three(Strategy::OneForAll, &log).await;
    let seen = slots[3].generation().unwrap();
    slots[1].get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&slots[3], seen).await;
    assert_eq!(
        log_lines(&log, 7).await,
        [
            "stop:d", "stop:c", "stop:a", "start:a", "start:b", "start:c", "start:d"
        ]
    );
    for s in &slots {
        assert_eq!(s.generation(), Some(2));
        assert_eq!(s.ask(|r| WorkerMsg::Work(0, r)).await, Ok(1));
    }
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let log = Log::default();
    let (sup, slots) = three(Strategy::RestForOne, &log).await;
    let seen = slots[3].generation().unwrap();
    slots[1].get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&slots[3], seen).await;
    assert_eq!(
        log_lines(&log, 5).await,
        ["stop:d", "stop:c", "start:b", "start:c", "start:d"]
    );
    assert_eq!(
        slots[0].generation(),
        Some(1),
        "a started before b: untouched"
    );
    let info = Supervisor::children(&sup).await.unwrap();
    let starts: Vec<u64> = info.iter().map(|c| c.starts).collect();
    assert_eq!(starts, [1, 2, 2, 2]);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn one_for_one_leaves_siblings_alone() {
    let log = Log::default();
    let (sup, slots) = three(Strategy::OneForOne, &log).await;
    let seen = slots[1].generation().unwrap();
    slots[1].get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&slots[1], seen).await;
    assert_eq!(log_lines(&log, 1).await, ["start:b"]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(log.take().is_empty());
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn restart_types_decide_who_comes_back() {
    let log = Log::default();
    let (perm, perm_spec, _) = worker("perm", &log);
    let (trans, trans_spec, _) = worker("trans", &log);
    let (temp, temp_spec, _) = worker("temp", &log);
    let spec = zero_backoff(SupervisorSpec::new("root"))
        .child(perm_spec)
        .child(trans_spec.restart(RestartType::Transient))
        .child(temp_spec.restart(RestartType::Temporary));
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    log_lines(&log, 3).await;

    // A permanent child comes back even after a normal stop.
    perm.get().unwrap().cast(WorkerMsg::Stop).unwrap();
    restarted(&perm, 1).await;
    // A transient child comes back after a panic…
    trans.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&trans, 1).await;
    // …but not after a normal stop.
    trans.get().unwrap().cast(WorkerMsg::Stop).unwrap();
    // A temporary child never comes back.
    temp.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let info = Supervisor::children(&sup).await.unwrap();
    let states: Vec<(ChildStatus, u64)> = info.iter().map(|c| (c.status, c.starts)).collect();
    assert_eq!(
        states,
        [
            (ChildStatus::Running, 2),
            (ChildStatus::Stopped, 2),
            (ChildStatus::Stopped, 1)
        ]
    );
    assert!(matches!(temp.state(), SlotState::Stopped));
    assert!(matches!(
        temp.get(),
        Err(ActorFault::Unavailable {
            retry_after: None,
            ..
        })
    ));
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn exceeding_intensity_escalates_to_the_parent() {
    let log = Log::default();
    let events = EventBus::default();
    let mut rx = events.subscribe();
    let (w, w_spec, _) = worker("w", &log);
    let (sibling, sibling_spec, _) = worker("sibling", &log);
    let inner = zero_backoff(SupervisorSpec::new("inner"))
        .intensity(2, Duration::from_secs(60))
        .events(events.clone())
        .child(sibling_spec)
        .child(w_spec);
    let inner_slot = ActorSlot::new("inner");
    let root = zero_backoff(SupervisorSpec::new("root"))
        .intensity(5, Duration::from_secs(60))
        .events(events.clone())
        .child(ChildSpec::supervisor(inner, &inner_slot));
    let (root, _) = Supervisor::start(root).await.unwrap();
    assert_eq!(log_lines(&log, 2).await, ["start:sibling", "start:w"]);

    // Two restarts are within the intensity.
    for generation in 1..=2 {
        w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
        restarted(&w, generation).await;
    }
    assert_eq!(log_lines(&log, 2).await, ["start:w", "start:w"]);
    // The third makes the inner supervisor give up: it stops its children (newest first) and
    // fails; the root restarts it, which starts its children afresh.
    w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&w, 3).await;
    assert_eq!(
        log_lines(&log, 3).await,
        ["stop:sibling", "start:sibling", "start:w"]
    );
    assert_eq!(sibling.generation(), Some(2));
    assert_eq!(inner_slot.generation(), Some(2));

    let gave_up: Vec<SupervisorEvent> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter(|e| matches!(e.kind, EventKind::GaveUp { .. }))
        .collect();
    assert_eq!(gave_up.len(), 1);
    assert_eq!(&*gave_up[0].supervisor, "inner");
    assert_eq!(&*gave_up[0].child, "w");
    let info = Supervisor::children(&root).await.unwrap();
    assert_eq!((info[0].name.as_str(), info[0].starts), ("inner", 2));
    root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_root_that_gives_up_stops_its_children_gracefully_and_fails() {
    let log = Log::default();
    let (w, w_spec, _) = worker("w", &log);
    let (_, other_spec, _) = worker("other", &log);
    let spec = zero_backoff(SupervisorSpec::new("root"))
        .intensity(0, Duration::from_secs(60))
        .child(other_spec)
        .child(w_spec);
    let (root, handle) = Supervisor::start(spec).await.unwrap();
    log_lines(&log, 2).await;
    w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(root.get_status(), ractor::ActorStatus::Stopped);
    // post_stop ran for the surviving child: it was stopped, not killed.
    assert_eq!(log.take(), ["stop:other"]);
    // Nothing above a root restarts it: its children are gone for good.
    assert!(matches!(w.state(), SlotState::Gone));
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_goes_in_reverse_order_and_kills_what_hangs() {
    let log = Log::default();
    let (_, a, _) = worker("a", &log);
    let (_, b, b_control) = worker("b", &log);
    let (_, c, _) = worker("c", &log);
    b_control.stop_delay_ms.store(60_000, Ordering::SeqCst);
    let spec = SupervisorSpec::new("root")
        .child(a)
        .child(b.shutdown(Duration::from_millis(100)))
        .child(c);
    let (root, _) = Supervisor::start(spec).await.unwrap();
    log_lines(&log, 3).await;
    let started = tokio::time::Instant::now();
    root.stop_and_wait(None, None).await.unwrap();
    // b hung in post_stop for a minute: it was killed after its 100 ms.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(log.take(), ["stop:c", "stop:a"]);
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_exponentially_and_reset_after_a_stable_run() {
    let log = Log::default();
    let (w, spec, _) = worker("w", &log);
    let events = EventBus::default();
    let mut rx = events.subscribe();
    let spec = SupervisorSpec::new("root")
        .events(events)
        .intensity(100, Duration::from_secs(60))
        .backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(300),
        ))
        .backoff_reset_after(Duration::from_secs(10))
        .child(spec);
    let (root, _) = Supervisor::start(spec).await.unwrap();

    let mut delays = Vec::new();
    for generation in 1..=4u64 {
        w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
        let failed_at = tokio::time::Instant::now();
        // While it waits, callers are told when to come back.
        tokio::task::yield_now().await;
        restarted(&w, generation).await;
        delays.push(failed_at.elapsed());
    }
    let scheduled: Vec<(Duration, u32)> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e.kind {
            EventKind::RestartScheduled { delay, attempt } => Some((delay, attempt)),
            _ => None,
        })
        .collect();
    let bounds = [(50, 100), (100, 200), (150, 300), (150, 300)];
    for (i, ((delay, attempt), (lo, hi))) in scheduled.iter().zip(bounds).enumerate() {
        assert_eq!(*attempt, i as u32 + 1);
        assert!(
            *delay >= Duration::from_millis(lo) && *delay <= Duration::from_millis(hi),
            "restart {i}: {delay:?} not in [{lo}, {hi}] ms"
        );
        assert!(delays[i] >= *delay, "restarted before its backoff was over");
    }

    // After a stable run longer than the reset period the backoff starts over.
    tokio::time::sleep(Duration::from_secs(11)).await;
    w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    restarted(&w, 5).await;
    let last = std::iter::from_fn(|| rx.try_recv().ok())
        .find_map(|e| match e.kind {
            EventKind::RestartScheduled { delay, attempt } => Some((delay, attempt)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.1, 1);
    assert!(last.0 <= Duration::from_millis(100));
    root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn callers_during_a_backoff_are_told_when_to_retry() {
    let log = Log::default();
    let (w, spec, _) = worker("w", &log);
    let spec = SupervisorSpec::new("root")
        .backoff(Backoff::new(Duration::from_secs(2), Duration::from_secs(2)))
        .child(spec);
    let (root, _) = Supervisor::start(spec).await.unwrap();
    w.get().unwrap().cast(WorkerMsg::Panic).unwrap();
    let mut rx = w.subscribe();
    rx.wait_for(|s| matches!(s, SlotState::Restarting { .. }))
        .await
        .unwrap();
    let err = w.ask(|r| WorkerMsg::Work(1, r)).await.unwrap_err();
    let retry_after = err.retry_after().expect("a restart is scheduled");
    assert!(retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(2));
    assert!(
        err.to_string()
            .starts_with("engine `w` is restarting; retry in")
    );
    restarted(&w, 1).await;
    root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_child_that_cannot_start_fails_the_supervisor_start() {
    let log = Log::default();
    let (_, good, _) = worker("good", &log);
    let bad = ChildSpec::from_fn("bad", |_| {
        Box::pin(async { Err(ractor::SpawnErr::StartupFailed("no database".into())) })
    });
    let err = Supervisor::start(SupervisorSpec::new("root").child(good).child(bad))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("could not start child `bad`"),
        "{err}"
    );
    assert!(err.to_string().contains("no database"), "{err}");
    // The child that had started was stopped again, gracefully.
    assert_eq!(log.take(), ["start:good", "stop:good"]);
}

#[tokio::test]
async fn two_trees_with_the_same_names_do_not_collide() {
    let log = Log::default();
    let mut roots = Vec::new();
    let mut slots = Vec::new();
    for _ in 0..2 {
        let (slot, spec, _) = worker("same", &log);
        roots.push(
            Supervisor::start(SupervisorSpec::new("root").child(spec))
                .await
                .unwrap()
                .0,
        );
        slots.push(slot);
    }
    for s in &slots {
        assert_eq!(s.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    }
    for r in roots {
        r.stop_and_wait(None, None).await.unwrap();
    }
}

#[tokio::test]
async fn right_after_a_crash_the_slot_never_hands_out_the_dead_actor() {
    let log = Log::default();
    let (slot, spec, control) = worker("w", &log);
    let spec = SupervisorSpec::new("root")
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(20),
        ))
        .intensity(100, Duration::from_secs(60))
        .child(spec);
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    for i in 0..20 {
        control.failing.store(true, Ordering::SeqCst);
        let err = slot.ask(|r| WorkerMsg::Work(1, r)).await.unwrap_err();
        assert!(matches!(err, ActorFault::Failed { .. }));
        control.failing.store(false, Ordering::SeqCst);
        // The reply port drops before the supervisor hears of the crash: the slot must
        // still not offer the dead actor.
        let fresh = tokio::time::timeout(Duration::from_secs(5), slot.ready())
            .await
            .unwrap_or_else(|_| panic!("iteration {i}: slot still {:?}", slot.state()));
        assert_eq!(fresh.get_status(), ractor::ActorStatus::Running);
        assert_eq!(slot.ask(|r| WorkerMsg::Work(1, r)).await, Ok(2));
    }
    sup.stop_and_wait(None, None).await.unwrap();
}
