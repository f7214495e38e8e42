//! Who a piece of deferred work acts for: a workflow run or a queued task keeps the identity
//! of whoever submitted it, so that its tool calls are governed as that identity's own, also
//! after a crash and a resume.

use serde::{Deserialize, Serialize};

/// The submitter of a run or a task: its subject and the roles it held when it submitted.
/// Roles are names; the policy in force when a step runs decides what they allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The subject (a token's `sub`, `apikey:NAME`, the stdio subject).
    pub subject: String,
    /// The roles it held.
    pub roles: Vec<String>,
}
