//! `ensemble learn development DIR`: walks a directory of Rust code and teaches the development
//! learner every `.rs` file in it, crate by crate (each file goes with the crate of the nearest
//! `Cargo.toml` above it, and that crate's dependencies), through `development_learn`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use ensemble::runtime::Runtime;
use ensemble::runtime::config::Config;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use super::{Failure, RuntimeArgs};

/// The learners that learn from a directory.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Learner {
    /// Import paths and code conventions, from Rust files.
    Development,
}

/// `ensemble learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// The learner.
    #[arg(value_enum)]
    pub learner: Learner,
    /// The directory: a crate, a workspace, or a folder of them.
    pub dir: PathBuf,
    /// The crate name for files under no `Cargo.toml` with a `[package]`.
    #[arg(long = "crate", value_name = "NAME")]
    pub krate: Option<String>,
    /// Teach a running server instead (its Streamable HTTP endpoint, e.g.
    /// http://127.0.0.1:7300/mcp); credentials as for `ensemble call --url` (ENSEMBLE_TOKEN).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Files per `development_learn` call, and bytes at most.
const BATCH_FILES: usize = 256;
const BATCH_BYTES: usize = 8 << 20;

/// A crate found under the directory.
#[derive(Debug, Clone, Default)]
struct Crate {
    name: Option<String>,
    dependencies: Vec<String>,
}

/// The crates found under a directory, by their directory, and each `.rs` file with the
/// directory of the crate that holds it (empty when none does).
type Walked = (BTreeMap<PathBuf, Crate>, Vec<(PathBuf, PathBuf)>);

/// Every `.rs` file under `dir` (not in `target`, hidden directories or symlinks), by the
/// crate directory that holds it.
fn walk(dir: &Path) -> std::io::Result<Walked> {
    let mut crates = BTreeMap::new();
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), None::<PathBuf>)];
    while let Some((d, mut owner)) = stack.pop() {
        if let Some(p) = ensemble::manifest::read(&d) {
            crates.insert(
                d.clone(),
                Crate {
                    name: Some(p.name),
                    dependencies: p.dependencies,
                },
            );
            owner = Some(d.clone());
        }
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push((e.path(), owner.clone()));
                }
            } else if kind.is_file() && name.ends_with(".rs") {
                files.push((e.path(), owner.clone().unwrap_or_default()));
            }
        }
    }
    Ok((crates, files))
}

/// Runs `ensemble learn`.
pub async fn learn(config: &Config, args: LearnArgs) -> Result<(), Failure> {
    let Learner::Development = args.learner;
    if !args.dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: not a directory; give the directory of a crate or a workspace",
            args.dir.display()
        )));
    }
    let (crates, files) = walk(&args.dir)
        .map_err(|e| Failure::Failed(format!("reading {}: {e}", args.dir.display())))?;
    if files.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no `.rs` files found (target/ and hidden directories are skipped)",
            args.dir.display()
        )));
    }
    let mut batches: Vec<Value> = Vec::new();
    let mut unreadable = Vec::new();
    let mut bytes_total = 0usize;
    let by_crate = files.iter().fold(
        BTreeMap::<PathBuf, Vec<&PathBuf>>::new(),
        |mut m, (f, owner)| {
            m.entry(owner.clone()).or_default().push(f);
            m
        },
    );
    for (owner, files) in by_crate {
        let c = crates.get(&owner).cloned().unwrap_or(Crate {
            name: args.krate.clone(),
            dependencies: Vec::new(),
        });
        let (mut batch, mut bytes) = (Vec::new(), 0usize);
        for f in files {
            let content = match std::fs::read_to_string(f) {
                Ok(c) => c,
                Err(e) => {
                    unreadable.push(format!("{}: {e}", f.display()));
                    continue;
                }
            };
            let rel = f.strip_prefix(&owner).unwrap_or(f).display().to_string();
            bytes += content.len();
            bytes_total += content.len();
            batch.push(json!({"path": rel, "content": content}));
            if batch.len() >= BATCH_FILES || bytes >= BATCH_BYTES {
                batches.push(request(&c, std::mem::take(&mut batch)));
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            batches.push(request(&c, batch));
        }
    }
    let started = Instant::now();
    let answers = match &args.url {
        Some(url) => remote(url, batches).await?,
        None => in_process(config, batches).await?,
    };
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let (mut learned, mut imports, mut skipped) = (0u64, 0u64, Vec::new());
    for a in answers {
        learned += a["learned"].as_u64().unwrap_or(0);
        imports += a["imports"].as_u64().unwrap_or(0);
        for s in a["skipped"].as_array().into_iter().flatten() {
            skipped.push(format!(
                "{}: {}",
                s["path"].as_str().unwrap_or("?"),
                s["error"].as_str().unwrap_or("?")
            ));
        }
    }
    println!(
        "learned {learned} files ({imports} imports) of {} crates in {:.1} s ({:.1} MB/s)",
        crates.len().max(1),
        secs,
        bytes_total as f64 / 1e6 / secs
    );
    for s in unreadable.iter().chain(&skipped) {
        eprintln!("skipped {s}");
    }
    Ok(())
}

fn request(c: &Crate, files: Vec<Value>) -> Value {
    let mut req = json!({"files": files, "dependencies": c.dependencies});
    if let Some(name) = &c.name {
        req["crate"] = json!(name);
    }
    req
}

async fn in_process(config: &Config, batches: Vec<Value>) -> Result<Vec<Value>, Failure> {
    let runtime = Runtime::builder()
        .config(config)
        .build()
        .await
        .map_err(|e| Failure::Usage(format!("the runtime could not start: {e}")))?;
    let mut answers = Vec::new();
    let mut failed = None;
    for b in batches {
        match runtime.router().call("development_learn", b, None).await {
            Ok(a) => answers.push(a),
            Err(e) => {
                failed = Some(Failure::Failed(format!("development_learn: {e}")));
                break;
            }
        }
    }
    // What was learned reaches the disk before the process exits.
    runtime
        .shutdown()
        .await
        .map_err(|e| Failure::Failed(format!("shutting down: {e}")))?;
    match failed {
        Some(f) => Err(f),
        None => Ok(answers),
    }
}

async fn remote(url: &str, batches: Vec<Value>) -> Result<Vec<Value>, Failure> {
    let client = super::call::open_session(url).await?;
    let mut answers = Vec::new();
    for b in batches {
        let Value::Object(args) = b else { continue };
        let r = client
            .call_tool(CallToolRequestParams::new("development_learn").with_arguments(args))
            .await
            .map_err(|e| Failure::Failed(format!("development_learn: {e}")))?;
        if r.is_error == Some(true) {
            let text: Vec<String> = r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            return Err(Failure::Failed(format!(
                "development_learn: {}",
                text.join(" ")
            )));
        }
        answers.push(r.structured_content.unwrap_or(Value::Null));
    }
    let _ = client.cancel().await;
    Ok(answers)
}
