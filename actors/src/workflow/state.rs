//! The engine's state, opened from the store (its templates) when the actor starts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use ensemble_protocol::template::Template;
use ensemble_supervision::ActorSlot;
use ractor::ActorProcessingErr;

use crate::clock::unix_ms;
use crate::execution::ExecMsg;
use crate::invoke::ToolInvoker;
use crate::store::{Store, Tree};

use super::config::{RunObserver, WorkflowArgs, WorkflowConfig};
use super::run::Run;

/// The engine's state.
pub struct WorkflowState {
    pub(super) store: Store,
    pub(super) journal: Tree,
    pub(super) exec: ActorSlot<ExecMsg>,
    pub(super) invoker: Arc<dyn ToolInvoker>,
    pub(super) observer: Option<RunObserver>,
    pub(super) config: WorkflowConfig,
    pub(super) runs: BTreeMap<Arc<str>, Run>,
    pub(super) finished: VecDeque<Arc<str>>,
    /// Templates by `name@version`.
    pub(super) templates: BTreeMap<String, Template>,
    pub(super) next_id: u64,
    /// Journal entries written since the flush in flight started.
    pub(super) pending: Vec<AfterFlush>,
    /// What the flush in flight covers.
    pub(super) flushing: Option<Vec<AfterFlush>>,
    pub(super) metrics: Metrics,
}

pub(super) struct Metrics {
    pub(super) steps: metrics::Counter,
    pub(super) flushes: metrics::Counter,
    pub(super) active: metrics::Gauge,
}

/// What waits for the flush in flight.
pub(super) enum AfterFlush {
    /// A run was accepted: start its first steps.
    Start(Arc<str>),
    /// A non-idempotent step's start is durable: run it.
    Dispatch(Arc<str>, usize),
    /// A step's end is durable: release its dependents.
    Release(Arc<str>, usize),
    /// A run's end is durable: answer its waiters.
    Finish(Arc<str>),
}

impl WorkflowState {
    pub(super) fn new(args: WorkflowArgs) -> Result<Self, ActorProcessingErr> {
        let journal = args.store.tree("workflow")?;
        let mut templates = BTreeMap::new();
        for entry in journal.scan::<String>(b"tpl/", None) {
            let (key, json) = entry?;
            let t: Template = serde_json::from_str(&json).map_err(|e| {
                format!(
                    "stored template {} is unreadable: {e}",
                    String::from_utf8_lossy(&key)
                )
            })?;
            templates.insert(t.key(), t);
        }
        Ok(Self {
            templates,
            store: args.store,
            journal,
            exec: args.exec,
            invoker: args.invoker,
            observer: args.observer,
            config: args.config,
            runs: BTreeMap::new(),
            finished: VecDeque::new(),
            // From the clock, so ids keep increasing across restarts (and sort as they came).
            next_id: unix_ms().saturating_mul(1000),
            pending: Vec::new(),
            flushing: None,
            metrics: Metrics {
                steps: metrics::counter!("ensemble_workflow_steps_total"),
                flushes: metrics::counter!("ensemble_workflow_journal_flushes_total"),
                active: metrics::gauge!("ensemble_workflow_runs_active"),
            },
        })
    }
}
