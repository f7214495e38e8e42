//! The engine's state: its tasks and their records, the queue, the cache and the counters;
//! opened when the actor starts, and read by status, list, stats and cache requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_protocol::execution::{
    CacheFigures, CacheInvalidateRequest, CacheInvalidateResponse, ExecError, QueueStats,
    SchedulingPolicy, TaskId, TaskInfo, TaskListRequest, TaskListResponse, TaskState, Timings,
};
use ensemble_supervision::CancellationToken;
use ractor::ActorProcessingErr;
use serde_json::Value;

use super::cache::{Invalidate, ResultCache};
use super::config::{ExecArgs, ExecConfig};
use super::msg::{OnDone, Reply};
use super::scheduler::{Policy, ReadyQueue};
use crate::clock::unix_ms;
use crate::invoke::ToolInvoker;

pub(super) enum Waiter {
    Port(Reply<TaskInfo>),
    Callback(OnDone),
}

impl Waiter {
    pub(super) fn send(self, answer: Result<TaskInfo, ExecError>) {
        match self {
            Waiter::Port(port) => {
                let _ = port.send(answer);
            }
            Waiter::Callback(f) => f(answer),
        }
    }
}

pub(super) struct Record {
    pub(super) tool: String,
    pub(super) arguments: Option<Value>,
    pub(super) state: TaskState,
    pub(super) priority: i32,
    pub(super) deadline: Option<u64>,
    pub(super) timeout: Option<Duration>,
    /// Some when the result is to be cached.
    pub(super) cache_ttl_ms: Option<u64>,
    pub(super) cancel: CancellationToken,
    /// Unfinished tasks this one waits for.
    pub(super) blocked_on: usize,
    pub(super) wait_for: Vec<TaskId>,
    /// Tasks waiting for this one.
    pub(super) dependents: Vec<TaskId>,
    pub(super) result: Option<Value>,
    pub(super) error: Option<String>,
    pub(super) cached: bool,
    pub(super) timings: Timings,
    pub(super) submitted: Instant,
    pub(super) started: Option<Instant>,
    /// A worker still holds a slot for it (a cancelled task's worker may not have returned).
    pub(super) holds_worker: bool,
    /// Past the retention limit while a worker still held it: forgotten when the worker returns.
    pub(super) forgotten: bool,
    pub(super) waiters: Vec<Waiter>,
    /// Who submitted it: the tool runs with that identity's rights.
    pub(super) submitter: Option<ensemble_protocol::principal::Principal>,
}

impl Record {
    /// Whether `subject` may see it: it submitted it, or nobody did.
    pub(super) fn belongs_to(&self, subject: &str) -> bool {
        self.submitter.as_ref().is_none_or(|s| s.subject == subject)
    }

    pub(super) fn info(&self, id: TaskId, effective: Option<i32>, with_result: bool) -> TaskInfo {
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

pub(super) struct Counters {
    pub(super) submitted: u64,
    pub(super) completed: u64,
    pub(super) failed: u64,
    pub(super) cancelled: u64,
    pub(super) expired: u64,
    pub(super) rejected: u64,
}

pub(super) struct Metrics {
    pub(super) ended: [metrics::Counter; 4],
    pub(super) queued: metrics::Gauge,
    pub(super) running: metrics::Gauge,
    pub(super) cache_hits: metrics::Counter,
    pub(super) cache_misses: metrics::Counter,
    pub(super) hit_ratio: metrics::Gauge,
}

impl Metrics {
    pub(super) fn new() -> Self {
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
    pub(super) invoker: Arc<dyn ToolInvoker>,
    pub(super) config: ExecConfig,
    pub(super) policy: SchedulingPolicy,
    pub(super) queue: ReadyQueue,
    pub(super) tasks: BTreeMap<TaskId, Record>,
    pub(super) finished: VecDeque<TaskId>,
    pub(super) running: usize,
    pub(super) blocked: usize,
    pub(super) next_id: TaskId,
    pub(super) counters: Counters,
    pub(super) cache: ResultCache,
    pub(super) metrics: Metrics,
}

pub(super) fn queue_policy(p: SchedulingPolicy) -> Policy {
    match p {
        SchedulingPolicy::Fifo => Policy::Fifo,
        SchedulingPolicy::Priority => Policy::Priority,
        SchedulingPolicy::Deadline => Policy::Deadline,
        SchedulingPolicy::PriorityDeadline => Policy::PriorityDeadline,
    }
}

pub(super) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl ExecState {
    pub(super) fn new(args: ExecArgs) -> Result<Self, ActorProcessingErr> {
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

    pub(super) fn waiting(&self) -> usize {
        self.queue.len() + self.blocked
    }

    pub(super) fn effective(&self, id: TaskId) -> Option<i32> {
        self.queue.effective_priority(id)
    }

    /// `Err(UnknownTask)` when `owner` (a subject that sees only its own tasks) did not submit
    /// task `id`; no owner, or a task without a submitter: `Ok`.
    pub(super) fn visible(&self, id: TaskId, owner: Option<&str>) -> Result<(), ExecError> {
        match (owner, self.tasks.get(&id)) {
            (Some(owner), Some(r)) if !r.belongs_to(owner) => Err(ExecError::UnknownTask(id)),
            _ => Ok(()),
        }
    }

    pub(super) fn info(&self, id: TaskId) -> Result<TaskInfo, ExecError> {
        let r = self.tasks.get(&id).ok_or(ExecError::UnknownTask(id))?;
        Ok(r.info(id, self.effective(id), true))
    }

    /// A page of the tasks `owner` may see (all of them without an owner).
    pub(super) fn list(
        &self,
        req: TaskListRequest,
        owner: Option<&str>,
    ) -> Result<TaskListResponse, ExecError> {
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
            if req.state.is_some_and(|s| s != r.state) || owner.is_some_and(|o| !r.belongs_to(o)) {
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

    pub(super) fn stats(&self) -> QueueStats {
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

    pub(super) fn cache_figures_changed(&mut self, hit: bool) {
        if hit {
            self.metrics.cache_hits.increment(1);
        } else {
            self.metrics.cache_misses.increment(1);
        }
        self.metrics.hit_ratio.set(self.cache.stats().hit_rate());
    }

    pub(super) fn invalidate(
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
