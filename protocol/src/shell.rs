//! The shell learner's requests and answers: a user's command history and next-command
//! suggestions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest command the shell learner takes, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The longest user name, in bytes.
pub const MAX_USER_BYTES: usize = 256;

/// One command a user ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveRequest {
    /// Who ran it (any stable name: a login, an agent id).
    pub user: String,
    /// The command line as typed.
    pub command: String,
    /// The working directory it ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Its exit status, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Asks for the commands a user is likely to run next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    /// Whose history to follow.
    pub user: String,
    /// Only commands starting with this text (what the user has typed so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// How many suggestions at most (default 5, at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Ranked suggestions, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuggestResponse {
    /// The suggestions.
    pub suggestions: Vec<Suggestion>,
}

/// One suggested command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Suggestion {
    /// The command.
    pub command: String,
    /// Its score, 0 to 1 (an estimate of the probability that it comes next).
    pub score: f64,
    /// Where the evidence came from: `user` (this user's history) or `prior` (every user's,
    /// and imported snapshots').
    pub source: String,
}

/// Asks whether a command is safe to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The command line or script, as it would be given to bash.
    pub command: String,
    /// Lint with ShellCheck too (when installed). Default: only for scripts (several lines or
    /// a `#!` line), since starting ShellCheck costs milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shellcheck: Option<bool>,
}

/// The judgement on a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResponse {
    /// `allow`, `warn` (risk ≥ 0.4) or `block` (risk ≥ 0.7).
    pub verdict: String,
    /// 0 (nothing found) to 1: the rules' and the learned model's evidence combined.
    pub risk: f64,
    /// What was found, most severe first.
    pub findings: Vec<SafetyFinding>,
    /// A safer way to do what the command does, where there is a usual one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safer_alternative: Option<String>,
    /// Notes about the check itself (e.g. ShellCheck not installed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SafetyFinding {
    /// The rule: a built-in one (`destructive-delete`, `reverse-shell`, …), `learned` (the
    /// model trained by `shell_feedback`), `feedback` (this exact command was labelled), or a
    /// ShellCheck code (`SC2086`).
    pub rule: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// What it means.
    pub message: String,
    /// Where, as byte offsets `[start, end)` into `command`.
    pub span: [usize; 2],
}

/// A labelled example for the safety model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The command.
    pub command: String,
    /// `harmless` or `malicious`.
    pub label: String,
    /// What kind of harm, for a malicious command (e.g. `reverse-shell`, `file-read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// What the safety model learned from one example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeedbackResponse {
    /// Labelled examples learned so far (this one included), per label.
    pub harmless: u64,
    /// Malicious examples learned so far.
    pub malicious: u64,
    /// The verdict the command gets now.
    pub verdict: String,
    /// Its risk now.
    pub risk: f64,
}
