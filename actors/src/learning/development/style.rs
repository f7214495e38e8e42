//! Code conventions: how a codebase cases each kind of name, in what order it groups its `use`
//! lines, and what it calls the values of common expressions — learned from its files, and
//! checked against a file with a confidence for each deviation.
//!
//! Patterns, per crate (`<crate>`) and across every crate (empty scope):
//! - `N<scope>\0<kind>`: the casing classes of the names of that kind;
//! - `O<scope>`: for each pair of `use` classes (std, external, local) in a file, which came
//!   first (`std<external`), or `mixed`;
//! - `B\0<context>`: the names of `let` bindings whose value comes from `context`
//!   (`call:File::open`), across every crate;
//! - `L<scope>\0file`: how a module with submodules in files of their own is filed,
//!   `src/a/mod.rs` (`mod_rs`) or `src/a.rs` beside `src/a/` (`named`);
//! - `L<scope>\0tests`: whether a file's inline `#[cfg(test)]` module is its last item.
//!
//! A deviation is reported when the convention holds in a large share of the learned code
//! (smoothed: `(k + 1) / (n + 2)`), that share is at least the asked confidence, and the file's
//! choice is one the codebase (almost) never makes.

use std::collections::BTreeMap;

use ensemble_protocol::development::{CheckStyleRequest, CheckStyleResponse, StyleFinding};

use super::language::{Extracted, ItemKind, ModuleDecl, UseClass};
use super::model::{Counts, DevPattern};
use crate::learning::{InstanceId, Patterns};

/// Observations of a convention needed before it is checked.
const MIN_EVIDENCE: u64 = 8;

/// Observations of a binding context needed before its names are checked.
const MIN_BINDING_EVIDENCE: u64 = 50;

/// The least share of a context's bindings its usual name must have to be suggested.
const BINDING_MIN_SHARE: f64 = 0.97;

/// The casing of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `snake_case`.
    Snake,
    /// `UpperCamelCase`.
    UpperCamel,
    /// `SCREAMING_SNAKE_CASE`.
    Screaming,
}

impl Case {
    fn as_str(self) -> &'static str {
        match self {
            Case::Snake => "snake_case",
            Case::UpperCamel => "UpperCamelCase",
            Case::Screaming => "SCREAMING_SNAKE_CASE",
        }
    }

    fn from_str(s: &str) -> Option<Self> {
        match s {
            "snake_case" => Some(Case::Snake),
            "UpperCamelCase" => Some(Case::UpperCamel),
            "SCREAMING_SNAKE_CASE" => Some(Case::Screaming),
            _ => None,
        }
    }

    /// The casings a name fits (`T` fits two; `x` one; `fooBar` none).
    pub fn of(name: &str) -> Vec<Case> {
        let name = name.trim_start_matches('_');
        let letters = name.chars().filter(|c| c.is_alphabetic()).count();
        if letters == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let lower_ok = |c: char| c.is_lowercase() || c.is_ascii_digit() || c == '_';
        let upper_ok = |c: char| c.is_uppercase() || c.is_ascii_digit() || c == '_';
        if name.chars().all(lower_ok) {
            out.push(Case::Snake);
        }
        if name.chars().all(upper_ok) {
            out.push(Case::Screaming);
        }
        let first_upper = name.chars().next().is_some_and(|c| c.is_uppercase());
        // `DFA` and `IO` are acronyms in UpperCamelCase as much as screaming case.
        if first_upper && !name.contains('_') {
            out.push(Case::UpperCamel);
        }
        out
    }

    /// `name` in this casing.
    pub fn convert(self, name: &str) -> String {
        let words = words(name);
        match self {
            Case::Snake => words.join("_").to_lowercase(),
            Case::Screaming => words.join("_").to_uppercase(),
            Case::UpperCamel => words
                .iter()
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => f
                            .to_uppercase()
                            .chain(c.flat_map(char::to_lowercase))
                            .collect(),
                        None => String::new(),
                    }
                })
                .collect(),
        }
    }
}

/// A name's words: split at `_` and where a lowercase letter or digit meets an uppercase one.
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut word = String::new();
        let mut prev: Option<char> = None;
        for c in part.chars() {
            if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit()) {
                out.push(std::mem::take(&mut word));
            }
            word.push(c);
            prev = Some(c);
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

