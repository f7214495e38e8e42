//! Scheduling runs: accepting a run, starting ready steps up to the run's limit, recording
//! their ends, releasing dependents, finishing, cancelling and answering.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ensemble_protocol::execution::{ExecError, SubmitRequest, TaskInfo, TaskState};
use ensemble_protocol::run::{RunError, RunInfo, RunRequest, RunState, StepState};
use ensemble_protocol::template::{Parameter, TemplateProblem};
use ensemble_protocol::workflow::{Definition, substitute, validate};
use ensemble_supervision::CancellationToken;
use ractor::ActorRef;
use serde_json::{Map, Value};

use crate::clock::unix_ms;
use crate::execution::ExecMsg;

use super::config::RunObserver;
use super::journal::{run_key, step_key, store_err, submitter_key};
use super::msg::{
    AskFailed, Event, Internal, ParamAsker, ParamQuestion, Reply, RunHooks, RunListener,
    WorkflowMsg,
};
use super::run::{
    Run, StepRt, fail_waiters, final_state, notify_watchers, skip_dependents, step_record,
};
use super::state::{AfterFlush, WorkflowState};

impl WorkflowState {
    pub(super) fn validate(
        &self,
        def: &Definition,
        params: &Map<String, Value>,
    ) -> Vec<ensemble_protocol::workflow::Problem> {
        let names: BTreeSet<String> = params.keys().cloned().collect();
        validate(def, &names, |t| self.invoker.traits(t).is_some())
    }

    /// Builds a run from a definition (new, or recovered with its journal).
    pub(super) fn build_run(
        &self,
        id: Arc<str>,
        def: Definition,
        params: BTreeMap<String, Value>,
        template: Option<String>,
        max_parallel: usize,
        created_at_ms: u64,
    ) -> Run {
        let index: HashMap<&str, usize> = def
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut dependents = vec![Vec::new(); def.steps.len()];
        let mut steps = Vec::with_capacity(def.steps.len());
        for (i, s) in def.steps.iter().enumerate() {
            let deps: BTreeSet<usize> = s
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect();
            for &d in &deps {
                dependents[d].push(i);
            }
            steps.push(StepRt {
                state: StepState::Pending,
                attempts: 0,
                error: None,
                started_at_ms: None,
                finished_at_ms: None,
                repeatable: self.invoker.traits(&s.tool).is_some_and(|t| t.repeatable()),
                waiting_on: deps.len(),
            });
        }
        Run {
            id,
            def: Arc::new(def),
            params,
            template,
            max_parallel: max_parallel.max(1),
            created_at_ms,
            finished_at_ms: None,
            state: RunState::Running,
            steps,
            dependents,
            outputs: BTreeMap::new(),
            ready: VecDeque::new(),
            running: 0,
            ended: 0,
            cancel: CancellationToken::new(),
            waiters: Vec::new(),
            accepted: None,
            watchers: Vec::new(),
            submitter: None,
        }
    }

