//! Chaos under load, shared by `benches/chaos.rs` (1,000 calls/s for 60 s, with a fault-free
//! phase before it as the baseline) and `tests/chaos.rs` (200 calls/s for 10 s in CI).
//!
//! An open-loop generator sends a mix of tool calls at a fixed rate over 16 sessions to the real
//! `ensemble serve --http` (with the test tools): registry puts and gets, validations, task
//! submissions, workflow runs, retrieval searches and devops predictions. With faults on, 1% of
//! the calls are `registry_debug_crash`, which makes the registry actor panic while it holds the
//! call. The server's registry is configured to take that (no crash-count breaker, a restart
//! budget it cannot spend), so every panic is a restart.
//!
//! Afterwards: every acknowledged registry put reads back, every acknowledged workflow run
//! completes, and the registry's restarts are counted from `/metrics`.

#![allow(dead_code)] // each includer uses its own part

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "child.rs"]
mod child;

pub use child::Server;
use child::{CallError, Client, Rng, call, call_within, connect, wait_for_run};

/// A call with no answer by its route's deadline (30 s) plus a second is hung.
pub const HUNG_AFTER: Duration = Duration::from_secs(31);

/// Sessions the load is spread over.
const SESSIONS: usize = 16;

/// The server's configuration: the registry takes a panic per call of `registry_debug_crash`
/// without opening a breaker or giving up. A fault that arrives while the registry restarts is
/// refused at once ("restarting; retry in …"), as any call then is: it injects no panic.
pub const CONFIG: &str = r#"
[engines.registry.breaker]
crash_threshold = 0
failure_rate_threshold = 100.0

[engines.registry.restart]
max_restarts = 1000000
period_ms = 1000

# The injected faults all fail: judged by failure rate, their breaker would open and refuse
# the rest. It judges only after a thousand calls (100 s at 1% of 1,000 calls/s).
[tools.registry_debug_crash.breaker]
sliding_window_size = 1000
minimum_calls = 1000
"#;

/// Starts the server in `dir` with the test tools.
pub fn start(dir: &Path) -> Result<Server, String> {
    start_with(dir, "")
}

/// Starts the server in `dir` with the test tools, `extra` appended to [`CONFIG`] (new tables
/// only: a table [`CONFIG`] has cannot be opened again).
pub fn start_with(dir: &Path, extra: &str) -> Result<Server, String> {
    let config = dir.join("ensemble.toml");
    std::fs::write(&config, format!("{CONFIG}\n{extra}"))
        .map_err(|e| format!("write the configuration: {e}"))?;
    Server::start(&config, &dir.join("data"), &[("ENSEMBLE_TEST_TOOLS", "1")])
}

/// The engines the mix reaches, as the report groups them.
pub const CLASSES: [&str; 6] = [
    "registry",
    "validation",
    "execution",
    "workflow",
    "retrieval",
    "devops",
];

/// What a phase saw, per engine class.
#[derive(Debug, Default, Clone)]
pub struct Class {
    /// Latencies of answered calls (tool errors included), in microseconds.
    pub latencies_us: Vec<u64>,
    /// When each of those calls was sent, in the same order.
    pub sent_at: Vec<Instant>,
    pub ok: u64,
    pub tool_errors: u64,
    pub transport_errors: u64,
    pub hung: u64,
    /// The first error seen.
    pub first_error: Option<String>,
}

impl Class {
    /// The `q` quantile of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        l.get(((l.len().saturating_sub(1)) as f64 * q).round() as usize)
            .map_or(0.0, |&us| us as f64 / 1000.0)
    }
}

