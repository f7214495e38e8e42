//! The promotion engine's requests, answers and errors: pipelines of stages with gates,
//! promotion requests with sign-offs, and the hand-off reports that travel with them.
//!
//! An artifact version (a registry `name@version`, pinned by its digest) moves through a
//! pipeline's stages in order (by default `dev → staging → production`); a move is allowed only
//! when every gate of the target stage passes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ---- hand-off reports ------------------------------------------------------------------------

/// Where a component of the work stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Not begun.
    NotStarted,
    /// Under way.
    InProgress,
    /// Finished.
    Done,
    /// Cannot go on until something else happens.
    Blocked,
}

/// One component of the work handed off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its name (unique within the report).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Where it stands.
    pub status: ComponentStatus,
    /// How far along it is, 0–100.
    #[schemars(range(min = 0, max = 100))]
    pub percent_complete: u8,
    /// Who answers for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Anything a reader should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A measured figure and what it should be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// What is measured (unique within the report).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The value aimed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// Its unit, e.g. `ms` or `%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The target is a ceiling (latency, error rate): met when the value is at most the
    /// target. Default false: met when the value is at least the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lower_is_better: bool,
}

impl Metric {
    /// Whether the value meets the target (`None` without a target).
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| {
            if self.lower_is_better {
                self.value <= t
            } else {
                self.value >= t
            }
        })
    }
}

/// What a piece of evidence points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A registry artifact, `name@version`.
    Artifact,
    /// A workflow run, by run id.
    WorkflowRun,
    /// A link (URL).
    Link,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// What it points at.
    pub kind: EvidenceKind,
    /// `name@version`, a run id, or a URL.
    #[schemars(length(min = 1, max = 2000))]
    pub reference: String,
    /// What it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How bad a risk or finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
    /// Blocks promotion while it is open.
    Blocker,
}

/// An open risk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    /// What could go wrong.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
    /// How bad it would be.
    pub severity: Severity,
    /// What is done about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
}

/// A finding of a review or a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// What was found.
    #[schemars(length(min = 1, max = 2000))]
    pub title: String,
    /// How bad it is; an open `blocker` blocks promotion.
    pub severity: Severity,
    /// Whether it is still open (default true).
    #[serde(default = "yes")]
    pub open: bool,
    /// Anything a reader should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

fn yes() -> bool {
    true
}

/// What a hand-off report says (every field but `title` may be left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportContent {
    /// Its title.
    #[schemars(length(min = 1, max = 300))]
    pub title: String,
    /// What was done, in a few sentences.
    #[serde(default)]
    pub summary: String,
    /// The state of each component.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Measured figures against their targets.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// What backs the claims.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Open risks.
    #[serde(default)]
    pub risks: Vec<Risk>,
    /// Findings; open blockers block promotion.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl ReportContent {
    /// The open findings of severity `blocker`.
    pub fn open_blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.open && f.severity == Severity::Blocker)
    }
}

/// Where a report revision is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// Being written: `handoff_update` may change it.
    Draft,
    /// Submitted: immutable, waiting for review.
    Submitted,
    /// A promotion request carrying it has sign-offs coming in.
    InReview,
    /// Every sign-off a request carrying it needs is in.
    Approved,
    /// A reviewer rejected it: a new revision is needed.
    ChangesRequested,
    /// A later revision took its place.
    Superseded,
}

/// `handoff_create`: a new report, as revision 1 in draft. The arguments are the report's
/// content ([`ReportContent`], its schema); they are kept as JSON until the engine checks
/// them, so that every problem is reported at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandoffCreateRequest(pub Map<String, Value>);

impl JsonSchema for HandoffCreateRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        ReportContent::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ReportContent::json_schema(generator)
    }
}

/// `handoff_update`'s arguments as JSON (the shape of [`HandoffUpdateRequest`], its schema):
/// checked by the engine with the draft they change, every problem at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandoffUpdateInput(pub Map<String, Value>);

impl JsonSchema for HandoffUpdateInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        HandoffUpdateRequest::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        HandoffUpdateRequest::json_schema(generator)
    }
}

/// `handoff_update`: changes a draft; given fields replace the draft's. (The tool takes it as
/// [`HandoffUpdateInput`].)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffUpdateRequest {
    /// The report.
    pub id: String,
    /// Start a new draft revision from the latest submitted one (which stays immutable) and
    /// apply the changes to it. Needed once the latest revision is submitted.
    #[serde(default)]
    pub new_revision: bool,
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// New components (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,
    /// New metrics (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Metric>>,
    /// New evidence (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<Evidence>>,
    /// New risks (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risks: Option<Vec<Risk>>,
    /// New findings (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
}

/// `handoff_submit`: submits the latest draft revision; it becomes immutable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffSubmitRequest {
    /// The report.
    pub id: String,
}

/// `handoff_get`: a report revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffGetRequest {
    /// The report.
    pub id: String,
    /// The revision (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// One sign-off: an approval or a rejection by an identity in one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignOff {
    /// The role signed in.
    pub role: String,
    /// Who signed.
    pub by: String,
    /// Approved or rejected.
    pub decision: Decision,
    /// Their comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// When (Unix ms).
    pub at_ms: u64,
    /// The report revision signed.
    pub revision: u32,
}

