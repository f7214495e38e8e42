//! How the orchestration engines call tools they do not own.
//!
//! The execution and workflow engines run *any* registered tool, but the tool router lives in
//! the runtime crate, above this one. The runtime hands them a [`ToolInvoker`] instead.

use std::future::Future;
use std::pin::Pin;

use ensemble_protocol::principal::Principal;
use ensemble_supervision::CancellationToken;
use serde_json::Value;

/// A boxed tool call.
pub type InvokeFuture = Pin<Box<dyn Future<Output = Result<Value, InvokeError>> + Send>>;

/// What the orchestration engines need to know about a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolTraits {
    /// It changes nothing.
    pub read_only: bool,
    /// Calling it twice has the effect of calling it once.
    pub idempotent: bool,
}

impl ToolTraits {
    /// Its results may be cached, and it may be re-run after a crash.
    pub fn repeatable(self) -> bool {
        self.read_only || self.idempotent
    }
}

/// Why a tool call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No such tool.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The tool, or the runtime on its way, failed; the message says why.
    #[error("{0}")]
    Failed(String),
    /// The call was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Calls tools by name with JSON arguments.
pub trait ToolInvoker: Send + Sync + 'static {
    /// The tool's traits, or `None` if there is no such tool.
    fn traits(&self, tool: &str) -> Option<ToolTraits>;

    /// Calls `tool`; the call stops when `cancel` is cancelled.
    fn invoke(&self, tool: &str, arguments: Value, cancel: CancellationToken) -> InvokeFuture;

    /// Calls `tool` for `submitter`, whose run or task this call belongs to: a governed
    /// invoker refuses what that identity may not call. By default the submitter is ignored.
    fn invoke_as(
        &self,
        tool: &str,
        arguments: Value,
        cancel: CancellationToken,
        submitter: Option<&Principal>,
    ) -> InvokeFuture {
        let _ = submitter;
        self.invoke(tool, arguments, cancel)
    }
}
