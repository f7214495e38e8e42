//! A task's life: submitted, queued or blocked, started on a worker, finished, cancelled or
//! reprioritised; finished tasks forgotten oldest first.

use std::time::{Duration, Instant};

use ensemble_protocol::execution::{
    ExecError, SetPriorityRequest, SubmitRequest, SubmitResponse, TaskId, TaskInfo, TaskState,
    Timings,
};
use ensemble_supervision::CancellationToken;
use ractor::ActorRef;
use serde_json::Value;

use super::msg::{ExecMsg, Finished, Outcome};
use super::scheduler::{Popped, Task};
use super::state::{ExecState, Record, Waiter, micros};
use crate::clock::unix_ms;
use crate::invoke::InvokeError;

impl ExecState {
    pub(super) fn submit(
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
            submitter: req.submitter,
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
            forgotten: false,
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

    pub(super) fn enqueue(&mut self, id: TaskId) {
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
    pub(super) fn pump(&mut self, myself: &ActorRef<ExecMsg>) {
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

    pub(super) fn start(&mut self, id: TaskId, myself: &ActorRef<ExecMsg>) {
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
        let call = self
            .invoker
            .invoke_as(&r.tool, args, r.cancel.clone(), r.submitter.as_ref());
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

    pub(super) fn on_finished(&mut self, f: Finished, myself: &ActorRef<ExecMsg>) {
        let Some(r) = self.tasks.get_mut(&f.id) else {
            return;
        };
        if r.holds_worker {
            r.holds_worker = false;
            self.running = self.running.saturating_sub(1);
        }
        if r.forgotten {
            self.tasks.remove(&f.id);
            self.pump(myself);
            return;
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
    pub(super) fn end(&mut self, id: TaskId, state: TaskState, result: Result<Value, String>) {
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

    /// Forgets the oldest finished tasks beyond the retention limit. One whose worker has not
    /// returned yet (a cancelled task's) is forgotten when it does.
    pub(super) fn forget_old(&mut self) {
        while self.finished.len() > self.config.retain_finished {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            match self.tasks.get_mut(&old) {
                Some(r) if r.holds_worker => r.forgotten = true,
                Some(_) => {
                    self.tasks.remove(&old);
                }
                None => {}
            }
        }
    }

    pub(super) fn cancel(
        &mut self,
        id: TaskId,
        myself: &ActorRef<ExecMsg>,
    ) -> Result<TaskInfo, ExecError> {
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

    pub(super) fn set_priority(&mut self, req: SetPriorityRequest) -> Result<TaskInfo, ExecError> {
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
}
