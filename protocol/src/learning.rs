//! What every learning server answers: observation acknowledgements, statistics, and the
//! export/import of learned patterns between instances.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An observation (or a batch of them) was learned. It is in memory at once and on disk within
/// the learner's flush interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObserveAck<T = NoDetail> {
    /// Observations learned by this call.
    pub learned: u64,
    /// Observations the learner holds in memory that are not on disk yet.
    pub pending: u64,
    /// What the learner has to say about this batch (e.g. files it could not read).
    #[serde(flatten)]
    pub detail: T,
}

/// No more to say about an observation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoDetail {}

/// Asks for a learner's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsRequest {
    /// The learner: `shell` or `development`.or `development`.
    pub learner: String,
}

/// A learner's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LearnerStats {
    /// The learner's name.
    pub learner: String,
    /// This instance's id (hex); snapshots from other instances carry theirs.
    pub instance: String,
    /// Observations learned since the learner's data began (this instance's and imported ones
    /// are counted by their patterns, not here).
    pub observations: u64,
    /// Queries answered since the process started.
    pub queries: u64,
    /// Patterns held.
    pub patterns: u64,
    /// Bytes the patterns take in memory (an estimate of their heap size).
    pub memory_bytes: u64,
    /// The memory budget; past it the least valuable patterns are evicted.
    pub memory_budget_bytes: u64,
    /// Patterns evicted since the process started.
    pub evicted: u64,
    /// The learner's own running accuracy where it measures one (the shell learner: how often
    /// its first suggestion was the command observed next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Running accuracy per task where a learner has several (the shell learner:
    /// `next_command`, and `safety`: how often `shell_check` agreed with a `shell_feedback`
    /// label before learning it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tasks: std::collections::BTreeMap<String, f64>,
}

/// Writes a snapshot of what a learner learned as a registry artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The learner: `shell` or `development`.
    pub learner: String,
    /// The artifact's name; default `learning/<learner>/<instance>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where the snapshot went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExportResponse {
    /// The artifact's name in the registry.
    pub name: String,
    /// Its version (one more for each export of this instance).
    pub version: String,
    /// Its `sha256:` digest.
    pub digest: String,
    /// Patterns in the snapshot.
    pub patterns: u64,
}

/// Merges a snapshot that another instance exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The learner: `shell` or `development`.
    pub learner: String,
    /// The snapshot artifact: `name` or `name@version` (latest version when absent).
    pub artifact: String,
}

/// What the merge changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImportResponse {
    /// The instance the snapshot came from (hex).
    pub from_instance: String,
    /// Patterns in the snapshot.
    pub patterns: u64,
    /// Patterns that were new here or changed by the merge (0 when the same snapshot is
    /// imported again: merging is idempotent).
    pub changed: u64,
}
