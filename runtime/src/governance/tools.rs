//! The governance tools: the operator's controls as MCP tools for administrators (what a role
//! allows decides who that is), and the audit log's query.
//!
//! Engaging `read_only` or `lockdown` is a tool; lifting either is not: it is an operator's
//! action on the machine (`ensemble admin mode normal`), so a stolen administrator token can
//! lock the runtime but never unlock it.

use std::sync::Weak;

use ensemble_supervision::CallError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::controls::{Change, Controls, Mode, SubjectControl, now_ms};
use super::{Governance, Identity, Inner, current_caller};
use crate::router::{Annotations, BoxFuture, DispatchTool, RegisterError, Router};

/// `governance_status`: no arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {}

/// The controls now, and who is asking.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatusResponse {
    /// The caller's subject.
    pub you: String,
    /// The mode, suspended subjects and disabled tools.
    pub controls: Controls,
}

/// `governance_set_mode`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModeRequest {
    /// `read_only` (only read-only tools run) or `lockdown` (only break-glass identities call
    /// tools). `normal` is refused: lifting is an operator action (`ensemble admin mode
    /// normal`).
    pub mode: Mode,
    /// Why (kept with the change and in the audit log).
    pub reason: String,
}

/// `governance_suspend` and `governance_unsuspend`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    /// The subject: a token's `sub`, `apikey:NAME`, or the stdio subject.
    pub subject: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `governance_revoke_tokens`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The subject whose tokens to revoke.
    pub subject: String,
    /// Tokens issued before this time (Unix seconds) are refused; default now (every token
    /// it holds).
    #[serde(default)]
    pub issued_before: Option<i64>,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `governance_disable_tool`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// The tool.
    pub tool: String,
    /// `true` disables it (hidden from everyone), `false` enables it again.
    pub disabled: bool,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// The controls after a change.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangeResponse {
    /// What changed, in words.
    pub changed: String,
    /// The controls now.
    pub controls: Controls,
}

/// `audit_query`: filters and a page.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryRequest {
    /// Entries of this identity (subject).
    #[serde(default)]
    pub identity: Option<String>,
    /// Entries about this tool (or resource URI).
    #[serde(default)]
    pub tool: Option<String>,
    /// Entries with this outcome: ok, error, denied, rate_limited, refused, started, …
    #[serde(default)]
    pub outcome: Option<String>,
    /// Entries at or after this time (Unix ms).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Entries before this time (Unix ms).
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// Continue after this sequence number (the previous page's `next`).
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many entries (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditEntryView {
    /// Its sequence number in the chain.
    pub seq: u64,
    /// The record, as stored.
    #[schemars(with = "serde_json::Value")]
    pub record: ensemble_actors::governance::audit::AuditRecord,
}

/// A page of the audit log, oldest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditQueryResponse {
    /// The entries.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// Entries in the log.
    pub total: u64,
}

/// `session_list`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionListRequest {
    /// Only this identity's sessions.
    #[serde(default)]
    pub identity: Option<String>,
    /// At most this many (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Sessions, most recently seen first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionListResponse {
    /// The sessions.
    pub sessions: Vec<super::sessions::SessionInfo>,
}

/// `session_get`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionGetRequest {
    /// The session id (from `session_list`).
    pub id: String,
}

/// `session_stats`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStatsRequest {
    /// One session's figures; overall when absent.
    #[serde(default)]
    pub session: Option<String>,
}

/// Per-tool figures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionStatsResponse {
    /// By tool: calls, error rate, p50 and p95 latency (ms) of the recent calls.
    pub tools: std::collections::BTreeMap<String, super::sessions::ToolFigures>,
}

/// The tools this module registers.
pub const TOOLS: &[&str] = &[
    "audit_query",
    "session_get",
    "session_list",
    "session_stats",
    "governance_status",
    "governance_set_mode",
    "governance_suspend",
    "governance_unsuspend",
    "governance_revoke_tokens",
    "governance_disable_tool",
];

type Answer<T> = BoxFuture<Result<T, CallError<String>>>;

fn refuse<T: Send + 'static>(message: String) -> Answer<T> {
    Box::pin(async move { Err(CallError::Engine(message)) })
}