fn kind_name(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Function => "function",
        ItemKind::Type => "type",
        ItemKind::Trait => "trait",
        ItemKind::Constant => "constant",
        ItemKind::Module => "module",
        ItemKind::Binding => "binding",
        ItemKind::Variant => "variant",
        ItemKind::TypeParam => "type_parameter",
    }
}

/// The lint that allows other casings for a kind of name.
fn lint_of(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Function | ItemKind::Module | ItemKind::Binding => "non_snake_case",
        ItemKind::Type | ItemKind::Trait | ItemKind::Variant | ItemKind::TypeParam => {
            "non_camel_case_types"
        }
        ItemKind::Constant => "non_upper_case_globals",
    }
}

fn scoped(prefix: u8, scope: &str, rest: Option<&str>) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(scope.as_bytes());
    if let Some(r) = rest {
        k.push(0);
        k.extend_from_slice(r.as_bytes());
    }
    k
}

fn add(
    patterns: &mut Patterns<DevPattern>,
    key: &[u8],
    items: &[String],
    instance: InstanceId,
    clock: u64,
) {
    if items.is_empty() {
        return;
    }
    patterns.update(
        key,
        || DevPattern::Counts(Counts::default()),
        |p| {
            let DevPattern::Counts(c) = p;
            c.add_observation(items, instance, clock);
        },
    );
}

/// The order of the `use` classes of a file, as pairs: `std<external` when every std item
/// comes before every external one, `mixed:std,external` when they interleave.
fn class_order(e: &Extracted) -> Vec<String> {
    let items: Vec<UseClass> = e
        .use_items
        .iter()
        .filter(|u| !u.public)
        .map(|u| u.class)
        .collect();
    let classes = [UseClass::Std, UseClass::External, UseClass::Local];
    let mut out = Vec::new();
    for (i, a) in classes.iter().enumerate() {
        for b in &classes[i + 1..] {
            let pa: Vec<usize> = positions(&items, *a);
            let pb: Vec<usize> = positions(&items, *b);
            let (Some(a_last), Some(b_first), Some(b_last), Some(a_first)) =
                (pa.last(), pb.first(), pb.last(), pa.first())
            else {
                continue;
            };
            if a_last < b_first {
                out.push(format!("{}<{}", a.as_str(), b.as_str()));
            } else if b_last < a_first {
                out.push(format!("{}<{}", b.as_str(), a.as_str()));
            } else {
                out.push(format!("mixed:{},{}", a.as_str(), b.as_str()));
            }
        }
    }
    out
}

fn positions(items: &[UseClass], c: UseClass) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, x)| **x == c)
        .map(|(i, _)| i)
        .collect()
}

/// How the file at `path` is filed, if that says anything: `mod_rs` for `src/a/mod.rs`,
/// `named` for `src/a.rs` with submodules in files of their own (in `src/a/`). Crate roots,
/// files outside `src/` and leaf modules named `a.rs` (both layouts name those so) say nothing.
fn module_file_style(e: &Extracted, path: &str) -> Option<&'static str> {
    let module = super::model::module_of(path)?;
    if module.is_empty() {
        return None;
    }
    if path.ends_with("/mod.rs") {
        return Some("mod_rs");
    }
    e.modules
        .iter()
        .any(|m| !m.inline && !m.path_attr)
        .then_some("named")
}

/// The file's inline unit-test module (`#[cfg(test)] mod tests { … }`), if it has one.
fn test_module(e: &Extracted) -> Option<&ModuleDecl> {
    e.modules.iter().find(|m| m.inline && m.cfg_test)
}

