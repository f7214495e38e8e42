//! The execution engine: tool calls submitted as tasks, run by a pool of at most
//! `max_concurrent` workers in the order of a scheduling policy, with deadlines, timeouts,
//! cancellation, priority inheritance and a result cache.
//!
//! Tasks live in memory: a queued task does not survive a restart of the process (work that
//! must, runs as a workflow, whose journal is durable). The result cache has a disk tier in sled
//! and does survive.
//!
//! A worker is a tokio task that calls the tool through the [`ToolInvoker`] and reports back to
//! the actor with a message; the actor never waits on a tool.

pub mod cache;
pub mod scheduler;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_protocol::execution::{
    CacheFigures, CacheInvalidateRequest, CacheInvalidateResponse, ExecError, QueueStats,
    QueueStatsRequest, SchedulingPolicy, SetPolicyRequest, SetPriorityRequest, SubmitRequest,
    SubmitResponse, TaskId, TaskInfo, TaskListRequest, TaskListResponse, TaskRef, TaskState,
    Timings,
};
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;

use crate::clock::unix_ms;
use crate::invoke::{InvokeError, ToolInvoker};
use crate::store::Store;
use cache::{CacheLimits, Invalidate, ResultCache};
use scheduler::{Policy, Popped, ReadyQueue, Task};

/// An answer port of the execution engine.
pub type Reply<T> = RpcReplyPort<Result<T, ExecError>>;

/// Called once with a task's final state (see [`ExecMsg::RunThen`]).
pub type OnDone = Box<dyn FnOnce(Result<TaskInfo, ExecError>) + Send>;

/// The execution engine's messages.
pub enum ExecMsg {
    /// Queues a task (`task_submit`).
    Submit(SubmitRequest, CancellationToken, Reply<SubmitResponse>),
    /// A task's state, result and timings (`task_status`).
    Status(TaskRef, CancellationToken, Reply<TaskInfo>),
    /// Cancels a queued or running task (`task_cancel`); the running tool is told to stop.
    Cancel(TaskRef, CancellationToken, Reply<TaskInfo>),
    /// Lists tasks (`task_list`).
    List(TaskListRequest, CancellationToken, Reply<TaskListResponse>),
    /// The queue's figures (`queue_stats`).
    Stats(QueueStatsRequest, CancellationToken, Reply<QueueStats>),
    /// Changes a queued task's priority (`task_set_priority`).
    SetPriority(SetPriorityRequest, CancellationToken, Reply<TaskInfo>),
    /// Switches the scheduling policy (`queue_set_policy`).
    SetPolicy(SetPolicyRequest, CancellationToken, Reply<QueueStats>),
    /// Drops cached results (`cache_invalidate`).
    Invalidate(
        CacheInvalidateRequest,
        CancellationToken,
        Reply<CacheInvalidateResponse>,
    ),
    /// Submits a task and answers when it has ended. Cancelling the token cancels the task.
    Run(SubmitRequest, CancellationToken, Reply<TaskInfo>),
    /// Like [`ExecMsg::Run`], but calls `on_done` instead of answering on a port: an actor
    /// can have the outcome sent to itself as a message, with no task waiting in between.
    RunThen(SubmitRequest, CancellationToken, OnDone),
    /// Answers when the task has ended.
    Wait(TaskRef, CancellationToken, Reply<TaskInfo>),
    /// A worker's report (sent by the engine's own workers).
    Finished(Finished),
}

/// A worker's report; only the engine makes these.
pub struct Finished {
    id: TaskId,
    outcome: Outcome,
}

enum Outcome {
    Ok(Value),
    Failed(String),
    Cancelled,
    TimedOut(Duration),
}

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

/// The execution engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecutionActor;

enum Waiter {
    Port(Reply<TaskInfo>),
    Callback(OnDone),
}

impl Waiter {
    fn send(self, answer: Result<TaskInfo, ExecError>) {
        match self {
            Waiter::Port(port) => {
                let _ = port.send(answer);
            }
            Waiter::Callback(f) => f(answer),
        }
    }
}

