//! What the development learner stores, how it learns a file, and how it ranks the paths a name
//! may be imported from.
//!
//! **Imports.** For every name imported in the files it learns, the learner counts the files
//! that imported it from each path (`l<name>`; a crate's own `crate::` paths under that crate,
//! `k<crate>\0<name>`). For the paths of a name imported from more than one place, it also
//! counts what the importing files had beside it (`c<path>`): their other imported names, the
//! roots of the qualified paths they use (`core` in `core::mem::swap`), and their crate's
//! dependencies. A file's unresolved names are then ranked per name by naive Bayes: the path's
//! share of the name's imports, times how well the file's own context matches the path's;
//! paths from crates the file cannot depend on rank last.

use std::collections::BTreeSet;

use ensemble_protocol::development::*;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};

use super::language::{Extracted, ImportKind, ItemKind, Language, Rust};
use super::std_api;
use crate::learning::{
    CountMap, Cx, GCounter, InstanceId, LearnError, Model, Pattern, Patterns, Reply,
};

/// What the development learner stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DevPattern {
    /// Items with their counts: the paths of a name, or the context of a path.
    Counts(Counts),
}

/// Named counts, sorted by name, with the total of the observations they come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    total: GCounter,
    items: CountMap,
    last_seen: u64,
}

impl Counts {
    fn add(&mut self, item: &str, instance: InstanceId, clock: u64) {
        self.items.add(item, instance, 1);
        self.last_seen = self.last_seen.max(clock);
    }

    /// One observation holding `items`.
    pub(super) fn add_observation(&mut self, items: &[String], instance: InstanceId, clock: u64) {
        self.total.add(instance, 1);
        for i in items {
            self.add(i, instance, clock);
        }
    }

    /// How many times `item` was counted.
    pub(super) fn get(&self, item: &str) -> u64 {
        self.items.get(item)
    }

    /// Observations counted.
    pub(super) fn observations(&self) -> u64 {
        self.total.total()
    }

    /// The item counted most (ties: the first by name), with its count.
    pub(super) fn top(&self) -> Option<(&str, u64)> {
        self.items.iter().map(|(i, n)| (i, n.total())).fold(
            None,
            |best: Option<(&str, u64)>, (i, n)| match best {
                Some((_, b)) if b >= n => best,
                _ => Some((i, n)),
            },
        )
    }
}

impl Pattern for DevPattern {
    fn heap_bytes(&self) -> usize {
        let DevPattern::Counts(c) = self;
        c.total.heap_bytes() + c.items.heap_bytes()
    }

    fn worth(&self) -> u64 {
        let DevPattern::Counts(c) = self;
        c.total.total() + c.items.total()
    }

    fn last_seen(&self) -> u64 {
        let DevPattern::Counts(c) = self;
        c.last_seen
    }

    fn merge(&mut self, other: &Self) -> bool {
        let (DevPattern::Counts(a), DevPattern::Counts(b)) = (self, other);
        let mut changed = a.total.merge(&b.total);
        changed |= a.items.merge(&b.items);
        if b.last_seen > a.last_seen {
            a.last_seen = b.last_seen;
            changed = true;
        }
        changed
    }
}

/// The development learner's own requests.
pub enum DevMsg {
    /// The imports a file needs.
    SuggestImports(
        SuggestImportsRequest,
        CancellationToken,
        Reply<SuggestImportsResponse>,
    ),
    /// Where a file departs from the learned conventions.
    CheckStyle(
        CheckStyleRequest,
        CancellationToken,
        Reply<CheckStyleResponse>,
    ),
}

/// The development learner.
#[derive(Debug, Default)]
pub struct DevModel {
    /// Files learned since the start (for the learner's figures).
    files: u64,
}

fn leaf_key(krate: Option<&str>, leaf: &str) -> Vec<u8> {
    match krate {
        Some(k) => key(b'k', &format!("{k}\0{leaf}")),
        None => key(b'l', leaf),
    }
}

/// `prefix` then `text`: the key of a kind of pattern for one name, path or feature.
fn key(prefix: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(text.len() + 1);
    key.push(prefix);
    key.extend_from_slice(text.as_bytes());
    key
}

fn context_key(path: &str) -> Vec<u8> {
    key(b'c', path)
}

