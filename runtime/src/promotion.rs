//! The promotion engine over MCP: its tools (each call carries who is acting, from
//! governance) and its resources, `ensemble://promotions/{id}` and `ensemble://handoffs/{id}`,
//! rendered as Markdown a person reads with the JSON beside it.

use ensemble_actors::promotion::PromotionMsg;
use ensemble_actors::promotion::report::{handoff_markdown, promotion_markdown};
use ensemble_actors::promotion::state::Caller;
use ensemble_protocol::promotion::{
    Handoff, HandoffGetRequest, PromotionError, PromotionInfo, PromotionStatusRequest,
};
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::RpcReplyPort;

use crate::config::{RoutePolicies, default_policy};
use crate::engines::engine_tool;
use crate::router::catalog::{ActorResource, IntoContents, ReadResource, ResourceError};
use crate::router::{Annotations, RegisterError, ResourceContents, Router};

/// The resource template of a promotion request.
pub const PROMOTION_URI_TEMPLATE: &str = "ensemble://promotions/{id}";

/// The resource template of a hand-off report.
pub const HANDOFF_URI_TEMPLATE: &str = "ensemble://handoffs/{id}";

/// Who is acting in the tool call being served: its governed identity and roles, or the
/// ungoverned local owner.
fn caller() -> Caller {
    Caller(crate::governance::current_principal())
}

const WRITE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
};

/// Registers the promotion engine's tools and resources.
pub fn register(
    router: &Router,
    slot: &ActorSlot<PromotionMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    use PromotionMsg as M;
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "promotion_pipeline_set",
            "Define a promotion pipeline (or a new version of one): the artifact names it \
             governs (a glob; the longest matching pattern wins), and its stages in order, each \
             with its gates: `schema` (a registered schema the JSON content must satisfy), \
             `workflow` (a template run on the artifact must complete), `signoffs` (roles that \
             must approve, `min` of them), `soak_seconds` (time in the previous stage), \
             `allow_blockers`. Requests keep the version they started with.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        |r, c, p| M::PipelineSet(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "promotion_pipeline_get",
            "A promotion pipeline version (the latest by default).",
            Annotations::READ_ONLY,
        ),
        M::PipelineGet,
    )?;
    router.register_actor(
        tool(
            "promotion_pipeline_list",
            "Every promotion pipeline's latest version (`default`: dev → staging → production \
             for every artifact no other pipeline matches).",
            Annotations::READ_ONLY,
        ),
        M::PipelineList,
    )?;
    router.register_actor(
        tool(
            "handoff_create",
            "Create a hand-off report (revision 1, a draft): title, summary, components \
             (name, status, percent_complete, owner, notes), metrics (name, value, target), \
             evidence (artifact, workflow_run or link), risks and findings (an open `blocker` \
             blocks promotion). Every problem is listed at once.",
            WRITE,
        ),
        |r, c, p| M::HandoffCreate(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "handoff_update",
            "Change a draft hand-off report (given fields replace the draft's). A submitted \
             revision is immutable: `new_revision: true` starts the next revision from it.",
            WRITE,
        ),
        |r, c, p| M::HandoffUpdate(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "handoff_submit",
            "Submit the latest draft revision of a hand-off report; it becomes immutable, \
             supersedes the earlier one, and the promotion requests carrying the report move to \
             it (their sign-offs renewed where the pipeline says so).",
            WRITE,
        ),
        |r, c, p| M::HandoffSubmit(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "handoff_get",
            "A hand-off report revision (the latest by default) with its sign-off table. Also \
             the resource ensemble://handoffs/{id} (Markdown).",
            Annotations::READ_ONLY,
        ),
        M::HandoffGet,
    )?;
    router.register_actor(
        tool(
            "promotion_request",
            "Ask for an artifact version (`artifact`, `version`, pinned by its digest) to enter \
             the next stage of its pipeline, carrying a submitted hand-off report \
             (`handoff_id`). A workflow gate's run starts at once.",
            WRITE,
        ),
        |r, c, p| M::Request(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "promotion_sign",
            "Approve or reject a promotion request in one of your roles (`role`, `decision`: \
             approve | reject, `comment`). You cannot sign in a role you do not hold, twice in \
             one role, or approve a request you opened. A rejection stops the request until a \
             new report revision is submitted.",
            WRITE,
        ),
        |r, c, p| M::Sign(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "promotion_promote",
            "Evaluate every gate of a request and, only when all pass, move the artifact into \
             the stage (atomically, durably, audited). Every failing gate is named with its \
             reason. Idempotent by request id; of requests racing for one stage, one wins.",
            Annotations {
                read_only: false,
                destructive: true,
                idempotent: true,
            },
        ),
        |r, c, p| M::Promote(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "promotion_rollback",
            "Return a stage of an artifact to its previous version, with the reason (kept in \
             the history and the audit log).",
            Annotations {
                read_only: false,
                destructive: true,
                idempotent: false,
            },
        ),
        |r, c, p| M::Rollback(caller(), r, c, p),
    )?;
    router.register_actor(
        tool(
            "promotion_status",
            "A promotion request with every gate evaluated now (nothing is changed). Also the \
             resource ensemble://promotions/{id} (Markdown).",
            Annotations::READ_ONLY,
        ),
        M::Status,
    )?;
    router.register_actor(
        tool(
            "promotion_list",
            "Promotion requests, newest first, filtered by `stage`, `artifact` or `state`; \
             paginated with `cursor`.",
            Annotations::READ_ONLY,
        ),
        M::List,
    )?;
    router.register_actor(
        tool(
            "promotion_history",
            "An artifact's stages now, and every promotion and rollback: what was in each stage \
             when, who did it and who signed.",
            Annotations::READ_ONLY,
        ),
        M::History,
    )?;
    router.register_resource(
        ActorResource {
            uri: PROMOTION_URI_TEMPLATE,
            name: "promotion request",
            description: "A promotion request with its gates evaluated now and its sign-offs \
                          (Markdown, with the JSON as a second content).",
            mime_type: Some("text/markdown"),
            slot: slot.clone(),
            policy: default_policy("promotion_resources_read"),
        },
        read_promotion,
    )?;
    router.register_resource(
        ActorResource {
            uri: HANDOFF_URI_TEMPLATE,
            name: "hand-off report",
            description: "A hand-off report's latest revision with its sign-off table \
                          (Markdown, with the JSON as a second content).",
            mime_type: Some("text/markdown"),
            slot: slot.clone(),
            policy: default_policy("promotion_resources_read"),
        },
        read_handoff,
    )
}

