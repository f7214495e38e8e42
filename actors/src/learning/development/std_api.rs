//! The standard library's public items: what the development learner knows before it has read
//! any code. A name no learned codebase imported (`BinaryHeap`, `NonZeroU32`, `fmt` in
//! `fmt::Debug`) still has its std, core or alloc path.
//!
//! `std_api.txt` is generated from the toolchain's documentation by
//! `cargo run -p ensemble-actors --example std_api` (one line per module: its path, then
//! `kind:Name,Name` groups); regenerate it for a new toolchain.

use std::collections::HashMap;
use std::sync::OnceLock;

static TEXT: &str = include_str!("std_api.txt");

/// One public item of the standard library crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StdItem {
    /// The module it is public in (`std::collections`).
    pub module: &'static str,
    /// rustdoc's kind (`struct`, `trait`, `fn`, `mod`, `macro`, …).
    pub kind: &'static str,
}

impl StdItem {
    /// The crate of its path: `std`, `core`, `alloc` or `proc_macro`.
    pub fn root(&self) -> &'static str {
        self.module.split("::").next().unwrap_or(self.module)
    }

    /// Its module without the crate (`collections` for `std::collections`; empty at the root).
    pub fn relative(&self) -> &'static str {
        self.module.split_once("::").map_or("", |(_, rest)| rest)
    }
}

/// The items, by name.
pub(super) struct StdApi {
    by_name: HashMap<&'static str, Vec<StdItem>>,
}

impl StdApi {
    fn parse(text: &'static str) -> Self {
        let mut by_name: HashMap<&'static str, Vec<StdItem>> = HashMap::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            let Some(module) = words.next().filter(|m| !m.is_empty()) else {
                continue;
            };
            for group in words {
                let Some((kind, names)) = group.split_once(':') else {
                    continue;
                };
                for name in names.split(',').filter(|n| !n.is_empty()) {
                    by_name
                        .entry(name)
                        .or_default()
                        .push(StdItem { module, kind });
                }
            }
        }
        Self { by_name }
    }

    /// Every public item called `name`.
    pub fn items(&self, name: &str) -> &[StdItem] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }
}

/// The standard library's items (read once).
pub(super) fn std_api() -> &'static StdApi {
    static API: OnceLock<StdApi> = OnceLock::new();
    API.get_or_init(|| StdApi::parse(TEXT))
}

/// Whether an item of this kind can be what a name used this way refers to: a type-like name
/// (upper case first) is a type, trait, constant or derive; a lower-case one used as the root
/// of a path (`mem` in `mem::swap`) is a module. Functions and macros are left out: a method
/// call or a local shares their spelling (`x.max(y)`, `let swap`), so a bare name is no sign
/// that the file needs `std::cmp::max`.
fn fits(kind: &str, name: &str, path_root: bool) -> bool {
    if name.starts_with(|c: char| c.is_uppercase()) {
        matches!(
            kind,
            "struct" | "enum" | "trait" | "type" | "union" | "constant" | "derive" | "traitalias"
        )
    } else {
        path_root && kind == "mod"
    }
}

/// Whether the standard library has an item `name`, used this way, can refer to (see
/// [`fits`]).
pub(super) fn knows(name: &str, path_root: bool) -> bool {
    std_api()
        .items(name)
        .iter()
        .any(|i| fits(i.kind, name, path_root))
}