/// What one phase of load saw.
#[derive(Debug, Default)]
pub struct Phase {
    pub classes: BTreeMap<&'static str, Class>,
    /// Calls sent, and how long sending took (the achieved rate).
    pub sent: u64,
    pub sending: Duration,
    /// `registry_debug_crash` calls; those answered as the engine's failure (a panic
    /// injected), and those refused because the registry was restarting.
    pub faults: u64,
    pub faults_answered_failed: u64,
    pub faults_refused_restarting: u64,
    pub faults_hung: u64,
    /// What the other faults were answered (distinct texts, at most 5).
    pub fault_answers: Vec<String>,
    /// Panics the registry actor logged during the phase (the faults that reached it; a
    /// call queued behind one dies with it and is answered the same way, without a panic).
    pub panics: u64,
    /// Registry restarts counted by `/metrics` during the phase.
    pub restarts: f64,
    /// Acknowledged puts that did not read back, and runs that did not complete.
    pub lost_puts: u64,
    pub runs_not_completed: u64,
    pub acked_puts: u64,
    pub acked_runs: u64,
    /// The first problems found afterwards.
    pub problems: Vec<String>,
}

/// Registers a schema, fills a collection and teaches the devops learner a little, so that
/// every call of the mix has something to work on.
pub async fn prepare(server: &Server) -> Result<(), String> {
    let c = connect(&server.url, None).await?;
    call(
        &c,
        "validation_register_schema",
        json!({"name": "chaos-port", "version": "1.0.0",
               "schema": {"type": "object", "required": ["port"],
                          "properties": {"port": {"type": "integer", "minimum": 1}}}}),
    )
    .await?;
    call(&c, "rag_create_collection", json!({"name": "chaos"})).await?;
    let docs: Vec<Value> = (0..300)
        .map(|i| {
            json!({"id": format!("d{i}"),
                   "text": format!("document {i} about {} and {}", WORDS[i % WORDS.len()],
                                   WORDS[(i * 7 + 3) % WORDS.len()])})
        })
        .collect();
    call(
        &c,
        "rag_index",
        json!({"collection": "chaos", "documents": docs}),
    )
    .await?;
    for i in 0..40u64 {
        let change = format!("c{i}");
        let t = 1_700_000_000 + i * 60;
        call(
            &c,
            "devops_observe",
            json!({"project": "chaos", "change_id": change, "time": t,
                   "features": {"la": i % 30, "nf": 1 + i % 4}}),
        )
        .await?;
        call(
            &c,
            "devops_report_outcome",
            json!({"project": "chaos", "change_id": change, "time": t + 30,
                   "outcome": if i % 5 == 0 { "failure" } else { "success" }}),
        )
        .await?;
    }
    Ok(())
}

const WORDS: [&str; 12] = [
    "supervision",
    "restart",
    "breaker",
    "registry",
    "workflow",
    "retrieval",
    "latency",
    "journal",
    "artifact",
    "schema",
    "taxonomy",
    "learner",
];

/// Which calls a load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// The whole mix, its writes included.
    Full,
    /// The mix without what grows the store: registry puts become gets and workflow runs
    /// become validations (what stays stored is bounded: the task result cache expires).
    Bounded,
}

/// One call of the mix: (class, tool, arguments); `Some(put)` when it is a registry put.
fn pick(rng: &mut Rng, n: u64, fault: f64, mix: Mix) -> (&'static str, &'static str, Value, bool) {
    let r = rng.next() % 10_000;
    if (r as f64) < fault * 10_000.0 {
        return ("fault", "registry_debug_crash", json!({}), false);
    }
    let roll = match rng.next() % 100 {
        0..14 if mix == Mix::Bounded => 14,
        64..69 if mix == Mix::Bounded => 29,
        roll => roll,
    };
    match roll {
        0..14 => (
            "registry",
            "registry_put",
            json!({"name": format!("chaos/p{}", n % 64), "version": format!("1.{}.0", n),
                   "content": {"n": n}}),
            true,
        ),
        14..29 => (
            "registry",
            "registry_get",
            json!({"name": "chaos/fixed"}),
            false,
        ),
        29..54 => (
            "validation",
            "validation_validate",
            json!({"schema": "chaos-port", "document": {"port": 1 + n % 60_000}}),
            false,
        ),
        54..64 => (
            "execution",
            "task_submit",
            json!({"tool": "validation_validate",
                   "arguments": {"schema": "chaos-port", "document": {"port": 80}}}),
            false,
        ),
        64..69 => (
            "workflow",
            "workflow_run",
            json!({"definition": {"steps": [
                {"id": "a", "tool": "validation_validate",
                 "arguments": {"schema": "chaos-port", "document": {"port": 1}}},
                {"id": "b", "tool": "validation_list_schemas", "arguments": {},
                 "depends_on": ["a"]}
            ]}}),
            false,
        ),
        69..89 => (
            "retrieval",
            "rag_search",
            json!({"collection": "chaos",
                   "query": format!("{} {}", WORDS[(n % 12) as usize], WORDS[(n % 5) as usize])}),
            false,
        ),
        _ => (
            "devops",
            "devops_predict",
            json!({"project": "chaos", "features": {"la": n % 40, "nf": 1 + n % 4}}),
            false,
        ),
    }
}

