//! Workflow runs over MCP: each run is a resource (`ensemble://workflows/runs/{id}`), and
//! `workflow_run` with `wait` reports a progress notification per finished step.

use ensemble_actors::workflow::{
    AskFailed, ParamAsker, ParamQuestion, RunHooks, RunListener, WorkflowMsg,
};
use ensemble_protocol::run::{
    RunError, RunInfo, RunListRequest, RunListResponse, RunProgress, RunRef, RunRequest,
};
use ensemble_protocol::template::{ParamType, Parameter};
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::RpcReplyPort;
use rmcp::model::{ElicitRequestParams, ElicitationAction};
use serde_json::{Map, Value};

use crate::config::default_policy;
use crate::context::{ContextError, ToolContext};
use crate::router::catalog::{
    ActorResource, ActorResourceList, IntoContents, IntoResourcePage, ListResources, ReadResource,
    ResourceError, ResourcePage,
};
use crate::router::{
    IntoToolOutput, RegisterError, ResourceContents, ResourceInfo, Router, Structured, ToolOutput,
};

/// Runs are resources at `ensemble://workflows/runs/{id}`.
pub const RUN_URI_PREFIX: &str = "ensemble://workflows/runs/";

/// The run resource template.
pub const RUN_URI_TEMPLATE: &str = "ensemble://workflows/runs/{id}";

/// Tells the sessions subscribed to a run's resource each time the run changes.
pub fn run_observer(router: &Router) -> ensemble_actors::workflow::RunObserver {
    let router = router.clone();
    std::sync::Arc::new(move |id: &str| router.resource_updated(format!("{RUN_URI_PREFIX}{id}")))
}

/// Serves the runs of the workflow engine in `workflow` as resources of `router`.
pub fn register_run_resources(
    router: &Router,
    workflow: &ActorSlot<WorkflowMsg>,
) -> Result<(), RegisterError> {
    router.register_resource(
        ActorResource {
            uri: RUN_URI_TEMPLATE,
            name: "workflow run",
            description: "A workflow run: its state and every step's state, output or error, and timings (JSON).",
            mime_type: Some("application/json"),
            slot: workflow.clone(),
            policy: default_policy("workflow_resources_read"),
        },
        read,
    )?;
    router.register_resource_list(
        ActorResourceList {
            name: "workflow_runs",
            slot: workflow.clone(),
            policy: default_policy("workflow_resources_list"),
        },
        list,
    )
}

fn read(
    req: ReadResource,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<RunInfo, RunError>>,
) -> WorkflowMsg {
    let run_id = req.variables.get("id").cloned().unwrap_or_default();
    crate::engines::for_caller(
        WorkflowMsg::Status(RunRef { run_id }, cancel, reply),
        WorkflowMsg::ActingFor,
    )
}

fn list(
    req: ListResources,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<RunListResponse, RunError>>,
) -> WorkflowMsg {
    let list = RunListRequest {
        cursor: req.cursor,
        limit: Some(100),
        state: None,
    };
    crate::engines::for_caller(
        WorkflowMsg::List(list, cancel, reply),
        WorkflowMsg::ActingFor,
    )
}

impl From<RunError> for ResourceError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::UnknownRun(_) => ResourceError::NotFound(e.to_string()),
            e => ResourceError::Failed(e.to_string()),
        }
    }
}

impl IntoContents for RunInfo {
    fn into_contents(self, uri: &str) -> Vec<ResourceContents> {
        let json = serde_json::to_string_pretty(&self).unwrap_or_default();
        vec![ResourceContents::text(json, uri).with_mime_type("application/json")]
    }
}

impl IntoResourcePage for RunListResponse {
    fn into_page(self) -> ResourcePage {
        let resources = self
            .runs
            .into_iter()
            .map(|r| {
                let what = r.template.as_deref().unwrap_or("workflow");
                ResourceInfo::new(format!("{RUN_URI_PREFIX}{}", r.run_id), r.run_id.clone())
                    .with_mime_type("application/json")
                    .with_description(format!("{what} run, {} steps, {:?}", r.steps, r.state))
            })
            .collect();
        ResourcePage {
            resources,
            next_cursor: self.next_cursor,
        }
    }
}

