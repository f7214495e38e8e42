//! How the workflow engine runs, and what it starts with.

use std::sync::Arc;

use ensemble_supervision::ActorSlot;

use crate::execution::ExecMsg;
use crate::invoke::ToolInvoker;
use crate::store::Store;

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowConfig {
    /// Journal runs in the store (off for an in-memory runtime: nothing would survive anyway).
    pub durable: bool,
    /// Steps of one run running at once, unless the run asks otherwise.
    pub max_parallel: usize,
    /// Finished runs kept in memory (a durable engine reads older ones from the store).
    pub retain_finished: usize,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            durable: true,
            max_parallel: 16,
            retain_finished: 1_000,
        }
    }
}

/// What the engine starts with (cloned at each restart).
#[derive(Clone)]
pub struct WorkflowArgs {
    /// The journal's home.
    pub store: Store,
    /// The execution engine that runs the steps.
    pub exec: ActorSlot<ExecMsg>,
    /// Which tools exist and which are idempotent.
    pub invoker: Arc<dyn ToolInvoker>,
    /// Limits.
    pub config: WorkflowConfig,
    /// Told the id of a run each time it changes (a step ends, the run ends): the runtime
    /// turns it into `notifications/resources/updated` for the run's resource.
    pub observer: Option<RunObserver>,
}

/// Told the id of a run that changed. Called on the engine's loop: keep it quick.
pub type RunObserver = Arc<dyn Fn(&str) + Send + Sync>;