/// The governance and the caller of a tool call, or why the tool cannot run.
fn context(weak: &Weak<Inner>) -> Result<(Governance, Identity), String> {
    let governance = weak
        .upgrade()
        .map(Governance)
        .ok_or_else(|| "the runtime is shutting down".to_string())?;
    let caller = current_caller().ok_or_else(|| {
        "governance tools answer MCP callers only (not workflow steps)".to_string()
    })?;
    Ok((governance, caller))
}

fn change(caller: &Identity, reason: &str) -> Change {
    Change {
        since_ms: now_ms(),
        by: caller.subject().to_string(),
        reason: reason.to_string(),
    }
}

/// One change of the controls.
enum Edit {
    Mode(Mode, Change),
    Subject(String, Option<SubjectControl>),
    Tool(String, Option<Change>),
}

/// Applies a control change and audits it; answers once both are durable.
async fn apply(
    governance: Governance,
    caller: Identity,
    what: String,
    target: Option<String>,
    edit: Edit,
) -> Result<ChangeResponse, CallError<String>> {
    let Some(store) = governance.control_store() else {
        return Err(CallError::Engine("governance has no store attached".into()));
    };
    // On record first: a change that is in effect is always in the audit log (a log that
    // cannot be written stops the change).
    governance
        .audit_change(&caller, &what, target.as_deref())
        .await
        .map_err(|e| CallError::Engine(format!("the change was not made: the audit log: {e}")))?;
    let written = match edit {
        Edit::Mode(mode, change) => store.set_mode(mode, change).await,
        Edit::Subject(subject, control) => store.set_subject(&subject, control).await,
        Edit::Tool(tool, change) => store.set_tool(&tool, change).await,
    };
    let controls = written.map_err(|e| {
        CallError::Engine(format!(
            "the change was not made ({e}); the audit log holds the attempt"
        ))
    })?;
    Ok(ChangeResponse {
        changed: what,
        controls: (*controls).clone(),
    })
}

/// Registers one governance tool: `answer` gets the governance and the caller of each call,
/// or the call is refused with why there is none (shutting down; not an MCP caller).
fn register_tool<Req, Resp, F>(
    router: &Router,
    weak: &Weak<Inner>,
    name: &'static str,
    description: &'static str,
    annotations: Annotations,
    answer: F,
) -> Result<(), RegisterError>
where
    Req: serde::de::DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
    Resp: Serialize + JsonSchema + Send + 'static,
    F: Fn(Governance, Identity, Req) -> Answer<Resp> + Send + Sync + 'static,
{
    let weak = weak.clone();
    router.register_dispatch(
        DispatchTool {
            name,
            description,
            annotations,
            policy: crate::config::default_policy(name),
        },
        move |req: Req, _ctx| match context(&weak) {
            Ok((governance, caller)) => answer(governance, caller, req),
            Err(m) => refuse(m),
        },
    )
}

