//! The workflow engine's messages: what callers send, and the bookkeeping it sends itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ensemble_protocol::execution::{ExecError, TaskInfo};
use ensemble_protocol::run::{
    RunError, RunInfo, RunListRequest, RunListResponse, RunProgress, RunRef, RunRequest,
    TemplateGetRequest, TemplateInstantiateRequest, TemplateInstantiateResponse,
    TemplateListRequest, TemplateListResponse, TemplateRegisterRequest, TemplateRegisterResponse,
    ValidateWorkflowRequest, ValidateWorkflowResponse,
};
use ensemble_protocol::template::{Parameter, Template};
use ensemble_supervision::CancellationToken;
use ractor::RpcReplyPort;
use serde_json::{Map, Value};

/// An answer port of the workflow engine.
pub type Reply<T> = RpcReplyPort<Result<T, RunError>>;

/// Told each time a step of a run ends.
pub type RunListener = Box<dyn FnMut(&RunProgress) + Send>;

/// What a run from a template asks its caller for when required parameters are missing.
#[derive(Debug, Clone)]
pub struct ParamQuestion {
    /// The template, as `name@version`.
    pub template: String,
    /// The parameters that are required, have no default and were not given, in declaration
    /// order.
    pub missing: Vec<Parameter>,
}

/// Why a caller gave no values for a [`ParamQuestion`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskFailed {
    /// The caller cannot be asked (no client, or one without the needed capability): the run
    /// fails with the missing parameters, as if nobody had been asked.
    CannotAsk,
    /// The caller was asked and gave no answer (declined, cancelled, failed); the reason is
    /// added to the error.
    NoAnswer(String),
}

/// Asks the caller of a run for missing template parameters; answers their values by name.
pub type ParamAsker = Box<
    dyn FnOnce(
            ParamQuestion,
        )
            -> Pin<Box<dyn Future<Output = Result<Map<String, Value>, AskFailed>> + Send>>
        + Send,
>;

/// What a watched run tells and asks its caller.
pub struct RunHooks {
    /// Told each time a step ends.
    pub listener: RunListener,
    /// Asked once for the required parameters a template run lacks; without it (or when it
    /// cannot ask) such a run fails listing them.
    pub ask: Option<ParamAsker>,
}

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
    /// Like [`WorkflowMsg::Run`], and the hooks' listener is told each time a step ends
    /// (progress for a caller that waits); a template run missing required parameters asks
    /// for them through the hooks' asker first.
    RunWatched(RunRequest, CancellationToken, RunHooks, Reply<RunInfo>),
    /// A run's state (`workflow_status`).
    Status(RunRef, CancellationToken, Reply<RunInfo>),
    /// Cancels a run (`workflow_cancel`): running steps are told to stop, pending ones never
    /// start.
    Cancel(RunRef, CancellationToken, Reply<RunInfo>),
    /// Lists runs (`workflow_list`).
    List(RunListRequest, CancellationToken, Reply<RunListResponse>),
    /// The runs in progress and the `finished` latest finished ones still in memory, each
    /// group newest first, whoever submitted them (the dashboard's view; no store read).
    Recent(usize, RpcReplyPort<Vec<RunInfo>>),
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
    /// The request inside, made for one subject who sees only the runs it submitted (a
    /// governed caller): a run someone else submitted answers as unknown (`Status`, `Cancel`)
    /// and is left out of a `List`. A run submitted with no submitter (an ungoverned caller)
    /// is everyone's. Other requests are served as they are.
    ActingFor(String, Box<WorkflowMsg>),
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