/// `serde-json` and `serde_json` are one crate.
fn crate_name(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// Roots every Rust file may import from.
const BUILTIN: &[&str] = &["std", "core", "alloc", "proc_macro", "test"];

/// The context features of a file: its imported names (`i:`), the roots of its qualified paths
/// (`r:`), the words of its attributes (`a:`, e.g. `std` of `cfg(feature = "std")`) and its
/// crate's dependencies (`d:`).
fn context(names: &BTreeSet<String>, e: &Extracted, deps: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|n| format!("i:{n}")).collect();
    out.extend(root_features(e, deps, None));
    out.sort();
    out.dedup();
    out
}

/// The counts at `key`, if any.
fn counts<'a>(patterns: &'a Patterns<DevPattern>, key: &[u8]) -> Option<&'a Counts> {
    patterns.get(key).map(|d| {
        let DevPattern::Counts(c) = d;
        c
    })
}

/// The imports of a file worth learning: not globs, not renames (the name is the file's own).
fn learnable(e: &Extracted) -> impl Iterator<Item = &super::language::Import> {
    e.imports
        .iter()
        .filter(|i| i.kind == ImportKind::Plain && i.leaf != "self" && !i.leaf.is_empty())
}

/// Learns one file's imports.
fn learn_file(
    patterns: &mut Patterns<DevPattern>,
    e: &Extracted,
    path: &str,
    krate: Option<&str>,
    deps: &[String],
    instance: InstanceId,
    clock: u64,
) -> u64 {
    super::style::learn_style(patterns, e, path, krate, instance, clock);
    let names: BTreeSet<String> = learnable(e).map(|i| i.leaf.clone()).collect();
    let features = context(&names, e, deps);
    let mut learned = 0;
    let new = || DevPattern::Counts(Counts::default());
    for import in learnable(e) {
        let scope = if import.is_local() { krate } else { None };
        if import.is_local() && krate.is_none() {
            // A crate's own paths mean nothing without the crate.
            continue;
        }
        let key = leaf_key(scope, &import.leaf);
        let paths = patterns.update(&key, new, |p| {
            let DevPattern::Counts(c) = p;
            c.total.add(instance, 1);
            c.add(&import.path, instance, clock);
            c.items.len()
        });
        // A codebase's own habits: where it imports a name from.
        if let Some(k) = krate
            && !import.is_local()
        {
            patterns.update(&leaf_key(Some(k), &import.leaf), new, |p| {
                let DevPattern::Counts(c) = p;
                c.total.add(instance, 1);
                c.add(&import.path, instance, clock);
            });
        }
        learned += 1;
        // Context only where there is a choice to make (apart from std / core / alloc, which
        // the file-level model below decides).
        if paths > 1 {
            patterns.update(&context_key(&import.path), new, |p| {
                let DevPattern::Counts(c) = p;
                c.total.add(instance, 1);
                for f in &features {
                    if f.as_str() != format!("i:{}", import.leaf) {
                        c.add(f, instance, clock);
                    }
                }
            });
        }
    }
    // The file-level choice between std and core/alloc: which one the file imported from, by
    // the file's features.
    let std = learnable(e).any(|i| i.root() == "std");
    let core = learnable(e).any(|i| matches!(i.root(), "core" | "alloc"));
    if std != core {
        let label = if std { "std" } else { "core" };
        let file_features = root_features(e, deps, krate);
        for f in file_features
            .iter()
            .chain(std::iter::once(&String::from("*")))
        {
            patterns.update(&root_key(f), new, |p| {
                let DevPattern::Counts(c) = p;
                c.total.add(instance, 1);
                c.add(label, instance, clock);
            });
        }
    }
    learned
}

/// The module a file of a crate is (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`,
/// `src/lib.rs` the crate root); `None` for files outside the library's sources (tests,
/// examples, binaries, build scripts).
pub(super) fn module_of(path: &str) -> Option<Vec<String>> {
    let path = path.trim_start_matches("./");
    let rest = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = rest.split('/').map(String::from).collect();
    if parts.first().is_some_and(|p| p == "bin" || p == "main") {
        return None;
    }
    match parts.last().map(String::as_str) {
        Some("lib") if parts.len() == 1 => parts.clear(),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts)
}