/// What the calls of a phase left behind, shared by their tasks.
#[derive(Default)]
struct Shared {
    phase: Phase,
    puts: Vec<(String, String, u64)>,
    runs: Vec<String>,
}

/// Sends `rate` calls a second for `duration`, `fault` of them `registry_debug_crash`; then
/// waits for every answer (or [`HUNG_AFTER`]) and checks what was acknowledged.
pub async fn load(server: &Server, rate: u32, duration: Duration, fault: f64, seed: u64) -> Phase {
    load_mix(server, rate, duration, fault, seed, Mix::Full).await
}

/// Like [`load`], sending `mix`.
pub async fn load_mix(
    server: &Server,
    rate: u32,
    duration: Duration,
    fault: f64,
    seed: u64,
    mix: Mix,
) -> Phase {
    match open_sessions(server).await {
        Ok(sessions) => load_on(server, &sessions, rate, duration, fault, seed, mix).await,
        Err(e) => {
            let mut p = Phase::default();
            p.problems.push(e);
            p
        }
    }
}

/// The [`SESSIONS`] MCP sessions a load sends its calls over.
pub async fn open_sessions(server: &Server) -> Result<Vec<Arc<Client>>, String> {
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let c = connect(&server.url, None)
            .await
            .map_err(|e| format!("session: {e}"))?;
        sessions.push(Arc::new(c));
    }
    Ok(sessions)
}