struct Record {
    tool: String,
    arguments: Option<Value>,
    state: TaskState,
    priority: i32,
    deadline: Option<u64>,
    timeout: Option<Duration>,
    /// Some when the result is to be cached.
    cache_ttl_ms: Option<u64>,
    cancel: CancellationToken,
    /// Unfinished tasks this one waits for.
    blocked_on: usize,
    wait_for: Vec<TaskId>,
    /// Tasks waiting for this one.
    dependents: Vec<TaskId>,
    result: Option<Value>,
    error: Option<String>,
    cached: bool,
    timings: Timings,
    submitted: Instant,
    started: Option<Instant>,
    /// A worker still holds a slot for it (a cancelled task's worker may not have returned).
    holds_worker: bool,
    waiters: Vec<Waiter>,
}

impl Record {
    fn info(&self, id: TaskId, effective: Option<i32>, with_result: bool) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tool: self.tool.clone(),
            state: self.state,
            priority: self.priority,
            effective_priority: effective,
            result: if with_result {
                self.result.clone()
            } else {
                None
            },
            error: self.error.clone(),
            cached: self.cached,
            timings: self.timings,
        }
    }
}

struct Counters {
    submitted: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    expired: u64,
    rejected: u64,
}

struct Metrics {
    ended: [metrics::Counter; 4],
    queued: metrics::Gauge,
    running: metrics::Gauge,
    cache_hits: metrics::Counter,
    cache_misses: metrics::Counter,
    hit_ratio: metrics::Gauge,
}

impl Metrics {
    fn new() -> Self {
        let ended = |s: &'static str| metrics::counter!("ensemble_tasks_total", "state" => s);
        Self {
            ended: [
                ended("completed"),
                ended("failed"),
                ended("cancelled"),
                ended("expired"),
            ],
            queued: metrics::gauge!("ensemble_task_queue_depth"),
            running: metrics::gauge!("ensemble_tasks_running"),
            cache_hits: metrics::counter!("ensemble_cache_hits_total"),
            cache_misses: metrics::counter!("ensemble_cache_misses_total"),
            hit_ratio: metrics::gauge!("ensemble_cache_hit_ratio"),
        }
    }
}

/// The engine's state.
pub struct ExecState {
    invoker: Arc<dyn ToolInvoker>,
    config: ExecConfig,
    policy: SchedulingPolicy,
    queue: ReadyQueue,
    tasks: BTreeMap<TaskId, Record>,
    finished: VecDeque<TaskId>,
    running: usize,
    blocked: usize,
    next_id: TaskId,
    counters: Counters,
    cache: ResultCache,
    metrics: Metrics,
}

