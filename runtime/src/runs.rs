//! Workflow runs over MCP: each run is a resource (`ensemble://workflows/runs/{id}`), and
//! `workflow_run` with `wait` reports a progress notification per finished step.

use ensemble_actors::workflow::{RunListener, WorkflowMsg};
use ensemble_protocol::run::{
    RunError, RunInfo, RunListRequest, RunListResponse, RunProgress, RunRef, RunRequest,
};
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::RpcReplyPort;
use serde_json::{Map, Value};

use crate::config::default_policy;
use crate::context::ToolContext;
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
    WorkflowMsg::Status(RunRef { run_id }, cancel, reply)
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
    WorkflowMsg::List(list, cancel, reply)
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

/// `workflow_run`'s message: the call's context hears of each step's end as progress.
pub fn run_with_progress(
    req: RunRequest,
    ctx: ToolContext,
    reply: RpcReplyPort<Result<RunInfo, RunError>>,
) -> WorkflowMsg {
    let cancel = ctx.cancellation().clone();
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
    WorkflowMsg::RunWatched(req, cancel, listener, reply)
}
