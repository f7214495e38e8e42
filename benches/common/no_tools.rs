//! A tool invoker that knows no tools: what the learner benchmarks give a learner actor they
//! spawn without a runtime (the learners never call tools on these paths).

use ensemble::actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble::supervision::CancellationToken;
use serde_json::Value;

/// Knows no tools; every call is an unknown tool.
pub struct NoTools;

impl ToolInvoker for NoTools {
    fn traits(&self, _: &str) -> Option<ToolTraits> {
        None
    }
    fn invoke(&self, tool: &str, _: Value, _: CancellationToken) -> InvokeFuture {
        let tool = tool.to_string();
        Box::pin(async move { Err(InvokeError::UnknownTool(tool)) })
    }
}
