//! The journal: its keys, the group flush (one in flight, what ends meanwhile batched), and
//! reading runs back (status, listing, recovery after a restart).

use std::collections::BTreeMap;
use std::sync::Arc;

use ensemble_protocol::run::{
    RunError, RunListRequest, RunListResponse, RunState, RunSummary, StepState,
};
use ensemble_protocol::workflow::Definition;
use ractor::ActorRef;
use serde_json::Value;

use crate::store::StoreError;

use super::msg::{Event, Internal, WorkflowMsg};
use super::run::{Run, RunRecord, StepRecord, fail_waiters, skip_dependents};
use super::state::{AfterFlush, WorkflowState};

pub(super) fn run_key(id: &str) -> Vec<u8> {
    format!("run/{id}").into_bytes()
}

/// Who a run acts for (its own key: the run record's format is unchanged).
pub(super) fn submitter_key(id: &str) -> Vec<u8> {
    format!("by/{id}").into_bytes()
}

pub(super) fn step_key(id: &str, step: usize) -> Vec<u8> {
    format!("step/{id}/{step:06}").into_bytes()
}

pub(super) fn store_err(e: StoreError) -> RunError {
    RunError::Store(e.to_string())
}

impl WorkflowState {
    /// Queues `what` behind the journal's next flush; starts one if none is in flight.
    pub(super) fn after_flush(&mut self, what: AfterFlush, myself: &ActorRef<WorkflowMsg>) {
        self.pending.push(what);
        if self.flushing.is_none() {
            self.start_flush(myself);
        }
    }

    pub(super) fn start_flush(&mut self, myself: &ActorRef<WorkflowMsg>) {
        // One flush at a time: a second would replace the batch of the one in flight, whose
        // runs would then wait forever (what ended a batch may start the next flush itself).
        if self.pending.is_empty() || self.flushing.is_some() {
            return;
        }
        self.flushing = Some(std::mem::take(&mut self.pending));
        self.metrics.flushes.increment(1);
        let (store, me) = (self.store.clone(), myself.clone());
        tokio::spawn(async move {
            let result = store.flush().await.map_err(|e| e.to_string());
            let _ = me.cast(WorkflowMsg::Internal(Internal(Event::Flushed(result))));
        });
    }

    pub(super) fn on_flushed(
        &mut self,
        result: Result<(), String>,
        myself: &ActorRef<WorkflowMsg>,
    ) {
        let batch = self.flushing.take().unwrap_or_default();
        if let Err(e) = &result {
            // The journal is not durable: stop the runs it concerns instead of pretending.
            tracing::error!(error = %e, "workflow journal flush failed");
        }
        for what in batch {
            match (what, &result) {
                (AfterFlush::Start(id), Ok(())) => {
                    self.accept(&id);
                    self.schedule_initial(&id, myself);
                }
                (AfterFlush::Dispatch(id, step), Ok(())) => self.submit(&id, step, myself),
                (AfterFlush::Release(id, step), Ok(())) => self.release(&id, step, myself),
                (AfterFlush::Finish(id), _) => self.answer(&id),
                (AfterFlush::Start(id), Err(e)) => {
                    if let Some(run) = self.runs.get_mut(&id) {
                        fail_waiters(
                            run,
                            RunError::Store(format!("the run could not be made durable: {e}")),
                        );
                    }
                    self.abort(&id, format!("the journal could not be made durable: {e}"));
                    self.answer(&id);
                }
                (AfterFlush::Dispatch(id, _), Err(e)) | (AfterFlush::Release(id, _), Err(e)) => {
                    self.abort(&id, format!("the journal could not be made durable: {e}"));
                    self.answer(&id);
                }
            }
        }
        self.start_flush(myself);
    }

    /// Reads a run and its journal back from the store.
    pub(super) fn load(&self, id: &str) -> Result<Run, RunError> {
        if !self.config.durable {
            return Err(RunError::UnknownRun(id.to_string()));
        }
        let record: RunRecord = self
            .journal
            .get(&run_key(id))
            .map_err(store_err)?
            .ok_or_else(|| RunError::UnknownRun(id.to_string()))?;
        self.restore(id.into(), record)
    }