/// The standard library's paths for `name`, best first: per module, the path in the crate the
/// file uses (`core`/`alloc` when `core_first`, else `std`) and then in the next crate that has
/// it; shallower modules first (a type's home is usually near the top: `std::sync::Arc`, not
/// `std::sync::mpmc::…`), then modules all three crates share.
pub(super) fn candidates(name: &str, path_root: bool, core_first: bool) -> Vec<String> {
    let items: Vec<&StdItem> = std_api()
        .items(name)
        .iter()
        .filter(|i| fits(i.kind, name, path_root))
        .collect();
    // The crates each module (relative to its crate) has the name in.
    let mut modules: Vec<(&str, Vec<&str>)> = Vec::new();
    for i in &items {
        match modules.iter_mut().find(|(m, _)| *m == i.relative()) {
            Some((_, roots)) => {
                if !roots.contains(&i.root()) {
                    roots.push(i.root());
                }
            }
            None => modules.push((i.relative(), vec![i.root()])),
        }
    }
    // rustdoc lists a crate's re-exports of its own items only where they are defined:
    // `alloc::collections::BinaryHeap` shows as `alloc::collections::binary_heap::BinaryHeap`.
    // Where std has the name in a module and core or alloc have it below the same module, they
    // have it in the module too.
    for (module, roots) in modules.iter_mut() {
        if module.is_empty() || !roots.contains(&"std") {
            continue;
        }
        for r in ["core", "alloc"] {
            let below = items.iter().any(|i| {
                i.root() == r
                    && i.relative()
                        .strip_prefix(*module)
                        .is_some_and(|rest| rest.starts_with("::"))
            });
            if below && !roots.contains(&r) {
                roots.push(r);
            }
        }
    }
    modules.sort_by(|a, b| {
        let depth = |m: &str| {
            if m.is_empty() {
                0
            } else {
                m.matches("::").count() + 1
            }
        };
        depth(a.0)
            .cmp(&depth(b.0))
            .then(b.1.len().cmp(&a.1.len()))
            .then(a.0.cmp(b.0))
    });
    let preference: &[&str] = if core_first {
        &["core", "alloc", "std", "proc_macro"]
    } else {
        &["std", "core", "alloc", "proc_macro"]
    };
    // Each module in the crate the file most likely uses, then in the other crate that has it
    // (the std-or-core guess is the least sure part).
    let path = |root: &str, module: &str| {
        if module.is_empty() {
            format!("{root}::{name}")
        } else {
            format!("{root}::{module}::{name}")
        }
    };
    let mut out = Vec::new();
    for (module, roots) in modules {
        let mut ordered = preference.iter().filter(|r| roots.contains(r));
        if let Some(first) = ordered.next() {
            out.push(path(first, module));
        }
        if let Some(second) = ordered.next() {
            out.push(path(second, module));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_list_holds_the_common_homes() {
        let api = std_api();
        let homes = |name: &str| -> Vec<&str> {
            api.items(name).iter().map(|i| i.module).collect::<Vec<_>>()
        };
        assert!(homes("HashMap").contains(&"std::collections"));
        assert!(homes("Arc").contains(&"alloc::sync"));
        assert!(homes("Formatter").contains(&"core::fmt"));
        assert!(homes("TokenStream").contains(&"proc_macro"));
        // Left out on purpose: target intrinsics and the prelude's repeats.
        assert!(
            api.by_name
                .values()
                .flatten()
                .all(|i| { !i.module.contains("::arch") && !i.module.contains("::prelude") })
        );
    }

    #[test]
    fn candidates_follow_the_files_crate_and_the_names_use() {
        assert_eq!(
            candidates("BinaryHeap", false, false)
                .first()
                .map(String::as_str),
            Some("std::collections::BinaryHeap")
        );
        assert_eq!(
            candidates("BinaryHeap", false, true)
                .first()
                .map(String::as_str),
            Some("alloc::collections::BinaryHeap")
        );
        assert_eq!(
            candidates("NonZeroU32", false, true),
            ["core::num::NonZeroU32", "std::num::NonZeroU32"]
        );
        // A module only where the name is a path's root; never a function.
        assert_eq!(
            candidates("mem", true, false).first().map(String::as_str),
            Some("std::mem")
        );
        assert!(candidates("mem", false, false).is_empty());
        assert!(candidates("swap", true, false).is_empty());
        assert!(candidates("NoSuchStdName", false, false).is_empty());
        // `knows` says whether there would be any.
        assert!(knows("BinaryHeap", false) && knows("mem", true));
        assert!(!knows("mem", false) && !knows("swap", true) && !knows("NoSuchStdName", false));
    }
}