fn queue_policy(p: SchedulingPolicy) -> Policy {
    match p {
        SchedulingPolicy::Fifo => Policy::Fifo,
        SchedulingPolicy::Priority => Policy::Priority,
        SchedulingPolicy::Deadline => Policy::Deadline,
        SchedulingPolicy::PriorityDeadline => Policy::PriorityDeadline,
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl ExecState {
    fn new(args: ExecArgs) -> Result<Self, ActorProcessingErr> {
        let config = args.config;
        if config.max_concurrent == 0 {
            return Err("max_concurrent must be at least 1".into());
        }
        Ok(Self {
            invoker: args.invoker,
            policy: config.policy,
            queue: ReadyQueue::new(queue_policy(config.policy), config.capacity),
            tasks: BTreeMap::new(),
            finished: VecDeque::new(),
            running: 0,
            blocked: 0,
            // Ids start from the clock so that a task id from before a restart is not
            // mistaken for a new task (1000 ids per millisecond of uptime).
            next_id: unix_ms().saturating_mul(1000).max(1),
            counters: Counters {
                submitted: 0,
                completed: 0,
                failed: 0,
                cancelled: 0,
                expired: 0,
                rejected: 0,
            },
            cache: ResultCache::open(&args.store, config.cache)?,
            config,
            metrics: Metrics::new(),
        })
    }

    fn waiting(&self) -> usize {
        self.queue.len() + self.blocked
    }

    fn effective(&self, id: TaskId) -> Option<i32> {
        self.queue.effective_priority(id)
    }

    fn info(&self, id: TaskId) -> Result<TaskInfo, ExecError> {
        let r = self.tasks.get(&id).ok_or(ExecError::UnknownTask(id))?;
        Ok(r.info(id, self.effective(id), true))
    }

    fn submit(
        &mut self,
        req: SubmitRequest,
        cancel: CancellationToken,
        waiter: Option<Waiter>,
        myself: &ActorRef<ExecMsg>,
    ) -> Result<SubmitResponse, (ExecError, Option<Waiter>)> {
        let traits = match self.invoker.traits(&req.tool) {
            Some(t) => t,
            None => return Err((ExecError::UnknownTool(req.tool), waiter)),
        };
        let cache_ttl_ms = match req.cache_ttl_s {
            Some(0) | None => None,
            Some(s) if traits.repeatable() => Some(s.saturating_mul(1000)),
            Some(_) => {
                return Err((
                    ExecError::Invalid(format!(
                        "`{}` is neither read-only nor idempotent, so its results are never \
                         cached; drop cache_ttl_s",
                        req.tool
                    )),
                    waiter,
                ));
            }
        };
        for b in &req.wait_for {
            if !self.tasks.contains_key(b) {
                return Err((
                    ExecError::Invalid(format!(
                        "wait_for names task {b}, which this runtime does not know"
                    )),
                    waiter,
                ));
            }
        }
        let now = unix_ms();
        let id = self.next_id;
        let mut record = Record {
            tool: req.tool,
            arguments: Some(req.arguments),
            state: TaskState::Queued,
            priority: req.priority,
            deadline: req.deadline,
            timeout: req.timeout_ms.map(Duration::from_millis),
            cache_ttl_ms,
            cancel,
            blocked_on: 0,
            wait_for: req.wait_for,
            dependents: Vec::new(),
            result: None,
            error: None,
            cached: false,
            timings: Timings {
                submitted_at_ms: now,
                ..Timings::default()
            },
            submitted: Instant::now(),
            started: None,
            holds_worker: false,
            waiters: waiter.into_iter().collect(),
        };

        // A fresh cached answer: the task is done before it is queued.
        if cache_ttl_ms.is_some() {
            let hit = record
                .arguments
                .as_ref()
                .and_then(|args| self.cache.get(&record.tool, args, now));
            self.cache_figures_changed(hit.is_some());
            if let Some(value) = hit {
                self.next_id += 1;
                self.counters.submitted += 1;
                record.cached = true;
                self.tasks.insert(id, record);
                self.end(id, TaskState::Completed, Ok(value));
                return Ok(SubmitResponse {
                    task_id: id,
                    state: TaskState::Completed,
                });
            }
        }

        if self.waiting() >= self.config.capacity {
            self.counters.rejected += 1;
            let waiter = record.waiters.pop();
            return Err((
                ExecError::QueueFull {
                    capacity: self.config.capacity,
                },
                waiter,
            ));
        }
        self.next_id += 1;
        self.counters.submitted += 1;

        // Blockers that have not finished lift to this task's priority; one that ended badly
        // fails this task at once.
        let mut failed_blocker = None;
        for &b in &record.wait_for {
            let Some(blocker) = self.tasks.get_mut(&b) else {
                continue;
            };
            match blocker.state {
                TaskState::Completed => {}
                TaskState::Queued | TaskState::Running => {
                    blocker.dependents.push(id);
                    record.blocked_on += 1;
                    self.queue.add_waiter(b, id, record.priority);
                }
                other => failed_blocker = Some((b, other)),
            }
        }
        self.tasks.insert(id, record);
        if let Some((b, state)) = failed_blocker {
            self.blocked += usize::from(self.tasks[&id].blocked_on > 0);
            self.end(
                id,
                TaskState::Failed,
                Err(format!(
                    "task {b} that this task waits for ended as {}",
                    state.as_str()
                )),
            );
            return Ok(SubmitResponse {
                task_id: id,
                state: TaskState::Failed,
            });
        }
        if self.tasks[&id].blocked_on > 0 {
            self.blocked += 1;
        } else {
            self.enqueue(id);
        }
        self.pump(myself);
        Ok(SubmitResponse {
            task_id: id,
            state: self.tasks.get(&id).map_or(TaskState::Queued, |r| r.state),
        })
    }

    fn enqueue(&mut self, id: TaskId) {
        let Some(r) = self.tasks.get(&id) else { return };
        let task = Task {
            id,
            priority: r.priority,
            deadline_ms: r.deadline,
        };
        // Capacity was checked at submission for queued and blocked tasks together.
        if let Err(e) = self.queue.push(task) {
            tracing::error!(task = id, error = %e, "could not queue a task");
        }
        // The queue-depth gauge is set by `pump`, which follows every enqueue.
    }

    /// Starts tasks while workers are free.
    fn pump(&mut self, myself: &ActorRef<ExecMsg>) {
        while self.running < self.config.max_concurrent {
            let Some(popped) = self.queue.pop(unix_ms()) else {
                break;
            };
            match popped {
                Popped::Run(id) => self.start(id, myself),
                Popped::Expired(id) => {
                    let deadline = self.tasks.get(&id).and_then(|r| r.deadline).unwrap_or(0);
                    self.end(
                        id,
                        TaskState::Expired,
                        Err(format!(
                            "its deadline ({deadline} ms since the Unix epoch) passed while it \
                             was queued; submit it again with a later deadline"
                        )),
                    );
                }
            }
        }
        self.metrics.queued.set(self.queue.len() as f64);
        self.metrics.running.set(self.running as f64);
    }

    fn start(&mut self, id: TaskId, myself: &ActorRef<ExecMsg>) {
        let Some(r) = self.tasks.get_mut(&id) else {
            return;
        };
        if r.cancel.is_cancelled() {
            self.end(
                id,
                TaskState::Cancelled,
                Err("cancelled before it started".into()),
            );
            return;
        }
        let started = Instant::now();
        r.state = TaskState::Running;
        r.started = Some(started);
        r.timings.started_at_ms = Some(unix_ms());
        r.timings.queued_us = Some(micros(started - r.submitted));
        r.holds_worker = true;
        self.running += 1;
        let args = r.arguments.clone().unwrap_or(Value::Null);
        let call = self.invoker.invoke(&r.tool, args, r.cancel.clone());
        let (timeout, cancel, me) = (r.timeout, r.cancel.clone(), myself.clone());
        tokio::spawn(async move {
            let result = match timeout {
                None => call.await,
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(r) => r,
                    Err(_) => {
                        // The tool is told to stop; the task ends now.
                        cancel.cancel();
                        let _ = me.cast(ExecMsg::Finished(Finished {
                            id,
                            outcome: Outcome::TimedOut(limit),
                        }));
                        return;
                    }
                },
            };
            let outcome = match result {
                Ok(v) => Outcome::Ok(v),
                Err(InvokeError::Cancelled) => Outcome::Cancelled,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let _ = me.cast(ExecMsg::Finished(Finished { id, outcome }));
        });
    }

    fn on_finished(&mut self, f: Finished, myself: &ActorRef<ExecMsg>) {
        let Some(r) = self.tasks.get_mut(&f.id) else {
            return;
        };
        if r.holds_worker {
            r.holds_worker = false;
            self.running = self.running.saturating_sub(1);
        }
        if r.state == TaskState::Running {
            let (state, result) = match f.outcome {
                Outcome::Ok(v) => (TaskState::Completed, Ok(v)),
                Outcome::Failed(e) => (TaskState::Failed, Err(e)),
                Outcome::Cancelled => (TaskState::Cancelled, Err("cancelled".to_string())),
                Outcome::TimedOut(limit) => (
                    TaskState::Failed,
                    Err(format!(
                        "timed out after {} ms; the tool was told to stop (raise timeout_ms if it \
                         needs longer)",
                        limit.as_millis()
                    )),
                ),
            };
            self.end(f.id, state, result);
        }
        self.pump(myself);
    }

    /// Puts a task in a final state, answers its waiters and releases its dependents.
    fn end(&mut self, id: TaskId, state: TaskState, result: Result<Value, String>) {
        let mut work = vec![(id, state, result)];
        while let Some((id, state, result)) = work.pop() {
            let Some(r) = self.tasks.get_mut(&id) else {
                continue;
            };
            if r.state.is_final() {
                continue;
            }
            if r.state == TaskState::Queued {
                if r.blocked_on > 0 {
                    self.blocked = self.blocked.saturating_sub(1);
                } else {
                    self.queue.remove(id);
                }
            }
            let now = Instant::now();
            r.state = state;
            r.timings.finished_at_ms = Some(unix_ms());
            match r.started {
                Some(s) => r.timings.run_us = Some(micros(now - s)),
                None => r.timings.queued_us = Some(micros(now - r.submitted)),
            }
            let args = r.arguments.take();
            match result {
                Ok(v) => {
                    if let (Some(ttl), Some(args), false) = (r.cache_ttl_ms, &args, r.cached) {
                        self.cache.put(&r.tool, args, v.clone(), unix_ms(), ttl);
                    }
                    r.result = Some(v);
                }
                Err(e) => r.error = Some(e),
            }
            let waiters = std::mem::take(&mut r.waiters);
            let dependents = std::mem::take(&mut r.dependents);
            let wait_for = std::mem::take(&mut r.wait_for);
            if !waiters.is_empty() {
                let info = r.info(id, None, true);
                for w in waiters {
                    w.send(Ok(info.clone()));
                }
            }
            let (counter, metric) = match state {
                TaskState::Completed => (&mut self.counters.completed, 0),
                TaskState::Failed => (&mut self.counters.failed, 1),
                TaskState::Cancelled => (&mut self.counters.cancelled, 2),
                _ => (&mut self.counters.expired, 3),
            };
            *counter += 1;
            self.metrics.ended[metric].increment(1);
            for b in wait_for {
                self.queue.remove_waiter(b, id);
            }
            for d in dependents {
                self.queue.remove_waiter(id, d);
                let Some(dep) = self.tasks.get_mut(&d) else {
                    continue;
                };
                if dep.state != TaskState::Queued {
                    continue;
                }
                if state == TaskState::Completed {
                    dep.blocked_on = dep.blocked_on.saturating_sub(1);
                    if dep.blocked_on == 0 {
                        self.blocked = self.blocked.saturating_sub(1);
                        self.enqueue(d);
                    }
                } else {
                    work.push((
                        d,
                        TaskState::Failed,
                        Err(format!(
                            "task {id} that this task waits for ended as {}",
                            state.as_str()
                        )),
                    ));
                }
            }
            self.finished.push_back(id);
        }
        self.forget_old();
    }

    /// Forgets the oldest finished tasks beyond the retention limit.
    fn forget_old(&mut self) {
        while self.finished.len() > self.config.retain_finished {
            if let Some(old) = self.finished.pop_front()
                && self.tasks.get(&old).is_some_and(|r| !r.holds_worker)
            {
                self.tasks.remove(&old);
            }
        }
    }

    fn cancel(&mut self, id: TaskId, myself: &ActorRef<ExecMsg>) -> Result<TaskInfo, ExecError> {
        let r = self.tasks.get(&id).ok_or(ExecError::UnknownTask(id))?;
        if !r.state.is_final() {
            r.cancel.cancel();
            let why = if r.state == TaskState::Running {
                "cancelled while running; the tool was told to stop"
            } else {
                "cancelled before it started"
            };
            self.end(id, TaskState::Cancelled, Err(why.into()));
            self.pump(myself);
        }
        self.info(id)
    }

    fn set_priority(&mut self, req: SetPriorityRequest) -> Result<TaskInfo, ExecError> {
        let r = self
            .tasks
            .get_mut(&req.task_id)
            .ok_or(ExecError::UnknownTask(req.task_id))?;
        if r.state != TaskState::Queued {
            return Err(ExecError::NotQueued(req.task_id));
        }
        r.priority = req.priority;
        if r.blocked_on > 0 {
            // Not in the ready queue: what changes is the priority it lends its blockers.
            for b in r.wait_for.clone() {
                self.queue.add_waiter(b, req.task_id, req.priority);
            }
        } else {
            self.queue
                .set_priority(req.task_id, req.priority)
                .map_err(|_| ExecError::NotQueued(req.task_id))?;
        }
        self.info(req.task_id)
    }

    fn list(&self, req: TaskListRequest) -> Result<TaskListResponse, ExecError> {
        let limit = req.limit.unwrap_or(100).clamp(1, 1000);
        let before = match &req.cursor {
            None => TaskId::MAX,
            Some(c) => c.parse::<TaskId>().map_err(|_| {
                ExecError::Invalid(format!(
                    "cursor {c:?} is not one this server gave; pass next_cursor from the previous page"
                ))
            })?,
        };
        let mut tasks = Vec::new();
        let mut next_cursor = None;
        for (&id, r) in self.tasks.range(..before).rev() {
            if req.state.is_some_and(|s| s != r.state) {
                continue;
            }
            if tasks.len() == limit {
                next_cursor = tasks.last().map(|t: &TaskInfo| t.task_id.to_string());
                break;
            }
            tasks.push(r.info(id, self.effective(id), false));
        }
        Ok(TaskListResponse { tasks, next_cursor })
    }

    fn stats(&self) -> QueueStats {
        let c = self.cache.stats();
        QueueStats {
            policy: self.policy,
            queued: self.queue.len(),
            blocked: self.blocked,
            running: self.running,
            max_concurrent: self.config.max_concurrent,
            capacity: self.config.capacity,
            submitted: self.counters.submitted,
            completed: self.counters.completed,
            failed: self.counters.failed,
            cancelled: self.counters.cancelled,
            expired: self.counters.expired,
            rejected: self.counters.rejected,
            cache: CacheFigures {
                hits: c.hits,
                misses: c.misses,
                hit_rate: c.hit_rate(),
                entries: c.entries,
                bytes: c.bytes,
            },
        }
    }

    fn cache_figures_changed(&mut self, hit: bool) {
        if hit {
            self.metrics.cache_hits.increment(1);
        } else {
            self.metrics.cache_misses.increment(1);
        }
        self.metrics.hit_ratio.set(self.cache.stats().hit_rate());
    }

    fn invalidate(
        &mut self,
        req: CacheInvalidateRequest,
    ) -> Result<CacheInvalidateResponse, ExecError> {
        let what = match (req.tool, req.prefix, req.pattern) {
            (Some(t), None, None) => Invalidate::Tool(t),
            (None, Some(p), None) => Invalidate::Prefix(p),
            (None, None, Some(p)) => Invalidate::Pattern(p),
            _ => {
                return Err(ExecError::Invalid(
                    "give exactly one of `tool`, `prefix` or `pattern`".into(),
                ));
            }
        };
        let removed = self
            .cache
            .invalidate(&what)
            .map_err(|e| ExecError::Store(e.to_string()))?;
        Ok(CacheInvalidateResponse { removed })
    }
}

impl Actor for ExecutionActor {
    type Msg = ExecMsg;
    type State = ExecState;
    type Arguments = ExecArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ExecMsg>,
        args: ExecArgs,
    ) -> Result<ExecState, ActorProcessingErr> {
        ExecState::new(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecMsg>,
        msg: ExecMsg,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecMsg::Finished(f) => state.on_finished(f, &myself),
            ExecMsg::Submit(req, _, reply) => {
                // The task outlives the call that submitted it: not linked to its token.
                let answer = state
                    .submit(req, CancellationToken::new(), None, &myself)
                    .map_err(|(e, _)| e);
                let _ = reply.send(answer);
            }
            ExecMsg::Run(req, cancel, reply) => {
                run(state, req, cancel, Waiter::Port(reply), &myself);
            }
            ExecMsg::RunThen(req, cancel, on_done) => {
                run(state, req, cancel, Waiter::Callback(on_done), &myself);
            }
            ExecMsg::Wait(task, _, reply) => match state.tasks.get_mut(&task.task_id) {
                Some(r) if !r.state.is_final() => r.waiters.push(Waiter::Port(reply)),
                _ => {
                    let _ = reply.send(state.info(task.task_id));
                }
            },
            ExecMsg::Status(task, _, reply) => {
                let _ = reply.send(state.info(task.task_id));
            }
            ExecMsg::Cancel(task, _, reply) => {
                let _ = reply.send(state.cancel(task.task_id, &myself));
            }
            ExecMsg::List(req, _, reply) => {
                let _ = reply.send(state.list(req));
            }
            ExecMsg::Stats(_, _, reply) => {
                let _ = reply.send(Ok(state.stats()));
            }
            ExecMsg::SetPriority(req, _, reply) => {
                let _ = reply.send(state.set_priority(req));
            }
            ExecMsg::SetPolicy(req, _, reply) => {
                state.policy = req.policy;
                state.queue.set_policy(queue_policy(req.policy));
                let _ = reply.send(Ok(state.stats()));
            }
            ExecMsg::Invalidate(req, _, reply) => {
                let _ = reply.send(state.invalidate(req));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ExecMsg>,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        // Running tools are told to stop; their workers' reports go nowhere.
        for r in state.tasks.values() {
            if !r.state.is_final() {
                r.cancel.cancel();
            }
        }
        Ok(())
    }
}

fn run(
    state: &mut ExecState,
    req: SubmitRequest,
    cancel: CancellationToken,
    waiter: Waiter,
    myself: &ActorRef<ExecMsg>,
) {
    // The task is cancelled with the caller's token, and by task_cancel alone.
    if let Err((e, Some(w))) = state.submit(req, cancel.child_token(), Some(waiter), myself) {
        w.send(Err(e));
    }
}
