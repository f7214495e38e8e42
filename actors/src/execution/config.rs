//! How the execution engine runs, and what it starts with.

use std::sync::Arc;

use ensemble_protocol::execution::SchedulingPolicy;

use super::cache::CacheLimits;
use crate::invoke::ToolInvoker;
use crate::store::Store;

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct ExecConfig {
    /// The scheduling policy at start.
    pub policy: SchedulingPolicy,
    /// Workers: tasks running at once.
    pub max_concurrent: usize,
    /// Tasks waiting (queued or blocked) at most; more are rejected.
    pub capacity: usize,
    /// Finished tasks remembered for `task_status`, oldest forgotten first.
    pub retain_finished: usize,
    /// The in-memory tier of the result cache.
    pub cache: CacheLimits,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            policy: SchedulingPolicy::PriorityDeadline,
            max_concurrent: 16,
            capacity: 10_000,
            retain_finished: 10_000,
            cache: CacheLimits::default(),
        }
    }
}

/// What the engine starts with (cloned at each restart).
#[derive(Clone)]
pub struct ExecArgs {
    /// Where the cache's disk tier lives.
    pub store: Store,
    /// How tasks call their tools.
    pub invoker: Arc<dyn ToolInvoker>,
    /// Limits and policy.
    pub config: ExecConfig,
}
