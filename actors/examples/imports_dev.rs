//! Development aid: the development learner's import suggestions on a crate corpus, without
//! MCP: learn the `train` crates of a manifest, then for each file of the `val` crates remove
//! its `use` lines and rank the paths of every imported name it still uses.
//! `cargo run --release -p ensemble-actors --example imports_dev -- MANIFEST.json`
//! (a JSON list of {name, dir, split, deps, files}).
use std::collections::BTreeSet;

use ensemble_actors::learning::Patterns;
use ensemble_actors::learning::development::language::{ImportKind, Language, Rust};
use ensemble_actors::learning::development::{DevPattern, learn, suggest};
use ensemble_actors::store::Store;
use ensemble_protocol::development::*;

fn strip_uses(src: &str) -> String {
    // Remove `use …;` items (possibly multi-line) at any indentation.
    let mut out = String::new();
    let mut in_use = false;
    for line in src.lines() {
        let t = line.trim_start();
        let starts =
            t.starts_with("use ") || t.starts_with("pub use ") || t.starts_with("pub(crate) use ");
        if in_use || starts {
            in_use = !line.trim_end().ends_with(';');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn main() {
    let manifest = std::env::args().nth(1).expect("manifest");
    let crates: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let store = Store::temporary().unwrap();
    let mut patterns: Patterns<DevPattern> = Patterns::load(store.tree("dev").unwrap()).unwrap();
    let t = std::time::Instant::now();
    let mut bytes = 0;
    for c in crates.iter().filter(|c| c["split"] == "train") {
        let dir = c["dir"].as_str().unwrap();
        let files: Vec<SourceFile> = c["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| {
                let p = f.as_str().unwrap();
                std::fs::read_to_string(format!("{dir}/{p}"))
                    .ok()
                    .map(|content| SourceFile {
                        path: p.to_string(),
                        content,
                    })
            })
            .collect();
        bytes += files.iter().map(|f| f.content.len()).sum::<usize>();
        let deps: Vec<String> = c["deps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        learn(
            &mut patterns,
            &LearnRequest {
                files,
                krate: Some(c["name"].as_str().unwrap().to_string()),
                dependencies: Some(deps),
            },
            1,
            1,
        )
        .unwrap();
    }
    eprintln!(
        "learned {:.1} MB in {:.1}s, {} patterns, {} bytes",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        patterns.len(),
        patterns.bytes()
    );
    let (mut n, mut top1, mut top3, mut files, mut exact) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut base1, mut unseen) = (0u64, 0u64);
    let mut misses: Vec<String> = Vec::new();
    for c in crates.iter().filter(|c| c["split"] == "val") {
        let dir = c["dir"].as_str().unwrap();
        let deps: Vec<String> = c["deps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        for f in c["files"].as_array().unwrap() {
            let Ok(src) = std::fs::read_to_string(format!("{dir}/{}", f.as_str().unwrap())) else {
                continue;
            };
            let Ok(e) = Rust.extract(&src) else { continue };
            let body = strip_uses(&src);
            let Ok(be) = Rust.extract(&body) else {
                continue;
            };
            let truth: Vec<(String, String)> = e
                .imports
                .iter()
                .filter(|i| {
                    i.kind == ImportKind::Plain
                        && !i.is_local()
                        && be.used.contains(&i.leaf)
                        && i.leaf != "self"
                })
                .map(|i| (i.leaf.clone(), i.path.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if truth.is_empty() {
                continue;
            }
            let r = suggest(
                &patterns,
                &SuggestImportsRequest {
                    content: body,
                    path: None,
                    krate: Some(c["name"].as_str().unwrap().to_string()),
                    dependencies: Some(deps.clone()),
                    limit: Some(3),
                },
            )
            .unwrap();
            files += 1;
            let mut all = true;
            for (leaf, path) in &truth {
                n += 1;
                let cands: Vec<&str> = r
                    .names
                    .iter()
                    .find(|s| &s.name == leaf)
                    .map(|s| s.candidates.iter().map(|c| c.path.as_str()).collect())
                    .unwrap_or_default();
                if cands.is_empty() {
                    unseen += 1;
                }
                if cands.first() == Some(&path.as_str()) {
                    top1 += 1
                } else {
                    all = false;
                    if misses.len() < 4000 {
                        misses.push(format!("{leaf}: want {path} got {cands:?}"));
                    }
                }
                if cands.iter().take(3).any(|c| *c == path) {
                    top3 += 1
                }
                let _ = &mut base1;
            }
            if all {
                exact += 1
            }
        }
    }
    println!(
        "imports {n} files {files}: top-1 {:.3} top-3 {:.3} file-exact {:.3} no-candidate {:.3}",
        top1 as f64 / n as f64,
        top3 as f64 / n as f64,
        exact as f64 / files as f64,
        unseen as f64 / n as f64
    );
    if std::env::args().any(|a| a == "--misses") {
        for m in misses {
            println!("{m}");
        }
    }
    if let Some(leaf) = std::env::args().skip_while(|a| a != "--leaf").nth(1) {
        println!(
            "{}",
            ensemble_actors::learning::development::explain(&patterns, &leaf)
        );
    }
}
#[allow(dead_code)]
fn debug(patterns: &Patterns<DevPattern>, leaf: &str) {
    let _ = (patterns, leaf);
}
