//! The workflow engine: DAGs of tool calls run through the execution engine, journalled in
//! sled so that a run survives the process.
//!
//! Ready steps run in parallel up to a per-run limit. Each step's end is written to the journal
//! and made durable before a step that depends on it starts; steps that end together share one
//! flush (the engine keeps at most one flush in flight and batches what ends meanwhile). A step
//! whose tool must not run twice also journals its start, durably, before it runs: after a
//! crash such a step is reported `interrupted` rather than repeated. Idempotent steps that were
//! running are simply run again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ensemble_protocol::execution::{ExecError, SubmitRequest, TaskInfo, TaskState};
use ensemble_protocol::run::{
    RunError, RunInfo, RunListRequest, RunListResponse, RunProgress, RunRef, RunRequest, RunState,
    RunSummary, StepInfo, StepState, TemplateGetRequest, TemplateInstantiateRequest,
    TemplateInstantiateResponse, TemplateListRequest, TemplateListResponse,
    TemplateRegisterRequest, TemplateRegisterResponse, TemplateSummary, ValidateWorkflowRequest,
    ValidateWorkflowResponse,
};
use ensemble_protocol::template::{self, Template};
use ensemble_protocol::workflow::{Definition, substitute, validate};
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::unix_ms;
use crate::execution::ExecMsg;
use crate::invoke::ToolInvoker;
use crate::store::{Store, StoreError, Tree};
use crate::versioned::reply_when_durable;

/// An answer port of the workflow engine.
pub type Reply<T> = RpcReplyPort<Result<T, RunError>>;

/// Told each time a step of a run ends.
pub type RunListener = Box<dyn FnMut(&RunProgress) + Send>;

/// The workflow engine's messages.
pub enum WorkflowMsg {
    /// Checks a definition (`workflow_validate`).
    Validate(
        ValidateWorkflowRequest,
        CancellationToken,
        Reply<ValidateWorkflowResponse>,
    ),
    /// Starts a run (`workflow_run`); answers at once, or when it ends if `wait` is set.
    /// Cancelling the token stops a wait, not the run (use [`WorkflowMsg::Cancel`]).
    Run(RunRequest, CancellationToken, Reply<RunInfo>),
    /// Like [`WorkflowMsg::Run`], and `listener` is told each time a step ends (progress for a
    /// caller that waits).
    RunWatched(RunRequest, CancellationToken, RunListener, Reply<RunInfo>),
    /// A run's state (`workflow_status`).
    Status(RunRef, CancellationToken, Reply<RunInfo>),
    /// Cancels a run (`workflow_cancel`): running steps are told to stop, pending ones never
    /// start.
    Cancel(RunRef, CancellationToken, Reply<RunInfo>),
    /// Lists runs (`workflow_list`).
    List(RunListRequest, CancellationToken, Reply<RunListResponse>),
    /// Registers a template version (`template_register`); answers once it is durable.
    TemplateRegister(
        TemplateRegisterRequest,
        CancellationToken,
        Reply<TemplateRegisterResponse>,
    ),
    /// One template version (`template_get`).
    TemplateGet(TemplateGetRequest, CancellationToken, Reply<Template>),
    /// The registered templates (`template_list`).
    TemplateList(
        TemplateListRequest,
        CancellationToken,
        Reply<TemplateListResponse>,
    ),
    /// A template and parameters turned into a definition (`template_instantiate`).
    TemplateInstantiate(
        TemplateInstantiateRequest,
        CancellationToken,
        Reply<TemplateInstantiateResponse>,
    ),
    /// Tells `listener` each time a step of the run ends from now on.
    Watch(RunRef, RunListener),
    /// The engine's own bookkeeping (step ends, flushes, retries).
    Internal(Internal),
}

/// The engine's bookkeeping messages; only the engine makes these.
pub struct Internal(Event);

