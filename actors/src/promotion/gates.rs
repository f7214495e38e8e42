//! The gates of a stage, each evaluated to a [`GateResult`] that says what is missing.

use std::future::Future;
use std::time::Duration;

use ensemble_protocol::promotion::{
    Decision, GateResult, Gates, ReportContent, SignOff, SignoffGate, WorkflowGate,
};
use ensemble_protocol::registry::Artifact;
use ensemble_protocol::validation::ValidateRequest;
use ensemble_supervision::{ActorFault, CancellationToken};
use serde_json::{Value, json};

use super::state::{Request, Slot};
use super::{PromotionArgs, bind_params};
use crate::registry::RegistryMsg;
use crate::validation::ValidationMsg;
use ensemble_protocol::promotion::PromotionError;

fn result(gate: &str, passed: bool, detail: impl Into<String>) -> GateResult {
    GateResult {
        gate: gate.into(),
        passed,
        detail: detail.into(),
    }
}

/// Waits for another engine's answer at most `ms` milliseconds.
pub(super) async fn bounded<T>(
    ms: u64,
    engine: &str,
    call: impl Future<Output = Result<T, ActorFault>>,
) -> Result<T, PromotionError> {
    match tokio::time::timeout(Duration::from_millis(ms), call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(fault)) => Err(PromotionError::Engine(format!("{engine}: {fault}"))),
        Err(_) => Err(PromotionError::Engine(format!(
            "{engine} did not answer within {ms} ms"
        ))),
    }
}

/// Reads the artifact through the registry, its digest checked there; `pinned` must match.
pub(super) async fn read_artifact(
    args: &PromotionArgs,
    name: &str,
    version: &str,
    pinned: Option<&str>,
    cancel: &CancellationToken,
) -> Result<ensemble_protocol::registry::Artifact, PromotionError> {
    use ensemble_protocol::registry::{GetRequest, RegistryError};
    let req = GetRequest {
        name: name.to_string(),
        version: Some(version.to_string()),
    };
    let cancel = cancel.clone();
    let answer = bounded(
        args.config.gate_timeout_ms,
        "the registry",
        args.registry
            .ask(move |reply| RegistryMsg::Get(req, cancel, reply)),
    )
    .await?;
    match answer {
        Ok(artifact) => match pinned {
            Some(pinned) if artifact.digest != pinned => {
                Err(PromotionError::DigestMismatch(format!(
                    "{name}@{version} now reads as {} but the request pinned {pinned}",
                    artifact.digest
                )))
            }
            _ => Ok(artifact),
        },
        Err(e @ RegistryError::DigestMismatch { .. }) => {
            Err(PromotionError::DigestMismatch(e.to_string()))
        }
        Err(e @ RegistryError::NotFound { .. }) if pinned.is_none() => {
            Err(PromotionError::NotFound(e.to_string()))
        }
        Err(e) => Err(PromotionError::Engine(format!("the registry: {e}"))),
    }
}

/// What the other engines say of a request: its artifact (read through the registry, its
/// digest checked against the pinned one), and the schema and workflow gates.
pub(super) struct External {
    /// `Ok`: the artifact reads as pinned.
    pub artifact: Result<(), PromotionError>,
    /// The schema gate, when the stage has one.
    pub schema: Option<GateResult>,
    /// The workflow gate, when the stage has one.
    pub workflow: Option<GateResult>,
    /// A workflow run started for the gate.
    pub workflow_run: Option<String>,
}

/// Asks the other engines about `request`'s gates (outside the actor: its mailbox stays
/// open meanwhile). With `start`, the workflow gate's run is started when none ran (or, with
/// `rerun`, again when the last one did not complete).
pub(super) async fn external(
    args: PromotionArgs,
    mut request: Request,
    gates: Gates,
    start: bool,
    rerun: bool,
    cancel: CancellationToken,
) -> External {
    let before = request.workflow_run.clone();
    let artifact = read_artifact(
        &args,
        &request.artifact,
        &request.version,
        Some(&request.digest),
        &cancel,
    )
    .await;
    let (artifact, schema) = match (artifact, &gates.schema) {
        (Err(e), _) => (Err(e), None),
        (Ok(_), None) => (Ok(()), None),
        (Ok(a), Some(s)) => (Ok(()), Some(schema(&args, s, &a, &cancel).await)),
    };
    let workflow = match (&artifact, &gates.workflow) {
        (Ok(()), Some(w)) => Some(workflow(&args, w, &mut request, start, rerun, &cancel).await),
        _ => None,
    };
    let workflow_run = request.workflow_run.filter(|r| Some(r) != before.as_ref());
    External {
        artifact,
        schema,
        workflow,
        workflow_run,
    }
}