/// Learns where a crate's public names can be imported from: `E<name>` counts their full
/// paths. What no codebase has imported yet is found here.
fn learn_exports(
    patterns: &mut Patterns<DevPattern>,
    e: &Extracted,
    krate: &str,
    file: &str,
    instance: InstanceId,
    clock: u64,
) {
    let Some(module) = module_of(file) else {
        return;
    };
    for (inner, name) in &e.exports {
        let mut path: Vec<&str> = vec![krate];
        path.extend(module.iter().map(String::as_str));
        path.extend(inner.iter().map(String::as_str));
        path.push(name);
        let full = path.join("::");
        patterns.update(
            &key(b'E', name),
            || DevPattern::Counts(Counts::default()),
            |p| {
                let DevPattern::Counts(c) = p;
                c.total.add(instance, 1);
                c.add(&full, instance, clock);
            },
        );
    }
}

/// Candidates for a name no codebase imported: the public paths learned crates give it,
/// shortest first (a re-export at a crate's root is its usual public path), then by how many
/// files define it there; only paths of crates the file may use.
fn exported(
    patterns: &Patterns<DevPattern>,
    leaf: &str,
    allowed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let Some(c) = counts(patterns, &key(b'E', leaf)) else {
        return Vec::new();
    };
    let mut paths: Vec<(&str, u64)> = c
        .items
        .iter()
        .map(|(p, n)| (p, n.total()))
        .filter(|(p, _)| allowed(p))
        .collect();
    paths.sort_by(|a, b| {
        let depth = |p: &str| p.matches("::").count();
        depth(a.0)
            .cmp(&depth(b.0))
            .then(b.1.cmp(&a.1))
            .then(a.0.cmp(b.0))
    });
    paths.into_iter().map(|(p, _)| p.to_string()).collect()
}

/// Shares for paths known only by their order: the first twice the second's, three times the
/// third's, …
fn by_position(paths: Vec<String>) -> Vec<(String, f64)> {
    let z: f64 = (1..=paths.len()).map(|i| 1.0 / i as f64).sum();
    paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, 1.0 / (i as f64 + 1.0) / z))
        .collect()
}

fn root_key(feature: &str) -> Vec<u8> {
    key(b'R', feature)
}

/// The features of a file that tell a `no_std` file from a std one: the roots of its qualified
/// paths, its attribute words, its crate's dependencies and, when known, the crate itself.
fn root_features(e: &Extracted, deps: &[String], krate: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = e.attributes.iter().map(|a| format!("a:{a}")).collect();
    out.extend(krate.map(|k| format!("k:{k}")));
    out.extend(
        e.roots
            .iter()
            .filter(|r| r.chars().next().is_some_and(|c| c.is_lowercase()))
            .map(|r| format!("r:{r}")),
    );
    out.extend(deps.iter().map(|d| format!("d:{d}")));
    out.sort();
    out.dedup();
    out
}

/// The log-odds that a file with these features imports from core/alloc rather than std, by
/// naive Bayes over the files learned (0 when nothing is known).
fn core_log_odds(patterns: &Patterns<DevPattern>, features: &[String]) -> f64 {
    let Some(DevPattern::Counts(all)) = patterns.get(&root_key("*")) else {
        return 0.0;
    };
    let (std_n, core_n) = (all.get("std") as f64, all.get("core") as f64);
    let mut odds = ((core_n + 0.5) / (std_n + 0.5)).ln();
    for f in features {
        if let Some(DevPattern::Counts(c)) = patterns.get(&root_key(f)) {
            let (s, k) = (c.get("std") as f64, c.get("core") as f64);
            let e = ((k + 0.5) / (core_n + 1.0)).ln() - ((s + 0.5) / (std_n + 1.0)).ln();
            odds += ROOT_WEIGHT * e.clamp(-4.0, 4.0);
        }
    }
    odds
}

/// The names std's prelude (2021 edition) brings into every file that has std.
const STD_PRELUDE: &[&str] = &[
    "Copy",
    "Send",
    "Sized",
    "Sync",
    "Unpin",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "drop",
    "Box",
    "ToOwned",
    "Clone",
    "PartialEq",
    "PartialOrd",
    "Eq",
    "Ord",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "Default",
    "Iterator",
    "Extend",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "String",
    "ToString",
    "Vec",
    "TryFrom",
    "TryInto",
    "FromIterator",
];