fn read_promotion(
    req: ReadResource,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<PromotionInfo, PromotionError>>,
) -> PromotionMsg {
    let request_id = req.variables.get("id").cloned().unwrap_or_default();
    PromotionMsg::Status(PromotionStatusRequest { request_id }, cancel, reply)
}

fn read_handoff(
    req: ReadResource,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<Handoff, PromotionError>>,
) -> PromotionMsg {
    let id = req.variables.get("id").cloned().unwrap_or_default();
    PromotionMsg::HandoffGet(HandoffGetRequest { id, revision: None }, cancel, reply)
}

/// Markdown first (what a person reads), then the same as JSON.
fn markdown_and_json<T: serde::Serialize>(
    markdown: String,
    value: &T,
    uri: &str,
) -> Vec<ResourceContents> {
    let json = serde_json::to_string_pretty(value).unwrap_or_default();
    vec![
        ResourceContents::text(markdown, uri).with_mime_type("text/markdown"),
        ResourceContents::text(json, uri).with_mime_type("application/json"),
    ]
}

impl IntoContents for PromotionInfo {
    fn into_contents(self, uri: &str) -> Vec<ResourceContents> {
        markdown_and_json(promotion_markdown(&self), &self, uri)
    }
}

impl IntoContents for Handoff {
    fn into_contents(self, uri: &str) -> Vec<ResourceContents> {
        markdown_and_json(handoff_markdown(&self), &self, uri)
    }
}

impl From<PromotionError> for ResourceError {
    fn from(e: PromotionError) -> Self {
        match e {
            PromotionError::NotFound(_) => ResourceError::NotFound(e.to_string()),
            e => ResourceError::Failed(e.to_string()),
        }
    }
}