/// A report revision as `handoff_get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Handoff {
    /// The report's id.
    pub id: String,
    /// This revision (1, 2, …).
    pub revision: u32,
    /// The latest revision of the report.
    pub latest_revision: u32,
    /// Where this revision is.
    pub state: ReportState,
    /// What it says.
    #[serde(flatten)]
    pub content: ReportContent,
    /// Who created the report.
    pub created_by: String,
    /// When this revision was started (Unix ms).
    pub created_at_ms: u64,
    /// When it was submitted (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
    /// The promotion requests carrying the report.
    pub requests: Vec<String>,
    /// The sign-off table: every sign-off on this revision, by request.
    pub signoffs: BTreeMap<String, Vec<SignOff>>,
}

// ---- pipelines -------------------------------------------------------------------------------

/// A workflow gate: a registered workflow template run on the artifact must complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowGate {
    /// The template's name.
    pub template: String,
    /// Its version (default: the latest when the run starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The run's parameters. In string values `${artifact}`, `${version}`, `${digest}`,
    /// `${stage}` and `${request}` are replaced by the request's.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// A sign-off gate: roles that must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffGate {
    /// The roles asked to sign.
    pub roles: Vec<String>,
    /// How many of them must approve (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Whether a new report revision resets the approvals (default true).
    #[serde(default = "yes")]
    pub renew_on_revision: bool,
}

/// The gates of one stage; every one given must pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// A registered schema (`name` or `name@version`) the artifact's JSON content must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// A workflow template run on the artifact that must complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowGate>,
    /// Roles that must approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signoffs: Option<SignoffGate>,
    /// Minimum time in the previous stage, in seconds (not on the first stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_seconds: Option<u64>,
    /// Let open blocker findings through (default false: they block).
    #[serde(default)]
    pub allow_blockers: bool,
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// The stage's name (letters, digits, `_`, `-`).
    pub name: String,
    /// What entering it takes.
    #[serde(default)]
    pub gates: Gates,
}

/// `promotion_pipeline_set`: defines a pipeline, or a new version of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSetRequest {
    /// The pipeline's name.
    pub name: String,
    /// Artifact names it governs, a glob (`*` any run of characters, `?` one). When several
    /// pipelines match a name, the longest pattern wins.
    pub pattern: String,
    /// The stages, in order.
    pub stages: Vec<StageDef>,
}

/// A pipeline version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// Its version (1, 2, …); a request keeps the version it started with.
    pub version: u32,
    /// The artifact names it governs.
    pub pattern: String,
    /// The stages, in order.
    pub stages: Vec<StageDef>,
    /// When this version was defined (Unix ms).
    pub created_at_ms: u64,
    /// Who defined it.
    pub created_by: String,
}

/// `promotion_pipeline_get`: a pipeline version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineGetRequest {
    /// The pipeline's name.
    pub name: String,
    /// The version (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// `promotion_pipeline_list`: every pipeline's latest version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineListRequest {}

/// Every pipeline's latest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineListResponse {
    /// By name.
    pub pipelines: Vec<Pipeline>,
}

// ---- requests --------------------------------------------------------------------------------

/// Where a promotion request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Collecting sign-offs and gate results.
    Open,
    /// A rejection stopped it until a new report revision is submitted.
    Rejected,
    /// The artifact entered the stage.
    Promoted,
    /// The stage changed (another request won it, or a rollback) after this request opened.
    Superseded,
    /// Stopped for good: the artifact no longer matches its pinned digest.
    Aborted,
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Approve.
    Approve,
    /// Reject (stops the request until a new report revision).
    Reject,
}

/// `promotion_request`: asks for an artifact version to enter the next stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionRequestRequest {
    /// The artifact's name in the registry.
    pub artifact: String,
    /// Its version.
    pub version: String,
    /// The hand-off report that travels with the request (submitted).
    pub handoff_id: String,
    /// The stage to enter; must be the next one for this version (default: the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// `promotion_sign`: an approval or a rejection, in one of the signer's roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionSignRequest {
    /// The request.
    pub request_id: String,
    /// The role signed in: one the signer holds and the stage asks for.
    pub role: String,
    /// `approve` or `reject`.
    pub decision: Decision,
    /// Why (recommended; kept with the sign-off).
    #[serde(default)]
    pub comment: String,
}

/// `promotion_promote`: evaluates every gate and, when all pass, moves the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionPromoteRequest {
    /// The request.
    pub request_id: String,
    /// Start the workflow gate's run again when its last run failed.
    #[serde(default)]
    pub rerun_workflow: bool,
}

/// `promotion_rollback`: a stage goes back to its previous artifact version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionRollbackRequest {
    /// The artifact's name.
    pub artifact: String,
    /// The stage.
    pub stage: String,
    /// Why (required, kept in the history and the audit log).
    pub reason: String,
}

/// `promotion_status`: one request, with its gates evaluated now (nothing is changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionStatusRequest {
    /// The request.
    pub request_id: String,
}

