//! The orchestration engines' way to call tools, governed: a workflow step or a queued task
//! runs with the rights of whoever submitted it (its [`Principal`]), decided when it runs by
//! the policy and the operator's controls in force then, also after a crash and a resume. Each
//! such call is audited as its submitter's.

use std::sync::{Arc, OnceLock};

use ensemble_actors::governance::audit::{AuditKind, AuditRecord, args_digest};
use ensemble_actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble_protocol::principal::Principal;
use ensemble_supervision::CancellationToken;
use serde_json::Value;

use super::{Admission, Governance};
use crate::router::Router;

/// The router, with the runtime's governance once it exists (it is built after the engines'
/// tools are registered, and set before any engine starts).
#[derive(Clone)]
pub struct GovernedInvoker {
    router: Router,
    governance: Arc<OnceLock<Governance>>,
}

impl GovernedInvoker {
    /// An invoker over `router`, ungoverned until [`govern`](Self::govern).
    pub fn new(router: Router) -> Self {
        Self {
            router,
            governance: Arc::new(OnceLock::new()),
        }
    }

    /// Governs every call made from now on (once; later calls are ignored).
    pub fn govern(&self, governance: Governance) {
        let _ = self.governance.set(governance);
    }
}

impl ToolInvoker for GovernedInvoker {
    fn traits(&self, tool: &str) -> Option<ToolTraits> {
        self.router.traits(tool)
    }

    fn invoke(&self, tool: &str, arguments: Value, cancel: CancellationToken) -> InvokeFuture {
        self.router.invoke(tool, arguments, cancel)
    }

    fn invoke_as(
        &self,
        tool: &str,
        arguments: Value,
        cancel: CancellationToken,
        submitter: Option<&Principal>,
    ) -> InvokeFuture {
        let governance = match (self.governance.get(), submitter) {
            (Some(g), Some(_)) if g.is_governed() => g.clone(),
            _ => return self.router.invoke(tool, arguments, cancel),
        };
        let Some(principal) = submitter else {
            return self.router.invoke(tool, arguments, cancel);
        };
        let who = governance.identity_of(principal);
        let mut record = AuditRecord::new(AuditKind::Call, who.subject(), "tools/call");
        record.session = Some("deferred".into());
        record.target = Some(tool.to_string());
        record.args_sha256 = Some(args_digest(&arguments));
        let decision =
            governance.decide(&who, ensemble_actors::governance::policy::Kind::Tool, tool);
        record.rule = Some(decision.rule.to_string());
        let refused = match governance.admit(&who, tool) {
            Admission::Allowed => None,
            Admission::Hidden(rule) => Some((
                "denied",
                format!(
                    "`{}` may not call `{tool}` ({rule}): a step runs with the rights of whoever \
                     submitted it",
                    who.subject()
                ),
            )),
            Admission::Limited(l) => Some(("rate_limited", l.to_error(tool).message.to_string())),
            Admission::Refused(r) => Some(("refused", r.message)),
        };
        let mutating = self.router.traits(tool).is_some_and(|t| !t.read_only);
        // The call acts as the submitter: work it submits in turn (a step calling
        // `task_submit` or `workflow_run`) is theirs too, and governed as theirs.
        let call = super::with_caller(
            who.clone(),
            governance.clone(),
            self.router.invoke(tool, arguments, cancel),
        );
        let tool = tool.to_string();
        Box::pin(async move {
            let started = std::time::Instant::now();
            if refused.is_none() && mutating {
                // A change is on record before it is made; a log that cannot be written stops it.
                let mut before = record.clone();
                before.kind = AuditKind::Decision;
                before.allowed = Some(true);
                before.outcome = Some("started".into());
                governance
                    .audit(before)
                    .await
                    .map_err(|e| InvokeError::Failed(format!("{tool}: the audit log: {e}")))?;
            }
            if let Some((outcome, why)) = refused {
                record.kind = AuditKind::Decision;
                record.allowed = Some(false);
                record.outcome = Some(outcome.into());
                governance
                    .audit(record)
                    .await
                    .map_err(|e| InvokeError::Failed(format!("{tool}: the audit log: {e}")))?;
                return Err(InvokeError::Failed(why));
            }
            let result = call.await;
            record.allowed = Some(true);
            record.outcome = Some(match &result {
                Ok(_) => "ok".into(),
                Err(InvokeError::Cancelled) => "cancelled".into(),
                Err(_) => "error".into(),
            });
            record.duration_us = Some(started.elapsed().as_micros() as u64);
            governance
                .audit(record)
                .await
                .map_err(|e| InvokeError::Failed(format!("{tool}: the audit log: {e}")))?;
            result
        })
    }
}