enum Event {
    StepDone {
        run: Arc<str>,
        step: usize,
        attempt: u32,
        result: Result<TaskInfo, ExecError>,
    },
    Retry {
        run: Arc<str>,
        step: usize,
        attempt: u32,
    },
    Flushed(Result<(), String>),
}

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
}

/// The workflow engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkflowActor;

/// A run as journalled (JSON as text: the codec cannot carry untyped JSON values).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    definition: String,
    params: String,
    template: Option<String>,
    max_parallel: u32,
    created_at_ms: u64,
    state: RunState,
    finished_at_ms: Option<u64>,
}

/// A step's journal entry: `Running` is a start journalled before a non-idempotent step ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepRecord {
    state: StepState,
    attempts: u32,
    output: Option<String>,
    error: Option<String>,
    started_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct StepRt {
    state: StepState,
    attempts: u32,
    error: Option<String>,
    started_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
    /// The tool may run twice.
    repeatable: bool,
    /// Unfinished dependencies.
    waiting_on: usize,
}

struct Run {
    id: Arc<str>,
    def: Arc<Definition>,
    params: BTreeMap<String, Value>,
    template: Option<String>,
    max_parallel: usize,
    created_at_ms: u64,
    finished_at_ms: Option<u64>,
    state: RunState,
    steps: Vec<StepRt>,
    dependents: Vec<Vec<usize>>,
    outputs: BTreeMap<String, Value>,
    ready: VecDeque<usize>,
    running: usize,
    ended: usize,
    cancel: CancellationToken,
    waiters: Vec<Reply<RunInfo>>,
    watchers: Vec<RunListener>,
}

impl Run {
    fn info(&self) -> RunInfo {
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

    fn record(&self) -> RunRecord {
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

    fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.id.to_string(),
            state: self.state,
            template: self.template.clone(),
            steps: self.steps.len(),
            created_at_ms: self.created_at_ms,
        }
    }
}

/// What waits for the flush in flight.
enum AfterFlush {
    /// A run was accepted: start its first steps.
    Start(Arc<str>),
    /// A non-idempotent step's start is durable: run it.
    Dispatch(Arc<str>, usize),
    /// A step's end is durable: release its dependents.
    Release(Arc<str>, usize),
    /// A run's end is durable: answer its waiters.
    Finish(Arc<str>),
}

/// The engine's state.
pub struct WorkflowState {
    store: Store,
    journal: Tree,
    exec: ActorSlot<ExecMsg>,
    invoker: Arc<dyn ToolInvoker>,
    config: WorkflowConfig,
    runs: BTreeMap<Arc<str>, Run>,
    finished: VecDeque<Arc<str>>,
    /// Templates by `name@version`.
    templates: BTreeMap<String, Template>,
    next_id: u64,
    /// Journal entries written since the flush in flight started.
    pending: Vec<AfterFlush>,
    /// What the flush in flight covers.
    flushing: Option<Vec<AfterFlush>>,
    metrics: Metrics,
}

struct Metrics {
    steps: metrics::Counter,
    flushes: metrics::Counter,
    active: metrics::Gauge,
}

fn run_key(id: &str) -> Vec<u8> {
    format!("run/{id}").into_bytes()
}

fn step_key(id: &str, step: usize) -> Vec<u8> {
    format!("step/{id}/{step:06}").into_bytes()
}

fn store_err(e: StoreError) -> RunError {
    RunError::Store(e.to_string())
}

impl WorkflowState {
    fn new(args: WorkflowArgs) -> Result<Self, ActorProcessingErr> {
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

    fn validate(
        &self,
        def: &Definition,
        params: &Map<String, Value>,
    ) -> Vec<ensemble_protocol::workflow::Problem> {
        let names: BTreeSet<String> = params.keys().cloned().collect();
        validate(def, &names, |t| self.invoker.traits(t).is_some())
    }

    /// Builds a run from a definition (new, or recovered with its journal).
    fn build_run(
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
            watchers: Vec::new(),
        }
    }