/// Learns a file's conventions, for its crate (if known) and for everyone.
pub(super) fn learn_style(
    patterns: &mut Patterns<DevPattern>,
    e: &Extracted,
    path: &str,
    krate: Option<&str>,
    instance: InstanceId,
    clock: u64,
) {
    let scopes: Vec<&str> = std::iter::once("").chain(krate).collect();
    // Module layout.
    let file = module_file_style(e, path);
    let tests = test_module(e).map(|m| if m.last { "last" } else { "not_last" });
    for scope in &scopes {
        for (what, seen) in [("file", file), ("tests", tests)] {
            if let Some(seen) = seen {
                add(
                    patterns,
                    &scoped(b'L', scope, Some(what)),
                    &[seen.to_string()],
                    instance,
                    clock,
                );
            }
        }
    }
    // Casing per kind: one observation per file and kind, of the classes its names fit.
    let mut by_kind: BTreeMap<ItemKind, Vec<String>> = BTreeMap::new();
    for s in &e.sites {
        if e.allowed_lints.contains(lint_of(s.kind)) {
            continue;
        }
        let cases = Case::of(&s.name);
        if cases.len() == 1 {
            by_kind
                .entry(s.kind)
                .or_default()
                .push(cases[0].as_str().to_string());
        }
    }
    for (kind, names) in &by_kind {
        for scope in &scopes {
            for n in names {
                add(
                    patterns,
                    &scoped(b'N', scope, Some(kind_name(*kind))),
                    std::slice::from_ref(n),
                    instance,
                    clock,
                );
            }
        }
    }
    let order = class_order(e);
    for scope in &scopes {
        add(
            patterns,
            &scoped(b'O', scope, None),
            &order,
            instance,
            clock,
        );
    }
    // Binding names across every codebase only: one crate rarely binds a context often
    // enough to tell, and per crate they would take most of the memory.
    for b in &e.bindings {
        add(
            patterns,
            &scoped(b'B', "", Some(&b.context)),
            std::slice::from_ref(&b.name),
            instance,
            clock,
        );
    }
}

/// The counts at `key` in the crate's scope when it has enough of them, else everyone's.
fn evidence<'a>(
    patterns: &'a Patterns<DevPattern>,
    prefix: u8,
    krate: Option<&str>,
    rest: Option<&str>,
    min: u64,
) -> Option<(&'a Counts, &'static str)> {
    let get = |scope: &str| match patterns.get(&scoped(prefix, scope, rest)) {
        Some(DevPattern::Counts(c)) if c.observations() >= min => Some(c),
        _ => None,
    };
    krate
        .and_then(|k| get(k).map(|c| (c, "crate")))
        .or_else(|| get("").map(|c| (c, "all")))
}

/// How a finding's message says whose code the convention was learned from.
fn in_this_crate(whose: &str) -> &'static str {
    if whose == "crate" {
        " in this crate"
    } else {
        ""
    }
}

fn smoothed(k: u64, n: u64) -> f64 {
    (k as f64 + 1.0) / (n as f64 + 2.0)
}

