//! The quality learner's requests and answers: a repository's history and test outcomes, and
//! which tests to run for a change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most commits one `quality_observe_commits` call takes.
pub const MAX_COMMITS: usize = 100_000;

/// The most candidates one `quality_select_tests` call ranks.
pub const MAX_CANDIDATES: usize = 200_000;

/// The longest path or test id, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// One commit of a repository's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// Its id.
    pub sha: String,
    /// Its parents' ids (a merge has several; its `files` are its diff against the first).
    #[serde(default)]
    pub parents: Vec<String>,
    /// When it was committed (RFC 3339, `YYYY-MM-DD HH:MM:SS`, or Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<serde_json::Value>,
    /// The paths it changed.
    pub files: Vec<String>,
}

/// Commits to learn from, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveCommitsRequest {
    /// The repository (any stable name).
    pub repo: String,
    /// The commits, in the order they were made.
    pub commits: Vec<Commit>,
}

/// The outcome of running tests on a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveResultsRequest {
    /// The repository.
    pub repo: String,
    /// The change's commit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The paths the change touched.
    pub changed_files: Vec<String>,
    /// The tests that failed (ids, as `quality_select_tests` candidates name them).
    pub failed_tests: Vec<String>,
    /// The tests that passed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_tests: Option<Vec<String>>,
}

/// What a `quality_observe_*` call learned besides its count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObserveDetail {
    /// Commits whose co-changes were not learned because they touch too many files (a
    /// reformatting or a licence update says nothing about which tests cover which code).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wide_commits: u64,
    /// Commits already learned (sent again), skipped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated_commits: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A test that may be run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Its id (`org.example.FooTest`, `tests/foo.rs`, `test_foo.py`).
    pub id: String,
    /// Its file, when known; otherwise the file is found from the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Asks which tests to run for a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectTestsRequest {
    /// The repository.
    pub repo: String,
    /// The paths the change touches.
    pub changed_files: Vec<String>,
    /// The tests to choose from.
    pub candidates: Vec<Candidate>,
    /// How many to select: a fraction in (0, 1] of the candidates (`0.33`) or a count (`50`).
    /// A third by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<serde_json::Number>,
    /// How many ranked tests to return (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The tests ranked for a change, and the ones selected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SelectTestsResponse {
    /// The candidates, most likely to fail first.
    pub ranked: Vec<RankedTest>,
    /// The ids selected within the budget (the first `budget` of `ranked`).
    pub selected: Vec<String>,
    /// How many the budget allows.
    pub budget: u64,
    /// Commits of this repository learned so far (0: the ranking rests on names alone).
    pub commits_known: u64,
}

/// One candidate test, ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RankedTest {
    /// Its id.
    pub id: String,
    /// How likely it is to fail for this change, relative to the others (higher first).
    pub score: f64,
    /// Whether it is within the budget.
    pub selected: bool,
    /// The strongest evidence: `past_failure`, `co_change`, `name_match`, `package`,
    /// `related_change` or `recent_change`, `none`.
    pub reason: String,
    /// That evidence in words.
    pub explanation: String,
}
