//! Test-only tools' requests (served when a runtime is built with test tools on).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Sleeps, then answers: a slow step for crash and cancellation tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepRequest {
    /// How long to sleep.
    pub ms: u64,
    /// A label recorded when the sleep starts (in the test log, when the runtime has one).
    #[serde(default)]
    pub label: String,
}

/// What a sleep did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SleepResponse {
    /// The request's label.
    pub label: String,
    /// How long it slept.
    pub slept_ms: u64,
    /// How many sleeps with this label started in this process, this one included.
    pub count: u64,
}
