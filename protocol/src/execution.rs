//! The execution engine's requests, answers and errors: tool invocations submitted for
//! asynchronous execution, in a bounded queue under a scheduling policy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task's id: unique within a runtime's life and, as it starts from the clock, across
/// restarts.
pub type TaskId = u64;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a worker (or for the tasks in its `wait_for`).
    Queued,
    /// A worker is running it.
    Running,
    /// It ran and the tool answered.
    Completed,
    /// It ran and the tool failed, timed out, or a task it waited for did not complete.
    Failed,
    /// Cancelled before it ended.
    Cancelled,
    /// Its deadline passed before a worker took it.
    Expired,
}

impl TaskState {
    /// True once the task will not change again.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Running)
    }

    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Expired => "expired",
        }
    }
}

/// The order in which queued tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchedulingPolicy {
    /// First submitted, first run.
    Fifo,
    /// Highest priority first (a task others wait on runs at their highest priority).
    Priority,
    /// Earliest deadline first; tasks without a deadline last.
    Deadline,
    /// Highest priority first, then earliest deadline.
    PriorityDeadline,
}

/// Submits a tool call for asynchronous execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The tool to call (any tool `tools/list` shows).
    pub tool: String,
    /// The tool's arguments.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// Higher runs first under the PRIORITY policies (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Unix time in milliseconds after which the task must not start; a task still queued then
    /// fails as `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Time limit of the run; the tool is told to stop when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Cache the result this long, and answer from the cache while it is fresh (read-only or
    /// idempotent tools only; others are never cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_s: Option<u64>,
    /// Tasks that must complete before this one starts; while it waits, they run at least at
    /// its priority (priority inheritance). If one of them does not complete, this task fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_for: Vec<TaskId>,
    /// Who submits it (set by the runtime from the caller, never from the arguments): the
    /// tool runs with that identity's rights.
    #[serde(skip)]
    #[schemars(skip)]
    pub submitter: Option<crate::principal::Principal>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl SubmitRequest {
    /// A request to call `tool` with `arguments`, everything else default.
    pub fn new(tool: impl Into<String>, arguments: Value) -> Self {
        Self {
            tool: tool.into(),
            arguments,
            priority: 0,
            deadline: None,
            timeout_ms: None,
            cache_ttl_s: None,
            wait_for: Vec::new(),
            submitter: None,
        }
    }
}

/// A submitted task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitResponse {
    /// Its id, for `task_status`, `task_cancel` and `wait_for`.
    pub task_id: TaskId,
    /// `queued`, or `completed` when the answer came from the cache.
    pub state: TaskState,
}

/// Names one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    /// The task.
    pub task_id: TaskId,
}

/// Changes a queued task's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPriorityRequest {
    /// The task (it must still be queued).
    pub task_id: TaskId,
    /// Its new priority.
    pub priority: i32,
}

/// Switches the scheduling policy; queued tasks are reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicyRequest {
    /// The new policy.
    pub policy: SchedulingPolicy,
}

/// When a task's phases happened (Unix milliseconds) and how long they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Timings {
    /// When it was submitted.
    pub submitted_at_ms: u64,
    /// When a worker took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Microseconds between submission and start (or end, if it never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_us: Option<u64>,
    /// Microseconds the tool ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_us: Option<u64>,
}

/// A task as `task_status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskInfo {
    /// Its id.
    pub task_id: TaskId,
    /// The tool it calls.
    pub tool: String,
    /// Where it is.
    pub state: TaskState,
    /// Its own priority.
    pub priority: i32,
    /// The priority it is scheduled at, lifted by the tasks that wait on it (queued tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_priority: Option<i32>,
    /// The tool's answer (completed tasks; `task_list` leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the result came from the cache.
    #[serde(default)]
    pub cached: bool,
    /// Timings.
    pub timings: Timings,
}

/// Lists tasks, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskListRequest {
    /// Only tasks in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A page of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskListResponse {
    /// The tasks, newest first, without their results.
    pub tasks: Vec<TaskInfo>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Asks for the queue's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueStatsRequest {}

/// The result cache's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CacheFigures {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing fresh.
    pub misses: u64,
    /// hits / (hits + misses), 0 before the first lookup.
    pub hit_rate: f64,
    /// Entries in memory.
    pub entries: usize,
    /// Bytes of results in memory.
    pub bytes: usize,
}

/// The queue's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueStats {
    /// The scheduling policy.
    pub policy: SchedulingPolicy,
    /// Tasks ready to run, waiting for a worker.
    pub queued: usize,
    /// Tasks waiting for the tasks in their `wait_for`.
    pub blocked: usize,
    /// Tasks running.
    pub running: usize,
    /// Workers.
    pub max_concurrent: usize,
    /// Queued and blocked tasks allowed at once; a submission beyond is rejected.
    pub capacity: usize,
    /// Tasks submitted since start.
    pub submitted: u64,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Tasks that expired in the queue.
    pub expired: u64,
    /// Submissions rejected because the queue was full.
    pub rejected: u64,
    /// The result cache.
    pub cache: CacheFigures,
}

/// Invalidates cached results: give exactly one of `tool`, `prefix`, `pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheInvalidateRequest {
    /// Every result of this tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Every key starting with this (a key is the tool, a NUL, and the canonical JSON
    /// arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Every key matching this glob (`*` any run, `?` one character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// What an invalidation removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CacheInvalidateResponse {
    /// Cached results removed.
    pub removed: usize,
}

/// Why the execution engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ExecError {
    /// No task with this id (finished tasks are kept for a while, then forgotten).
    #[error(
        "no task {0}; task_list shows the tasks this runtime knows (finished ones are kept for a while)"
    )]
    UnknownTask(TaskId),
    /// The tool does not exist.
    #[error("unknown tool `{0}`; tools/list shows the tools this server has")]
    UnknownTool(String),
    /// Backpressure.
    #[error(
        "the task queue is full ({capacity} tasks waiting); retry later, cancel queued tasks, or raise the queue capacity"
    )]
    QueueFull {
        /// The capacity.
        capacity: usize,
    },
    /// The task has left the queue.
    #[error("task {0} is no longer queued; only queued tasks can change priority")]
    NotQueued(TaskId),
    /// The request does not make sense.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}