    pub(super) fn restore(&self, id: Arc<str>, record: RunRecord) -> Result<Run, RunError> {
        let def: Definition = serde_json::from_str(&record.definition)
            .map_err(|e| RunError::Store(format!("run {id}: its definition is unreadable: {e}")))?;
        let params: BTreeMap<String, Value> =
            serde_json::from_str(&record.params).map_err(|e| {
                RunError::Store(format!("run {id}: its parameters are unreadable: {e}"))
            })?;
        let mut run = self.build_run(
            id.clone(),
            def,
            params,
            record.template.clone(),
            record.max_parallel as usize,
            record.created_at_ms,
        );
        run.state = record.state;
        run.finished_at_ms = record.finished_at_ms;
        run.submitter = self.journal.get(&submitter_key(&id)).map_err(store_err)?;
        let prefix = format!("step/{id}/");
        for entry in self.journal.scan::<StepRecord>(prefix.as_bytes(), None) {
            let (key, rec) = entry.map_err(store_err)?;
            let Some(step) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.rsplit('/').next())
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&i| i < run.steps.len())
            else {
                continue;
            };
            let rt = &mut run.steps[step];
            rt.state = rec.state;
            rt.attempts = rec.attempts;
            rt.error = rec.error;
            rt.started_at_ms = rec.started_at_ms;
            rt.finished_at_ms = rec.finished_at_ms;
            if let Some(out) = rec.output.and_then(|o| serde_json::from_str(&o).ok()) {
                run.outputs.insert(run.def.steps[step].id.clone(), out);
            }
        }
        if run.state.is_final() {
            // Steps that never ran before the run ended were not journalled.
            let never = match run.state {
                RunState::Cancelled => StepState::Cancelled,
                _ => StepState::Skipped,
            };
            for rt in &mut run.steps {
                if !rt.state.is_final() {
                    rt.state = never;
                }
            }
        }
        Ok(run)
    }

    /// Answers the caller of a run that does not wait: it is on disk now.
    fn accept(&mut self, id: &Arc<str>) {
        if let Some(run) = self.runs.get_mut(id)
            && let Some(reply) = run.accepted.take()
        {
            let _ = reply.send(Ok(run.info()));
        }
    }

    /// After a restart: runs that were running go on from their journal.
    pub(super) fn recover(&mut self, myself: &ActorRef<WorkflowMsg>) -> Result<(), StoreError> {
        if !self.config.durable {
            return Ok(());
        }
        let mut live = Vec::new();
        for entry in self.journal.scan::<RunRecord>(b"run/", None) {
            let (key, record) = entry?;
            let id = String::from_utf8_lossy(&key["run/".len()..]).into_owned();
            if let Some(n) = id
                .strip_prefix("wf-")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                self.next_id = self.next_id.max(n);
            }
            if record.state == RunState::Running {
                live.push((id, record));
            }
        }
        for (id, record) in live {
            let id: Arc<str> = id.into();
            let mut run = match self.restore(id.clone(), record) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "a journalled run cannot resume");
                    continue;
                }
            };
            let mut resumed = 0usize;
            for i in 0..run.steps.len() {
                let rt = &mut run.steps[i];
                match rt.state {
                    StepState::Running if rt.repeatable => {
                        rt.state = StepState::Pending;
                        resumed += 1;
                    }
                    StepState::Running => {
                        rt.state = StepState::Interrupted;
                        rt.error = Some(
                            "the process stopped while this step ran; its tool is not \
                             idempotent, so it was not run again: check its effect, then run \
                             the workflow again"
                                .into(),
                        );
                    }
                    _ => {}
                }
            }
            // Re-derive what is waiting, ready, skipped, from the steps' journalled states.
            for i in 0..run.steps.len() {
                let s = run.steps[i].state;
                if s.is_final() {
                    run.ended += 1;
                    let ok = s == StepState::Completed || run.def.steps[i].continue_on_error;
                    if ok {
                        for d in run.dependents[i].clone() {
                            run.steps[d].waiting_on = run.steps[d].waiting_on.saturating_sub(1);
                        }
                    }
                }
            }
            for i in 0..run.steps.len() {
                let s = run.steps[i].state;
                if s.is_final() && s != StepState::Completed && !run.def.steps[i].continue_on_error
                {
                    skip_dependents(&mut run, i);
                }
            }
            tracing::info!(run = %id, resumed, "resuming a workflow run after a restart");
            self.metrics.active.increment(1.0);
            self.runs.insert(id.clone(), run);
            self.schedule_initial(&id, myself);
        }
        Ok(())
    }

    /// Who submitted run `id`, if anyone did (live runs from memory, others from the journal).
    fn submitter_of(&self, id: &str) -> Result<Option<String>, RunError> {
        if let Some(run) = self.runs.get(id) {
            return Ok(run.submitter.as_ref().map(|p| p.subject.clone()));
        }
        if !self.config.durable {
            return Ok(None);
        }
        let by: Option<ensemble_protocol::principal::Principal> =
            self.journal.get(&submitter_key(id)).map_err(store_err)?;
        Ok(by.map(|p| p.subject))
    }

    /// `Err(UnknownRun)` when `owner` (a subject that sees only its own runs) did not submit
    /// run `id`; no owner, or a run without a submitter: `Ok`.
    pub(super) fn visible(&self, id: &str, owner: Option<&str>) -> Result<(), RunError> {
        let Some(owner) = owner else {
            return Ok(());
        };
        match self.submitter_of(id)? {
            Some(by) if by != owner => Err(RunError::UnknownRun(id.to_string())),
            _ => Ok(()),
        }
    }

    /// The runs in progress and the `finished` latest finished ones held in memory, each
    /// group newest first.
    pub(super) fn recent(&self, finished: usize) -> Vec<ensemble_protocol::run::RunInfo> {
        let (mut live, mut done): (Vec<&Run>, Vec<&Run>) =
            self.runs.values().partition(|r| !r.state.is_final());
        live.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
        done.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
        done.truncate(finished);
        live.into_iter().chain(done).map(Run::info).collect()
    }

    /// A page of the runs `owner` may see (all of them without an owner).
    pub(super) fn list(
        &self,
        req: RunListRequest,
        owner: Option<&str>,
    ) -> Result<RunListResponse, RunError> {
        let limit = req.limit.unwrap_or(100).clamp(1, 1000);
        let mut runs = Vec::new();
        let mut next_cursor = None;
        // Whether to go on; a submitter that cannot be read is an error, not a hidden run.
        let mut push = |s: RunSummary| -> Result<bool, RunError> {
            if req.state.is_some_and(|st| st != s.state) {
                return Ok(true);
            }
            match self.visible(&s.run_id, owner) {
                Ok(()) => {}
                Err(RunError::UnknownRun(_)) => return Ok(true),
                Err(e) => return Err(e),
            }
            if runs.len() == limit {
                next_cursor = runs.last().map(|r: &RunSummary| r.run_id.clone());
                return Ok(false);
            }
            runs.push(s);
            Ok(true)
        };
        if self.config.durable {
            let after = req.cursor.as_deref().map(run_key);
            for entry in self.journal.scan::<RunRecord>(b"run/", after.as_deref()) {
                let (key, record) = entry.map_err(store_err)?;
                let id = String::from_utf8_lossy(&key["run/".len()..]).into_owned();
                // Live runs are newer in memory than on disk.
                let summary = match self.runs.get(id.as_str()) {
                    Some(run) => run.summary(),
                    None => RunSummary {
                        steps: serde_json::from_str::<Definition>(&record.definition)
                            .map(|d| d.steps.len())
                            .unwrap_or(0),
                        run_id: id,
                        state: record.state,
                        template: record.template,
                        created_at_ms: record.created_at_ms,
                    },
                };
                if !push(summary)? {
                    break;
                }
            }
        } else {
            let from = req.cursor.clone().unwrap_or_default();
            for (id, run) in &self.runs {
                if req.cursor.is_some() && **id <= *from {
                    continue;
                }
                if !push(run.summary())? {
                    break;
                }
            }
        }
        Ok(RunListResponse { runs, next_cursor })
    }
}
