//! Reading crates of Rust code from the local cargo registry: for the development learner's
//! evaluation (`examples/learning_eval.rs development`) and its bench
//! (`benches/development.rs`), which include this file as a module.

use std::path::{Path, PathBuf};

/// The unpacked registries of the local cargo home (`$CARGO_HOME/registry/src/*`).
pub fn registry_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    std::fs::read_dir(home.join("registry/src"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
}

/// Every `.rs` file under `dir` (not in `target` or hidden directories), as paths relative to
/// `base`, in name order.
pub fn rs_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            rs_files(&p, base, out);
        } else if name.ends_with(".rs") {
            out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
        }
    }
}

/// The file without its `use` items (one or several lines each).
pub fn strip_uses(src: &str) -> String {
    let mut out = String::new();
    let mut in_use = false;
    for line in src.lines() {
        let t = line.trim_start();
        let starts = t.starts_with("use ")
            || t.starts_with("pub use ")
            || t.starts_with("pub(crate) use ")
            || t.starts_with("pub(super) use ");
        if in_use || starts {
            in_use = !line.trim_end().ends_with(';');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
