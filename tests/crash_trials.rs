//! Crash durability, CI-sized: three trials of concurrent acknowledged writes to every durable
//! engine, SIGKILL at a moment drawn from a fixed seed, restart on the same data directory, and
//! everything acknowledged read back (see `benches/common/crash_trial.rs`; `cargo bench --bench
//! crash` runs twenty and prints the table).

#[path = "../benches/common/crash_trial.rs"]
mod crash_trial;

use std::time::Duration;

use crash_trial::{Rng, trial};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut rng = Rng::new(20);
    for n in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let kill_after = Duration::from_millis(rng.range(1_500, 3_500));
        let t = trial(dir.path(), kill_after).await;
        eprintln!("trial {n}: {t:?}");
        assert!(t.restarted, "trial {n}: no restart: {:?}", t.problems);
        assert!(
            t.control_caught,
            "trial {n}: the checker did not see a write that never happened as lost"
        );
        assert!(t.audit_intact, "trial {n}: audit log: {:?}", t.problems);
        for (engine, acked) in ["registry", "workflows", "promotion", "retrieval", "devops"]
            .iter()
            .zip(t.acked)
        {
            assert!(
                acked > 0,
                "trial {n}: no write to {engine} was acknowledged"
            );
        }
        assert_eq!(
            (t.lost, t.corrupt, t.runs_not_completed, t.unaudited),
            (0, 0, 0, 0),
            "trial {n}: lost, corrupt, runs not completed, unaudited: {:?}",
            t.problems
        );
    }
}
