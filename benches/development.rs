//! The development learner's speed, each figure beside a baseline measured in the same run:
//!
//! - learning throughput (MB/s and files/s) of `development_learn` over the development crates
//!   (`../shared/data/learning/development/crates-train.txt`, read from the local cargo
//!   registry; this project's own sources when none are there): in process (the learner actor)
//!   and over MCP stdio (`ensemble serve` as a child process, batches of 200 files), against
//!   `syn::parse_file` alone on the same files (the parse is most of the work);
//! - `development_suggest_imports` latency for a 1,000-line file over MCP stdio (rmcp's client,
//!   concurrency 1) after the corpus is learned, against `learning_stats` on the same learner
//!   and transport.
//!
//! ```sh
//! cargo bench --bench development [-- --queries N --max-mb N]
//! ```

#[path = "../examples/support/crates.rs"]
mod crates;
#[path = "common/no_tools.rs"]
mod no_tools;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crates::{registry_dirs, rs_files, strip_uses};
use ensemble::actors::learning::development::DevLearner;
use ensemble::actors::learning::{LearnerArgs, LearnerConfig, LearnerMsg};
use ensemble::actors::store::Store;
use ensemble::protocol::development::{LearnRequest, SourceFile};
use ensemble::supervision::CancellationToken;
use no_tools::NoTools;
use ractor::Actor;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

/// A crate's files: (crate name, [(path, content)]).
type Corpus = Vec<(String, Vec<(String, String)>)>;

fn read_crate(name: &str, dir: &Path) -> (String, Vec<(String, String)>) {
    let mut paths = Vec::new();
    rs_files(dir, dir, &mut paths);
    let files = paths
        .into_iter()
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(dir.join(&p)).ok()?)))
        .collect();
    (name.to_string(), files)
}

/// The development crates from the cargo registry, up to `max_bytes`; else this project.
fn corpus(max_bytes: usize) -> (Corpus, &'static str) {
    let list = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/learning/development/crates-train.txt");
    let regs = registry_dirs();
    let mut out = Vec::new();
    let mut bytes = 0;
    for line in std::fs::read_to_string(list).unwrap_or_default().lines() {
        let Some((name, version)) = line.split_once(' ') else {
            continue;
        };
        if let Some(dir) = regs
            .iter()
            .map(|r| r.join(format!("{name}-{version}")))
            .find(|d| d.is_dir())
        {
            let c = read_crate(name, &dir);
            bytes += c.1.iter().map(|f| f.1.len()).sum::<usize>();
            out.push(c);
            if bytes >= max_bytes {
                break;
            }
        }
    }
    if out.is_empty() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, dir) in [
            ("ensemble_actors", "actors"),
            ("ensemble_runtime", "runtime"),
            ("ensemble_supervision", "supervision"),
            ("ensemble_protocol", "protocol"),
        ] {
            out.push(read_crate(name, &root.join(dir)));
        }
        return (out, "this project's own crates");
    }
    (out, "the development crates")
}

fn batches(corpus: &Corpus) -> Vec<LearnRequest> {
    let mut out = Vec::new();
    for (name, files) in corpus {
        for chunk in files.chunks(200) {
            out.push(LearnRequest {
                files: chunk
                    .iter()
                    .map(|(p, c)| SourceFile {
                        path: p.clone(),
                        content: c.clone(),
                    })
                    .collect(),
                krate: Some(name.clone()),
                dependencies: None,
            });
        }
    }
    out
}

/// (seconds, files) to parse every file with syn, nothing else.
fn parse_only(corpus: &Corpus) -> (f64, usize) {
    let t = Instant::now();
    let mut n = 0;
    for (_, files) in corpus {
        for (_, c) in files {
            if syn::parse_file(c).is_ok() {
                n += 1;
            }
        }
    }
    (t.elapsed().as_secs_f64(), n)
}

/// (seconds, files learned) through the learner actor.
async fn in_process(corpus: &Corpus) -> (f64, u64) {
    let args = LearnerArgs {
        store: Store::temporary().expect("store"),
        invoker: Arc::new(NoTools),
        config: LearnerConfig {
            memory_budget_bytes: 1 << 30,
            ..LearnerConfig::default()
        },
    };
    let (actor, handle) = Actor::spawn(None, DevLearner::default(), args)
        .await
        .expect("learner");
    let reqs = batches(corpus);
    let t = Instant::now();
    let mut learned = 0;
    for r in reqs {
        let ack = ractor::call!(actor, |reply| LearnerMsg::Observe(
            r,
            CancellationToken::new(),
            reply
        ))
        .expect("call")
        .expect("learn");
        learned += ack.learned;
    }
    let secs = t.elapsed().as_secs_f64();
    actor.stop(None);
    let _ = handle.await;
    (secs, learned)
}

