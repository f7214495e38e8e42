//! Crash durability, full size: trials of concurrent acknowledged writes to every durable
//! engine (registry, workflows, promotion, retrieval, the devops learner; the audit log of
//! every call), SIGKILL at a random moment, restart on the same data directory, everything
//! acknowledged read back. One row per trial, then the totals.
//!
//! ```sh
//! cargo bench --bench crash -- [--trials 20] [--seed 1] [--min-ms 300] [--max-ms 5000]
//! ```
//!
//! What a trial checks is in `benches/common/crash_trial.rs`; `tests/crash_trials.rs` runs three
//! in CI with the same goals: 0 acknowledged writes lost, 0 corrupt values, every trial
//! restarts.

#[path = "common/crash_trial.rs"]
mod crash_trial;

use std::time::Duration;

use crash_trial::{Rng, Trial, trial};

fn main() -> anyhow::Result<()> {
    let mut trials = 20u64;
    let mut seed = 1u64;
    let (mut min_ms, mut max_ms) = (300u64, 5_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| -> anyhow::Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{what} needs a whole number"))
        };
        match a.as_str() {
            "--trials" => trials = value("--trials")?,
            "--seed" => seed = value("--seed")?,
            "--min-ms" => min_ms = value("--min-ms")?,
            "--max-ms" => max_ms = value("--max-ms")?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}; see the header of this file"),
        }
    }
    anyhow::ensure!(min_ms < max_ms, "--min-ms must be below --max-ms");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rng = Rng::new(seed);
    println!(
        "| trial | killed after | acked registry / workflows / promotion / retrieval / devops \
         | lost | corrupt | runs not completed | unaudited | audit verify | restart | devops \
         outcomes lost within the bound | devops loss window |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all: Vec<Trial> = Vec::new();
    for n in 1..=trials {
        let dir = tempfile::tempdir()?;
        let kill_after = Duration::from_millis(rng.range(min_ms, max_ms));
        let t = rt.block_on(trial(dir.path(), kill_after));
        let a = t.acked;
        println!(
            "| {n} | {} ms | {} / {} / {} / {} / {} | {} | {} | {} | {} | {} | {} | {} | {} ms |",
            t.killed_after.as_millis(),
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            t.lost,
            t.corrupt,
            t.runs_not_completed,
            t.unaudited,
            if t.audit_intact { "intact" } else { "FAILED" },
            if t.restarted {
                format!("{} ms", t.restart_time.as_millis())
            } else {
                "FAILED".to_string()
            },
            t.learner_in_window_lost,
            t.learner_window.as_millis(),
        );
        for p in &t.problems {
            println!("  problem: {p}");
        }
        if !t.control_caught {
            println!("  problem: the checker's control (a write never sent) was not seen as lost");
        }
        all.push(t);
    }
    let sum = |f: &dyn Fn(&Trial) -> u64| all.iter().map(f).sum::<u64>();
    let acked = sum(&|t| t.acked.iter().sum());
    println!(
        "\n{} trials: {} acknowledged writes; lost {}, corrupt {}, runs not completed {}, \
         unaudited puts {}; audit intact in {}, restarted in {}, controls caught in {}; restart \
         time max {} ms; devops loss window max {} ms (bound {} ms)",
        all.len(),
        acked,
        sum(&|t| t.lost),
        sum(&|t| t.corrupt),
        sum(&|t| t.runs_not_completed),
        sum(&|t| t.unaudited),
        all.iter().filter(|t| t.audit_intact).count(),
        all.iter().filter(|t| t.restarted).count(),
        all.iter().filter(|t| t.control_caught).count(),
        all.iter()
            .map(|t| t.restart_time.as_millis())
            .max()
            .unwrap_or(0),
        all.iter()
            .map(|t| t.learner_window.as_millis())
            .max()
            .unwrap_or(0),
        crash_trial::LEARNER_BOUND.as_millis(),
    );
    Ok(())
}