    pub(super) fn start(
        &mut self,
        req: RunRequest,
        listener: Option<RunListener>,
        ask: Option<ParamAsker>,
        reply: Reply<RunInfo>,
        myself: &ActorRef<WorkflowMsg>,
    ) {
        let (def, template) = match (req.definition, req.template) {
            (Some(def), None) if req.version.is_none() => (def, None),
            (None, Some(name)) => {
                match self.instantiate(&name, req.version.as_deref(), &req.params) {
                    Ok(done) => (done.definition, Some(done.template)),
                    Err(e) => {
                        let req = RunRequest {
                            definition: None,
                            template: Some(name),
                            version: req.version,
                            params: req.params,
                            wait: req.wait,
                            max_parallel: req.max_parallel,
                            submitter: req.submitter,
                        };
                        match (ask, self.question(&req, &e)) {
                            (Some(ask), Some(question)) => {
                                ask_then_start(ask, question, req, listener, e, reply, myself);
                            }
                            _ => {
                                let _ = reply.send(Err(e));
                            }
                        }
                        return;
                    }
                }
            }
            (Some(_), None) => {
                let _ = reply.send(Err(RunError::BadRequest(
                    "`version` goes with `template`; a definition has no version".into(),
                )));
                return;
            }
            _ => {
                let _ = reply.send(Err(RunError::BadRequest(
                    "give either `definition` or `template` (with `params`)".into(),
                )));
                return;
            }
        };
        let problems = self.validate(&def, &req.params);
        if !problems.is_empty() {
            let _ = reply.send(Err(RunError::Invalid(problems)));
            return;
        }
        if def.steps.is_empty() {
            let _ = reply.send(Err(RunError::BadRequest(
                "the workflow has no steps; add at least one".into(),
            )));
            return;
        }
        self.next_id += 1;
        let id: Arc<str> = format!("wf-{:016x}", self.next_id).into();
        let params: BTreeMap<String, Value> = req.params.into_iter().collect();
        let max_parallel = req.max_parallel.unwrap_or(self.config.max_parallel);
        let mut run = self.build_run(id.clone(), def, params, template, max_parallel, unix_ms());
        run.submitter = req.submitter;
        run.watchers.extend(listener);
        let durable = self.config.durable;
        if req.wait {
            run.waiters.push(reply);
        } else if durable {
            // Answered `running` once the run is on disk (see `accept`).
            run.accepted = Some(reply);
        } else {
            let _ = reply.send(Ok(run.info()));
        }
        self.metrics.active.increment(1.0);
        if durable {
            // Accepted only once durable: a run answered `running` survives a crash (with whom
            // it acts for: its steps are governed as its submitter's after a resume too).
            let journalled = match &run.submitter {
                Some(by) => self.journal.insert(&submitter_key(&id), by),
                None => Ok(()),
            }
            .and_then(|()| self.journal.insert(&run_key(&id), &run.record()));
            if let Err(e) = journalled {
                fail_waiters(&mut run, store_err(e));
                self.metrics.active.decrement(1.0);
                return;
            }
            self.runs.insert(id.clone(), run);
            self.after_flush(AfterFlush::Start(id), myself);
        } else {
            self.runs.insert(id.clone(), run);
            self.schedule_initial(&id, myself);
        }
    }

    /// The question to ask when a template run fails only for want of required parameters.
    fn question(&self, req: &RunRequest, e: &RunError) -> Option<ParamQuestion> {
        let RunError::Template(problems) = e else {
            return None;
        };
        let only_missing = problems
            .iter()
            .all(|p| matches!(p, TemplateProblem::MissingParameter { .. }));
        if problems.is_empty() || !only_missing {
            return None; // something else to fix: asking would not make it run
        }
        let t = self
            .template(req.template.as_deref()?, req.version.as_deref())
            .ok()?;
        let missing: Vec<Parameter> = problems
            .iter()
            .filter_map(|p| match p {
                TemplateProblem::MissingParameter { name, .. } => t.parameter(name).cloned(),
                _ => None,
            })
            .collect();
        Some(ParamQuestion {
            template: format!("{}@{}", t.name, t.version),
            missing,
        })
    }

    pub(super) fn schedule_initial(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
        if let Some(run) = self.runs.get_mut(id) {
            for (i, s) in run.steps.iter().enumerate() {
                if s.state == StepState::Pending && s.waiting_on == 0 {
                    run.ready.push_back(i);
                }
            }
        }
        self.pump(id, myself);
        self.maybe_finish(id, myself);
    }

    /// Starts ready steps while the run has room.
    pub(super) fn pump(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
        loop {
            let Some(run) = self.runs.get_mut(id) else {
                return;
            };
            if run.state.is_final() || run.running >= run.max_parallel {
                return;
            }
            let Some(step) = run.ready.pop_front() else {
                return;
            };
            run.running += 1;
            let rt = &mut run.steps[step];
            rt.state = StepState::Running;
            rt.started_at_ms.get_or_insert_with(unix_ms);
            if self.config.durable && !rt.repeatable {
                // Its start must be on disk before it runs: after a crash it is reported
                // interrupted, never run twice.
                let record = step_record(rt, None);
                if let Err(e) = self.journal.insert(&step_key(id, step), &record) {
                    self.abort(id, format!("could not journal a step's start: {e}"));
                    self.answer(id);
                    return;
                }
                self.after_flush(AfterFlush::Dispatch(id.clone(), step), myself);
            } else {
                self.submit(id, step, myself);
            }
        }
    }

