//! Long tool calls as MCP tasks (the `io.modelcontextprotocol/tasks` extension, rmcp's
//! `TaskManager`): a client that negotiated the extension gets a task id at once and polls
//! `tasks/get`; the tool's progress becomes the task's status message; `tasks/cancel` reaches the
//! actor through the call's cancellation token.

use std::time::Instant;

use ensemble_actors::governance::audit::{AuditKind, AuditRecord};
use rmcp::model::{CallToolResult, InputRequest, ServerRequest, Task};
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::{ContextError, ContextEvent, ToolContext};
use crate::convert::{into_call_result, unknown_tool};
use crate::router::{BoxFuture, Router, ToolError, ToolOutput};

/// How often a task's client is told to poll.
const POLL_INTERVAL_MS: u64 = 500;

/// Starts `tool` with `arguments` as a task of `tasks`.
pub fn spawn(tasks: &TaskManager, router: Router, tool: String, arguments: Value) -> Task {
    let options = TaskOptions::new()
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(format!("`{tool}` started"));
    // The task runs on a task of its own: it keeps its caller (a run it starts acts for them).
    let caller = crate::governance::current_call();
    tasks.spawn(options, move |task| {
        Box::pin(async move {
            let (id, name, started) = (task.task_id().to_string(), tool.clone(), Instant::now());
            let ended = match caller.clone() {
                Some((who, governance)) => {
                    let call = run(task, router, tool, arguments);
                    crate::governance::with_caller(who, governance, call).await
                }
                None => run(task, router, tool, arguments).await,
            };
            audit_end(caller, &name, &id, started, ended).await
        })
    })
}

/// Records how a governed caller's task ended, as its call (the entry made when the call
/// answered with the task has the outcome `task`; this one has the task's own: `ok`, `error`
/// or `cancelled`). A log that cannot be written fails the task: its result is not given out
/// unaudited.
async fn audit_end(
    caller: Option<(crate::governance::Identity, crate::governance::Governance)>,
    tool: &str,
    task_id: &str,
    started: Instant,
    ended: Result<CallToolResult, TaskExit>,
) -> Result<CallToolResult, TaskExit> {
    let Some((who, governance)) = caller.filter(|(_, g)| g.audits()) else {
        return ended;
    };
    let outcome = match &ended {
        Ok(r) if r.is_error == Some(true) => "error",
        Ok(_) => "ok",
        Err(TaskExit::Cancelled) => "cancelled",
        Err(TaskExit::Error(_)) => "error",
    };
    let mut record = AuditRecord::new(AuditKind::Call, who.subject(), "tools/call");
    record.target = Some(tool.to_string());
    record.allowed = Some(true);
    record.outcome = Some(outcome.to_string());
    record.duration_us = Some(started.elapsed().as_micros() as u64);
    record.detail = Some(format!("MCP task {task_id} ended"));
    match governance.audit(record).await {
        Ok(()) => ended,
        Err(why) => Err(TaskExit::Error(rmcp::ErrorData::internal_error(
            format!(
                "{tool}: the audit log cannot be written ({why}); the task's result is withheld \
                 (see the server's log)"
            ),
            None,
        ))),
    }
}

/// Continues a call already running (one that gathered its input in input-required rounds)
/// as a task of `tasks`: `call` is its future, `events` its context's channel, `cancel` stops it.
pub(crate) fn spawn_running(
    tasks: &TaskManager,
    tool: &str,
    call: BoxFuture<Result<ToolOutput, ToolError>>,
    events: mpsc::UnboundedReceiver<ContextEvent>,
    cancel: CancellationToken,
) -> Task {
    let options = TaskOptions::new()
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(format!("`{tool}` running with the input it asked for"));
    let caller = crate::governance::current_call();
    let tool = tool.to_string();
    tasks.spawn(options, move |task| {
        Box::pin(async move {
            let (id, started) = (task.task_id().to_string(), Instant::now());
            let ended = drive(task, call, events, cancel).await;
            audit_end(caller, &tool, &id, started, ended).await
        })
    })
}

async fn run(
    task: TaskContext,
    router: Router,
    tool: String,
    arguments: Value,
) -> Result<CallToolResult, TaskExit> {
    let cancel = CancellationToken::new();
    let (ctx, events) = ToolContext::attached(cancel.clone());
    let call = Box::pin(async move { router.call_with_context(&tool, arguments, ctx).await });
    drive(task, call, events, cancel).await
}

async fn drive(
    task: TaskContext,
    mut call: BoxFuture<Result<ToolOutput, ToolError>>,
    mut events: mpsc::UnboundedReceiver<ContextEvent>,
    cancel: CancellationToken,
) -> Result<CallToolResult, TaskExit> {
    // The tool's requests waiting in the task's inputRequests; dropped (aborted) with the run.
    let mut waiting = tokio::task::JoinSet::new();
    let mut asked = 0u32;
    let outcome = loop {
        tokio::select! {
            biased;
            () = task.cancelled() => {
                // The actor is told to stop; the task ends as cancelled.
                cancel.cancel();
                return Err(TaskExit::Cancelled);
            }
            Some(event) = events.recv() => match event {
                ContextEvent::Progress { progress, total, message } => {
                    let text = message.unwrap_or_else(|| match total {
                        Some(t) => format!("{progress}/{t}"),
                        None => format!("{progress}"),
                    });
                    task.set_status_message(text);
                }
                // A task has no request stream: what the tool asks the client waits in the
                // task's `inputRequests` (status input_required) for `tasks/update` (SEP-2663).
                ContextEvent::Request { key, request, answer } => {
                    asked += 1;
                    let key = key.unwrap_or_else(|| format!("input-{asked}"));
                    let input = match *request {
                        ServerRequest::CreateMessageRequest(r) => InputRequest::CreateMessage(r),
                        ServerRequest::ElicitRequest(r) => InputRequest::Elicitation(r),
                        ServerRequest::ListRootsRequest(r) => InputRequest::ListRoots(r),
                        _ => {
                            let _ = answer.send(Err(ContextError::Unsupported(
                                "server requests other than sampling, elicitation and roots",
                            )));
                            continue;
                        }
                    };
                    let task = task.clone();
                    // Several requests may wait at once; each is answered on its own.
                    waiting.spawn(async move {
                        let shape = input.clone();
                        let answered = match task.request_input(key, input).await {
                            Ok(value) => crate::mcp::client_result(&shape, value).ok_or_else(|| {
                                ContextError::Client("the answer does not have the shape of the request".into())
                            }),
                            Err(_) => Err(ContextError::Client("the task was cancelled".into())),
                        };
                        let _ = answer.send(answered);
                    });
                }
                ContextEvent::Log { .. } => {}
            },
            r = &mut call => break r,
        }
    };
    // The runtime got no answer (the actor crashed, a breaker is open, a deadline passed): the
    // task failed, with the error inlined (SEP-2663 `failed`). A tool that reports a failure in
    // its own words is a completed task whose result has `isError`.
    if let Err(ToolError::Runtime(message)) = &outcome {
        return Err(TaskExit::Error(rmcp::ErrorData::internal_error(
            message.clone(),
            None,
        )));
    }
    match into_call_result(outcome) {
        Ok(result) => Ok(result),
        Err(ToolError::UnknownTool(t)) => Err(TaskExit::Error(unknown_tool(&t))),
        Err(_) => Err(TaskExit::Cancelled),
    }
}
