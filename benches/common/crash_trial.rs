//! One crash-durability trial against the real binary, shared by `benches/crash.rs` (20 trials
//! and a table) and `tests/crash_trials.rs` (3 trials in CI).
//!
//! A governed `ensemble serve --http` (API keys, a signed audit log) takes concurrent writes to
//! every durable engine: registry puts, workflow runs, promotion hand-off reports, retrieval
//! documents and devops learner outcomes, two sessions each. At a random moment it is killed
//! with SIGKILL. Then, on the same data directory:
//!
//! - `ensemble audit verify` checks the audit chain against its signed checkpoints;
//! - the server restarts, and every write it acknowledged is read back: present with the
//!   value written (registry content and digest, report title, document text), each
//!   acknowledged workflow run known and run to completion, each acknowledged registry put
//!   preceded by its audit `decision` entry;
//! - the devops learner's outcomes: every one acknowledged more than [`LEARNER_BOUND`] (its
//!   flush interval plus the time a write may take) before the kill is there, none that was
//!   never sent is, and the actual window of loss is measured (learners acknowledge from
//!   memory: DESIGN.md's rule).
//!
//! A write that was in flight at the kill may or may not be there; both are fine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[path = "child.rs"]
mod child;

pub use child::Rng;
use child::{Client, Server, call, connect, wait_for_run};

const KEY: &str = "ens-crash-trial-5f1d";
/// The devops learner's flush interval in these trials.
const FLUSH_MS: u64 = 200;
/// How long before a kill a learner's acknowledged observation must already be on disk: its
/// flush interval plus the time a write of its changes may take (generous: the machines that
/// run this are shared, and a write waits for the disk).
pub const LEARNER_BOUND: Duration = Duration::from_millis(FLUSH_MS + 2_000);
/// Sessions per engine.
const WRITERS: usize = 2;

/// What one trial found.
#[derive(Debug, Default, Clone)]
pub struct Trial {
    /// When the kill came, after the writers started.
    pub killed_after: Duration,
    /// Acknowledged writes, per engine: registry, workflows, promotion, retrieval, devops.
    pub acked: [u64; 5],
    /// Acknowledged writes missing after the restart (devops: beyond its flush bound).
    pub lost: u64,
    /// Values read back different from what was written, or unreadable.
    pub corrupt: u64,
    /// Acknowledged workflow runs that did not complete after the restart.
    pub runs_not_completed: u64,
    /// Acknowledged registry puts without their audit `decision` entry.
    pub unaudited: u64,
    /// `ensemble audit verify` found the log intact.
    pub audit_intact: bool,
    /// Audit entries after the restart.
    pub audit_entries: u64,
    /// The server came back on the same data directory.
    pub restarted: bool,
    /// How long the restart took, to listening.
    pub restart_time: Duration,
    /// The oldest acknowledged devops outcome lost, as an age at the kill: the learner's
    /// actual window of loss.
    pub learner_window: Duration,
    /// Devops outcomes acknowledged within [`LEARNER_BOUND`] before the kill and not on disk
    /// (allowed).
    pub learner_in_window_lost: u64,
    /// How long reading everything back took.
    pub check_time: Duration,
    /// The checker found the forged acknowledgment (a registry put never sent) missing, as it
    /// must: the trial's own control.
    pub control_caught: bool,
    /// The first problems seen, for the report.
    pub problems: Vec<String>,
}

impl Trial {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 10 {
            self.problems.push(p);
        }
    }
}

/// The trial's directory: data, configuration, audit key and checkpoints.
struct Layout {
    data: PathBuf,
    config: PathBuf,
    key: PathBuf,
    checkpoints: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        let l = Self {
            data: dir.join("data"),
            config: dir.join("ensemble.toml"),
            key: dir.join("keys").join("audit.key"),
            checkpoints: dir.join("checkpoints"),
        };
        let config = format!(
            r#"
[[governance.roles]]
name = "admin"
tools = ["*"]

[[governance.bindings]]
api_key = "trial"
roles = ["admin"]

[[governance.api_keys]]
name = "trial"
sha256 = "{:x}"

[governance.audit]
node_id = "crash-trial"
key_file = "{}"
checkpoint_dir = "{}"
checkpoint_every_entries = 50
checkpoint_every_ms = 200

[learning.devops]
flush_interval_ms = {FLUSH_MS}
"#,
            Sha256::digest(KEY.as_bytes()),
            l.key.display(),
            l.checkpoints.display()
        );
        std::fs::write(&l.config, config).expect("write the configuration");
        l
    }
}