/// The weight of each feature in the std/core model (they overlap: a `no_std` crate shows it
/// in several).
const ROOT_WEIGHT: f64 = 1.0;

/// The least log-odds of core/alloc over std for a file that says `no_std`.
const NO_STD_ODDS: f64 = 4.0;

/// How far (in log-odds) the guess that a test imports a name from its own library ranks
/// below the best known candidate.
const GUESS_MARGIN: f64 = 1.0;

/// The weight of a codebase's own history of a name against everyone's.
const CRATE_WEIGHT: f64 = 2.0;

/// Add-half smoothing of a feature's background rate.
const SMOOTHING: f64 = 0.5;

/// How many files' worth of the background rate a path's own context starts from.
const PRIOR_STRENGTH: f64 = 2.0;

/// The weight of each context feature's evidence: features are far from independent (a
/// no_std file shows it in many), so naive Bayes would count the same evidence many times.
const CONTEXT_WEIGHT: f64 = 0.6;

/// What ranking a name takes from the file it is asked for.
struct FileCx<'a> {
    /// The file's codebase.
    krate: Option<&'a str>,
    /// Its context features.
    features: &'a [String],
    /// Its crate's dependencies, when given.
    deps: Option<&'a [String]>,
    /// The log-odds that it imports from core/alloc rather than std.
    core_odds: f64,
    /// Its own library's name, for a file outside the library (tests, examples, …).
    library: Option<&'a str>,
    /// The roots of its qualified paths (`mem` in `mem::swap`).
    roots: &'a BTreeSet<String>,
}

