//! The quality and devops learners' speed, each beside a baseline measured in the same run.
//!
//! ```sh
//! cargo bench --bench quality_devops [-- --commits N --queries N]
//! ```
//!
//! - history ingestion: `quality_observe_commits` batches of 1,000 commits to the learner
//!   actor, in process (commits per second), against counting the same (source, test) pairs in
//!   a bare `HashMap` (the bookkeeping alone, no actor, no persistence);
//! - `quality_select_tests` over 5,000 candidates (ids only, found in the history by name) for
//!   a change of 3 files, in process, against `learning_stats` on the same actor (the cost of
//!   an actor call) and a no-learning name-match sort of the same candidates;
//! - `devops_predict` over MCP stdio (`ensemble serve` as a child process, rmcp's client,
//!   concurrency 1) after 3,000 changes with outcomes, against `learning_stats` over the same
//!   transport.
//!
//! The history is synthetic, in the shape of a Java project: 2,500 classes in 50 packages,
//! each with a test class, commits of 1–4 classes and often their tests.

#[path = "common/no_tools.rs"]
mod no_tools;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble::actors::learning::quality::{
    QualityLearner, QualityModel, QualityMsg, QualityObservation,
};
use ensemble::actors::learning::{LearnerArgs, LearnerConfig, LearnerMsg};
use ensemble::actors::store::Store;
use ensemble::protocol::learning::StatsRequest;
use ensemble::protocol::quality::{Candidate, Commit, ObserveCommitsRequest, SelectTestsRequest};
use ensemble::supervision::CancellationToken;
use no_tools::NoTools;
use ractor::{Actor, ActorRef};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const CLASSES: usize = 2_500;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn source(i: usize) -> String {
    format!("src/main/java/org/acme/p{}/Unit{i}.java", i % 50)
}

fn test(i: usize) -> String {
    format!("src/test/java/org/acme/p{}/Unit{i}Test.java", i % 50)
}

fn history(n: usize) -> Vec<Commit> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|k| {
            let mut files = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let c = rng.below(CLASSES);
                files.push(source(c));
                if rng.below(3) > 0 {
                    files.push(test(c));
                }
            }
            Commit {
                sha: format!("{k:040x}"),
                parents: vec![format!("{:040x}", k.saturating_sub(1))],
                date: None,
                files,
            }
        })
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

type Quality = ActorRef<LearnerMsg<QualityModel>>;

async fn quality() -> Quality {
    let args = LearnerArgs {
        store: Store::temporary().expect("store"),
        invoker: Arc::new(NoTools),
        config: LearnerConfig::default(),
    };
    Actor::spawn(None, QualityLearner::default(), args)
        .await
        .expect("learner")
        .0
}

/// (learner commits/s, bare counting commits/s).
async fn ingestion(q: &Quality, commits: &[Commit]) -> (f64, f64) {
    let started = Instant::now();
    for batch in commits.chunks(1_000) {
        let req = ObserveCommitsRequest {
            repo: "acme".into(),
            commits: batch.to_vec(),
        };
        ractor::call!(q, |r| LearnerMsg::Observe(
            QualityObservation::Commits(req),
            CancellationToken::new(),
            r
        ))
        .expect("answers")
        .expect("learned");
    }
    let learner = commits.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    let mut changes: HashMap<String, u64> = HashMap::new();
    for c in commits {
        for f in &c.files {
            *changes.entry(f.clone()).or_default() += 1;
            if f.contains("/main/") {
                for t in c.files.iter().filter(|t| t.contains("/test/")) {
                    *pairs.entry((f.clone(), t.clone())).or_default() += 1;
                }
            }
        }
    }
    std::hint::black_box((&pairs, &changes));
    let bare = commits.len() as f64 / started.elapsed().as_secs_f64();
    (learner, bare)
}

/// (select, learning_stats, name-match sort) latencies.
async fn selection(q: &Quality, queries: usize) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let candidates: Vec<Candidate> = (0..5_000)
        .map(|i| Candidate {
            id: format!(
                "org.acme.p{}.Unit{}Test",
                i % 50,
                i % CLASSES + (i / CLASSES) * CLASSES
            ),
            path: None,
        })
        .collect();
    let mut rng = Rng(7);
    let (mut select, mut stats, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..queries {
        let changed: Vec<String> = (0..3).map(|_| source(rng.below(CLASSES))).collect();
        let req = SelectTestsRequest {
            repo: "acme".into(),
            changed_files: changed.clone(),
            candidates: candidates.clone(),
            budget: None,
            limit: Some(50),
        };
        let t = Instant::now();
        ractor::call!(q, |r| LearnerMsg::Model(QualityMsg::Select(
            req,
            CancellationToken::new(),
            r
        )))
        .expect("answers")
        .expect("ranked");
        select.push(t.elapsed());
        let t = Instant::now();
        ractor::call!(q, |r| LearnerMsg::Stats(
            StatsRequest {
                learner: "quality".into()
            },
            CancellationToken::new(),
            r
        ))
        .expect("answers")
        .expect("stats");
        stats.push(t.elapsed());
        // The no-learning baseline: tests named after a changed class first.
        let t = Instant::now();
        let units: Vec<&str> = changed
            .iter()
            .filter_map(|c| c.rsplit('/').next()?.strip_suffix(".java"))
            .collect();
        let mut ranked: Vec<(bool, &Candidate)> = candidates
            .iter()
            .map(|c| {
                let name = c.id.rsplit('.').next().unwrap_or(&c.id);
                let unit = name.strip_suffix("Test").unwrap_or(name);
                (units.contains(&unit), c)
            })
            .collect();
        ranked.sort_by_key(|(hit, _)| !*hit);
        std::hint::black_box(&ranked);
        names.push(t.elapsed());
    }
    let mut slowest: Vec<(usize, Duration)> = select.iter().copied().enumerate().collect();
    slowest.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    eprintln!(
        "slowest selections (query #, latency): {:?}",
        &slowest[..slowest.len().min(12)]
    );
    select.sort();
    stats.sort();
    names.sort();
    (select, stats, names)
}

