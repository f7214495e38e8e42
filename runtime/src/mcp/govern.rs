//! Governance in the MCP handler: the caller of each request, and what it may see and use.
//!
//! HTTP requests carry their caller in the request's extensions (put there by
//! [`crate::governance::http::HttpAuth`]); a stdio connection is the handler's own identity.
//! What a caller may not use is hidden: left out of every list, and answered exactly as a name
//! that does not exist.

use ensemble_actors::governance::policy::Kind;
use rmcp::ErrorData;

use super::McpService;
use ensemble_actors::governance::audit::{AuditKind, AuditRecord, args_digest};

use crate::governance::http::EdgeAdmitted;
use crate::governance::sessions::{CallRecord, ClientInfo};
use crate::governance::{Admission, Governance, Identity};

impl McpService {
    /// Governs this handler: `default` is who a request without an authenticated caller is
    /// (the stdio client, or nobody over HTTP).
    pub fn with_governance(mut self, governance: Governance, default: Identity) -> Self {
        self.governance = governance;
        self.identity = default;
        self
    }

    /// The governance this handler applies.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// Who sent the request whose extensions these are.
    pub(crate) fn caller(&self, extensions: &rmcp::model::Extensions) -> Identity {
        extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Identity>())
            .unwrap_or(&self.identity)
            .clone()
    }

    /// Runs `f` as `who` (what it reads of deferred work is what `who` may see) in a governed
    /// runtime; as it is otherwise.
    pub(crate) async fn as_caller<F: std::future::Future>(
        &self,
        who: &Identity,
        f: F,
    ) -> F::Output {
        if self.governance.is_governed() {
            crate::governance::with_caller(who.clone(), self.governance.clone(), f).await
        } else {
            f.await
        }
    }

    /// Whether `uri` reads as something for `who` (governed runtimes: a resource of deferred
    /// work someone else submitted does not); ungoverned, or a read that fails otherwise: yes.
    pub(crate) async fn readable_by(
        &self,
        who: &Identity,
        uri: &str,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> bool {
        if !self.governance.is_governed() {
            return true;
        }
        let read = self.as_caller(who, self.router.read_resource(uri, cancel.clone()));
        !matches!(
            read.await,
            Err(crate::router::catalog::ResourceError::NotFound(_))
        )
    }

    /// Whether `who` may use `name`. Ungoverned: always.
    pub(crate) fn may(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        !self.governance.is_governed() || self.governance.may_use(who, kind, name)
    }

    /// Whether the HTTP edge already admitted this request's call (and counted it).
    pub(crate) fn admitted_at_edge(extensions: &rmcp::model::Extensions) -> bool {
        extensions
            .get::<axum::http::request::Parts>()
            .is_some_and(|p| p.extensions.get::<EdgeAdmitted>().is_some())
    }

    /// The caller of a `tools/call`, or the error to answer: the unknown tool's own for a tool
    /// the caller may not use, a rate-limit error (code 429) for one over its limit.
    pub(crate) fn admit_call(
        &self,
        extensions: &rmcp::model::Extensions,
        tool: &str,
    ) -> Result<Identity, ErrorData> {
        let who = self.caller(extensions);
        if !self.governance.is_governed() || Self::admitted_at_edge(extensions) {
            return Ok(who);
        }
        match self.governance.admit(&who, tool) {
            Admission::Allowed => Ok(who),
            Admission::Hidden(_) => {
                metrics::counter!("ensemble_governance_denials_total",
                    "kind" => "tool", "identity" => who.subject().to_string())
                .increment(1);
                Err(crate::convert::unknown_tool(tool))
            }
            Admission::Limited(limited) => Err(limited.to_error(tool)),
            Admission::Refused(refusal) => {
                metrics::counter!("ensemble_governance_denials_total",
                    "kind" => "control", "identity" => who.subject().to_string())
                .increment(1);
                Err(refusal.to_error())
            }
        }
    }

    /// Whether a plain call of `tool` may take a fast lane: the caller may use it, and it
    /// counts against no rate limit unless the HTTP edge already counted it (a lane has no
    /// room for a refusal; rmcp's path answers it).
    pub(crate) fn lane_may(&self, who: &Identity, tool: &str, counted: bool) -> bool {
        if !self.governance.is_governed() {
            return true;
        }
        !self.governance.is_edge_tool(tool)
            && self.governance.shows_tool(who, tool)
            && (counted || !self.governance.is_limited(who, tool))
    }

    /// `Err` (the missing resource's own error) unless `who` may read `uri`.
    pub(crate) fn admit_resource(&self, who: &Identity, uri: &str) -> Result<(), ErrorData> {
        if self.may(who, Kind::Resource, uri) {
            return Ok(());
        }
        metrics::counter!("ensemble_governance_denials_total",
            "kind" => "resource", "identity" => who.subject().to_string())
        .increment(1);
        Err(crate::convert::resource_error(
            crate::router::catalog::ResourceError::NotFound(format!(
                "no resource at {uri}; resources/list and resources/templates/list show what \
                 this server has"
            )),
            uri,
        ))
    }

    /// A `tools/call` of a governed runtime: audited, and served as its caller (the
    /// governance tools act as them).
    pub(crate) async fn serve_governed_call(
        &self,
        req: rmcp::model::CallToolRequestParams,
        ctx: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        use rmcp::model::CallToolResponse;
        let who = self.caller(&ctx.extensions);
        let tool = req.name.to_string();
        let audited = if self.governance.audits() {
            let args = serde_json::Value::Object(req.arguments.clone().unwrap_or_default());
            let parts = ctx.extensions.get::<axum::http::request::Parts>();
            let session = match parts.map(|p| p.headers.get("mcp-session-id")) {
                Some(Some(id)) => id.to_str().unwrap_or_default().to_string(),
                // HTTP without a session: stateless requests, grouped per identity.
                Some(None) => format!("stateless:{}", who.subject()),
                None => format!("local-{}", self.session),
            };
            let client = ctx.peer.peer_info().map(|info| ClientInfo {
                name: Some(info.client_info.name.clone()),
                version: Some(info.client_info.version.clone()),
                protocol_version: Some(info.protocol_version.to_string()),
            });
            self.audit_start(&who, &tool, &args, session, client)
                .await?
        } else {
            None
        };
        let answer = crate::governance::with_caller(
            who,
            self.governance.clone(),
            Box::pin(self.serve_call(req, ctx)),
        )
        .await;
        if let Some(call) = audited {
            let outcome = match &answer {
                Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "error",
                Ok(CallToolResponse::Complete(_)) => "ok",
                Ok(CallToolResponse::InputRequired(_)) => "input_required",
                Ok(CallToolResponse::Task(_)) => "task",
                Ok(_) => "ok",
                Err(e) if e.code.0 == crate::governance::limits::RATE_LIMITED => "rate_limited",
                Err(e)
                    if e.code.0 == crate::governance::LOCKED
                        || e.code.0 == crate::governance::SUSPENDED =>
                {
                    "refused"
                }
                Err(_) if !call.allowed => "denied",
                Err(_) => "error",
            };
            self.audit_end(call, outcome).await?;
        }
        answer
    }

    /// Starts the audit of a call `who` makes: for a tool that changes something (not
    /// read-only) an entry is made durable before the call runs, so that a log that cannot be
    /// written stops the call (fail closed). `None` when calls are not audited.
    pub(crate) async fn audit_start(
        &self,
        who: &Identity,
        tool: &str,
        args: &serde_json::Value,
        session: String,
        client: Option<ClientInfo>,
    ) -> Result<Option<AuditedCall>, ErrorData> {
        if !self.governance.audits() {
            return Ok(None);
        }
        let decision = self.governance.decide(who, Kind::Tool, tool);
        let call = AuditedCall {
            who: who.subject().to_string(),
            tool: tool.to_string(),
            digest: args_digest(args),
            session,
            client,
            allowed: decision.allowed,
            rule: decision.rule.to_string(),
            started: std::time::Instant::now(),
        };
        let mutating = self.router.annotations(tool).is_some_and(|a| !a.read_only);
        if decision.allowed && mutating {
            let mut record = call.record(AuditKind::Decision);
            record.outcome = Some("started".into());
            self.governance
                .audit(record)
                .await
                .map_err(|e| audit_unwritable(tool, &e))?;
        }
        Ok(Some(call))
    }

    /// Ends the audit of a call: its outcome, durable before the call is answered.
    pub(crate) async fn audit_end(
        &self,
        call: AuditedCall,
        outcome: &str,
    ) -> Result<(), ErrorData> {
        let mut record = call.record(AuditKind::Call);
        let duration_us = call.started.elapsed().as_micros() as u64;
        record.outcome = Some(outcome.to_string());
        record.duration_us = Some(duration_us);
        let now = crate::governance::controls::now_ms();
        self.governance.sessions().record(
            &call.session,
            &call.who,
            call.client.as_ref(),
            CallRecord {
                tool: call.tool.clone(),
                started_ms: now.saturating_sub(duration_us / 1000),
                duration_us,
                outcome: outcome.to_string(),
            },
            now,
        );
        self.governance
            .audit(record)
            .await
            .map_err(|e| audit_unwritable(&call.tool, &e))
    }
}

