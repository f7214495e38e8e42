//! The execution engine: tool calls submitted as tasks, run by a pool of at most
//! `max_concurrent` workers in the order of a scheduling policy, with deadlines, timeouts,
//! cancellation, priority inheritance and a result cache.
//!
//! Tasks live in memory: a queued task does not survive a restart of the process (work that
//! must, runs as a workflow, whose journal is durable). The result cache has a disk tier in sled
//! and does survive.
//!
//! A worker is a tokio task that calls the tool through the
//! [`ToolInvoker`](crate::invoke::ToolInvoker) and reports back to
//! the actor with a message; the actor never waits on a tool.

pub mod cache;
mod config;
mod lifecycle;
mod msg;
pub mod scheduler;
mod state;

use ensemble_protocol::execution::SubmitRequest;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use config::{ExecArgs, ExecConfig};
pub use msg::{ExecMsg, Finished, OnDone, Reply};
pub use state::ExecState;
use state::{Waiter, queue_policy};

/// The execution engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecutionActor;

impl Actor for ExecutionActor {
    type Msg = ExecMsg;
    type State = ExecState;
    type Arguments = ExecArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ExecMsg>,
        args: ExecArgs,
    ) -> Result<ExecState, ActorProcessingErr> {
        ExecState::new(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecMsg>,
        msg: ExecMsg,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        dispatch(state, msg, None, &myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ExecMsg>,
        state: &mut ExecState,
    ) -> Result<(), ActorProcessingErr> {
        // Running tools are told to stop; their workers' reports go nowhere.
        for r in state.tasks.values() {
            if !r.state.is_final() {
                r.cancel.cancel();
            }
        }
        Ok(())
    }
}

/// Serves one message; `owner`: the subject it was made for, who sees only its own tasks
/// (see [`ExecMsg::ActingFor`]).
fn dispatch(state: &mut ExecState, msg: ExecMsg, owner: Option<&str>, myself: &ActorRef<ExecMsg>) {
    match msg {
        ExecMsg::ActingFor(owner, inner) => dispatch(state, *inner, Some(&owner), myself),
        ExecMsg::Finished(f) => state.on_finished(f, myself),
        ExecMsg::Submit(req, _, reply) => {
            // Another's task answers as one that does not exist.
            if let Some(hidden) = req
                .wait_for
                .iter()
                .find(|b| state.visible(**b, owner).is_err())
            {
                let _ = reply.send(Err(ensemble_protocol::execution::ExecError::Invalid(
                    format!("wait_for names task {hidden}, which this runtime does not know"),
                )));
                return;
            }
            // The task outlives the call that submitted it: not linked to its token.
            let answer = state
                .submit(req, CancellationToken::new(), None, myself)
                .map_err(|(e, _)| e);
            let _ = reply.send(answer);
        }
        ExecMsg::Run(req, cancel, reply) => {
            run(state, req, cancel, Waiter::Port(reply), myself);
        }
        ExecMsg::RunThen(req, cancel, on_done) => {
            run(state, req, cancel, Waiter::Callback(on_done), myself);
        }
        ExecMsg::Wait(task, _, reply) => {
            if let Err(e) = state.visible(task.task_id, owner) {
                let _ = reply.send(Err(e));
                return;
            }
            match state.tasks.get_mut(&task.task_id) {
                Some(r) if !r.state.is_final() => r.waiters.push(Waiter::Port(reply)),
                _ => {
                    let _ = reply.send(state.info(task.task_id));
                }
            }
        }
        ExecMsg::Status(task, _, reply) => {
            let answer = state
                .visible(task.task_id, owner)
                .and_then(|()| state.info(task.task_id));
            let _ = reply.send(answer);
        }
        ExecMsg::Cancel(task, _, reply) => {
            let answer = state
                .visible(task.task_id, owner)
                .and_then(|()| state.cancel(task.task_id, myself));
            let _ = reply.send(answer);
        }
        ExecMsg::List(req, _, reply) => {
            let _ = reply.send(state.list(req, owner));
        }
        ExecMsg::Stats(_, _, reply) => {
            let _ = reply.send(Ok(state.stats()));
        }
        ExecMsg::SetPriority(req, _, reply) => {
            let answer = state
                .visible(req.task_id, owner)
                .and_then(|()| state.set_priority(req));
            let _ = reply.send(answer);
        }
        ExecMsg::SetPolicy(req, _, reply) => {
            state.policy = req.policy;
            state.queue.set_policy(queue_policy(req.policy));
            let _ = reply.send(Ok(state.stats()));
        }
        ExecMsg::Invalidate(req, _, reply) => {
            let _ = reply.send(state.invalidate(req));
        }
    }
}

fn run(
    state: &mut ExecState,
    req: SubmitRequest,
    cancel: CancellationToken,
    waiter: Waiter,
    myself: &ActorRef<ExecMsg>,
) {
    // The task is cancelled with the caller's token, and by task_cancel alone.
    if let Err((e, Some(w))) = state.submit(req, cancel.child_token(), Some(waiter), myself) {
        w.send(Err(e));
    }
}
