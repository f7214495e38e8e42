//! The development learner's requests and answers: learning how a codebase is written, and
//! suggesting the imports a file needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest source file the development learner reads, in bytes.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// The most files one `development_learn` call takes.
pub const MAX_FILES: usize = 10_000;

/// One source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Its path in its codebase (`src/store.rs`); `.rs` files are read as Rust.
    pub path: String,
    /// Its text.
    pub content: String,
}

/// Files to learn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnRequest {
    /// The files.
    pub files: Vec<SourceFile>,
    /// The crate (codebase) they belong to: its `crate::` imports are learned for it alone.
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    /// The crates it depends on (`Cargo.toml` `[dependencies]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
}

/// What was learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LearnResponse {
    /// Files read.
    pub files: u64,
    /// Imports learned.
    pub imports: u64,
    /// Files that could not be read, with why (the others were learned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedFile>,
}

/// What `development_learn` says besides the count of files learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LearnDetail {
    /// Imports learned.
    pub imports: u64,
    /// Files that could not be read, with why (the others were learned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedFile>,
}

/// A file that was not learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedFile {
    /// Its path.
    pub path: String,
    /// Why.
    pub error: String,
}

/// Asks which imports a file needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestImportsRequest {
    /// The file's text (its `use` lines, if any, are taken as already there).
    pub content: String,
    /// Its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its crate: that crate's own `crate::` imports are candidates too.
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    /// The crates it may import from; candidates from other crates rank below theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Candidates per name (default 3, at most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Imports a file needs, per name it uses without importing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuggestImportsResponse {
    /// One entry per name, in the order the names first appear.
    pub names: Vec<NameSuggestion>,
}

/// The candidate paths of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NameSuggestion {
    /// The name as the file uses it.
    pub name: String,
    /// Ranked full paths, best first.
    pub candidates: Vec<ImportCandidate>,
}

/// One candidate path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImportCandidate {
    /// The path to `use` (`std::collections::HashMap`).
    pub path: String,
    /// Its probability among this name's candidates, 0 to 1.
    pub score: f64,
}

/// Asks where a file departs from its codebase's conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckStyleRequest {
    /// The file's text.
    pub content: String,
    /// Its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its crate: that crate's own conventions come first; without it (or for a crate not
    /// learned yet), the conventions of every codebase learned.
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    /// Report only deviations at least this sure, 0.5 to 1 (default 0.9: precision over
    /// recall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
}

/// Where a file departs from the learned conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckStyleResponse {
    /// The deviations, in file order.
    pub findings: Vec<StyleFinding>,
    /// Which conventions were known well enough to check, and against whose code
    /// (`crate` or `all`): e.g. `{"naming:function": "crate", "use_order": "all"}`.
    pub checked: std::collections::BTreeMap<String, String>,
}

/// One deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StyleFinding {
    /// `naming` (an item's casing for its kind), `use_order` (a `use` group out of the
    /// codebase's order), `binding_name` (a local name the codebase gives another name) or
    /// `module_layout` (a module's file or its unit tests placed against the codebase's habit).
    pub rule: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
    /// What departs from what.
    pub message: String,
    /// The suggested fix: the name to use, or the `use` lines in the codebase's order.
    pub fix: String,
    /// How sure, 0 to 1: the share of the learned code that follows the convention.
    pub confidence: f64,
}