/// The workflow engine answers `RunInfo` itself (its reply type is fixed by its message); it
/// reaches the client as structured JSON, as any [`Structured`] answer does.
impl IntoToolOutput for RunInfo {
    fn output_schema() -> Option<Map<String, Value>> {
        Structured::<RunInfo>::output_schema()
    }
    fn into_output(self) -> Result<ToolOutput, String> {
        Structured(self).into_output()
    }
}

/// `workflow_run`'s message: the call's context hears of each step's end as progress, and a
/// template run missing required parameters asks the user for them (an elicitation form; an
/// input-required round for a 2026 client without a session).
pub fn run_with_progress(
    mut req: RunRequest,
    ctx: ToolContext,
    reply: RpcReplyPort<Result<RunInfo, RunError>>,
) -> WorkflowMsg {
    // The run acts for its caller: its steps run with their rights.
    req.submitter = crate::governance::current_principal();
    let cancel = ctx.cancellation().clone();
    let asker = ctx.clone();
    let ask: ParamAsker = Box::new(move |q| Box::pin(async move { ask_params(&asker, q).await }));
    let wait = req.wait;
    let listener: RunListener = Box::new(move |p: &RunProgress| {
        if wait {
            ctx.progress(
                p.ended as f64,
                Some(p.total as f64),
                Some(format!(
                    "step `{}` {} ({}/{} steps done)",
                    p.step,
                    p.state.as_str(),
                    p.ended,
                    p.total
                )),
            );
        }
    });
    WorkflowMsg::RunWatched(
        req,
        cancel,
        RunHooks {
            listener,
            ask: Some(ask),
        },
        reply,
    )
}

/// Asks the user for a template's missing parameters with an elicitation form.
async fn ask_params(ctx: &ToolContext, q: ParamQuestion) -> Result<Map<String, Value>, AskFailed> {
    let params = elicitation_form(&q).ok_or(AskFailed::CannotAsk)?;
    match ctx
        .elicit_as(format!("params:{}", q.template), params)
        .await
    {
        Ok(answer) => match answer.action {
            ElicitationAction::Accept => match answer.content {
                Some(Value::Object(values)) => Ok(values),
                _ => Err(AskFailed::NoAnswer("the answer held no values".into())),
            },
            ElicitationAction::Decline => Err(AskFailed::NoAnswer("the user declined".into())),
            ElicitationAction::Cancel => Err(AskFailed::NoAnswer("the user cancelled".into())),
            other => Err(AskFailed::NoAnswer(format!(
                "the client answered {other:?}"
            ))),
        },
        Err(ContextError::NoClient | ContextError::Unsupported(_)) => Err(AskFailed::CannotAsk),
        Err(e) => Err(AskFailed::NoAnswer(e.to_string())),
    }
}

/// The form asking for `q`'s parameters, or `None` when one of them is not a primitive (an
/// elicitation form holds strings, numbers and booleans only).
fn elicitation_form(q: &ParamQuestion) -> Option<ElicitRequestParams> {
    let mut properties = Map::new();
    for p in &q.missing {
        properties.insert(p.name.clone(), form_field(p)?);
    }
    let names: Vec<&str> = q.missing.iter().map(|p| p.name.as_str()).collect();
    serde_json::from_value(serde_json::json!({
        "mode": "form",
        "message": format!(
            "Workflow template `{}` needs {}: {}.",
            q.template,
            if names.len() == 1 { "a parameter" } else { "parameters" },
            names.join(", ")
        ),
        "requestedSchema": {
            "type": "object",
            "properties": properties,
            "required": names,
        }
    }))
    .ok()
}

fn form_field(p: &Parameter) -> Option<Value> {
    let kind = match p.param_type {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Number => "number",
        ParamType::Boolean => "boolean",
        ParamType::Array | ParamType::Object => return None,
    };
    let mut description = p.description.clone().unwrap_or_default();
    if let Some(pattern) = &p.pattern {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&format!("(must match `{pattern}`)"));
    }
    let mut field = serde_json::json!({"type": kind, "title": p.name});
    if !description.is_empty() {
        field["description"] = Value::String(description);
    }
    Some(field)
}