/// The gates the engine decides from its own records, around the other engines' results.
pub(super) struct Local {
    /// `previous_stage`, `stage`.
    pub before: Vec<GateResult>,
    /// `signoffs`, `soak`, `findings`.
    pub after: Vec<GateResult>,
    /// The stage's gates.
    pub stage: Gates,
}

impl Local {
    /// Every gate in order, with the schema and workflow gates' results between.
    pub(super) fn with(
        self,
        schema: Option<GateResult>,
        workflow: Option<GateResult>,
    ) -> Vec<GateResult> {
        let mut all = self.before;
        all.extend(schema);
        all.extend(workflow);
        all.extend(self.after);
        all
    }
}

/// The version must still be in the stage it comes from.
pub(super) fn previous_stage(request: &Request, from: &str, slot: &Slot) -> GateResult {
    match &slot.current {
        Some(o) if o.version == request.version && o.digest == request.digest => result(
            "previous_stage",
            true,
            format!("{} is in `{from}`", request.version),
        ),
        Some(o) => result(
            "previous_stage",
            false,
            format!(
                "{} is no longer in `{from}` (it holds {} now)",
                request.version, o.version
            ),
        ),
        None => result(
            "previous_stage",
            false,
            format!("`{from}` holds nothing now (rolled back?)"),
        ),
    }
}

/// The artifact's JSON content must satisfy the registered schema.
pub(super) async fn schema(
    args: &PromotionArgs,
    schema: &str,
    artifact: &Artifact,
    cancel: &CancellationToken,
) -> GateResult {
    let Some(document) = artifact.content.clone() else {
        return result(
            "schema",
            false,
            format!(
                "{}@{} is not JSON ({}); a schema gate needs JSON content",
                artifact.name, artifact.version, artifact.media_type
            ),
        );
    };
    let req = ValidateRequest {
        schema: Value::String(schema.to_string()),
        document,
    };
    let cancel = cancel.clone();
    let answer = bounded(
        args.config.gate_timeout_ms,
        "the validation engine",
        args.validation
            .ask(move |reply| ValidationMsg::Validate(req, cancel, reply)),
    )
    .await;
    match answer {
        Ok(Ok(v)) if v.valid => result("schema", true, format!("valid against {}", v.schema)),
        Ok(Ok(v)) => {
            let shown: Vec<String> = v
                .errors
                .iter()
                .take(5)
                .map(|e| {
                    let at = if e.path.is_empty() { "(root)" } else { &e.path };
                    format!("{at}: {}", e.message)
                })
                .collect();
            let more = v.errors.len().saturating_sub(shown.len());
            result(
                "schema",
                false,
                format!(
                    "{} violation(s) of {}: {}{}",
                    v.errors.len(),
                    v.schema,
                    shown.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
        }
        Ok(Err(e)) => result("schema", false, e.to_string()),
        Err(e) => result("schema", false, e.to_string()),
    }
}

/// Starts the workflow gate's run for `request`, as its requester; answers the run id.
pub(super) async fn start_run(
    args: &PromotionArgs,
    gate: &WorkflowGate,
    request: &Request,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let mut arguments = json!({
        "template": gate.template,
        "params": bind_params(&gate.params, request),
        "wait": false,
    });
    if let Some(version) = &gate.version {
        arguments["version"] = json!(version);
    }
    let call = args.invoker.invoke_as(
        "workflow_run",
        arguments,
        cancel.child_token(),
        request.requested_by.as_ref(),
    );
    let answer = tokio::time::timeout(Duration::from_millis(args.config.gate_timeout_ms), call)
        .await
        .map_err(|_| "workflow_run did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    answer
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("workflow_run answered without a run id: {answer}"))
}

/// The workflow gate's run must have completed. With `start`, a run is started when none
/// was (or, with `rerun`, when the last one did not complete); `request.workflow_run` then
/// names the new run.
pub(super) async fn workflow(
    args: &PromotionArgs,
    gate: &WorkflowGate,
    request: &mut Request,
    start: bool,
    rerun: bool,
    cancel: &CancellationToken,
) -> GateResult {
    let started = |request: &Request, run: &str| {
        result(
            "workflow",
            false,
            format!(
                "started run {run} of template `{}` for {}@{}; promote again once it has \
                 completed",
                gate.template, request.artifact, request.version
            ),
        )
    };
    let Some(run) = request.workflow_run.clone() else {
        if !start {
            return result(
                "workflow",
                false,
                "no run yet (promotion_promote starts one)",
            );
        }
        return match start_run(args, gate, request, cancel).await {
            Ok(run) => {
                request.workflow_run = Some(run.clone());
                started(request, &run)
            }
            Err(e) => result("workflow", false, format!("the run could not start: {e}")),
        };
    };
    let call = args.invoker.invoke_as(
        "workflow_status",
        json!({ "run_id": run }),
        cancel.child_token(),
        request.requested_by.as_ref(),
    );
    let status = match tokio::time::timeout(
        Duration::from_millis(args.config.gate_timeout_ms),
        call,
    )
    .await
    {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return result("workflow", false, format!("run {run}: {e}")),
        Err(_) => {
            return result(
                "workflow",
                false,
                format!("run {run}: workflow_status did not answer in time"),
            );
        }
    };
    let state = status.get("state").and_then(Value::as_str).unwrap_or("");
    match state {
        "completed" => result(
            "workflow",
            true,
            format!("run {run} of `{}` completed", gate.template),
        ),
        "running" => result("workflow", false, format!("run {run} is still running")),
        other => {
            if start && rerun {
                return match start_run(args, gate, request, cancel).await {
                    Ok(new) => {
                        request.workflow_run = Some(new.clone());
                        started(request, &new)
                    }
                    Err(e) => result(
                        "workflow",
                        false,
                        format!("run {run} {other}; a new run could not start: {e}"),
                    ),
                };
            }
            let failed_step = status
                .get("steps")
                .and_then(Value::as_array)
                .and_then(|steps| {
                    steps
                        .iter()
                        .find(|s| s.get("state").and_then(Value::as_str) == Some("failed"))
                })
                .map(|s| {
                    format!(
                        " (step `{}`: {})",
                        s.get("id").and_then(Value::as_str).unwrap_or("?"),
                        s.get("error").and_then(Value::as_str).unwrap_or("failed")
                    )
                })
                .unwrap_or_default();
            result(
                "workflow",
                false,
                format!(
                    "run {run} of `{}` ended {other}{failed_step}; promote with \
                     `rerun_workflow: true` to run it again",
                    gate.template
                ),
            )
        }
    }
}

/// The approvals on the carried revision in the roles the gate asks for, one per role.
pub(super) fn approvals<'a>(request: &'a Request, gate: &SignoffGate) -> Vec<&'a SignOff> {
    let mut seen = Vec::new();
    request
        .signoffs
        .iter()
        .filter(|s| s.revision == request.handoff_revision && s.decision == Decision::Approve)
        .filter(|s| gate.roles.contains(&s.role))
        .filter(|s| {
            let first = !seen.contains(&s.role);
            seen.push(s.role.clone());
            first
        })
        .collect()
}