/// Checks a file against the learned conventions.
pub(super) fn check_style(
    patterns: &Patterns<DevPattern>,
    e: &Extracted,
    req: &CheckStyleRequest,
    krate: Option<&str>,
) -> CheckStyleResponse {
    let min = req.min_confidence.unwrap_or(0.9).clamp(0.5, 1.0);
    let mut findings = Vec::new();
    let mut checked = BTreeMap::new();
    // Casing.
    for s in &e.sites {
        if e.allowed_lints.contains(lint_of(s.kind)) || s.name.starts_with("r#") {
            continue;
        }
        let kind = kind_name(s.kind);
        let Some((c, whose)) = evidence(patterns, b'N', krate, Some(kind), MIN_EVIDENCE) else {
            continue;
        };
        checked.insert(format!("naming:{kind}"), whose.to_string());
        let n = c.observations();
        let Some((top, k)) = c.top() else { continue };
        let Some(case) = Case::from_str(top) else {
            continue;
        };
        let fits = Case::of(&s.name);
        if fits.is_empty() || fits.contains(&case) {
            continue;
        }
        let own = fits.iter().map(|f| c.get(f.as_str())).max().unwrap_or(0);
        // The share of the names that follow the habit; the file's casing must be one the
        // codebase (almost) never uses for this kind.
        let confidence = smoothed(k, n);
        if confidence < min || own * 20 > n {
            continue;
        }
        let fix = case.convert(&s.name);
        findings.push(StyleFinding {
            rule: "naming".into(),
            line: s.line,
            column: s.column,
            message: format!(
                "{kind} `{}` is not {}; {:.0}% of the {kind} names learned{} are",
                s.name,
                case.as_str(),
                100.0 * k as f64 / n as f64,
                in_this_crate(whose)
            ),
            fix,
            confidence,
        });
    }
    // `use` order.
    if let Some((c, whose)) = evidence(patterns, b'O', krate, None, MIN_EVIDENCE) {
        checked.insert("use_order".into(), whose.to_string());
        for pair in class_order(e) {
            let (a, b, interleaved) = match pair.split_once('<') {
                Some((a, b)) => (b.to_string(), a.to_string(), false),
                None => {
                    let Some((a, b)) = pair.trim_start_matches("mixed:").split_once(',') else {
                        continue;
                    };
                    (a.to_string(), b.to_string(), true)
                }
            };
            // The habit is `a<b` (or, for an interleaving, whichever order dominates).
            let want = [format!("{a}<{b}"), format!("{b}<{a}")]
                .into_iter()
                .max_by_key(|p| c.get(p))
                .unwrap_or_default();
            if !interleaved && want != format!("{a}<{b}") {
                continue; // the file follows the habit
            }
            let k = c.get(&want);
            let n = c.get(&format!("{a}<{b}"))
                + c.get(&format!("{b}<{a}"))
                + c.get(&format!("mixed:{a},{b}"))
                + c.get(&format!("mixed:{b},{a}"));
            let this = if interleaved {
                c.get(&format!("mixed:{a},{b}")) + c.get(&format!("mixed:{b},{a}"))
            } else {
                c.get(&format!("{b}<{a}"))
            };
            if n < MIN_EVIDENCE {
                continue;
            }
            // The share of the files that follow the habit (`this` counts against it).
            let confidence = smoothed(k, n);
            if confidence < min || this * 10 > n {
                continue;
            }
            let order = order_of(c);
            let first = first_out_of_order(e, &order);
            findings.push(StyleFinding {
                rule: "use_order".into(),
                line: first,
                column: 1,
                message: format!(
                    "`use` lines: {} here, where {:.0}% of the files learned{} put {}",
                    if interleaved {
                        format!("{a} and {b} imports interleave")
                    } else {
                        format!("{b} imports come before {a} ones")
                    },
                    100.0 * k as f64 / n as f64,
                    in_this_crate(whose),
                    want.replace('<', " before ")
                ),
                fix: format!(
                    "order the `use` groups {}",
                    order
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", then ")
                ),
                confidence,
            });
            break; // one finding for the block
        }
    }
    // Binding names.
    for b in &e.bindings {
        let Some((c, whose)) = evidence(
            patterns,
            b'B',
            krate,
            Some(&b.context),
            MIN_BINDING_EVIDENCE,
        ) else {
            continue;
        };
        checked.insert("binding_name".into(), whose.to_string());
        let n = c.observations();
        let Some((top, k)) = c.top() else { continue };
        if top == b.name || c.get(&b.name) > 0 {
            continue;
        }
        // Names are a matter of taste more than casing is: only a near-unanimous habit over
        // many bindings counts.
        let confidence = smoothed(k, n);
        if confidence < min.max(BINDING_MIN_SHARE) {
            continue;
        }
        let what = b.context.split_once(':').map_or("", |x| x.1);
        findings.push(StyleFinding {
            rule: "binding_name".into(),
            line: b.line,
            column: b.column,
            message: format!(
                "`{}` holds the value of `{what}`, which {:.0}% of the bindings learned{} call `{top}`",
                b.name,
                100.0 * k as f64 / n as f64,
                in_this_crate(whose)
            ),
            fix: top.to_string(),
            confidence,
        });
    }
    module_layout(
        patterns,
        e,
        req.path.as_deref(),
        krate,
        min,
        &mut findings,
        &mut checked,
    );
    findings.sort_by_key(|f| (f.line, f.column));
    CheckStyleResponse { findings, checked }
}