    fn start(
        &mut self,
        req: RunRequest,
        listener: Option<RunListener>,
        reply: Reply<RunInfo>,
        myself: &ActorRef<WorkflowMsg>,
    ) {
        let (def, template) = match (req.definition, req.template) {
            (Some(def), None) if req.version.is_none() => (def, None),
            (None, Some(name)) => {
                match self.instantiate(&name, req.version.as_deref(), &req.params) {
                    Ok(done) => (done.definition, Some(done.template)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
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
        run.watchers.extend(listener);
        if req.wait {
            run.waiters.push(reply);
        } else {
            let _ = reply.send(Ok(run.info()));
        }
        self.metrics.active.increment(1.0);
        if self.config.durable {
            // Accepted only once durable: a run answered `running` survives a crash.
            if let Err(e) = self.journal.insert(&run_key(&id), &run.record()) {
                fail_waiters(&mut run, store_err(e));
                return;
            }
            self.runs.insert(id.clone(), run);
            self.after_flush(AfterFlush::Start(id), myself);
        } else {
            self.runs.insert(id.clone(), run);
            self.schedule_initial(&id, myself);
        }
    }

    fn schedule_initial(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
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

    /// Queues `what` behind the journal's next flush; starts one if none is in flight.
    fn after_flush(&mut self, what: AfterFlush, myself: &ActorRef<WorkflowMsg>) {
        self.pending.push(what);
        if self.flushing.is_none() {
            self.start_flush(myself);
        }
    }

    fn start_flush(&mut self, myself: &ActorRef<WorkflowMsg>) {
        if self.pending.is_empty() {
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

    fn on_flushed(&mut self, result: Result<(), String>, myself: &ActorRef<WorkflowMsg>) {
        let batch = self.flushing.take().unwrap_or_default();
        if let Err(e) = &result {
            // The journal is not durable: stop the runs it concerns instead of pretending.
            tracing::error!(error = %e, "workflow journal flush failed");
        }
        for what in batch {
            match (what, &result) {
                (AfterFlush::Start(id), Ok(())) => self.schedule_initial(&id, myself),
                (AfterFlush::Dispatch(id, step), Ok(())) => self.submit(&id, step, myself),
                (AfterFlush::Release(id, step), Ok(())) => self.release(&id, step, myself),
                (AfterFlush::Finish(id), _) => self.answer(&id),
                (AfterFlush::Start(id), Err(e))
                | (AfterFlush::Dispatch(id, _), Err(e))
                | (AfterFlush::Release(id, _), Err(e)) => {
                    self.abort(&id, format!("the journal could not be made durable: {e}"));
                    self.answer(&id);
                }
            }
        }
        self.start_flush(myself);
    }

    /// Starts ready steps while the run has room.
    fn pump(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
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
    fn submit(&mut self, id: &Arc<str>, step: usize, myself: &ActorRef<WorkflowMsg>) {
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

    fn on_step_done(
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
    fn step_ended(
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
    fn release(&mut self, id: &Arc<str>, step: usize, myself: &ActorRef<WorkflowMsg>) {
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
        self.pump(id, myself);
        self.maybe_finish(id, myself);
    }

    fn maybe_finish(&mut self, id: &Arc<str>, myself: &ActorRef<WorkflowMsg>) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.state.is_final() || run.ended < run.steps.len() {
            return;
        }
        run.state = final_state(run);
        run.finished_at_ms = Some(unix_ms());
        self.metrics.active.decrement(1.0);
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
    fn abort(&mut self, id: &Arc<str>, why: String) {
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
    }

    /// Answers those waiting for the run's end, and lets it go from memory in time.
    fn answer(&mut self, id: &Arc<str>) {
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

    fn retire(&mut self, id: &Arc<str>) {
        self.finished.push_back(id.clone());
        while self.finished.len() > self.config.retain_finished {
            if let Some(old) = self.finished.pop_front() {
                self.runs.remove(&old);
            }
        }
    }

    fn template(&self, name: &str, version: Option<&str>) -> Result<&Template, RunError> {
        template::select(self.templates.values(), name, version).ok_or_else(|| {
            RunError::UnknownTemplate(match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            })
        })
    }

    fn instantiate(
        &self,
        name: &str,
        version: Option<&str>,
        params: &Map<String, Value>,
    ) -> Result<TemplateInstantiateResponse, RunError> {
        let t = self.template(name, version)?;
        let resolve =
            |n: &str, v: Option<&str>| template::select(self.templates.values(), n, v).cloned();
        let definition = t
            .instantiate(params, &resolve)
            .map_err(RunError::Template)?;
        Ok(TemplateInstantiateResponse {
            template: t.key(),
            definition,
        })
    }

    fn register_template(&mut self, t: Template) -> Result<TemplateRegisterResponse, RunError> {
        let problems = t.check();
        if !problems.is_empty() {
            return Err(RunError::Template(problems));
        }
        let key = t.key();
        if let Some(existing) = self.templates.get(&key) {
            return if *existing == t {
                Ok(TemplateRegisterResponse {
                    name: t.name,
                    version: t.version,
                    created: false,
                })
            } else {
                Err(RunError::TemplateConflict(key))
            };
        }
        let json = serde_json::to_string(&t)
            .map_err(|e| RunError::BadRequest(format!("the template cannot be encoded: {e}")))?;
        self.journal
            .insert(format!("tpl/{key}").as_bytes(), &json)
            .map_err(store_err)?;
        let answer = TemplateRegisterResponse {
            name: t.name.clone(),
            version: t.version.clone(),
            created: true,
        };
        self.templates.insert(key, t);
        Ok(answer)
    }

    fn list_templates(&self, req: TemplateListRequest) -> TemplateListResponse {
        let mut by_name: BTreeMap<&str, Vec<&Template>> = BTreeMap::new();
        for t in self.templates.values() {
            if req.prefix.as_deref().is_none_or(|p| t.name.starts_with(p)) {
                by_name.entry(t.name.as_str()).or_default().push(t);
            }
        }
        let templates = by_name
            .into_iter()
            .filter_map(|(name, mut ts)| {
                ts.sort_by_key(|t| semver::Version::parse(&t.version).ok());
                let latest = template::select(ts.iter().copied(), name, None)?;
                Some(TemplateSummary {
                    name: name.to_string(),
                    versions: ts.iter().map(|t| t.version.clone()).collect(),
                    latest: latest.version.clone(),
                    description: latest.description.clone(),
                })
            })
            .collect();
        TemplateListResponse { templates }
    }

    fn cancel(&mut self, id: &str, myself: &ActorRef<WorkflowMsg>) -> Result<RunInfo, RunError> {
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

    fn status(&self, id: &str) -> Result<RunInfo, RunError> {
        match self.runs.get(id) {
            Some(run) => Ok(run.info()),
            None => self.load(id).map(|r| r.info()),
        }
    }

    /// Reads a run and its journal back from the store.
    fn load(&self, id: &str) -> Result<Run, RunError> {
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

    fn restore(&self, id: Arc<str>, record: RunRecord) -> Result<Run, RunError> {
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

    /// After a restart: runs that were running go on from their journal.
    fn recover(&mut self, myself: &ActorRef<WorkflowMsg>) -> Result<(), StoreError> {
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

    fn list(&self, req: RunListRequest) -> Result<RunListResponse, RunError> {
        let limit = req.limit.unwrap_or(100).clamp(1, 1000);
        let mut runs = Vec::new();
        let mut next_cursor = None;
        let mut push = |s: RunSummary| -> bool {
            if req.state.is_some_and(|st| st != s.state) {
                return true;
            }
            if runs.len() == limit {
                next_cursor = runs.last().map(|r: &RunSummary| r.run_id.clone());
                return false;
            }
            runs.push(s);
            true
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
                if !push(summary) {
                    break;
                }
            }
        } else {
            let from = req.cursor.clone().unwrap_or_default();
            for (id, run) in &self.runs {
                if req.cursor.is_some() && **id <= *from {
                    continue;
                }
                if !push(run.summary()) {
                    break;
                }
            }
        }
        Ok(RunListResponse { runs, next_cursor })
    }
}

fn step_record(rt: &StepRt, output: Option<&Value>) -> StepRecord {
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
fn skip_dependents(run: &mut Run, failed: usize) {
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

fn final_state(run: &Run) -> RunState {
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

fn notify_watchers(run: &mut Run, step: usize) {
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

fn fail_waiters(run: &mut Run, e: RunError) {
    for w in run.waiters.drain(..) {
        let _ = w.send(Err(e.clone()));
    }
}

impl Actor for WorkflowActor {
    type Msg = WorkflowMsg;
    type State = WorkflowState;
    type Arguments = WorkflowArgs;

    async fn pre_start(
        &self,
        _: ActorRef<WorkflowMsg>,
        args: WorkflowArgs,
    ) -> Result<WorkflowState, ActorProcessingErr> {
        WorkflowState::new(args)
    }

    async fn post_start(
        &self,
        myself: ActorRef<WorkflowMsg>,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        state.recover(&myself)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkflowMsg>,
        msg: WorkflowMsg,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkflowMsg::Internal(Internal(event)) => match event {
                Event::StepDone {
                    run,
                    step,
                    attempt,
                    result,
                } => state.on_step_done(run, step, attempt, result, &myself),
                Event::Retry { run, step, attempt } => {
                    let current = state
                        .runs
                        .get(&run)
                        .is_some_and(|r| !r.state.is_final() && r.steps[step].attempts == attempt);
                    if current {
                        state.submit(&run, step, &myself);
                    }
                }
                Event::Flushed(result) => state.on_flushed(result, &myself),
            },
            WorkflowMsg::Validate(req, _, reply) => {
                let problems = state.validate(&req.definition, &req.params);
                let _ = reply.send(Ok(ValidateWorkflowResponse {
                    valid: problems.is_empty(),
                    problems,
                }));
            }
            WorkflowMsg::Run(req, _, reply) => state.start(req, None, reply, &myself),
            WorkflowMsg::RunWatched(req, _, listener, reply) => {
                state.start(req, Some(listener), reply, &myself)
            }
            WorkflowMsg::Status(r, _, reply) => {
                let _ = reply.send(state.status(&r.run_id));
            }
            WorkflowMsg::Cancel(r, _, reply) => {
                let _ = reply.send(state.cancel(&r.run_id, &myself));
            }
            WorkflowMsg::List(req, _, reply) => {
                let _ = reply.send(state.list(req));
            }
            WorkflowMsg::TemplateRegister(req, _, reply) => {
                let answer = state.register_template(req.template);
                reply_when_durable(&state.store, reply, answer, store_err);
            }
            WorkflowMsg::TemplateGet(req, _, reply) => {
                let _ = reply.send(state.template(&req.name, req.version.as_deref()).cloned());
            }
            WorkflowMsg::TemplateList(req, _, reply) => {
                let _ = reply.send(Ok(state.list_templates(req)));
            }
            WorkflowMsg::TemplateInstantiate(req, _, reply) => {
                let _ =
                    reply.send(state.instantiate(&req.name, req.version.as_deref(), &req.params));
            }
            WorkflowMsg::Watch(r, listener) => {
                if let Some(run) = state.runs.get_mut(r.run_id.as_str())
                    && !run.state.is_final()
                {
                    run.watchers.push(listener);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<WorkflowMsg>,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        // Steps in flight are told to stop; the journal says where each run was.
        for run in state.runs.values() {
            if !run.state.is_final() {
                run.cancel.cancel();
            }
        }
        Ok(())
    }
}
