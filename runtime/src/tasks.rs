//! Long tool calls as MCP tasks (the `io.modelcontextprotocol/tasks` extension, rmcp's
//! `TaskManager`): a client that negotiated the extension gets a task id at once and polls
//! `tasks/get`; the tool's progress becomes the task's status message; `tasks/cancel` reaches the
//! actor through the call's cancellation token.

use rmcp::model::{CallToolResult, Task};
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::context::{ContextError, ContextEvent, ToolContext};
use crate::convert::{into_call_result, unknown_tool};
use crate::router::{Router, ToolError};

/// How often a task's client is told to poll.
const POLL_INTERVAL_MS: u64 = 500;

/// Starts `tool` with `arguments` as a task of `tasks`.
pub fn spawn(tasks: &TaskManager, router: Router, tool: String, arguments: Value) -> Task {
    let options = TaskOptions::new()
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(format!("`{tool}` started"));
    tasks.spawn(options, move |task| {
        Box::pin(async move { run(task, router, tool, arguments).await })
    })
}

async fn run(
    task: TaskContext,
    router: Router,
    tool: String,
    arguments: Value,
) -> Result<CallToolResult, TaskExit> {
    let cancel = CancellationToken::new();
    let (ctx, mut events) = ToolContext::attached(cancel.clone());
    let call = router.call_with_context(&tool, arguments, ctx);
    let mut call = std::pin::pin!(call);
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
                // A task has no request stream to carry client requests on.
                ContextEvent::Request { answer, .. } => {
                    let _ = answer.send(Err(ContextError::Unsupported(
                        "client requests from a tool running as a task",
                    )));
                }
                ContextEvent::Log { .. } => {}
            },
            r = &mut call => break r,
        }
    };
    match into_call_result(outcome) {
        Ok(result) => Ok(result),
        Err(ToolError::UnknownTool(t)) => Err(TaskExit::Error(unknown_tool(&t))),
        Err(_) => Err(TaskExit::Cancelled),
    }
}
