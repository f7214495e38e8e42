//! The development learner's import suggestions on a crate corpus, without MCP, for working on
//! the model: learn the `train` crates of a manifest, then for each file of the `val` crates
//! remove its `use` lines and rank the paths of every imported name it still uses (std, core,
//! alloc and other crates' paths; not `crate::`, globs or renames), as the data README's task
//! V1 says.
//!
//! ```sh
//! cargo run --release -p ensemble-actors --example imports_dev -- MANIFEST.json \
//!     [--misses] [--leaf NAME] [--per-crate]
//! ```
//!
//! The manifest is a JSON list of `{name, dir, split: train|val, deps: [..], files: [..]}`.
//! `--per-crate` also learns half of each validation crate's own files (by a hash of the path)
//! and tests the other half, both ways: a codebase that the learner has partly seen.

// The MCP eval's corpus helpers: files are stripped of their `use` items as there (the
// registry walk is not used here).
#[allow(dead_code)]
#[path = "../../examples/support/crates.rs"]
mod crates;

use std::collections::BTreeSet;

use crates::strip_uses;
use ensemble_actors::learning::Patterns;
use ensemble_actors::learning::development::language::{ImportKind, Language, Rust};
use ensemble_actors::learning::development::{DevPattern, explain, learn, suggest};
use ensemble_actors::store::Store;
use ensemble_protocol::development::*;
use serde_json::Value;

fn half_of(path: &str) -> u8 {
    (path
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 2) as u8
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::env::args()
        .nth(1)
        .ok_or("give the manifest's path (see the header of this file)")?;
    let crates: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(manifest)?)?;
    let args: Vec<String> = std::env::args().collect();
    let leaf = args.iter().skip_while(|a| *a != "--leaf").nth(1).cloned();
    let misses = args.iter().any(|a| a == "--misses");
    if args.iter().any(|a| a == "--per-crate") {
        run(&crates, Some(0), misses, leaf.as_deref())?;
        run(&crates, Some(1), misses, leaf.as_deref())?;
    } else {
        run(&crates, None, misses, leaf.as_deref())?;
    }
    Ok(())
}

fn run(
    crates: &[Value],
    half: Option<u8>,
    show_misses: bool,
    leaf: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::temporary()?;
    let mut patterns: Patterns<DevPattern> = Patterns::load(store.tree("dev")?)?;
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for c in crates {
        let val = c["split"] == "val";
        if val && half.is_none() {
            continue;
        }
        let dir = c["dir"].as_str().unwrap_or_default();
        let files: Vec<SourceFile> = strings(&c["files"])
            .into_iter()
            .filter(|p| !val || Some(half_of(p)) == half)
            .filter_map(|p| {
                let content = std::fs::read_to_string(format!("{dir}/{p}")).ok()?;
                Some(SourceFile { path: p, content })
            })
            .collect();
        bytes += files.iter().map(|f| f.content.len()).sum::<usize>();
        let request = LearnRequest {
            files,
            krate: c["name"].as_str().map(String::from),
            dependencies: Some(strings(&c["deps"])),
        };
        learn(&mut patterns, &request, 1, 1)?;
    }
    eprintln!(
        "learned {:.1} MB in {:.1} s: {} patterns, {:.1} MB in memory",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        patterns.len(),
        patterns.bytes() as f64 / 1e6
    );
    let (mut n, mut top1, mut top3, mut files, mut exact, mut none) = (0u64, 0, 0, 0u64, 0, 0);
    let mut misses = Vec::new();
    for c in crates.iter().filter(|c| c["split"] == "val") {
        let dir = c["dir"].as_str().unwrap_or_default();
        for p in strings(&c["files"]) {
            if let Some(h) = half
                && half_of(&p) == h
            {
                continue;
            }
            let Ok(src) = std::fs::read_to_string(format!("{dir}/{p}")) else {
                continue;
            };
            let (Ok(e), body) = (Rust.extract(&src), strip_uses(&src)) else {
                continue;
            };
            let Ok(be) = Rust.extract(&body) else {
                continue;
            };
            let truth: BTreeSet<(String, String)> = e
                .imports
                .iter()
                .filter(|i| {
                    i.kind == ImportKind::Plain && !i.is_local() && be.used.contains(&i.leaf)
                })
                .map(|i| (i.leaf.clone(), i.path.clone()))
                .collect();
            if truth.is_empty() {
                continue;
            }
            let answer = suggest(
                &patterns,
                &SuggestImportsRequest {
                    content: body,
                    path: Some(p.clone()),
                    krate: c["name"].as_str().map(String::from),
                    dependencies: Some(strings(&c["deps"])),
                    limit: Some(3),
                },
            )?;
            files += 1;
            let mut all = true;
            for (leaf, path) in &truth {
                n += 1;
                let ranked: Vec<&str> = answer
                    .names
                    .iter()
                    .find(|s| &s.name == leaf)
                    .map(|s| s.candidates.iter().map(|c| c.path.as_str()).collect())
                    .unwrap_or_default();
                none += u64::from(ranked.is_empty());
                if ranked.first() == Some(&path.as_str()) {
                    top1 += 1;
                } else {
                    all = false;
                    misses.push(format!("{leaf}: want {path} got {ranked:?}"));
                }
                top3 += u64::from(ranked.iter().take(3).any(|c| c == path));
            }
            exact += u64::from(all);
        }
    }
    println!(
        "{}imports {n} in {files} files: top-1 {:.3}, top-3 {:.3}, files all right {:.3}, names with no candidate {:.3}",
        half.map_or(String::new(), |h| format!(
            "(half {h} of each validation crate learned) "
        )),
        top1 as f64 / n as f64,
        top3 as f64 / n as f64,
        exact as f64 / files as f64,
        none as f64 / n as f64
    );
    if show_misses {
        for m in misses {
            println!("{m}");
        }
    }
    if let Some(leaf) = leaf {
        println!("{}", explain(&patterns, leaf));
    }
    Ok(())
}
