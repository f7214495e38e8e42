//! The devops learner's requests and answers: changes and their outcomes, the risk of a new
//! one, and what to do with it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most features one change may have.
pub const MAX_FEATURES: usize = 256;

/// A change about to land or be deployed, and what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveRequest {
    /// The project (any stable name).
    pub project: String,
    /// The change's id in the project (a commit, a deployment).
    pub change_id: String,
    /// When it happened (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC, or Unix seconds).
    pub time: serde_json::Value,
    /// Named numeric features: its size, spread, history, author experience (e.g. `la`, `ld`,
    /// `nf`, `entropy`, `exp`).
    pub features: BTreeMap<String, f64>,
}

/// How a change turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed (a defect, a failed deployment, a rollback).
    Failure,
}

/// The outcome of a change observed earlier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// The project.
    pub project: String,
    /// The change, as `devops_observe` named it.
    pub change_id: String,
    /// How it turned out.
    pub outcome: Outcome,
    /// When that became known: predictions as of an earlier time never use it.
    pub time: serde_json::Value,
}

/// What `devops_observe`/`devops_report_outcome` say besides the count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObserveDetail {
    /// Outcomes the project's model has learned from so far.
    pub outcomes_known: u64,
}

/// Asks how likely a change is to fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The project (a new one is answered from every project's experience).
    pub project: String,
    /// The change's features, named as in `devops_observe`.
    pub features: BTreeMap<String, f64>,
    /// Predict as of this time: outcomes known only later are not used. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<serde_json::Value>,
    /// The risk policy that names the risk; the configured one by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RiskPolicy>,
}

/// Asks what to do with a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// The project.
    pub project: String,
    /// The change's features.
    pub features: BTreeMap<String, f64>,
    /// As in `devops_predict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<serde_json::Value>,
    /// Overrides the configured risk policy for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RiskPolicy>,
}

/// How risk maps to an action: below `canary_at` deploy, below `hold_at` canary, else hold.
/// Thresholds are relative risks: the failure probability over the project's failure rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskPolicy {
    /// Relative risk from which a change goes out as a canary (default 1.0: riskier than the
    /// project's average change).
    pub canary_at: f64,
    /// Relative risk from which a change is held for review (default 2.0).
    pub hold_at: f64,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        Self {
            canary_at: 1.0,
            hold_at: 2.0,
        }
    }
}

/// The risk of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Below the policy's canary threshold.
    Low,
    /// Between the canary and hold thresholds.
    Medium,
    /// At or above the hold threshold.
    High,
}

/// How likely a change is to fail, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictResponse {
    /// The estimated probability that it fails.
    pub failure_probability: f64,
    /// The same, over the project's failure rate (1: an average change).
    pub relative_risk: f64,
    /// Low, medium or high, by the configured policy.
    pub risk: Risk,
    /// The features that moved the estimate most, in log-odds against an average change
    /// (positive: riskier).
    pub top_factors: Vec<Factor>,
    /// Outcomes of this project the estimate rests on (0: every project's experience only).
    pub project_outcomes: u64,
    /// Outcomes of all projects the shared prior rests on.
    pub prior_outcomes: u64,
    /// Features given that no model knows (they weigh nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_features: Vec<String>,
}

/// One feature's part in an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Factor {
    /// The feature.
    pub feature: String,
    /// Its value in this change.
    pub value: f64,
    /// Its contribution, in log-odds.
    pub contribution: f64,
}

/// What to do with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Ship it.
    Deploy,
    /// Ship it to a small share first, and watch.
    Canary,
    /// Hold it for review.
    Hold,
}

/// A recommendation, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecommendResponse {
    /// The action.
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// The policy applied.
    pub policy: RiskPolicy,
    /// The estimate it rests on.
    pub prediction: PredictResponse,
}