/// (devops_predict, learning_stats) over stdio.
async fn predict_over_stdio(queries: usize) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble"));
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path().join("data"));
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ensemble");
    let client = ().serve(transport).await.expect("MCP over stdio");
    let call = |tool: &'static str, args: Value| {
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(object(args)))
    };
    let mut rng = Rng(11);
    let features = |rng: &mut Rng| {
        json!({"la": rng.below(400), "ld": rng.below(100), "nf": 1 + rng.below(20),
               "entropy": rng.below(100) as f64 / 25.0, "exp": rng.below(2000),
               "ndev": 1 + rng.below(30), "fix": rng.below(2)})
    };
    for i in 0..3_000 {
        let f = features(&mut rng);
        let failed = f["la"].as_u64().unwrap_or(0) > 250 || rng.below(10) == 0;
        call(
            "devops_observe",
            json!({"project": "svc", "change_id": format!("c{i}"),
            "time": 1_600_000_000 + i * 600, "features": f}),
        )
        .await
        .expect("observe");
        call(
            "devops_report_outcome",
            json!({"project": "svc", "change_id": format!("c{i}"),
            "outcome": if failed { "failure" } else { "success" },
            "time": 1_600_000_000 + i * 600}),
        )
        .await
        .expect("report");
    }
    // The first prediction fits the models; the measured ones use them.
    call(
        "devops_predict",
        json!({"project": "svc", "features": features(&mut rng)}),
    )
    .await
    .expect("predict");
    let (mut predict, mut stats) = (Vec::new(), Vec::new());
    for _ in 0..queries {
        let f = features(&mut rng);
        let t = Instant::now();
        call("devops_predict", json!({"project": "svc", "features": f}))
            .await
            .expect("predict");
        predict.push(t.elapsed());
        let t = Instant::now();
        call("learning_stats", json!({"learner": "devops"}))
            .await
            .expect("stats");
        stats.push(t.elapsed());
    }
    let _ = client.cancel().await;
    predict.sort();
    stats.sort();
    (predict, stats)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut commits, mut queries) = (100_000usize, 1_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--commits" => commits = args.next().and_then(|n| n.parse().ok()).unwrap_or(commits),
            "--queries" => queries = args.next().and_then(|n| n.parse().ok()).unwrap_or(queries),
            _ => {} // cargo bench passes --bench
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let q = quality().await;
        let history = history(commits);
        let (learner, bare) = ingestion(&q, &history).await;
        println!("| measure | learner | baseline | ratio |\n|---|---|---|---|");
        println!(
            "| history ingestion, {commits} commits in batches of 1,000 (commits/s) | {learner:.0} | \
             {bare:.0} (bare HashMap counting) | {:.2} |",
            learner / bare
        );
        // Right after the bulk ingestion the learner's last writes are still going to disk
        // (committed off the actor; the batch is encoded on it at a flush tick); then again
        // once they are done.
        for phase in ["right after ingestion", "steady (history on disk)"] {
            if phase.starts_with("steady") {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
            let (select, stats, names) = selection(&q, queries).await;
            println!(
                "| quality_select_tests, 5,000 candidates, in process, {phase}, p50 / p99 (max) | \
                 {:?} / {:?} ({:?}) | {:?} / {:?} (learning_stats); {:?} / {:?} (name-match sort) | \
                 {:.1} (p99 vs stats) |",
                pct(&select, 0.5),
                pct(&select, 0.99),
                select.last().copied().unwrap_or_default(),
                pct(&stats, 0.5),
                pct(&stats, 0.99),
                pct(&names, 0.5),
                pct(&names, 0.99),
                pct(&select, 0.99).as_secs_f64() / pct(&stats, 0.99).as_secs_f64()
            );
        }
        let (predict, stats) = predict_over_stdio(queries).await;
        println!(
            "| devops_predict over stdio (c=1), p50 / p99 | {:?} / {:?} | {:?} / {:?} \
             (learning_stats) | {:.2} (p99) |",
            pct(&predict, 0.5),
            pct(&predict, 0.99),
            pct(&stats, 0.5),
            pct(&stats, 0.99),
            pct(&predict, 0.99).as_secs_f64() / pct(&stats, 0.99).as_secs_f64()
        );
    });
}
