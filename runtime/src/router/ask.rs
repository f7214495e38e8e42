//! One typed request to an actor under its route's policy stack.

use std::future::Future;
use std::pin::Pin;

use ensemble_supervision::{
    ActorSlot, CallContext, CallError, CallOptions, CancellationToken, PolicyError, RoutePolicy,
};
use ractor::{Message, RpcReplyPort};

use super::spec::ToolError;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Sends `make(attempt_cancel, reply)` to the actor in `slot` under `policy`; each attempt of a
/// retried call builds its own message.
pub(crate) async fn ask<M, Resp, E, F>(
    slot: &ActorSlot<M>,
    policy: &RoutePolicy,
    opts: CallOptions,
    make: F,
) -> Result<Resp, PolicyError<E>>
where
    M: Message,
    Resp: Send + 'static,
    E: Send + 'static,
    F: Fn(&CancellationToken, RpcReplyPort<Result<Resp, E>>) -> M,
{
    let make = &make;
    policy
        .call(opts, |ctx| async move {
            let cancel = ctx.cancel.clone();
            match slot.call(&ctx, |reply| make(&cancel, reply)).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err(CallError::Engine(e)),
                Err(fault) => Err(CallError::Actor(fault)),
            }
        })
        .await
}

/// One attempt of a call to the actor in `slot`: the message is `make(attempt_cancel, reply)`;
/// an engine error becomes its message (the tool's error text).
pub async fn attempt<M, Resp, E>(
    slot: &ActorSlot<M>,
    ctx: CallContext,
    make: impl FnOnce(CancellationToken, RpcReplyPort<Result<Resp, E>>) -> M,
) -> Result<Resp, CallError<String>>
where
    M: Message,
    Resp: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    // The attempt's token moves into the message (no clone per call).
    match slot.call_with_cancel(ctx, make).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(CallError::Engine(e.to_string())),
        Err(fault) => Err(CallError::Actor(fault)),
    }
}

/// A typed answer as a tool's structured output, or why not.
pub(crate) fn structured<Resp: serde::Serialize>(
    answer: Result<Resp, PolicyError<String>>,
) -> Result<super::ToolOutput, ToolError> {
    match answer {
        Ok(resp) => serde_json::to_value(resp)
            .map(super::ToolOutput::Structured)
            .map_err(|e| ToolError::Runtime(format!("could not encode the answer: {e}"))),
        Err(e) => Err(policy_error(e)),
    }
}

pub(crate) fn policy_error<E: std::fmt::Display>(e: PolicyError<E>) -> ToolError {
    match e {
        PolicyError::Engine(e) => ToolError::Engine(e.to_string()),
        PolicyError::Cancelled { .. } => ToolError::Cancelled,
        other => ToolError::Runtime(other.to_string()),
    }
}
