//! The execution engine's messages: what callers send, and its workers' reports.

use std::time::Duration;

use ensemble_protocol::execution::{
    CacheInvalidateRequest, CacheInvalidateResponse, ExecError, QueueStats, QueueStatsRequest,
    SetPolicyRequest, SetPriorityRequest, SubmitRequest, SubmitResponse, TaskId, TaskInfo,
    TaskListRequest, TaskListResponse, TaskRef,
};
use ensemble_supervision::CancellationToken;
use ractor::RpcReplyPort;
use serde_json::Value;

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
    /// The request inside, made for one subject who sees only the tasks it submitted (a
    /// governed caller): a task someone else submitted answers as unknown (`Status`, `Cancel`,
    /// `SetPriority`, `Wait`) and is left out of a `List`. A task submitted with no submitter
    /// (an ungoverned caller) is everyone's. Other requests are served as they are.
    ActingFor(String, Box<ExecMsg>),
}

/// A worker's report; only the engine makes these.
pub struct Finished {
    pub(super) id: TaskId,
    pub(super) outcome: Outcome,
}

pub(super) enum Outcome {
    Ok(Value),
    Failed(String),
    Cancelled,
    TimedOut(Duration),
}
