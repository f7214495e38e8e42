//! The workflow engine: DAGs of tool calls run through the execution engine, journalled in
//! sled so that a run survives the process.
//!
//! Ready steps run in parallel up to a per-run limit. Each step's end is written to the journal
//! and made durable before a step that depends on it starts; steps that end together share one
//! flush (the engine keeps at most one flush in flight and batches what ends meanwhile). A step
//! whose tool must not run twice also journals its start, durably, before it runs: after a
//! crash such a step is reported `interrupted` rather than repeated. Idempotent steps that were
//! running are simply run again.

mod config;
mod journal;
mod msg;
mod run;
mod schedule;
mod state;
mod templates;

use ensemble_protocol::run::ValidateWorkflowResponse;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::engine::reply_when_durable;

pub use config::{RunObserver, WorkflowArgs, WorkflowConfig};
use journal::store_err;
use msg::Event;
pub use msg::{
    AskFailed, Internal, ParamAsker, ParamQuestion, Reply, RunHooks, RunListener, WorkflowMsg,
};
pub use state::WorkflowState;

/// The workflow engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkflowActor;

impl Actor for WorkflowActor {
    type Msg = WorkflowMsg;
    type State = WorkflowState;
    type Arguments = WorkflowArgs;

    async fn pre_start(
        &self,
        _: ActorRef<WorkflowMsg>,
        args: WorkflowArgs,
    ) -> Result<WorkflowState, ActorProcessingErr> {
        WorkflowState::new(args)
    }

    async fn post_start(
        &self,
        myself: ActorRef<WorkflowMsg>,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        state.recover(&myself)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkflowMsg>,
        msg: WorkflowMsg,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        let (msg, owner) = match msg {
            WorkflowMsg::ActingFor(owner, inner) => (*inner, Some(owner)),
            msg => (msg, None),
        };
        let owner = owner.as_deref();
        match msg {
            // Only ever one deep (made by the runtime's tools).
            WorkflowMsg::ActingFor(..) => {}
            WorkflowMsg::Internal(Internal(event)) => match event {
                Event::StepDone {
                    run,
                    step,
                    attempt,
                    result,
                } => state.on_step_done(run, step, attempt, result, &myself),
                Event::Retry { run, step, attempt } => {
                    let current = state
                        .runs
                        .get(&run)
                        .is_some_and(|r| !r.state.is_final() && r.steps[step].attempts == attempt);
                    if current {
                        state.submit(&run, step, &myself);
                    }
                }
                Event::Flushed(result) => state.on_flushed(result, &myself),
            },
            WorkflowMsg::Validate(req, _, reply) => {
                let problems = state.validate(&req.definition, &req.params);
                let _ = reply.send(Ok(ValidateWorkflowResponse {
                    valid: problems.is_empty(),
                    problems,
                }));
            }
            WorkflowMsg::Run(req, _, reply) => state.start(req, None, None, reply, &myself),
            WorkflowMsg::RunWatched(req, _, hooks, reply) => {
                state.start(req, Some(hooks.listener), hooks.ask, reply, &myself)
            }
            WorkflowMsg::Status(r, _, reply) => {
                let answer = state
                    .visible(&r.run_id, owner)
                    .and_then(|()| state.status(&r.run_id));
                let _ = reply.send(answer);
            }
            WorkflowMsg::Cancel(r, _, reply) => {
                let answer = state
                    .visible(&r.run_id, owner)
                    .and_then(|()| state.cancel(&r.run_id, &myself));
                let _ = reply.send(answer);
            }
            WorkflowMsg::List(req, _, reply) => {
                let _ = reply.send(state.list(req, owner));
            }
            WorkflowMsg::Recent(finished, reply) => {
                let _ = reply.send(state.recent(finished));
            }
            WorkflowMsg::TemplateRegister(req, _, reply) => {
                let answer = state.register_template(req.template);
                reply_when_durable(&state.store, reply, answer, store_err);
            }
            WorkflowMsg::TemplateGet(req, _, reply) => {
                let _ = reply.send(state.template(&req.name, req.version.as_deref()).cloned());
            }
            WorkflowMsg::TemplateList(req, _, reply) => {
                let _ = reply.send(Ok(state.list_templates(req)));
            }
            WorkflowMsg::TemplateInstantiate(req, _, reply) => {
                let _ =
                    reply.send(state.instantiate(&req.name, req.version.as_deref(), &req.params));
            }
            WorkflowMsg::Watch(r, listener) => {
                if let Some(run) = state.runs.get_mut(r.run_id.as_str())
                    && !run.state.is_final()
                {
                    run.watchers.push(listener);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<WorkflowMsg>,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        // Steps in flight are told to stop; the journal says where each run was.
        for run in state.runs.values() {
            if !run.state.is_final() {
                run.cancel.cancel();
            }
        }
        Ok(())
    }
}
