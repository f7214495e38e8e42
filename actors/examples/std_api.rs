//! Writes the standard library's public items, the development learner's built-in knowledge of
//! `std`, `core`, `alloc` and `proc_macro` (`actors/src/learning/development/std_api.txt`).
//!
//! ```sh
//! cargo run -p ensemble-actors --example std_api > actors/src/learning/development/std_api.txt
//! ```
//!
//! It reads the `sidebar-items*.js` of the toolchain's own documentation (the `rust-docs`
//! component: `$(rustc --print sysroot)/share/doc/rust/html`), which list every item of each
//! module, re-exports included, by kind. Left out: `arch` (thousands of target intrinsics),
//! `intrinsics`, `prelude` (its paths only repeat the items' own), keywords and primitive types.
//! One line per module: the module's path, then `kind:Name,Name` groups separated by spaces.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &["std", "core", "alloc", "proc_macro"];
const SKIPPED_MODULES: &[&str] = &["arch", "intrinsics", "prelude"];
const SKIPPED_KINDS: &[&str] = &["keyword", "primitive"];

fn sysroot_docs() -> Result<PathBuf, Box<dyn Error>> {
    if let Some(dir) = std::env::args().nth(1) {
        return Ok(PathBuf::from(dir));
    }
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let root = String::from_utf8(out.stdout)?;
    Ok(Path::new(root.trim()).join("share/doc/rust/html"))
}

/// The items of one `sidebar-items*.js`: kind → names.
fn sidebar(file: &Path) -> Result<BTreeMap<String, Vec<String>>, Box<dyn Error>> {
    let text = std::fs::read_to_string(file)?;
    let json = text
        .trim()
        .strip_prefix("window.SIDEBAR_ITEMS = ")
        .and_then(|t| t.strip_suffix(';'))
        .ok_or_else(|| format!("{}: not a sidebar-items file", file.display()))?;
    Ok(serde_json::from_str(json)?)
}

/// Walks a crate's documentation from its root module.
fn walk(
    dir: &Path,
    module: &str,
    out: &mut BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> Result<(), Box<dyn Error>> {
    let Some(file) = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sidebar-items") && n.ends_with(".js"))
        })
    else {
        return Ok(());
    };
    let items = sidebar(&file)?;
    let mut kept = BTreeMap::new();
    for (kind, names) in &items {
        if SKIPPED_KINDS.contains(&kind.as_str()) {
            continue;
        }
        let names: Vec<String> = names
            .iter()
            .filter(|n| kind != "mod" || !SKIPPED_MODULES.contains(&n.as_str()))
            .cloned()
            .collect();
        if !names.is_empty() {
            kept.insert(kind.clone(), names);
        }
    }
    if let Some(mods) = kept.get("mod").cloned() {
        for m in mods {
            let sub = dir.join(&m);
            if sub.is_dir() {
                walk(&sub, &format!("{module}::{m}"), out)?;
            }
        }
    }
    out.insert(module.to_string(), kept);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let docs = sysroot_docs()?;
    let mut modules = BTreeMap::new();
    for krate in CRATES {
        let dir = docs.join(krate);
        if !dir.is_dir() {
            return Err(format!(
                "{} is missing: install the toolchain's documentation (rustup component add \
                 rust-docs) or give its html directory",
                dir.display()
            )
            .into());
        }
        walk(&dir, krate, &mut modules)?;
    }
    for (module, kinds) in &modules {
        let groups: Vec<String> = kinds
            .iter()
            .map(|(k, names)| format!("{k}:{}", names.join(",")))
            .collect();
        println!("{module} {}", groups.join(" "));
    }
    Ok(())
}