/// Ranks the candidate paths of `leaf` for a file.
fn rank(patterns: &Patterns<DevPattern>, leaf: &str, file: &FileCx<'_>) -> Vec<(String, f64)> {
    let FileCx {
        krate,
        features,
        deps,
        core_odds,
        library,
        roots,
    } = *file;
    // Everyone's paths with everyone's counts; then the codebase's own paths no one else has
    // (its `crate::` ones).
    let mut candidates: Vec<(String, u64)> = Vec::new();
    for scope in std::iter::once(None).chain(krate.map(Some)) {
        if let Some(DevPattern::Counts(c)) = patterns.get(&leaf_key(scope, leaf)) {
            for (path, n) in c.items.iter() {
                if !candidates.iter().any(|(p, _)| p == path) {
                    candidates.push((path.to_string(), n.total()));
                }
            }
        }
    }
    let allowed = |path: &str| {
        let root = path.split("::").next().unwrap_or("");
        match deps {
            None => true,
            Some(d) => {
                BUILTIN.contains(&root)
                    || matches!(root, "crate" | "self" | "super")
                    || library == Some(root)
                    || d.iter().any(|x| x == root)
            }
        }
    };
    // No codebase imported it from anywhere the file may use: where learned crates define it.
    // Then the standard library's own paths for it.
    if !candidates.iter().any(|(p, _)| allowed(p)) {
        let mut paths: Vec<String> = exported(patterns, leaf, allowed);
        for p in std_api::candidates(leaf, roots.contains(leaf), core_odds > 0.0) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        if !paths.is_empty() {
            let mut out = by_position(paths);
            out.extend(candidates.into_iter().map(|(p, _)| (p, 0.0)));
            return out;
        }
    }
    // A test, example, bench or binary imports its own library by name: the library's
    // root-level name is a candidate (for a type-like name), the first when nothing the file
    // may use is known.
    let guessed = library
        .filter(|lib| {
            library_name(leaf)
                && !candidates
                    .iter()
                    .any(|(p, _)| p.split("::").next() == Some(*lib))
        })
        .map(|lib| format!("{lib}::{leaf}"));
    if let Some(guess) = &guessed {
        candidates.push((guess.clone(), 0));
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    let total: u64 = candidates.iter().map(|(_, n)| n).sum();
    let contexts: Vec<Option<&Counts>> = candidates
        .iter()
        .map(|(p, _)| counts(patterns, &context_key(p)))
        .collect();
    // Only features seen with some candidate.
    let informative: Vec<&String> = if candidates.len() > 1 {
        features
            .iter()
            .filter(|f| contexts.iter().flatten().any(|c| c.get(f) > 0))
            .collect()
    } else {
        Vec::new()
    };
    // Each feature's rate over all the candidates' files: what a candidate with little
    // context of its own is assumed to have (so that a small context is not mistaken for a
    // matching one).
    let t_all: f64 = contexts
        .iter()
        .flatten()
        .map(|c| c.total.total() as f64)
        .sum();
    let background: Vec<f64> = informative
        .iter()
        .map(|f| {
            let k: f64 = contexts.iter().flatten().map(|c| c.get(f) as f64).sum();
            (k + SMOOTHING) / (t_all + 2.0 * SMOOTHING)
        })
        .collect();
    // How the file's own codebase imported the name before, if it did.
    let own = krate.and_then(|k| counts(patterns, &leaf_key(Some(k), leaf)));
    let mut scored: Vec<(String, f64)> = candidates
        .iter()
        .zip(&contexts)
        .map(|((path, n), ctx)| {
            let mut s = ((*n as f64 + 0.1) / (total as f64 + 0.1)).ln();
            if let Some(own) = own {
                let k = own.get(path) as f64;
                s += CRATE_WEIGHT * ((k + 0.1) / (own.total.total() as f64 + 0.1)).ln();
            }
            let t = ctx.map_or(0, |c| c.total.total()) as f64;
            for (f, q) in informative.iter().zip(&background) {
                let k = ctx.map_or(0, |c| c.get(f)) as f64;
                s += CONTEXT_WEIGHT * ((k + PRIOR_STRENGTH * q) / (t + PRIOR_STRENGTH) / q).ln();
            }
            // std or core/alloc: the file's own odds, not the name's history. Except for the
            // names of std's prelude: a std file never imports them, so a file that needs one
            // is most likely without std, whatever else it shows.
            if !STD_PRELUDE.contains(&leaf) {
                match path.split("::").next() {
                    Some("std") => s += log_sigmoid(-core_odds),
                    Some("core" | "alloc") => s += log_sigmoid(core_odds),
                    _ => {}
                }
            }
            if !allowed(path) {
                s -= 1e3;
            }
            (path.clone(), s)
        })
        .collect();
    // The library's name is a guess with no history of its own: it ranks just below the best
    // candidate the file may use, or first when there is none.
    if let Some(guess) = &guessed {
        let best = scored
            .iter()
            .filter(|(p, _)| p != guess && allowed(p))
            .map(|(_, s)| *s)
            .fold(f64::NEG_INFINITY, f64::max);
        if best.is_finite() {
            for (p, s) in scored.iter_mut() {
                if p == guess {
                    *s = best - GUESS_MARGIN;
                }
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // Scores as probabilities among the candidates.
    let max = scored.first().map_or(0.0, |s| s.1);
    let z: f64 = scored.iter().map(|(_, s)| (s - max).exp()).sum();
    scored
        .into_iter()
        .map(|(p, s)| (p, ((s - max).exp() / z).clamp(0.0, 1.0)))
        .collect()
}

fn log_sigmoid(x: f64) -> f64 {
    -(1.0 + (-x).exp()).ln()
}

/// Suggestions for a file.
pub fn suggest(
    patterns: &Patterns<DevPattern>,
    req: &SuggestImportsRequest,
) -> Result<SuggestImportsResponse, LearnError> {
    let e = read_content(&req.content)?;
    let limit = req.limit.unwrap_or(3).clamp(1, 20) as usize;
    let deps: Option<Vec<String>> = req
        .dependencies
        .as_ref()
        .map(|d| d.iter().map(|x| crate_name(x)).collect());
    let krate = req.krate.as_deref().map(crate_name);
    // A file outside the library's sources (tests, examples, benches, binaries) reaches the
    // library by its name, not by `crate::`.
    let library = krate
        .as_deref()
        .filter(|_| req.path.as_deref().is_some_and(outside_library));
    let imported: BTreeSet<&str> = e.imports.iter().map(|i| i.leaf.as_str()).collect();
    // Names the file defines as items shadow imports; methods and bindings do not (every
    // `impl Display` defines `fmt`, and still needs `use std::fmt`).
    let defined: BTreeSet<&str> = e
        .defined
        .iter()
        .filter(|(k, _)| {
            matches!(
                k,
                ItemKind::Type
                    | ItemKind::Trait
                    | ItemKind::Module
                    | ItemKind::Constant
                    | ItemKind::TypeParam
            )
        })
        .map(|(_, n)| n.as_str())
        .collect();
    // The names to resolve: used, not imported, not defined here, and imported somewhere.
    // Names imported before, or (for type-like names: methods and locals share the others'
    // spelling) defined public somewhere learned.
    let known = |n: &str| {
        patterns.get(&leaf_key(None, n)).is_some()
            || krate
                .as_deref()
                .is_some_and(|k| patterns.get(&leaf_key(Some(k), n)).is_some())
            || (n.starts_with(|c: char| c.is_uppercase()) && patterns.get(&key(b'E', n)).is_some())
            || (library.is_some() && library_name(n))
            || std_api::knows(n, e.roots.contains(n))
    };
    let wanted: Vec<&String> = e
        .used
        .iter()
        .filter(|n| !imported.contains(n.as_str()) && !defined.contains(n.as_str()))
        .filter(|n| known(n))
        .collect();
    let mut names: BTreeSet<String> = wanted.iter().map(|n| n.to_string()).collect();
    names.extend(imported.iter().map(|s| s.to_string()));
    let features = context(&names, &e, deps.as_deref().unwrap_or(&[]));
    let file_features = root_features(&e, deps.as_deref().unwrap_or(&[]), krate.as_deref());
    let mut core_odds = core_log_odds(patterns, &file_features);
    if e.attributes.contains("no_std") {
        // `#![no_std]` (or a `cfg_attr` that may set it): the file's crate has no std to
        // import from, whatever has been learned or not.
        core_odds = core_odds.max(NO_STD_ODDS);
    }
    let file = FileCx {
        krate: krate.as_deref(),
        features: &features,
        deps: deps.as_deref(),
        core_odds,
        library,
        roots: &e.roots,
    };
    let mut out = Vec::new();
    for name in wanted {
        let ranked = rank(patterns, name, &file);
        if ranked.is_empty() {
            continue;
        }
        out.push(NameSuggestion {
            name: name.clone(),
            candidates: ranked
                .into_iter()
                .take(limit)
                .map(|(path, score)| ImportCandidate { path, score })
                .collect(),
        });
    }
    Ok(SuggestImportsResponse { names: out })
}

/// Whether `name` may be one a file outside the library imports from it: type-like, and not
/// in std's prelude.
fn library_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_uppercase()) && !STD_PRELUDE.contains(&name)
}

/// Whether a file at `path` (relative to its crate) is outside the library's sources: an
/// integration test, example, bench or binary, which imports the library by its name.
fn outside_library(path: &str) -> bool {
    let path = path.trim_start_matches("./");
    ["tests/", "examples/", "benches/", "src/bin/"]
        .iter()
        .any(|dir| path.starts_with(dir))
}

/// Reads a file sent for a check or a suggestion, or says what to fix.
fn read_content(content: &str) -> Result<Extracted, LearnError> {
    if content.len() > MAX_FILE_BYTES {
        return Err(LearnError::BadInput(format!(
            "`content` is {} bytes; the development learner reads files up to {MAX_FILE_BYTES} bytes",
            content.len()
        )));
    }
    Rust.extract(content).map_err(|e| {
        LearnError::BadInput(format!(
            "`content` is not Rust the parser can read ({e}); fix the syntax and ask again"
        ))
    })
}

/// Where a file departs from the learned conventions.
pub fn check_style(
    patterns: &Patterns<DevPattern>,
    req: &CheckStyleRequest,
) -> Result<CheckStyleResponse, LearnError> {
    if let Some(m) = req.min_confidence
        && !(0.0..=1.0).contains(&m)
    {
        return Err(LearnError::BadInput(format!(
            "`min_confidence` is {m}; give a number from 0.5 to 1"
        )));
    }
    let e = read_content(&req.content)?;
    let krate = req.krate.as_deref().map(crate_name);
    Ok(super::style::check_style(
        patterns,
        &e,
        req,
        krate.as_deref(),
    ))
}

/// Learns a batch of files; returns what was learned.
pub fn learn(
    patterns: &mut Patterns<DevPattern>,
    req: &LearnRequest,
    instance: InstanceId,
    clock: u64,
) -> Result<LearnResponse, LearnError> {
    if req.files.len() > MAX_FILES {
        return Err(LearnError::BadInput(format!(
            "{} files in one call; send at most {MAX_FILES} at a time",
            req.files.len()
        )));
    }
    let deps: Vec<String> = req
        .dependencies
        .iter()
        .flatten()
        .map(|d| crate_name(d))
        .collect();
    let krate = req.krate.as_deref().map(crate_name);
    let (mut files, mut imports) = (0, 0);
    let mut skipped = Vec::new();
    for f in &req.files {
        if f.content.len() > MAX_FILE_BYTES {
            skipped.push(SkippedFile {
                path: f.path.clone(),
                error: format!(
                    "{} bytes, over the {MAX_FILE_BYTES}-byte limit",
                    f.content.len()
                ),
            });
            continue;
        }
        if !f.path.ends_with(".rs") {
            skipped.push(SkippedFile {
                path: f.path.clone(),
                error: "not a `.rs` file: only Rust is read".into(),
            });
            continue;
        }
        match Rust.extract(&f.content) {
            Ok(e) => {
                imports += learn_file(
                    patterns,
                    &e,
                    &f.path,
                    krate.as_deref(),
                    &deps,
                    instance,
                    clock,
                );
                if let Some(k) = krate.as_deref() {
                    learn_exports(patterns, &e, k, &f.path, instance, clock);
                }
                files += 1;
            }
            Err(e) => skipped.push(SkippedFile {
                path: f.path.clone(),
                error: e.to_string(),
            }),
        }
    }
    Ok(LearnResponse {
        files,
        imports,
        skipped,
    })
}

impl Model for DevModel {
    const NAME: &'static str = "development";
    type Pattern = DevPattern;
    type Observation = LearnRequest;
    type Msg = DevMsg;
    type Detail = LearnDetail;

    fn open(_patterns: &Patterns<DevPattern>, _instance: InstanceId) -> Self {
        Self::default()
    }

    /// A batch of files: each file read is one observation.
    fn observe(
        &mut self,
        cx: &mut Cx<'_, DevPattern>,
        req: LearnRequest,
    ) -> Result<(u64, LearnDetail), LearnError> {
        let r = learn(cx.patterns, &req, cx.instance, cx.clock)?;
        self.files += r.files;
        Ok((
            r.files,
            LearnDetail {
                imports: r.imports,
                skipped: r.skipped,
            },
        ))
    }

    fn handle(&mut self, cx: &mut Cx<'_, DevPattern>, msg: DevMsg) {
        match msg {
            DevMsg::SuggestImports(req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let _ = reply.send(suggest(cx.patterns, &req));
                }
            }
            DevMsg::CheckStyle(req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let _ = reply.send(check_style(cx.patterns, &req));
                }
            }
        }
    }
}

/// What the learner knows about a name: its paths with counts, and the strongest context
/// features of each (for debugging the ranking).
pub fn explain(patterns: &Patterns<DevPattern>, leaf: &str) -> String {
    let mut out = String::new();
    if let Some(DevPattern::Counts(c)) = patterns.get(&leaf_key(None, leaf)) {
        for (path, n) in c.items.iter() {
            out.push_str(&format!("{path} {}\n", n.total()));
            if let Some(DevPattern::Counts(ctx)) = patterns.get(&context_key(path)) {
                let mut top: Vec<(&str, u64)> =
                    ctx.items.iter().map(|(f, n)| (f, n.total())).collect();
                top.sort_by_key(|t| std::cmp::Reverse(t.1));
                out.push_str(&format!(
                    "  context of {} files: {:?}\n",
                    ctx.total.total(),
                    &top[..top.len().min(12)]
                ));
            }
        }
    }
    out
}

/// Byte counts, for the learner's throughput figures.
pub fn bytes_of(req: &LearnRequest) -> usize {
    req.files.iter().map(|f| f.content.len()).sum()
}