/// Registers the governance tools (only for a governed runtime).
pub fn register(router: &Router, governance: &Governance) -> Result<(), RegisterError> {
    let weak = std::sync::Arc::downgrade(&governance.0);

    register_tool(
        router,
        &weak,
        "governance_status",
        "The operator's controls: the mode (normal, read_only, lockdown), \
                 suspended identities and revoked tokens, disabled tools; and your subject.",
        Annotations::READ_ONLY,
        move |governance, caller, _: StatusRequest| -> Answer<StatusResponse> {
            Box::pin(async move {
                Ok(StatusResponse {
                    you: caller.subject().to_string(),
                    controls: (*governance.controls()).clone(),
                })
            })
        },
    )?;

    register_tool(
        router,
        &weak,
        "governance_set_mode",
        "Engage read_only (only read-only tools run) or lockdown (only \
                 break-glass identities call tools), effective on the next request and kept \
                 across restarts. Lifting is an operator action: `ensemble admin mode normal`.",
        Annotations::IDEMPOTENT_WRITE,
        move |governance, caller, req: SetModeRequest| -> Answer<ChangeResponse> {
            let current = governance.controls().mode.mode;
            let rank = |m: Mode| match m {
                Mode::Normal => 0,
                Mode::ReadOnly => 1,
                Mode::Lockdown => 2,
            };
            if req.mode != Mode::Normal && rank(req.mode) < rank(current) {
                return refuse(format!(
                    "the runtime is in {}: a tool may only tighten the mode; loosening it is an \
                     operator action (`ensemble admin mode {} --url …`)",
                    current.as_str(),
                    req.mode.as_str()
                ));
            }
            if req.mode == Mode::Normal {
                return refuse(
                    "lifting read_only or lockdown is an operator action, never a tool call: run \
                     `ensemble admin mode normal --data-dir DIR` with the server stopped, or \
                     `--url http://127.0.0.1:PORT` on the server's machine"
                        .into(),
                );
            }
            let what = format!("mode set to {} ({})", req.mode.as_str(), req.reason);
            let ch = change(&caller, &req.reason);
            Box::pin(apply(
                governance,
                caller,
                what,
                None,
                Edit::Mode(req.mode, ch),
            ))
        },
    )?;

    register_tool(
        router,
        &weak,
        "governance_suspend",
        "Suspend an identity (a token's subject, `apikey:NAME`, the stdio \
                 subject): every request of it is refused from the next one on, across \
                 restarts, until governance_unsuspend.",
        Annotations::IDEMPOTENT_WRITE,
        move |governance, caller, req: SubjectRequest| -> Answer<ChangeResponse> {
            if governance.is_break_glass_subject(&req.subject) {
                return refuse(format!(
                    "`{}` is a break-glass identity: remove it from governance.break_glass first",
                    req.subject
                ));
            }
            let mut control = governance
                .controls()
                .subjects
                .get(&req.subject)
                .cloned()
                .unwrap_or_default();
            control.suspended = true;
            control.change = change(&caller, &req.reason);
            let what = format!("suspended {} ({})", req.subject, req.reason);
            let edit = Edit::Subject(req.subject.clone(), Some(control));
            Box::pin(apply(governance, caller, what, Some(req.subject), edit))
        },
    )?;

    register_tool(
        router,
        &weak,
        "governance_unsuspend",
        "Lift an identity's suspension and its token revocations: it starts \
                 afresh from the next request.",
        Annotations::IDEMPOTENT_WRITE,
        move |governance, caller, req: SubjectRequest| -> Answer<ChangeResponse> {
            // Lifts the suspension and any token revocation: the subject starts afresh.
            let next = None;
            let what = format!(
                "lifted the suspension and token revocations of {} ({})",
                req.subject, req.reason
            );
            let edit = Edit::Subject(req.subject.clone(), next);
            Box::pin(apply(governance, caller, what, Some(req.subject), edit))
        },
    )?;

    register_tool(
        router,
        &weak,
        "governance_revoke_tokens",
        "Revoke every bearer token of a subject issued before a time (default: \
                 now): those tokens are refused with 401 from the next request on; tokens issued \
                 later are accepted.",
        Annotations::IDEMPOTENT_WRITE,
        move |governance, caller, req: RevokeRequest| -> Answer<ChangeResponse> {
            let before = req
                .issued_before
                .unwrap_or_else(|| (now_ms() / 1000) as i64 + 1);
            let mut control = governance
                .controls()
                .subjects
                .get(&req.subject)
                .cloned()
                .unwrap_or_default();
            control.revoke_before = Some(control.revoke_before.map_or(before, |b| b.max(before)));
            control.change = change(&caller, &req.reason);
            let what = format!(
                "revoked the tokens of {} issued before {before}",
                req.subject
            );
            let edit = Edit::Subject(req.subject.clone(), Some(control));
            Box::pin(apply(governance, caller, what, Some(req.subject), edit))
        },
    )?;

    register_tool(
        router,
        &weak,
        "audit_query",
        "Read the audit log (decisions, tool calls, governance changes), oldest \
                 first, filtered by identity, tool, outcome and time; paginated with `after`. \
                 Arguments appear as their SHA-256, never in clear.",
        Annotations::READ_ONLY,
        move |governance, _caller, req: AuditQueryRequest| -> Answer<AuditQueryResponse> {
            Box::pin(async move {
                let Some(log) = governance.audit_log() else {
                    return Err(CallError::Engine("this runtime keeps no audit log".into()));
                };
                let filter = ensemble_actors::governance::audit::AuditFilter {
                    identity: req.identity,
                    target: req.tool,
                    outcome: req.outcome,
                    kind: None,
                    since_ms: req.since_ms,
                    until_ms: req.until_ms,
                };
                let limit = req.limit.unwrap_or(100).clamp(1, 1000);
                let page = log
                    .query(&filter, req.after, limit)
                    .map_err(|e| CallError::Engine(format!("the audit log cannot be read: {e}")))?;
                Ok(AuditQueryResponse {
                    entries: page
                        .entries
                        .into_iter()
                        .map(|(seq, record)| AuditEntryView { seq, record })
                        .collect(),
                    next: page.next,
                    total: log.len(),
                })
            })
        },
    )?;

    register_tool(
        router,
        &weak,
        "session_list",
        "MCP sessions (HTTP sessions, stdio connections, an identity's \
                 stateless requests), most recently seen first: identity, client, protocol \
                 version, first and last seen, calls.",
        Annotations::READ_ONLY,
        move |governance, _, req: SessionListRequest| -> Answer<SessionListResponse> {
            let limit = req.limit.unwrap_or(100).clamp(1, 10_000);
            let sessions = governance.sessions().list(req.identity.as_deref(), limit);
            Box::pin(async move { Ok(SessionListResponse { sessions }) })
        },
    )?;

    register_tool(
        router,
        &weak,
        "session_get",
        "One session: who, its client, its recent calls (tool, start, \
                 duration, outcome) and its per-tool figures. Also the resource \
                 ensemble://sessions/{id}.",
        Annotations::READ_ONLY,
        move |governance, _, req: SessionGetRequest| -> Answer<super::sessions::SessionDetail> {
            match governance.sessions().get(&req.id) {
                Some(detail) => Box::pin(async move { Ok(detail) }),
                None => refuse(format!(
                    "no session `{}` (it may have been dropped by retention); session_list shows \
                     the sessions kept",
                    req.id
                )),
            }
        },
    )?;

    register_tool(
        router,
        &weak,
        "session_stats",
        "Per-tool figures (calls, error rate, p50/p95 latency in ms) of one \
                 session, or over all sessions.",
        Annotations::READ_ONLY,
        move |governance, _, req: SessionStatsRequest| -> Answer<SessionStatsResponse> {
            match governance.sessions().stats(req.session.as_deref()) {
                Some(tools) => Box::pin(async move { Ok(SessionStatsResponse { tools }) }),
                None => refuse(format!(
                    "no session `{}`; session_list shows the sessions kept",
                    req.session.unwrap_or_default()
                )),
            }
        },
    )?;

    let w = weak.clone();
    router.register_resource_fn(
        "ensemble://sessions/{id}",
        "session",
        "One MCP session: who, its client, its recent calls and per-tool figures (as \
         session_get).",
        Some("application/json"),
        move |read, _cancel| {
            let governance = w.upgrade().map(Governance);
            Box::pin(async move {
                let id = read.variables.get("id").cloned().unwrap_or_default();
                let detail = governance
                    .and_then(|g| g.sessions().get(&id))
                    .ok_or_else(|| {
                        crate::router::catalog::ResourceError::NotFound(format!(
                            "no session `{id}`; session_list shows the sessions kept"
                        ))
                    })?;
                let json = serde_json::to_string(&detail)
                    .map_err(|e| crate::router::catalog::ResourceError::Failed(e.to_string()))?;
                Ok(vec![
                    crate::router::content::ResourceContents::text(json, read.uri)
                        .with_mime_type("application/json".to_string()),
                ])
            })
        },
    )?;

    register_tool(
        router,
        &weak,
        "governance_disable_tool",
        "Disable a tool for everyone (it answers as unknown) or enable it \
                 again; effective on the next request and kept across restarts.",
        Annotations::IDEMPOTENT_WRITE,
        move |governance, caller, req: DisableRequest| -> Answer<ChangeResponse> {
            if TOOLS.contains(&req.tool.as_str()) {
                return refuse("the governance tools cannot be disabled".into());
            }
            let what = format!(
                "{} {} ({})",
                if req.disabled { "disabled" } else { "enabled" },
                req.tool,
                req.reason
            );
            let ch = req.disabled.then(|| change(&caller, &req.reason));
            let edit = Edit::Tool(req.tool.clone(), ch);
            Box::pin(apply(governance, caller, what, Some(req.tool), edit))
        },
    )?;
    Ok(())
}