/// Who started each MCP task, by task id (shared by every handler, like the tasks).
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskOwners(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
);

/// Owners kept before the ones of tasks gone (expired) are dropped.
const TASK_OWNERS_KEPT: usize = 10_000;

impl McpService {
    /// Records that the caller of this request started `task_id` (governed runtimes).
    pub(crate) fn owns_task(&self, extensions: &rmcp::model::Extensions, task_id: &str) {
        if !self.governance.is_governed() {
            return;
        }
        let who = self.caller(extensions);
        let mut owners = self.task_owners.0.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= TASK_OWNERS_KEPT {
            owners.retain(|id, _| self.tasks.get_task(id).is_ok());
        }
        owners.insert(task_id.to_string(), who.subject().to_string());
    }

    /// `Err` (the unknown task's own error) unless the caller of this request started
    /// `task_id`: another identity cannot see, answer or cancel it.
    pub(crate) fn own_task(
        &self,
        extensions: &rmcp::model::Extensions,
        task_id: &str,
    ) -> Result<(), ErrorData> {
        if !self.governance.is_governed() {
            return Ok(());
        }
        let who = self.caller(extensions);
        let owners = self.task_owners.0.lock().unwrap_or_else(|p| p.into_inner());
        match owners.get(task_id) {
            Some(owner) if owner != who.subject() => Err(ErrorData::invalid_params(
                format!("unknown task: {task_id}"),
                None,
            )),
            _ => Ok(()),
        }
    }
}

/// A call being audited.
pub(crate) struct AuditedCall {
    who: String,
    tool: String,
    digest: [u8; 32],
    session: String,
    client: Option<ClientInfo>,
    allowed: bool,
    rule: String,
    started: std::time::Instant,
}

impl AuditedCall {
    fn record(&self, kind: AuditKind) -> AuditRecord {
        let mut r = AuditRecord::new(kind, self.who.clone(), "tools/call");
        r.session = Some(self.session.clone());
        r.target = Some(self.tool.clone());
        r.args_sha256 = Some(self.digest);
        r.allowed = Some(self.allowed);
        r.rule = Some(self.rule.clone());
        r
    }
}

/// The error of a call whose audit entry could not be written.
fn audit_unwritable(tool: &str, why: &str) -> ErrorData {
    metrics::counter!("ensemble_governance_audit_refusals_total").increment(1);
    ErrorData::internal_error(
        format!(
            "{tool}: the audit log cannot be written ({why}); calls are refused until it can \
             (see the server's log)"
        ),
        None,
    )
}
