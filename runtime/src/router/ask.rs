//! One typed request to an actor under its route's policy stack.

use std::future::Future;
use std::pin::Pin;

use ensemble_supervision::{
    ActorSlot, CallError, CallOptions, CancellationToken, PolicyError, RoutePolicy,
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

pub(crate) fn policy_error<E: std::fmt::Display>(e: PolicyError<E>) -> ToolError {
    match e {
        PolicyError::Engine(e) => ToolError::Engine(e.to_string()),
        PolicyError::Cancelled { .. } => ToolError::Cancelled,
        other => ToolError::Runtime(other.to_string()),
    }
}
