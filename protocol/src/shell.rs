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