/// An acknowledged write, as it must read back.
#[derive(Debug, Clone)]
enum Acked {
    Artifact {
        name: String,
        version: String,
        digest: String,
        content: Value,
    },
    Run(String),
    Report {
        id: String,
        title: String,
    },
    Document {
        id: String,
        text: String,
    },
    /// (project, outcomes known after it, when it was acknowledged).
    Outcome(String, u64, Instant),
}

impl Acked {
    fn engine(&self) -> usize {
        match self {
            Acked::Artifact { .. } => 0,
            Acked::Run(_) => 1,
            Acked::Report { .. } => 2,
            Acked::Document { .. } => 3,
            Acked::Outcome(..) => 4,
        }
    }
}

const COLLECTION: &str = "crash";

/// Write `i` of writer `w` of `engine`; what to read back once acknowledged.
async fn write(c: &Client, engine: usize, w: usize, i: u64, pad: &str) -> Result<Acked, String> {
    match engine {
        0 => {
            let name = format!("crash/w{w}");
            let version = format!("1.0.{i}");
            let content = json!({"writer": w, "i": i, "pad": pad});
            let r = call(
                c,
                "registry_put",
                json!({"name": name, "version": version, "content": content}),
            )
            .await?;
            let digest = r["digest"].as_str().unwrap_or_default().to_string();
            Ok(Acked::Artifact {
                name,
                version,
                digest,
                content,
            })
        }
        1 => {
            let steps = json!([
                {"id": "a", "tool": "validation_list_schemas", "arguments": {}},
                {"id": "b", "tool": "registry_list", "arguments": {}, "depends_on": ["a"]}
            ]);
            let r = call(c, "workflow_run", json!({"definition": {"steps": steps}})).await?;
            Ok(Acked::Run(
                r["run_id"].as_str().unwrap_or_default().to_string(),
            ))
        }
        2 => {
            let title = format!("crash report w{w} #{i} {pad}");
            let r = call(
                c,
                "handoff_create",
                json!({"title": title, "summary": "written by a crash trial"}),
            )
            .await?;
            Ok(Acked::Report {
                id: r["id"].as_str().unwrap_or_default().to_string(),
                title,
            })
        }
        3 => {
            let id = format!("w{w}-{i}");
            let text = format!("document {i} of writer {w}: {pad}");
            call(
                c,
                "rag_index",
                json!({"collection": COLLECTION, "documents": [{"id": id, "text": text}]}),
            )
            .await?;
            Ok(Acked::Document { id, text })
        }
        _ => {
            let project = format!("crash-w{w}");
            let change = format!("c{i}");
            let t = 1_700_000_000 + i * 10;
            call(
                c,
                "devops_observe",
                json!({"project": project, "change_id": change, "time": t,
                       "features": {"la": i % 50, "nf": 1 + i % 5}}),
            )
            .await?;
            let outcome = if i.is_multiple_of(4) {
                "failure"
            } else {
                "success"
            };
            let r = call(
                c,
                "devops_report_outcome",
                json!({"project": project, "change_id": change, "time": t + 5,
                       "outcome": outcome}),
            )
            .await?;
            Ok(Acked::Outcome(
                project,
                r["outcomes_known"].as_u64().unwrap_or(0),
                Instant::now(),
            ))
        }
    }
}