/// How many roles must approve.
pub(super) fn needed(gate: &SignoffGate) -> usize {
    gate.min.map_or(gate.roles.len(), |m| m as usize)
}

/// Enough of the asked roles approved the carried revision.
pub(super) fn signoffs(request: &Request, gate: &SignoffGate) -> GateResult {
    let approved = approvals(request, gate);
    let needed = needed(gate);
    let missing: Vec<&str> = gate
        .roles
        .iter()
        .filter(|r| !approved.iter().any(|s| &s.role == *r))
        .map(String::as_str)
        .collect();
    let passed = approved.len() >= needed;
    let detail = if passed {
        format!(
            "{} of {} approvals in ({})",
            approved.len(),
            needed,
            approved
                .iter()
                .map(|s| format!("{} as {}", s.by, s.role))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "{} of {} approvals on revision {} of report {}; waiting for: {}",
            approved.len(),
            needed,
            request.handoff_revision,
            request.handoff_id,
            missing.join(", ")
        )
    };
    result("signoffs", passed, detail)
}

/// The version has been in the previous stage for at least `soak` seconds at `now_ms`.
pub(super) fn soak(soak: u64, from: &str, slot: &Slot, now_ms: u64) -> GateResult {
    let Some(o) = &slot.current else {
        return result("soak", false, format!("`{from}` holds nothing to soak"));
    };
    let held = now_ms.saturating_sub(o.since_ms) / 1000;
    if held >= soak {
        result(
            "soak",
            true,
            format!("in `{from}` for {held} s (at least {soak} s)"),
        )
    } else {
        result(
            "soak",
            false,
            format!(
                "in `{from}` for {held} s of the {soak} s required; {} s to go",
                soak - held
            ),
        )
    }
}

/// No open blocker findings on the carried report revision.
pub(super) fn findings(report: &ReportContent, allow_blockers: bool) -> GateResult {
    let blockers: Vec<&str> = report.open_blockers().map(|f| f.title.as_str()).collect();
    if blockers.is_empty() {
        result("findings", true, "no open blocker findings")
    } else if allow_blockers {
        result(
            "findings",
            true,
            format!(
                "{} open blocker(s), allowed by the stage: {}",
                blockers.len(),
                blockers.join("; ")
            ),
        )
    } else {
        result(
            "findings",
            false,
            format!(
                "{} open blocker finding(s): {}",
                blockers.len(),
                blockers.join("; ")
            ),
        )
    }
}