    /// Sends one attempt of a step to the execution engine.
    pub(super) fn submit(&mut self, id: &Arc<str>, step: usize, myself: &ActorRef<WorkflowMsg>) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.state.is_final() || run.steps[step].state != StepState::Running {
            return;
        }
        let spec = &run.def.steps[step];
        run.steps[step].attempts += 1;
        let attempt = run.steps[step].attempts;
        let args = match substitute(&spec.arguments, &run.params, &run.outputs) {
            Ok(a) => a,
            Err(e) => {
                let why = format!("its arguments could not be resolved: {e}");
                self.step_ended(id, step, Err(why), myself);
                return;
            }
        };
        let mut req = SubmitRequest::new(spec.tool.clone(), args);
        req.timeout_ms = spec.timeout_ms;
        req.submitter = run.submitter.clone();
        let done = {
            let (me, run_id) = (myself.clone(), id.clone());
            Box::new(move |result: Result<TaskInfo, ExecError>| {
                let _ = me.cast(WorkflowMsg::Internal(Internal(Event::StepDone {
                    run: run_id,
                    step,
                    attempt,
                    result,
                })));
            })
        };
        let sent = match self.exec.get() {
            Ok(exec) => exec
                .cast(ExecMsg::RunThen(req, run.cancel.clone(), done))
                .map_err(|_| "the execution engine stopped".to_string()),
            Err(fault) => Err(fault.to_string()),
        };
        if let Err(why) = sent {
            let _ = myself.cast(WorkflowMsg::Internal(Internal(Event::StepDone {
                run: id.clone(),
                step,
                attempt,
                result: Err(ExecError::Invalid(format!(
                    "the execution engine is unavailable: {why}"
                ))),
            })));
        }
    }

    pub(super) fn on_step_done(
        &mut self,
        id: Arc<str>,
        step: usize,
        attempt: u32,
        result: Result<TaskInfo, ExecError>,
        myself: &ActorRef<WorkflowMsg>,
    ) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        let rt = &run.steps[step];
        if run.state.is_final() || rt.state != StepState::Running || rt.attempts != attempt {
            return;
        }
        let outcome = match result {
            Ok(info) if info.state == TaskState::Completed => {
                Ok(info.result.unwrap_or(Value::Null))
            }
            Ok(info) if info.state == TaskState::Cancelled && run.cancel.is_cancelled() => {
                return;
            }
            Ok(info) => Err(info
                .error
                .unwrap_or_else(|| format!("the task ended {:?}", info.state))),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &outcome {
            let spec = &run.def.steps[step];
            if let Some(retry) = spec.retry
                && attempt < retry.max_attempts
            {
                run.steps[step].error = Some(e.clone());
                let delay = Duration::from_millis(
                    retry
                        .backoff_ms
                        .saturating_mul(1u64 << (attempt - 1).min(20)),
                );
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = me.cast(WorkflowMsg::Internal(Internal(Event::Retry {
                        run: id,
                        step,
                        attempt,
                    })));
                });
                return;
            }
        }
        self.step_ended(&id, step, outcome, myself);
    }

    /// Records a step's end, journals it, and releases its dependents once that is durable.
    pub(super) fn step_ended(
        &mut self,
        id: &Arc<str>,
        step: usize,
        outcome: Result<Value, String>,
        myself: &ActorRef<WorkflowMsg>,
    ) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        self.metrics.steps.increment(1);
        run.running = run.running.saturating_sub(1);
        let rt = &mut run.steps[step];
        rt.finished_at_ms = Some(unix_ms());
        let output = match outcome {
            Ok(v) => {
                rt.state = StepState::Completed;
                rt.error = None;
                Some(v)
            }
            Err(e) => {
                rt.state = StepState::Failed;
                rt.error = Some(e);
                None
            }
        };
        if self.config.durable {
            let record = step_record(rt, output.as_ref());
            let written = self.journal.insert(&step_key(id, step), &record);
            if let Some(v) = output {
                run.outputs.insert(run.def.steps[step].id.clone(), v);
            }
            if let Err(e) = written {
                self.abort(id, format!("could not journal a step's end: {e}"));
                self.answer(id);
                return;
            }
            self.after_flush(AfterFlush::Release(id.clone(), step), myself);
        } else {
            if let Some(v) = output {
                run.outputs.insert(run.def.steps[step].id.clone(), v);
            }
            self.release(id, step, myself);
        }
    }

    /// A step's end is durable: its dependents may start (or are skipped).
    pub(super) fn release(&mut self, id: &Arc<str>, step: usize, myself: &ActorRef<WorkflowMsg>) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        run.ended += 1;
        let ok =
            run.steps[step].state == StepState::Completed || run.def.steps[step].continue_on_error;
        if ok {
            for d in run.dependents[step].clone() {
                let rt = &mut run.steps[d];
                rt.waiting_on = rt.waiting_on.saturating_sub(1);
                if rt.waiting_on == 0 && rt.state == StepState::Pending {
                    run.ready.push_back(d);
                }
            }
        } else {
            skip_dependents(run, step);
        }
        notify_watchers(run, step);
        tell(&self.observer, id);
        self.pump(id, myself);
        self.maybe_finish(id, myself);
    }

    pub(super) fn maybe_finish(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.state.is_final() || run.ended < run.steps.len() {
            return;
        }
        run.state = final_state(run);
        run.finished_at_ms = Some(unix_ms());
        self.metrics.active.decrement(1.0);
        tell(&self.observer, id);
        if self.config.durable {
            match self.journal.insert(&run_key(id), &run.record()) {
                Ok(()) => self.after_flush(AfterFlush::Finish(id.clone()), myself),
                Err(e) => {
                    fail_waiters(run, store_err(e));
                    self.retire(id);
                }
            }
        } else {
            self.answer(id);
        }
    }

    /// Ends a run at once (journal failure): nothing more starts.
    pub(super) fn abort(&mut self, id: &Arc<str>, why: String) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.state.is_final() {
            return;
        }
        tracing::error!(run = %id, "{why}");
        run.cancel.cancel();
        for rt in &mut run.steps {
            if !rt.state.is_final() {
                rt.state = StepState::Cancelled;
                rt.error = Some(why.clone());
            }
        }
        run.state = RunState::Failed;
        run.finished_at_ms = Some(unix_ms());
        self.metrics.active.decrement(1.0);
        tell(&self.observer, id);
    }

    /// Answers those waiting for the run's end, and lets it go from memory in time.
    pub(super) fn answer(&mut self, id: &Arc<str>) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let info = run.info();
        for w in run.waiters.drain(..) {
            let _ = w.send(Ok(info.clone()));
        }
        run.watchers.clear();
        self.retire(id);
    }

    pub(super) fn retire(&mut self, id: &Arc<str>) {
        self.finished.push_back(id.clone());
        while self.finished.len() > self.config.retain_finished {
            if let Some(old) = self.finished.pop_front() {
                self.runs.remove(&old);
            }
        }
    }

    pub(super) fn cancel(
        &mut self,
        id: &str,
        myself: &ActorRef<WorkflowMsg>,
    ) -> Result<RunInfo, RunError> {
        let key: Arc<str> = id.into();
        let Some(run) = self.runs.get_mut(&key) else {
            return self.load(id).map(|r| r.info());
        };
        if !run.state.is_final() {
            run.cancel.cancel();
            for rt in &mut run.steps {
                if !rt.state.is_final() {
                    rt.state = StepState::Cancelled;
                    rt.finished_at_ms = Some(unix_ms());
                }
            }
            run.ended = run.steps.len();
            run.running = 0;
            run.ready.clear();
            self.maybe_finish(&key, myself);
        }
        self.status(id)
    }

    pub(super) fn status(&self, id: &str) -> Result<RunInfo, RunError> {
        match self.runs.get(id) {
            Some(run) => Ok(run.info()),
            None => self.load(id).map(|r| r.info()),
        }
    }
}