/// Where the file's modules are laid out against the codebase's habit: the file's own name
/// (`src/a/mod.rs` or `src/a.rs`) and where its unit tests sit.
fn module_layout(
    patterns: &Patterns<DevPattern>,
    e: &Extracted,
    path: Option<&str>,
    krate: Option<&str>,
    min: f64,
    findings: &mut Vec<StyleFinding>,
    checked: &mut BTreeMap<String, String>,
) {
    if let Some(path) = path
        && let Some(style) = module_file_style(e, path)
        && let Some((c, whose)) = evidence(patterns, b'L', krate, Some("file"), MIN_EVIDENCE)
    {
        checked.insert("module_layout:file".into(), whose.to_string());
        let habit = if style == "mod_rs" { "named" } else { "mod_rs" };
        let (n, k, this) = (c.observations(), c.get(habit), c.get(style));
        let confidence = smoothed(k, n);
        if confidence >= min && this * 10 <= n {
            let trimmed = path.trim_start_matches("./");
            let fix = match trimmed.strip_suffix("/mod.rs") {
                Some(dir) => format!("rename `{trimmed}` to `{dir}.rs`"),
                None => format!(
                    "move `{trimmed}` to `{}/mod.rs`",
                    trimmed.trim_end_matches(".rs")
                ),
            };
            findings.push(StyleFinding {
                rule: "module_layout".into(),
                line: 1,
                column: 1,
                message: format!(
                    "`{trimmed}` is filed as {}; {:.0}% of the modules with submodules learned{} are filed as {}",
                    layout_name(style),
                    100.0 * k as f64 / n as f64,
                    in_this_crate(whose),
                    layout_name(habit)
                ),
                fix,
                confidence,
            });
        }
    }
    if let Some(m) = test_module(e)
        && let Some((c, whose)) = evidence(patterns, b'L', krate, Some("tests"), MIN_EVIDENCE)
    {
        checked.insert("module_layout:tests".into(), whose.to_string());
        let (n, k, this) = (c.observations(), c.get("last"), c.get("not_last"));
        let confidence = smoothed(k, n);
        if !m.last && confidence >= min && this * 10 <= n {
            findings.push(StyleFinding {
                rule: "module_layout".into(),
                line: m.line,
                column: m.column,
                message: format!(
                    "the unit tests (`mod {}`) are not the file's last item; {:.0}% of the files learned{} with unit tests keep them last",
                    m.name,
                    100.0 * k as f64 / n as f64,
                    in_this_crate(whose)
                ),
                fix: format!("move `mod {}` to the end of the file", m.name),
                confidence,
            });
        }
    }
}

fn layout_name(style: &str) -> &'static str {
    if style == "mod_rs" {
        "`a/mod.rs`"
    } else {
        "`a.rs` beside `a/`"
    }
}

/// The order of the classes the learned files follow: each class ranked by how often it came
/// first in its pairs.
fn order_of(c: &Counts) -> Vec<UseClass> {
    let mut classes = vec![UseClass::Std, UseClass::External, UseClass::Local];
    let wins = |x: UseClass| -> u64 {
        [UseClass::Std, UseClass::External, UseClass::Local]
            .iter()
            .filter(|y| **y != x)
            .map(|y| c.get(&format!("{}<{}", x.as_str(), y.as_str())))
            .sum()
    };
    classes.sort_by_key(|x| std::cmp::Reverse(wins(*x)));
    classes
}

/// The line of the first top-level `use` item out of `order`.
fn first_out_of_order(e: &Extracted, order: &[UseClass]) -> usize {
    let rank = |c: UseClass| order.iter().position(|x| *x == c).unwrap_or(0);
    let mut best = 0;
    for u in e.use_items.iter().filter(|u| !u.public) {
        let r = rank(u.class);
        if r < best {
            return u.lines.0;
        }
        best = best.max(r);
    }
    e.use_items.first().map_or(1, |u| u.lines.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casings_and_conversions() {
        assert_eq!(Case::of("read_to_end"), vec![Case::Snake]);
        assert_eq!(Case::of("HashMap"), vec![Case::UpperCamel]);
        assert_eq!(Case::of("MAX_LEN"), vec![Case::Screaming]);
        assert_eq!(Case::of("T"), vec![Case::Screaming, Case::UpperCamel]);
        assert_eq!(Case::of("DFA"), vec![Case::Screaming, Case::UpperCamel]);
        assert!(Case::of("fooBar").is_empty());
        assert_eq!(Case::Snake.convert("ReadToEnd"), "read_to_end");
        assert_eq!(Case::UpperCamel.convert("http_client2"), "HttpClient2");
        assert_eq!(Case::Screaming.convert("maxLen"), "MAX_LEN");
        assert_eq!(Case::Snake.convert("parseHTTPHeader"), "parse_httpheader");
    }
}
