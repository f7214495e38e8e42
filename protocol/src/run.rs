//! The workflow engine's requests and answers: validating and running workflow definitions,
//! and what a run looks like from outside.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::template::{Template, TemplateProblem};
use crate::workflow::{Definition, Problem};

/// Checks a definition without running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateWorkflowRequest {
    /// The workflow.
    pub definition: Definition,
    /// The parameters a run would get (their names are checked against `${params.x}`).
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// Every problem of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidateWorkflowResponse {
    /// True when it can run.
    pub valid: bool,
    /// Every problem found, all at once.
    pub problems: Vec<Problem>,
}

/// Starts a run of a definition, or of a registered template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The workflow to run (or give `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
    /// A registered template to instantiate and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's version (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Parameters: `${params.x}` in a definition, the template's parameters for a template.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Answer when the run has ended, instead of at once.
    #[serde(default)]
    pub wait: bool,
    /// Steps of this run running at once (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<usize>,
    /// Who submits it (set by the runtime from the caller, never from the arguments): its
    /// steps run with that identity's rights.
    #[serde(skip)]
    #[schemars(skip)]
    pub submitter: Option<crate::principal::Principal>,
}

impl RunRequest {
    /// A request to run `definition` with `params`.
    pub fn of(definition: Definition, params: Map<String, Value>) -> Self {
        Self {
            definition: Some(definition),
            template: None,
            version: None,
            params,
            wait: false,
            max_parallel: None,
            submitter: None,
        }
    }
}

/// Names one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    /// The run.
    pub run_id: String,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are running or waiting.
    Running,
    /// Every step completed (or failed with `continue_on_error`).
    Completed,
    /// A step failed; its dependents were skipped.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The process stopped while a step that must not run twice was running; that step's
    /// outcome is unknown.
    Interrupted,
}

impl RunState {
    /// True once the run will not change again.
    pub fn is_final(self) -> bool {
        self != RunState::Running
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for its dependencies or a free slot.
    Pending,
    /// Its tool is running (or waiting for a retry).
    Running,
    /// Its tool answered.
    Completed,
    /// Its tool failed on every attempt.
    Failed,
    /// A step it depends on failed.
    Skipped,
    /// The run was cancelled before it ended.
    Cancelled,
    /// It was running when the process stopped and its tool is not idempotent, so it was not
    /// run again.
    Interrupted,
}

impl StepState {
    /// True once the step will not change again.
    pub fn is_final(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }

    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Completed => "completed",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Cancelled => "cancelled",
            StepState::Interrupted => "interrupted",
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepInfo {
    /// The step's id.
    pub id: String,
    /// Its tool.
    pub tool: String,
    /// Where it is.
    pub state: StepState,
    /// The steps it waits for (its `depends_on`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The tool's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When its first attempt started (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

/// A run as `workflow_status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    /// Its id.
    pub run_id: String,
    /// Where it is.
    pub state: RunState,
    /// The template it came from, as `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// When it started (Unix ms).
    pub created_at_ms: u64,
    /// When it ended (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Steps by state.
    pub counts: BTreeMap<String, usize>,
    /// Every step, in definition order.
    pub steps: Vec<StepInfo>,
}

/// A step of a run ended (what a watcher of the run is told).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunProgress {
    /// The run.
    pub run_id: String,
    /// The step that ended.
    pub step: String,
    /// How it ended.
    pub state: StepState,
    /// Steps of the run that have ended so far (skipped ones included).
    pub ended: usize,
    /// Steps in all.
    pub total: usize,
}

/// Lists runs, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunListRequest {
    /// Only runs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Its id.
    pub run_id: String,
    /// Where it is.
    pub state: RunState,
    /// The template it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Steps in all.
    pub steps: usize,
    /// When it started (Unix ms).
    pub created_at_ms: u64,
}

/// A page of runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunListResponse {
    /// The runs.
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Why the workflow engine refused a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum RunError {
    /// The definition cannot run.
    #[error("the workflow is not valid: {}", problems_text(.0))]
    Invalid(Vec<Problem>),
    /// The request does not make sense.
    #[error("{0}")]
    BadRequest(String),
    /// No such run.
    #[error("no run `{0}`; workflow_list shows the runs")]
    UnknownRun(String),
    /// The template or its parameters have problems (all of them are listed).
    #[error("{}", template_problems_text(.0))]
    Template(Vec<TemplateProblem>),
    /// No such template (or version).
    #[error("no template `{0}`; template_list shows the registered templates and versions")]
    UnknownTemplate(String),
    /// A template version is immutable.
    #[error(
        "template `{0}` is already registered with different content; versions are immutable, register a new version"
    )]
    TemplateConflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

fn template_problems_text(problems: &[TemplateProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Registers a workflow template version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRegisterRequest {
    /// The template.
    pub template: Template,
}

/// A registered template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateRegisterResponse {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// False when this exact template was already registered under this version.
    pub created: bool,
}

/// Names a template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateGetRequest {
    /// The template's name.
    pub name: String,
    /// An exact version or a semver requirement (`^1.2`); default the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Lists templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateListRequest {
    /// Only names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A template in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateSummary {
    /// Its name.
    pub name: String,
    /// Its versions, lowest first.
    pub versions: Vec<String>,
    /// The latest version.
    pub latest: String,
    /// The latest version's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The registered templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateListResponse {
    /// Templates by name.
    pub templates: Vec<TemplateSummary>,
}

/// Turns a template and parameters into a concrete workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInstantiateRequest {
    /// The template's name.
    pub name: String,
    /// An exact version or a semver requirement; default the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// A concrete workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateInstantiateResponse {
    /// The template used, as `name@version`.
    pub template: String,
    /// The definition, ready for `workflow_run`.
    pub definition: Definition,
}

fn problems_text(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
