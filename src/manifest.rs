//! What a crate's `Cargo.toml` says that the development learner uses: its package name and
//! the names its code uses for its dependencies.

use std::path::Path;

/// A crate's package name and dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    /// `[package] name`.
    pub name: String,
    /// The keys of `[dependencies]`, `[build-dependencies]`, `[dev-dependencies]` and their
    /// `[target.*]` forms, with `-` as `_` (the names `use` lines say), sorted, each once.
    pub dependencies: Vec<String>,
}

/// The package of the `Cargo.toml` in `dir`; `None` when there is none, it does not parse, or
/// it has no `[package]` (a virtual workspace manifest).
pub fn read(dir: &Path) -> Option<Package> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let name = doc
        .get("package")?
        .as_table()?
        .get("name")?
        .as_str()?
        .to_string();
    let mut dependencies: Vec<String> = Vec::new();
    let mut add = |table: Option<&toml::Value>| {
        if let Some(t) = table.and_then(|t| t.as_table()) {
            dependencies.extend(t.keys().map(|k| k.replace('-', "_")));
        }
    };
    for section in ["dependencies", "build-dependencies", "dev-dependencies"] {
        add(doc.get(section));
    }
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
        for t in targets.values().filter_map(|t| t.as_table()) {
            add(t.get("dependencies"));
        }
    }
    dependencies.sort();
    dependencies.dedup();
    Some(Package { name, dependencies })
}