fn pct(v: &[Duration], q: f64) -> Duration {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// A file of 1,000 lines or so from the corpus (the one closest to it that parses), without
/// its `use` lines.
fn thousand_lines(corpus: &Corpus) -> String {
    corpus
        .iter()
        .flat_map(|(_, f)| f.iter())
        .map(|(_, c)| strip_uses(c))
        .filter(|c| syn::parse_file(c).is_ok())
        .min_by_key(|c| c.lines().count().abs_diff(1000))
        .unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut queries, mut max_mb) = (500usize, 40usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--queries" => queries = args.next().and_then(|v| v.parse().ok()).unwrap_or(queries),
            "--max-mb" => max_mb = args.next().and_then(|v| v.parse().ok()).unwrap_or(max_mb),
            _ => {} // cargo bench passes --bench
        }
    }
    let (corpus, what) = corpus(max_mb << 20);
    let files: usize = corpus.iter().map(|c| c.1.len()).sum();
    let bytes: usize = corpus.iter().flat_map(|c| &c.1).map(|f| f.1.len()).sum();
    let mb = bytes as f64 / 1e6;
    println!(
        "corpus: {what}, {} crates, {files} files, {mb:.1} MB\n",
        corpus.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("| measure | development learner | baseline | ratio |\n|---|---|---|---|");
        let (ps, pn) = parse_only(&corpus);
        let (ls, ln) = in_process(&corpus).await;
        println!(
            "| learning in process, MB/s (files/s) | {:.1} ({:.0}) | {:.1} ({:.0}) (syn::parse_file alone) | {:.2} |",
            mb / ls,
            ln as f64 / ls,
            mb / ps,
            pn as f64 / ps,
            ps / ls
        );
        // Over MCP stdio, as a client runs it.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble"));
        cmd.args(["serve", "--data-dir"]).arg(dir.path().join("data"));
        let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ensemble");
        let client = ().serve(transport).await.expect("MCP over stdio");
        let call = |tool: &'static str, args: Value| {
            client.call_tool(CallToolRequestParams::new(tool).with_arguments(object(args)))
        };
        let t = Instant::now();
        let mut learned = 0;
        for b in batches(&corpus) {
            let r = call(
                "development_learn",
                serde_json::to_value(&b).expect("request"),
            )
            .await
            .expect("learn");
            learned += r.structured_content.map_or(0, |v| v["learned"].as_u64().unwrap_or(0));
        }
        let ms = t.elapsed().as_secs_f64();
        println!(
            "| learning over MCP stdio, MB/s (files/s) | {:.1} ({:.0}) | {:.1} ({:.0}) (syn::parse_file alone) | {:.2} |",
            mb / ms,
            learned as f64 / ms,
            mb / ps,
            pn as f64 / ps,
            ps / ms
        );
        let file = thousand_lines(&corpus);
        let (mut suggest, mut stats) = (Vec::new(), Vec::new());
        for _ in 0..queries {
            let t = Instant::now();
            call(
                "development_suggest_imports",
                json!({"content": file, "limit": 3}),
            )
            .await
            .expect("suggest");
            suggest.push(t.elapsed());
            let t = Instant::now();
            call("learning_stats", json!({"learner": "development"}))
                .await
                .expect("stats");
            stats.push(t.elapsed());
        }
        suggest.sort();
        stats.sort();
        println!(
            "| development_suggest_imports over stdio, a {}-line file (c=1), p50 / p99 | {:?} / {:?} | {:?} / {:?} (learning_stats) | {:.2} (p99) |",
            file.lines().count(),
            pct(&suggest, 0.5),
            pct(&suggest, 0.99),
            pct(&stats, 0.5),
            pct(&stats, 0.99),
            pct(&suggest, 0.99).as_secs_f64() / pct(&stats, 0.99).as_secs_f64()
        );
        let _ = client.cancel().await;
    });
}