/// `promotion_list`: requests, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionListRequest {
    /// Only requests for this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Only requests for this artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Only requests in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RequestState>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–500; default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `promotion_history`: what was in each stage of an artifact, when, and who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionHistoryRequest {
    /// The artifact's name.
    pub artifact: String,
}

/// How one gate stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateResult {
    /// `previous_stage`, `schema`, `workflow`, `signoffs`, `soak` or `findings`.
    pub gate: String,
    /// Whether it passes.
    pub passed: bool,
    /// Why (what is missing when it fails).
    pub detail: String,
}

/// A promotion request as the tools show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionInfo {
    /// Its id.
    pub request_id: String,
    /// The artifact's name.
    pub artifact: String,
    /// Its version.
    pub version: String,
    /// The pinned digest.
    pub digest: String,
    /// The stage it asks to enter.
    pub stage: String,
    /// The stage the version comes from (none for the first stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<String>,
    /// The pipeline, as `name@version` (the version it started with).
    pub pipeline: String,
    /// Where it is.
    pub state: RequestState,
    /// Who asked.
    pub requested_by: String,
    /// When (Unix ms).
    pub requested_at_ms: u64,
    /// The hand-off report.
    pub handoff_id: String,
    /// The report revision it carries.
    pub handoff_revision: u32,
    /// The sign-offs on that revision.
    pub signoffs: Vec<SignOff>,
    /// The workflow gate's run, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run: Option<String>,
    /// When it was promoted (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at_ms: Option<u64>,
    /// Who promoted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_by: Option<String>,
    /// Why it stopped (superseded or aborted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The gates, evaluated by `promotion_status` and `promotion_promote` (empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
}

/// A page of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionListResponse {
    /// Newest first.
    pub items: Vec<PromotionInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What one stage of an artifact holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StageOccupant {
    /// The stage.
    pub stage: String,
    /// The version in it.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// Since when (Unix ms).
    pub since_ms: u64,
}

/// What happened to an artifact's stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// A version entered the stage.
    Promoted,
    /// The stage went back to its previous version.
    RolledBack,
}

/// One event of an artifact's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEvent {
    /// When (Unix ms).
    pub at_ms: u64,
    /// What happened.
    pub kind: HistoryKind,
    /// The stage.
    pub stage: String,
    /// The version the stage holds after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version it held before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// Who did it.
    pub by: String,
    /// The request that promoted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who signed it off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signoffs: Vec<SignOff>,
    /// Why (a rollback's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An artifact's stages now and every move, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionHistoryResponse {
    /// The artifact.
    pub artifact: String,
    /// What each stage holds now, in pipeline order.
    pub stages: Vec<StageOccupant>,
    /// Every move, oldest first.
    pub events: Vec<HistoryEvent>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackResponse {
    /// The artifact.
    pub artifact: String,
    /// The stage.
    pub stage: String,
    /// The version taken out.
    pub from_version: String,
    /// The version the stage holds now (none: the stage is empty again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
}

// ---- errors ----------------------------------------------------------------------------------

/// Why the promotion engine refused a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum PromotionError {
    /// The request makes no sense; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// A report has problems (all of them).
    #[error("the hand-off report has problems: {}", .0.join("; "))]
    InvalidReport(Vec<String>),
    /// A pipeline definition has problems (all of them).
    #[error("the pipeline has problems: {}", .0.join("; "))]
    InvalidPipeline(Vec<String>),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (roles, separation of duties).
    #[error("{0}")]
    Forbidden(String),
    /// The state does not allow it (a submitted revision, a closed request, a lost race).
    #[error("{0}")]
    Conflict(String),
    /// Gates failed; each one with its reason.
    #[error("not promoted: {} gate(s) failed: {}", .0.len(), gates_text(.0))]
    GatesFailed(Vec<GateResult>),
    /// The artifact no longer matches its pinned digest: the request is aborted.
    #[error("{0}")]
    DigestMismatch(String),
    /// Another engine (registry, validation, workflow) failed on the way.
    #[error("{0}")]
    Engine(String),
    /// The store or the audit log failed.
    #[error("the promotion engine's store failed: {0}")]
    Store(String),
}

fn gates_text(gates: &[GateResult]) -> String {
    gates
        .iter()
        .map(|g| format!("{}: {}", g.gate, g.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

// ---- names a person reads ------------------------------------------------------------------

macro_rules! display_as {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $(Self::$variant => $text),+
                })
            }
        }
    };
}

display_as!(ComponentStatus {
    NotStarted => "not started",
    InProgress => "in progress",
    Done => "done",
    Blocked => "blocked",
});

display_as!(Severity {
    Info => "info",
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
    Blocker => "blocker",
});

display_as!(ReportState {
    Draft => "draft",
    Submitted => "submitted",
    InReview => "in review",
    Approved => "approved",
    ChangesRequested => "changes requested",
    Superseded => "superseded",
});

display_as!(RequestState {
    Open => "open",
    Rejected => "rejected",
    Promoted => "promoted",
    Superseded => "superseded",
    Aborted => "aborted",
});

display_as!(Decision {
    Approve => "approved",
    Reject => "rejected",
});
