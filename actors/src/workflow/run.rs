//! A run in memory: its steps, what they wait on, who waits for it; and its journal records.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use ensemble_protocol::run::{
    RunError, RunInfo, RunProgress, RunState, RunSummary, StepInfo, StepState,
};
use ensemble_protocol::workflow::Definition;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::msg::{Reply, RunListener};

/// A run as journalled (JSON as text: the codec cannot carry untyped JSON values).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RunRecord {
    pub(super) definition: String,
    pub(super) params: String,
    pub(super) template: Option<String>,
    pub(super) max_parallel: u32,
    pub(super) created_at_ms: u64,
    pub(super) state: RunState,
    pub(super) finished_at_ms: Option<u64>,
}

/// A step's journal entry: `Running` is a start journalled before a non-idempotent step ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StepRecord {
    pub(super) state: StepState,
    pub(super) attempts: u32,
    pub(super) output: Option<String>,
    pub(super) error: Option<String>,
    pub(super) started_at_ms: Option<u64>,
    pub(super) finished_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct StepRt {
    pub(super) state: StepState,
    pub(super) attempts: u32,
    pub(super) error: Option<String>,
    pub(super) started_at_ms: Option<u64>,
    pub(super) finished_at_ms: Option<u64>,
    /// The tool may run twice.
    pub(super) repeatable: bool,
    /// Unfinished dependencies.
    pub(super) waiting_on: usize,
}

pub(super) struct Run {
    pub(super) id: Arc<str>,
    pub(super) def: Arc<Definition>,
    pub(super) params: BTreeMap<String, Value>,
    pub(super) template: Option<String>,
    pub(super) max_parallel: usize,
    pub(super) created_at_ms: u64,
    pub(super) finished_at_ms: Option<u64>,
    pub(super) state: RunState,
    pub(super) steps: Vec<StepRt>,
    pub(super) dependents: Vec<Vec<usize>>,
    pub(super) outputs: BTreeMap<String, Value>,
    pub(super) ready: VecDeque<usize>,
    pub(super) running: usize,
    pub(super) ended: usize,
    pub(super) cancel: CancellationToken,
    pub(super) waiters: Vec<Reply<RunInfo>>,
    /// The caller of a run that does not wait, answered once the run is on disk.
    pub(super) accepted: Option<Reply<RunInfo>>,
    pub(super) watchers: Vec<RunListener>,
    /// Who submitted it: its steps run with that identity's rights.
    pub(super) submitter: Option<ensemble_protocol::principal::Principal>,
}

impl Run {
    pub(super) fn info(&self) -> RunInfo {
        let mut counts = BTreeMap::new();
        let steps = self
            .def
            .steps
            .iter()
            .zip(&self.steps)
            .map(|(s, rt)| {
                *counts.entry(rt.state.as_str().to_string()).or_insert(0) += 1;
                StepInfo {
                    id: s.id.clone(),
                    tool: s.tool.clone(),
                    depends_on: s.depends_on.clone(),
                    state: rt.state,
                    attempts: rt.attempts,
                    output: self.outputs.get(&s.id).cloned(),
                    error: rt.error.clone(),
                    started_at_ms: rt.started_at_ms,
                    finished_at_ms: rt.finished_at_ms,
                }
            })
            .collect();
        RunInfo {
            run_id: self.id.to_string(),
            state: self.state,
            template: self.template.clone(),
            created_at_ms: self.created_at_ms,
            finished_at_ms: self.finished_at_ms,
            counts,
            steps,
        }
    }

    pub(super) fn record(&self) -> RunRecord {
        RunRecord {
            definition: serde_json::to_string(&*self.def).unwrap_or_default(),
            params: serde_json::to_string(&self.params).unwrap_or_default(),
            template: self.template.clone(),
            max_parallel: self.max_parallel.min(u32::MAX as usize) as u32,
            created_at_ms: self.created_at_ms,
            state: self.state,
            finished_at_ms: self.finished_at_ms,
        }
    }

    pub(super) fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.id.to_string(),
            state: self.state,
            template: self.template.clone(),
            steps: self.steps.len(),
            created_at_ms: self.created_at_ms,
        }
    }
}

pub(super) fn step_record(rt: &StepRt, output: Option<&Value>) -> StepRecord {
    StepRecord {
        state: rt.state,
        attempts: rt.attempts,
        output: output.map(Value::to_string),
        error: rt.error.clone(),
        started_at_ms: rt.started_at_ms,
        finished_at_ms: rt.finished_at_ms,
    }
}

/// Marks every step downstream of `failed` skipped (they will never run).
pub(super) fn skip_dependents(run: &mut Run, failed: usize) {
    let mut stack = run.dependents[failed].clone();
    let why = format!("step `{}` did not complete", run.def.steps[failed].id);
    while let Some(d) = stack.pop() {
        let rt = &mut run.steps[d];
        if rt.state != StepState::Pending {
            continue;
        }
        rt.state = StepState::Skipped;
        rt.error = Some(why.clone());
        run.ended += 1;
        run.ready.retain(|&r| r != d);
        stack.extend(run.dependents[d].iter().copied());
    }
}

pub(super) fn final_state(run: &Run) -> RunState {
    let has = |st: StepState| run.steps.iter().any(|s| s.state == st);
    if has(StepState::Cancelled) {
        RunState::Cancelled
    } else if has(StepState::Interrupted) {
        RunState::Interrupted
    } else if run.steps.iter().zip(&run.def.steps).any(|(rt, s)| {
        rt.state == StepState::Skipped || (rt.state == StepState::Failed && !s.continue_on_error)
    }) {
        RunState::Failed
    } else {
        RunState::Completed
    }
}

pub(super) fn notify_watchers(run: &mut Run, step: usize) {
    if run.watchers.is_empty() {
        return;
    }
    let event = RunProgress {
        run_id: run.id.to_string(),
        step: run.def.steps[step].id.clone(),
        state: run.steps[step].state,
        ended: run.ended,
        total: run.steps.len(),
    };
    for w in &mut run.watchers {
        w(&event);
    }
}

pub(super) fn fail_waiters(run: &mut Run, e: RunError) {
    for w in run.waiters.drain(..).chain(run.accepted.take()) {
        let _ = w.send(Err(e.clone()));
    }
}