/// Like [`load_mix`], over `sessions` (from [`open_sessions`]) that the caller keeps.
pub async fn load_on(
    server: &Server,
    sessions: &[Arc<Client>],
    rate: u32,
    duration: Duration,
    fault: f64,
    seed: u64,
    mix: Mix,
) -> Phase {
    if sessions.is_empty() {
        let mut p = Phase::default();
        p.problems.push("no sessions to send the load over".into());
        return p;
    }
    // The registry get of the mix reads this.
    if let Some(c) = sessions.first() {
        let _ = call(
            c,
            "registry_put",
            json!({"name": "chaos/fixed", "version": "1.0.0", "content": {"fixed": true}}),
        )
        .await;
    }
    let restarts_before = restarts(server).await;
    let panics_before = panics(server);
    let shared: Arc<Mutex<Shared>> = Arc::default();
    let mut rng = Rng::new(seed);
    let mut tasks = tokio::task::JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        n += 1;
        let (class, tool, args, put) = pick(&mut rng, n, fault, mix);
        let c = sessions[(n as usize) % sessions.len()].clone();
        let shared = shared.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let out = call_within(&c, tool, args.clone(), HUNG_AFTER).await;
            let took = began.elapsed();
            let mut s = shared.lock().expect("tally");
            if class == "fault" {
                s.phase.faults += 1;
                match &out {
                    Err(CallError::Deadline(_)) => s.phase.faults_hung += 1,
                    Err(CallError::Tool(e)) if e.contains("failed and is restarting") => {
                        s.phase.faults_answered_failed += 1
                    }
                    Err(CallError::Tool(e)) if e.contains("is restarting; retry in") => {
                        s.phase.faults_refused_restarting += 1
                    }
                    other => {
                        let text = format!("{other:?}");
                        if s.phase.fault_answers.len() < 5 && !s.phase.fault_answers.contains(&text)
                        {
                            s.phase.fault_answers.push(text);
                        }
                    }
                }
                return;
            }
            let entry = s.phase.classes.entry(class).or_default();
            match &out {
                Err(CallError::Deadline(_)) => entry.hung += 1,
                Err(CallError::Tool(_)) => {
                    entry.tool_errors += 1;
                    entry.latencies_us.push(took.as_micros() as u64);
                    entry.sent_at.push(began);
                }
                Err(CallError::Transport(_)) => entry.transport_errors += 1,
                Ok(_) => {
                    entry.ok += 1;
                    entry.latencies_us.push(took.as_micros() as u64);
                    entry.sent_at.push(began);
                }
            }
            if let Err(e) = &out
                && entry.first_error.is_none()
            {
                entry.first_error = Some(format!("{tool}: {e}"));
            }
            if let Ok(v) = out {
                if put {
                    let name = args["name"].as_str().unwrap_or_default().to_string();
                    let version = args["version"].as_str().unwrap_or_default().to_string();
                    let i = args["content"]["n"].as_u64().unwrap_or(0);
                    s.puts.push((name, version, i));
                } else if tool == "workflow_run"
                    && let Some(id) = v["run_id"].as_str()
                {
                    s.runs.push(id.to_string());
                }
            }
        });
        // Reap finished calls as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let sending = started.elapsed();
    while tasks.join_next().await.is_some() {}
    let Shared {
        mut phase,
        puts,
        runs,
    } = std::mem::take(&mut *shared.lock().expect("tally"));
    phase.sent = n;
    phase.sending = sending;

    phase.acked_puts = puts.len() as u64;
    phase.acked_runs = runs.len() as u64;
    if let Some(c) = sessions.first() {
        verify(c, &puts, &runs, &mut phase).await;
    }
    // The last panic's restart may still be waiting out its backoff: counted once it is done
    // (or after ten seconds).
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        phase.panics = panics(server) - panics_before;
        phase.restarts = restarts(server).await - restarts_before;
        if phase.restarts >= phase.panics as f64 || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phase
}

/// Every acknowledged put reads back; every acknowledged run completes.
async fn verify(c: &Client, puts: &[(String, String, u64)], runs: &[String], phase: &mut Phase) {
    // The registry may still be restarting, or its breakers open, after the faults: a refusal
    // ("retry in …") is waited out, up to a minute in all.
    let patience = Instant::now() + Duration::from_secs(60);
    for (name, version, i) in puts {
        let got = loop {
            let got = call(c, "registry_get", json!({"name": name, "version": version})).await;
            match &got {
                Err(e) if e.contains("retry in") && Instant::now() < patience => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => break got,
            }
        };
        match got {
            Ok(r) if r["content"]["n"] == *i => {}
            other => {
                phase.lost_puts += 1;
                if phase.problems.len() < 10 {
                    phase.problems.push(format!("{name}@{version}: {other:?}"));
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in runs {
        match wait_for_run(c, id, deadline).await {
            Ok(r) if r["state"] == "completed" => {}
            other => {
                phase.runs_not_completed += 1;
                if phase.problems.len() < 10 {
                    phase.problems.push(format!("run {id}: {other:?}"));
                }
            }
        }
    }
}

/// The registry's panics so far: the panic messages in its log.
fn panics(server: &Server) -> u64 {
    server.panic_times.lock().expect("panic times").len() as u64
}

/// The registry's restarts so far, from `/metrics`.
async fn restarts(server: &Server) -> f64 {
    let body = get(server.base(), "/metrics").await.unwrap_or_default();
    body.lines()
        .filter(|l| {
            l.starts_with("ensemble_actor_restarts_total") && l.contains("actor=\"registry\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP GET of `path` on `base` (`http://ADDR`); the body.
async fn get(base: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
