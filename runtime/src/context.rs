//! The per-call context a tool actor receives: its cancellation token and a channel back to the
//! MCP handler that serves the call.
//!
//! The actor never touches the MCP session. It sends progress, log messages and client requests
//! (sampling, elicitation) on the context's channel; the handler future of the call turns them
//! into `notifications/progress`, `notifications/message` and server→client requests on the
//! call's own stream, and sends the client's answers back. A call made without an MCP client (a
//! host's `Router::call`, a workflow step) gets a detached context: progress and logs go nowhere
//! and client requests fail with [`ContextError::NoClient`].
//!
//! ```
//! use ensemble_runtime::context::ToolContext;
//! use rmcp::model::LoggingLevel;
//!
//! # async fn work(ctx: ToolContext) {
//! ctx.log(LoggingLevel::Info, serde_json::json!("starting"));
//! for step in 0..=4 {
//!     if ctx.is_cancelled() {
//!         return;
//!     }
//!     ctx.progress(f64::from(step) * 25.0, Some(100.0), None);
//! }
//! # }
//! ```

// rmcp marks sampling and logging deprecated (SEP-2577, protocol 2026-07-28); clients on
// 2025-11-25 and earlier use them.
#![allow(deprecated)]

use rmcp::model::{
    ClientResult, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequest, ElicitRequestParams, ElicitResult, ListRootsRequest, ListRootsResult,
    LoggingLevel, ServerRequest,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why a request to the client did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The call did not come from an MCP client (or its handler has finished).
    #[error("no MCP client is attached to this call")]
    NoClient,
    /// The client did not declare the capability the request needs.
    #[error("the client does not support {0}")]
    Unsupported(&'static str),
    /// The client answered with an error, or the session failed.
    #[error("the client request failed: {0}")]
    Client(String),
}

/// What a context sends to the handler serving the call.
#[derive(Debug)]
pub(crate) enum ContextEvent {
    Progress {
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    Log {
        level: LoggingLevel,
        logger: Option<String>,
        data: Value,
    },
    Request {
        /// The name the tool gave the request (the key of an input-required result's
        /// `inputRequests`); the handler makes one up when it is `None`.
        key: Option<String>,
        request: Box<ServerRequest>,
        answer: oneshot::Sender<Result<ClientResult, ContextError>>,
    },
}

/// The handle a context-aware tool actor gets with each call (see
/// [`Router::register_actor_with_context`](crate::router::Router::register_actor_with_context)).
///
/// Cheap to clone; send it along to helper tasks freely. Sending progress or a log line never
/// blocks and never fails: if nobody listens any more, it is dropped.
#[derive(Debug, Clone)]
pub struct ToolContext {
    cancel: CancellationToken,
    events: Option<mpsc::UnboundedSender<ContextEvent>>,
}

impl ToolContext {
    /// A context with no client behind it: progress and logs are dropped, client requests fail
    /// with [`ContextError::NoClient`].
    pub fn detached(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            events: None,
        }
    }

    /// A context whose events the caller receives (the MCP handler side).
    pub(crate) fn attached(
        cancel: CancellationToken,
    ) -> (Self, mpsc::UnboundedReceiver<ContextEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                cancel,
                events: Some(tx),
            },
            rx,
        )
    }

    /// The same channel with another cancellation token (one per attempt of a retried call).
    pub(crate) fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            cancel,
            events: self.events.clone(),
        }
    }

    /// Cancelled when the call times out, the client cancels, or the caller gives up. Check it
    /// in long loops and stop the work.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Shorthand for `cancellation().is_cancelled()`.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// True when an MCP client receives what this context sends.
    pub fn is_attached(&self) -> bool {
        self.events.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Reports progress. It reaches the client as `notifications/progress` when the client
    /// asked for progress (sent a progress token); `progress` must grow from one report to the
    /// next.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        self.send(ContextEvent::Progress {
            progress,
            total,
            message,
        });
    }

    /// Sends a log message (`notifications/message`), subject to the client's
    /// `logging/setLevel`. The logger is the tool's name.
    pub fn log(&self, level: LoggingLevel, data: Value) {
        self.send(ContextEvent::Log {
            level,
            logger: None,
            data,
        });
    }

    /// Like [`log`](Self::log), naming the logger.
    pub fn log_as(&self, logger: impl Into<String>, level: LoggingLevel, data: Value) {
        self.send(ContextEvent::Log {
            level,
            logger: Some(logger.into()),
            data,
        });
    }

    /// Asks the client's model for a completion (`sampling/createMessage`) and waits for the
    /// answer. Fails if the client did not declare the `sampling` capability.
    pub async fn create_message(
        &self,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, ContextError> {
        self.create_message_as(None, params).await
    }

    /// [`create_message`](Self::create_message) under a name of the tool's choosing: the key
    /// a client on protocol 2026-07-28 sees in the call's input-required result (SEP-2322).
    pub async fn create_message_as(
        &self,
        key: impl Into<Option<String>>,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, ContextError> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match self.request(key.into(), request).await? {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            other => Err(ContextError::Client(format!(
                "expected a sampling result, got {other:?}"
            ))),
        }
    }

    /// Asks the user for input through the client (`elicitation/create`) and waits for the
    /// answer. Fails if the client did not declare the `elicitation` capability.
    pub async fn elicit(&self, params: ElicitRequestParams) -> Result<ElicitResult, ContextError> {
        self.elicit_as(None, params).await
    }

    /// [`elicit`](Self::elicit) under a name of the tool's choosing (see
    /// [`create_message_as`](Self::create_message_as)).
    pub async fn elicit_as(
        &self,
        key: impl Into<Option<String>>,
        params: ElicitRequestParams,
    ) -> Result<ElicitResult, ContextError> {
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        match self.request(key.into(), request).await? {
            ClientResult::ElicitResult(r) => Ok(r),
            other => Err(ContextError::Client(format!(
                "expected an elicitation result, got {other:?}"
            ))),
        }
    }

    /// Asks the client for its roots (`roots/list`) under a name of the tool's choosing (see
    /// [`create_message_as`](Self::create_message_as)). Fails if the client did not declare
    /// the `roots` capability.
    pub async fn list_roots_as(
        &self,
        key: impl Into<Option<String>>,
    ) -> Result<ListRootsResult, ContextError> {
        let request = ServerRequest::ListRootsRequest(ListRootsRequest {
            method: Default::default(),
            extensions: Default::default(),
        });
        match self.request(key.into(), request).await? {
            ClientResult::ListRootsResult(r) => Ok(r),
            other => Err(ContextError::Client(format!(
                "expected a roots result, got {other:?}"
            ))),
        }
    }

    async fn request(
        &self,
        key: Option<String>,
        request: ServerRequest,
    ) -> Result<ClientResult, ContextError> {
        let events = self.events.as_ref().ok_or(ContextError::NoClient)?;
        let (answer, reply) = oneshot::channel();
        events
            .send(ContextEvent::Request {
                key,
                request: Box::new(request),
                answer,
            })
            .map_err(|_| ContextError::NoClient)?;
        tokio::select! {
            r = reply => r.unwrap_or(Err(ContextError::NoClient)),
            _ = self.cancel.cancelled() => Err(ContextError::Client("the call was cancelled".into())),
        }
    }

    fn send(&self, event: ContextEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }
}
