//! The workflow engine's messages: what callers send, and the bookkeeping it sends itself.

use std::sync::Arc;

use ensemble_protocol::execution::{ExecError, TaskInfo};
use ensemble_protocol::run::{
    RunError, RunInfo, RunListRequest, RunListResponse, RunProgress, RunRef, RunRequest,
    TemplateGetRequest, TemplateInstantiateRequest, TemplateInstantiateResponse,
    TemplateListRequest, TemplateListResponse, TemplateRegisterRequest, TemplateRegisterResponse,
    ValidateWorkflowRequest, ValidateWorkflowResponse,
};
use ensemble_protocol::template::Template;
use ensemble_supervision::CancellationToken;
use ractor::RpcReplyPort;

/// An answer port of the workflow engine.
pub type Reply<T> = RpcReplyPort<Result<T, RunError>>;

/// Told each time a step of a run ends.
pub type RunListener = Box<dyn FnMut(&RunProgress) + Send>;

/// The workflow engine's messages.
pub enum WorkflowMsg {
    /// Checks a definition (`workflow_validate`).
    Validate(
        ValidateWorkflowRequest,
        CancellationToken,
        Reply<ValidateWorkflowResponse>,
    ),
    /// Starts a run (`workflow_run`); answers at once, or when it ends if `wait` is set.
    /// Cancelling the token stops a wait, not the run (use [`WorkflowMsg::Cancel`]).
    Run(RunRequest, CancellationToken, Reply<RunInfo>),
    /// Like [`WorkflowMsg::Run`], and `listener` is told each time a step ends (progress for a
    /// caller that waits).
    RunWatched(RunRequest, CancellationToken, RunListener, Reply<RunInfo>),
    /// A run's state (`workflow_status`).
    Status(RunRef, CancellationToken, Reply<RunInfo>),
    /// Cancels a run (`workflow_cancel`): running steps are told to stop, pending ones never
    /// start.
    Cancel(RunRef, CancellationToken, Reply<RunInfo>),
    /// Lists runs (`workflow_list`).
    List(RunListRequest, CancellationToken, Reply<RunListResponse>),
    /// Registers a template version (`template_register`); answers once it is durable.
    TemplateRegister(
        TemplateRegisterRequest,
        CancellationToken,
        Reply<TemplateRegisterResponse>,
    ),
    /// One template version (`template_get`).
    TemplateGet(TemplateGetRequest, CancellationToken, Reply<Template>),
    /// The registered templates (`template_list`).
    TemplateList(
        TemplateListRequest,
        CancellationToken,
        Reply<TemplateListResponse>,
    ),
    /// A template and parameters turned into a definition (`template_instantiate`).
    TemplateInstantiate(
        TemplateInstantiateRequest,
        CancellationToken,
        Reply<TemplateInstantiateResponse>,
    ),
    /// Tells `listener` each time a step of the run ends from now on.
    Watch(RunRef, RunListener),
    /// The engine's own bookkeeping (step ends, flushes, retries).
    Internal(Internal),
}

/// The engine's bookkeeping messages; only the engine makes these.
pub struct Internal(pub(super) Event);

pub(super) enum Event {
    StepDone {
        run: Arc<str>,
        step: usize,
        attempt: u32,
        result: Result<TaskInfo, ExecError>,
    },
    Retry {
        run: Arc<str>,
        step: usize,
        attempt: u32,
    },
    Flushed(Result<(), String>),
}