/// Runs one trial in `dir` (empty), killing the server `kill_after` into the writes.
pub async fn trial(dir: &Path, kill_after: Duration) -> Trial {
    let l = Layout::new(dir);
    let mut t = Trial {
        killed_after: kill_after,
        ..Trial::default()
    };
    let mut server = match Server::start(&l.config, &l.data, &[]) {
        Ok(s) => s,
        Err(e) => {
            t.problem(format!("first start: {e}"));
            return t;
        }
    };
    let setup = async {
        let c = connect(&server.url, Some(KEY)).await?;
        call(&c, "rag_create_collection", json!({"name": COLLECTION})).await?;
        Ok::<_, String>(c)
    };
    let admin = match setup.await {
        Ok(c) => c,
        Err(e) => {
            t.problem(format!("setup: {e}"));
            return t;
        }
    };
    // Each acknowledgment is recorded as it comes: a call in flight at the kill may wait for
    // its client's retries, so the writers are aborted rather than awaited.
    let log: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let mut writers = Vec::new();
    for engine in 0..5 {
        for w in 0..WRITERS {
            let url = server.url.clone();
            let log = log.clone();
            writers.push(tokio::spawn(async move {
                let Ok(c) = connect(&url, Some(KEY)).await else {
                    return;
                };
                let pad = "x".repeat(64 + 97 * w);
                for i in 0u64.. {
                    match write(&c, engine, w, i, &pad).await {
                        Ok(a) => log.lock().expect("acknowledgments").push(a),
                        // The kill: the writes from here are not acknowledged.
                        Err(_) => break,
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(kill_after).await;
    server.kill();
    let killed = Instant::now();
    drop(admin);
    for w in &writers {
        w.abort();
    }
    for w in writers {
        let _ = w.await;
    }
    let mut acked = std::mem::take(&mut *log.lock().expect("acknowledgments"));
    t.killed_after = killed - started;
    for a in &acked {
        t.acked[a.engine()] += 1;
    }

    // The audit log, as the kill left it.
    let verify = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&l.data)
        .arg("--checkpoints")
        .arg(&l.checkpoints)
        .arg("--public-key")
        .arg(l.key.with_extension("key.pub"))
        .env_remove("ENSEMBLE_CONFIG")
        .output();
    match verify {
        Ok(out) if out.status.success() => t.audit_intact = true,
        Ok(out) => t.problem(format!(
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => t.problem(format!("audit verify: {e}")),
    }

    let begun = Instant::now();
    let server = match Server::start(&l.config, &l.data, &[]) {
        Ok(s) => s,
        Err(e) => {
            t.problem(format!("restart: {e}"));
            return t;
        }
    };
    t.restart_time = begun.elapsed();
    t.restarted = true;
    let c = match connect(&server.url, Some(KEY)).await {
        Ok(c) => c,
        Err(e) => {
            t.problem(format!("session after restart: {e}"));
            return t;
        }
    };
    // The control: an acknowledgment of a put that never happened must read as lost.
    acked.push(Acked::Artifact {
        name: "crash/control".to_string(),
        version: "9.9.9".to_string(),
        digest: String::new(),
        content: Value::Null,
    });
    let begun = Instant::now();
    check(&c, &acked, killed, &mut t).await;
    t.check_time = begun.elapsed();
    if !t.problems.is_empty() {
        let log = server.log.lock().expect("log").clone();
        let resumed = log.iter().filter(|l| l.contains("resuming")).count();
        for p in t.problems.clone() {
            if let Some(id) = p.strip_prefix("run ").and_then(|r| r.split(':').next()) {
                let about: Vec<&String> = log.iter().filter(|l| l.contains(id)).collect();
                t.problems.push(format!("log about {id}: {about:?}"));
            }
        }
        t.problems
            .push(format!("server after the restart: {resumed} runs resumed"));
        for line in log.into_iter().filter(|l| !l.contains("resuming")).take(5) {
            t.problems.push(format!("server after the restart: {line}"));
        }
    }
    t
}

/// Reads back every acknowledged write.
async fn check(c: &Client, acked: &[Acked], killed: Instant, t: &mut Trial) {
    // Per devops project: (outcomes known after each acknowledgment, when it came).
    let mut outcomes: std::collections::BTreeMap<&str, Vec<(u64, Instant)>> = Default::default();
    let mut runs = Vec::new();
    for a in acked {
        match a {
            Acked::Artifact {
                name,
                version,
                digest,
                content,
            } => match call(c, "registry_get", json!({"name": name, "version": version})).await {
                Err(_) if name == "crash/control" => t.control_caught = true,
                Ok(r) if r["digest"] == *digest && r["content"] == *content => {}
                Ok(r) => {
                    t.corrupt += 1;
                    t.problem(format!("{name}@{version}: read back {r}"));
                }
                Err(e) if e.contains("not found") || e.contains("no version") => {
                    t.lost += 1;
                    t.problem(format!("{name}@{version} lost: {e}"));
                }
                Err(e) => {
                    t.corrupt += 1;
                    t.problem(format!("{name}@{version}: {e}"));
                }
            },
            Acked::Run(id) => runs.push(id.as_str()),
            Acked::Report { id, title } => match call(c, "handoff_get", json!({"id": id})).await {
                Ok(r) if r["title"] == *title => {}
                Ok(r) => {
                    t.corrupt += 1;
                    t.problem(format!("report {id}: read back {r}"));
                }
                Err(e) => {
                    t.lost += 1;
                    t.problem(format!("report {id}: {e}"));
                }
            },
            Acked::Document { id, text } => {
                match call(c, "rag_get", json!({"collection": COLLECTION, "id": id})).await {
                    Ok(r) if r["text"] == *text => {}
                    Ok(r) => {
                        t.corrupt += 1;
                        t.problem(format!("document {id}: read back {r}"));
                    }
                    Err(e) => {
                        t.lost += 1;
                        t.problem(format!("document {id}: {e}"));
                    }
                }
            }
            Acked::Outcome(project, known, at) => {
                outcomes
                    .entry(project.as_str())
                    .or_default()
                    .push((*known, *at));
            }
        }
    }
    for (project, acks) in outcomes {
        let r = call(
            c,
            "devops_predict",
            json!({"project": project, "features": {"la": 1, "nf": 1}}),
        )
        .await;
        let have = r
            .as_ref()
            .ok()
            .and_then(|r| r["project_outcomes"].as_u64())
            .unwrap_or(0);
        let most = acks.iter().map(|a| a.0).max().unwrap_or(0);
        // One more than acknowledged: the write in flight at the kill.
        if have > most + 1 {
            t.corrupt += 1;
            t.problem(format!(
                "devops {project}: {have} outcomes but only {most} acknowledged"
            ));
        }
        for &(known, at) in &acks {
            if known <= have {
                continue;
            }
            let age = killed.saturating_duration_since(at);
            t.learner_window = t.learner_window.max(age);
            if age > LEARNER_BOUND {
                t.lost += 1;
                t.problem(format!(
                    "devops {project}: outcome {known} acknowledged {} ms before the kill is \
                     not on disk ({have} are)",
                    age.as_millis()
                ));
            } else {
                t.learner_in_window_lost += 1;
            }
        }
    }
    // Every acknowledged run is known and runs to its end.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in runs {
        match wait_for_run(c, id, deadline).await {
            Ok(r) if r["state"] == "completed" => {}
            Ok(r) => {
                t.runs_not_completed += 1;
                t.problem(format!("run {id}: {r}"));
            }
            Err(e) => {
                t.lost += 1;
                t.problem(format!("run {id}: {e}"));
            }
        }
    }
    // Each acknowledged put was preceded by its audit decision entry.
    let mut decisions = 0u64;
    let mut after: Option<u64> = None;
    loop {
        let mut q = json!({"tool": "registry_put", "outcome": "started", "limit": 1000});
        if let Some(a) = after {
            q["after"] = json!(a);
        }
        match call(c, "audit_query", q).await {
            Ok(page) => {
                decisions += page["entries"].as_array().map_or(0, |e| e.len() as u64);
                t.audit_entries = page["total"].as_u64().unwrap_or(0);
                match page["next"].as_u64() {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            Err(e) => {
                t.problem(format!("audit_query: {e}"));
                break;
            }
        }
    }
    t.unaudited = t.acked[0].saturating_sub(decisions);
}