/// Asks the caller for the missing parameters off the engine's loop, then starts the run again
/// with them (once: a second failure is answered as it is).
fn ask_then_start(
    ask: ParamAsker,
    question: ParamQuestion,
    mut req: RunRequest,
    listener: Option<RunListener>,
    missing: RunError,
    reply: Reply<RunInfo>,
    myself: &ActorRef<WorkflowMsg>,
) {
    let me = myself.clone();
    let asked: Vec<String> = question.missing.iter().map(|p| p.name.clone()).collect();
    tokio::spawn(async move {
        match ask(question).await {
            Ok(values) => {
                for (name, value) in values {
                    if asked.contains(&name) {
                        req.params.insert(name, value);
                    }
                }
                let msg = match listener {
                    Some(listener) => WorkflowMsg::RunWatched(
                        req,
                        CancellationToken::new(),
                        RunHooks {
                            listener,
                            ask: None,
                        },
                        reply,
                    ),
                    None => WorkflowMsg::Run(req, CancellationToken::new(), reply),
                };
                // If the engine stopped meanwhile, the dropped reply port tells the caller.
                let _ = me.cast(msg);
            }
            Err(AskFailed::CannotAsk) => {
                let _ = reply.send(Err(missing));
            }
            Err(AskFailed::NoAnswer(why)) => {
                let _ = reply.send(Err(RunError::BadRequest(format!(
                    "{missing}; asked for them, the client gave none: {why}"
                ))));
            }
        }
    });
}

/// Tells the observer, if any, that run `id` changed.
fn tell(observer: &Option<RunObserver>, id: &str) {
    if let Some(observer) = observer {
        observer(id);
    }
}
