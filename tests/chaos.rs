//! Chaos under load, CI-sized: 200 mixed calls a second for 10 s to the real binary while 1% of
//! them make the registry actor panic (`benches/common/chaos.rs`; `cargo bench --bench chaos`
//! runs the full size against a fault-free baseline). No call hangs, nothing acknowledged is
//! lost, every panic is a restart, and the engines that took no fault answer every call.

#[path = "../benches/common/chaos.rs"]
mod chaos;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_under_load_hang_nothing_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = chaos::start(dir.path()).expect("the server starts");
    chaos::prepare(&server)
        .await
        .expect("the data the mix uses");
    let p = chaos::load(&server, 200, Duration::from_secs(10), 0.01, 7).await;
    eprintln!("{p:#?}");
    let hung: u64 = p.classes.values().map(|c| c.hung).sum::<u64>() + p.faults_hung;
    assert_eq!(hung, 0, "hung calls");
    assert!(p.faults > 0, "no fault was injected");
    assert_eq!(
        p.faults_answered_failed + p.faults_refused_restarting,
        p.faults,
        "each fault panics the registry, or is refused while it restarts: {:?}",
        p.fault_answers
    );
    assert!(p.panics > 0, "no panic was injected");
    assert!(p.panics <= p.faults_answered_failed);
    assert_eq!(
        p.restarts, p.panics as f64,
        "one registry restart per panic"
    );
    assert_eq!(
        (p.lost_puts, p.runs_not_completed),
        (0, 0),
        "{:?}",
        p.problems
    );
    assert!(p.acked_puts > 0 && p.acked_runs > 0);
    for class in ["validation", "execution", "workflow", "retrieval", "devops"] {
        let c = p.classes.get(class).cloned().unwrap_or_default();
        assert!(c.ok > 0, "{class}: no call answered");
        assert_eq!(
            c.tool_errors + c.transport_errors,
            0,
            "{class} took no fault but failed: {:?}",
            c.first_error
        );
    }
}
