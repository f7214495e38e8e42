//! The promotion engine: gated, signed-off promotion of registry artifacts through a
//! pipeline of stages, with the hand-off reports that travel with each request.
//!
//! One actor owns every record (pipelines, reports, requests, what each stage holds), so
//! requests are decided one at a time: two requests racing for one stage are decided in turn,
//! and the second finds the stage changed under it. A transition is one atomic batch in the
//! store together with its audit records (an outbox); it is answered once the batch is
//! durable and the records are in the governance audit log. Records a crash left in the
//! outbox are written to the audit log when the engine starts again, so a promotion is never
//! in the store without its audit entry.

mod gates;
pub mod pipeline;
pub mod report;
pub mod state;

use std::sync::{Arc, OnceLock};

use ensemble_protocol::promotion::*;
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Map, Value};

use crate::clock::unix_ms;
use crate::governance::audit::{AuditFilter, AuditKind, AuditLog, AuditRecord};
use crate::invoke::ToolInvoker;
use crate::registry::RegistryMsg;
use crate::store::{Store, StoreError};
use crate::validation::ValidationMsg;
use state::{Caller, Change, Occupant, Records, ReportHead, Request, Revision};

/// The promotion engine's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, PromotionError>>;

/// The audit records a transition committed, with their outbox numbers.
type Audit = Vec<(u64, AuditRecord)>;

/// Where the governance audit log is, once the runtime has opened it (never, ungoverned).
pub type AuditSink = Arc<OnceLock<AuditLog>>;

/// Messages the promotion actor handles; each carries who is acting.
#[derive(Debug)]
pub enum PromotionMsg {
    /// `promotion_pipeline_set`.
    PipelineSet(
        Caller,
        PipelineSetRequest,
        CancellationToken,
        Reply<Pipeline>,
    ),
    /// `promotion_pipeline_get`.
    PipelineGet(PipelineGetRequest, CancellationToken, Reply<Pipeline>),
    /// `promotion_pipeline_list`.
    PipelineList(
        PipelineListRequest,
        CancellationToken,
        Reply<PipelineListResponse>,
    ),
    /// `handoff_create`.
    HandoffCreate(
        Caller,
        HandoffCreateRequest,
        CancellationToken,
        Reply<Handoff>,
    ),
    /// `handoff_update`.
    HandoffUpdate(
        Caller,
        HandoffUpdateInput,
        CancellationToken,
        Reply<Handoff>,
    ),
    /// `handoff_submit`.
    HandoffSubmit(
        Caller,
        HandoffSubmitRequest,
        CancellationToken,
        Reply<Handoff>,
    ),
    /// `handoff_get`.
    HandoffGet(HandoffGetRequest, CancellationToken, Reply<Handoff>),
    /// `promotion_request`.
    Request(
        Caller,
        PromotionRequestRequest,
        CancellationToken,
        Reply<PromotionInfo>,
    ),
    /// `promotion_sign`.
    Sign(
        Caller,
        PromotionSignRequest,
        CancellationToken,
        Reply<PromotionInfo>,
    ),
    /// `promotion_promote`.
    Promote(
        Caller,
        PromotionPromoteRequest,
        CancellationToken,
        Reply<PromotionInfo>,
    ),
    /// `promotion_rollback`.
    Rollback(
        Caller,
        PromotionRollbackRequest,
        CancellationToken,
        Reply<RollbackResponse>,
    ),
    /// `promotion_status`.
    Status(
        PromotionStatusRequest,
        CancellationToken,
        Reply<PromotionInfo>,
    ),
    /// `promotion_list`.
    List(
        PromotionListRequest,
        CancellationToken,
        Reply<PromotionListResponse>,
    ),
    /// `promotion_history`.
    History(
        PromotionHistoryRequest,
        CancellationToken,
        Reply<PromotionHistoryResponse>,
    ),
}

/// How the promotion engine behaves (`[promotion]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionConfig {
    /// Whoever opened a request may not approve it (governed runtimes only: ungoverned, the
    /// local owner is the only identity).
    pub separation_of_duties: bool,
    /// How long a gate's call to another engine may take, in milliseconds.
    pub gate_timeout_ms: u64,
}

impl Default for PromotionConfig {
    fn default() -> Self {
        Self {
            separation_of_duties: true,
            gate_timeout_ms: 30_000,
        }
    }
}

/// What the promotion actor starts with.
#[derive(Clone)]
pub struct PromotionArgs {
    /// Its records' home.
    pub store: Store,
    /// The registry (artifacts are read and their digests checked through it).
    pub registry: ActorSlot<RegistryMsg>,
    /// The validation engine (schema gates).
    pub validation: ActorSlot<ValidationMsg>,
    /// Tools: workflow gates start and watch runs through it, as the requester.
    pub invoker: Arc<dyn ToolInvoker>,
    /// The governance audit log, when there is one.
    pub audit: AuditSink,
    /// Behaviour.
    pub config: PromotionConfig,
}

/// The promotion actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromotionActor;

/// The actor's state.
pub struct PromotionState {
    records: Records,
    args: PromotionArgs,
}

fn store_err(e: StoreError) -> PromotionError {
    PromotionError::Store(e.to_string())
}

fn bad(message: impl Into<String>) -> PromotionError {
    PromotionError::BadRequest(message.into())
}

/// An audit record of a promotion transition by `who`.
fn transition(who: &Caller, action: &str, target: String, detail: String) -> AuditRecord {
    let mut record = AuditRecord::new(AuditKind::Change, who.subject(), action);
    record.target = Some(target);
    record.allowed = Some(true);
    record.outcome = Some("ok".into());
    record.detail = Some(detail);
    record
}

impl PromotionState {
    fn audit_log(&self) -> Option<&AuditLog> {
        self.args.audit.get()
    }

    /// Refuses a change up front when its audit record could not be written.
    fn audit_ready(&self) -> Result<(), PromotionError> {
        match self.audit_log() {
            Some(log) => log.writable().map_err(|e| {
                PromotionError::Store(format!(
                    "the audit log cannot be written ({e}); nothing was changed"
                ))
            }),
            None => Ok(()),
        }
    }

    /// A change with audit records only when there is an audit log.
    fn change(&mut self) -> Change<'_> {
        let auditing = self.args.audit.get().is_some();
        self.records.change().auditing(auditing)
    }

    /// Writes records a crash left in the outbox to the audit log (those already there are
    /// not written twice), then clears it.
    async fn drain_outbox(&self) -> Result<(), PromotionError> {
        let pending = self.records.outbox()?;
        if pending.is_empty() {
            return Ok(());
        }
        let Some(log) = self.audit_log() else {
            return Ok(());
        };
        let since = pending.iter().map(|(_, r)| r.ts_unix_ms).min().unwrap_or(0);
        let filter = AuditFilter {
            kind: Some(AuditKind::Change),
            since_ms: Some(since),
            ..Default::default()
        };
        let mut logged = Vec::new();
        let mut after = None;
        loop {
            let page = log
                .query(&filter, after, 1000)
                .map_err(|e| PromotionError::Store(e.to_string()))?;
            logged.extend(page.entries.into_iter().map(|(_, r)| r));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let missing: Vec<AuditRecord> = pending
            .iter()
            .filter(|(_, r)| !logged.contains(r))
            .map(|(_, r)| r.clone())
            .collect();
        tracing::info!(
            pending = pending.len(),
            missing = missing.len(),
            "promotion: writing the audit records an unclean stop left behind"
        );
        log.append_many(missing)
            .await
            .map_err(|e| PromotionError::Store(format!("the audit log: {e}")))?;
        let numbers: Vec<u64> = pending.iter().map(|(n, _)| *n).collect();
        state::clear_outbox(&self.records.tree, &numbers)?;
        self.records.store.flush().await.map_err(store_err)
    }

    /// Answers a transition once what it committed is durable and its audit records are
    /// logged, without holding the mailbox (concurrent transitions share flushes). A refusal
    /// that committed nothing is answered at once.
    fn finish<T: Send + 'static>(
        &self,
        audit: Audit,
        reply: Reply<T>,
        answer: Result<T, PromotionError>,
    ) {
        if answer.is_err() && audit.is_empty() {
            let _ = reply.send(answer);
            return;
        }
        let store = self.records.store.clone();
        let tree = self.records.tree.clone();
        let numbers: Vec<u64> = audit.iter().map(|(n, _)| *n).collect();
        // Enqueued now, so that the log keeps the order the engine decided in.
        let logged = self
            .audit_log()
            .filter(|_| !audit.is_empty())
            .map(|log| log.enqueue_many(audit.into_iter().map(|(_, r)| r)));
        tokio::spawn(async move {
            let durable = async {
                store.flush().await.map_err(store_err)?;
                if let Some(logged) = logged {
                    let unlogged = |e| {
                        PromotionError::Store(format!(
                            "the change is stored; its audit record is written at the next \
                             start: the audit log: {e}"
                        ))
                    };
                    logged.map_err(unlogged)?.await.map_err(unlogged)?;
                    // Durable with a later flush; a crash before it only repeats a check.
                    if let Err(e) = state::clear_outbox(&tree, &numbers) {
                        tracing::warn!(error = %e, "promotion: the outbox was not cleared");
                    }
                }
                Ok::<(), PromotionError>(())
            };
            let answer = match durable.await {
                Ok(()) => answer,
                Err(e) => answer.and(Err(e)),
            };
            let _ = reply.send(answer);
        });
    }

    // ---- pipelines ---------------------------------------------------------------------------

    fn ensure_default_pipeline(&mut self) -> Result<bool, PromotionError> {
        if self.records.scan_json::<Pipeline>(b"p").next().is_some() {
            return Ok(false);
        }
        let def = pipeline::default_pipeline();
        let p = Pipeline {
            name: def.name,
            version: 1,
            pattern: def.pattern,
            stages: def.stages,
            created_at_ms: unix_ms(),
            created_by: "ensemble".into(),
        };
        let mut change = self.records.change();
        change.put_json(&state::pipeline_key(&p.name, 1), &p)?;
        change.commit()?;
        Ok(true)
    }

    fn pipeline_set(
        &mut self,
        who: &Caller,
        req: PipelineSetRequest,
    ) -> Result<(Pipeline, Audit), PromotionError> {
        let problems = pipeline::problems(&req);
        if !problems.is_empty() {
            return Err(PromotionError::InvalidPipeline(problems));
        }
        let latest = match self.records.pipeline(&req.name, None) {
            Ok(p) => Some(p),
            Err(PromotionError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(p) = &latest
            && p.pattern == req.pattern
            && p.stages == req.stages
        {
            return Ok((p.clone(), Vec::new()));
        }
        self.audit_ready()?;
        let p = Pipeline {
            version: latest.map_or(1, |p| p.version + 1),
            name: req.name,
            pattern: req.pattern,
            stages: req.stages,
            created_at_ms: unix_ms(),
            created_by: who.subject().to_string(),
        };
        let mut change = self.change();
        change.put_json(&state::pipeline_key(&p.name, p.version), &p)?;
        change.audit(transition(
            who,
            "promotion/pipeline_set",
            format!("pipeline:{}", p.name),
            format!("pipeline {}@{} for `{}`", p.name, p.version, p.pattern),
        ))?;
        Ok((p, change.commit()?))
    }

    // ---- reports -----------------------------------------------------------------------------

    fn handoff_create(
        &mut self,
        who: &Caller,
        req: HandoffCreateRequest,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let content =
            report::check_content(&Value::Object(req.0)).map_err(PromotionError::InvalidReport)?;
        let text =
            serde_json::to_string(&content).map_err(|e| PromotionError::Store(e.to_string()))?;
        self.audit_ready()?;
        let mut change = self.change();
        let id = format!("ho-{}", change.next("handoff"));
        change.put(
            &state::head_key(&id),
            &ReportHead {
                latest: 1,
                created_by: who.subject().to_string(),
                requests: Vec::new(),
            },
        )?;
        change.put(
            &state::revision_key(&id, 1),
            &Revision {
                content: text,
                state: ReportState::Draft,
                created_at_ms: unix_ms(),
                submitted_at_ms: None,
            },
        )?;
        change.audit(transition(
            who,
            "promotion/handoff_create",
            format!("handoff:{id}"),
            format!("report {id} revision 1: {}", content.title),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, None)?, audit))
    }

    fn handoff_update(
        &mut self,
        who: &Caller,
        req: HandoffUpdateInput,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let mut fields = req.0;
        let id = match fields.remove("id") {
            Some(Value::String(id)) => id,
            Some(_) => return Err(bad("`id` must be a string, the report's id")),
            None => return Err(bad("`id` is missing: give the report's id")),
        };
        let new_revision = match fields.remove("new_revision") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(bad("`new_revision` must be true or false")),
        };
        let head = self.records.head(&id)?;
        let latest = self.records.revision(&id, head.latest)?;
        let (number, base) = match (latest.state, new_revision) {
            (ReportState::Draft, _) => (head.latest, latest),
            (_, true) => (head.latest + 1, latest),
            (state, false) => {
                return Err(PromotionError::Conflict(format!(
                    "revision {} of `{id}` is {} and immutable; pass `new_revision: true` to \
                     start revision {} from it",
                    head.latest,
                    state_name(state),
                    head.latest + 1
                )));
            }
        };
        let mut merged = match serde_json::from_str::<Value>(&base.content) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(PromotionError::Store(
                    "a stored report is unreadable".into(),
                ));
            }
        };
        for (k, v) in fields {
            merged.insert(k, v);
        }
        let content =
            report::check_content(&Value::Object(merged)).map_err(PromotionError::InvalidReport)?;
        let text =
            serde_json::to_string(&content).map_err(|e| PromotionError::Store(e.to_string()))?;
        self.audit_ready()?;
        let mut change = self.change();
        let created_at_ms = if number == head.latest {
            base.created_at_ms
        } else {
            unix_ms()
        };
        change.put(
            &state::revision_key(&id, number),
            &Revision {
                content: text,
                state: ReportState::Draft,
                created_at_ms,
                submitted_at_ms: None,
            },
        )?;
        if number != head.latest {
            change.put(
                &state::head_key(&id),
                &ReportHead {
                    latest: number,
                    ..head
                },
            )?;
        }
        change.audit(transition(
            who,
            "promotion/handoff_update",
            format!("handoff:{id}"),
            format!("report {id} revision {number} (draft) changed"),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, Some(number))?, audit))
    }

    fn handoff_submit(
        &mut self,
        who: &Caller,
        req: HandoffSubmitRequest,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let id = req.id;
        let head = self.records.head(&id)?;
        let mut latest = self.records.revision(&id, head.latest)?;
        if latest.state != ReportState::Draft {
            return Err(PromotionError::Conflict(format!(
                "revision {} of `{id}` is already {}; handoff_update with `new_revision: true` \
                 starts the next one",
                head.latest,
                state_name(latest.state)
            )));
        }
        self.audit_ready()?;
        let number = head.latest;
        let now = unix_ms();
        latest.state = ReportState::Submitted;
        latest.submitted_at_ms = Some(now);
        let previous = self.records.latest_submitted(&id)?;
        // The requests carrying the report move to the new revision.
        let mut moved = Vec::new();
        for request_id in &head.requests {
            let mut request = self.records.request(request_id)?;
            if !matches!(request.state, RequestState::Open | RequestState::Rejected) {
                continue;
            }
            let renew = self
                .stage_gates(&request)?
                .signoffs
                .is_none_or(|s| s.renew_on_revision);
            if !renew {
                // Approvals carry over to the new revision.
                let carried: Vec<SignOff> = request
                    .current_signoffs()
                    .into_iter()
                    .filter(|s| s.decision == Decision::Approve)
                    .map(|s| SignOff {
                        revision: number,
                        ..s
                    })
                    .collect();
                request.signoffs.extend(carried);
            }
            request.handoff_revision = number;
            request.state = RequestState::Open;
            moved.push(request);
        }
        let mut change = self.change();
        change.put(&state::revision_key(&id, number), &latest)?;
        if let Some((n, mut rev)) = previous {
            rev.state = ReportState::Superseded;
            change.put(&state::revision_key(&id, n), &rev)?;
        }
        for request in &moved {
            change.put_json(&state::request_key(request.n), request)?;
        }
        change.audit(transition(
            who,
            "promotion/handoff_submit",
            format!("handoff:{id}"),
            format!(
                "report {id} revision {number} submitted{}",
                if moved.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; requests {} now carry it",
                        moved.iter().map(Request::id).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, Some(number))?, audit))
    }

    // ---- requests ----------------------------------------------------------------------------

    fn pipeline_of(&self, request: &Request) -> Result<Pipeline, PromotionError> {
        self.records
            .pipeline(&request.pipeline.0, Some(request.pipeline.1))
    }

    fn stage_gates(&self, request: &Request) -> Result<Gates, PromotionError> {
        let pipeline = self.pipeline_of(request)?;
        pipeline
            .stages
            .into_iter()
            .find(|s| s.name == request.stage)
            .map(|s| s.gates)
            .ok_or_else(|| {
                PromotionError::Store(format!(
                    "pipeline {}@{} has no stage `{}`",
                    request.pipeline.0, request.pipeline.1, request.stage
                ))
            })
    }

    /// Reads the artifact through the registry, its digest checked there; `pinned` must match.
    async fn read_artifact(
        &self,
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
        let answer = gates::bounded(
            self.args.config.gate_timeout_ms,
            "the registry",
            self.args
                .registry
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

    async fn request(
        &mut self,
        who: &Caller,
        req: PromotionRequestRequest,
        cancel: &CancellationToken,
    ) -> Result<(PromotionInfo, Audit), PromotionError> {
        let artifact = self
            .read_artifact(&req.artifact, &req.version, None, cancel)
            .await?;
        let version = artifact.version.clone();
        let pipelines = self.records.pipelines()?;
        let pipeline = pipeline::governing(&pipelines, &req.artifact).ok_or_else(|| {
            PromotionError::NotFound(format!(
                "no pipeline governs `{}`; promotion_pipeline_set defines one",
                req.artifact
            ))
        })?;
        // The furthest stage holding this version; the next one is asked for.
        let mut at = None;
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let slot = self.records.slot(&req.artifact, &stage.name)?;
            if slot.current.as_ref().is_some_and(|o| o.version == version) {
                at = Some(i);
            }
        }
        let next = at.map_or(0, |i| i + 1);
        let Some(target) = pipeline.stages.get(next) else {
            return Err(PromotionError::Conflict(format!(
                "{}@{version} is already in `{}`, the last stage of pipeline {}@{}",
                req.artifact,
                pipeline
                    .stages
                    .last()
                    .map(|s| s.name.as_str())
                    .unwrap_or(""),
                pipeline.name,
                pipeline.version
            )));
        };
        if let Some(asked) = &req.stage
            && asked != &target.name
        {
            let known = pipeline.stages.iter().any(|s| &s.name == asked);
            return Err(bad(if known {
                format!(
                    "{}@{version} can enter `{}` next, not `{asked}`: stages are entered in \
                     order",
                    req.artifact, target.name
                )
            } else {
                format!(
                    "pipeline {}@{} has no stage `{asked}`; its stages: {}",
                    pipeline.name,
                    pipeline.version,
                    stage_names(pipeline)
                )
            }));
        }
        let from_stage = next
            .checked_sub(1)
            .and_then(|i| pipeline.stages.get(i))
            .map(|s| s.name.clone());
        let Some((revision, _)) = self.records.latest_submitted(&req.handoff_id)? else {
            return Err(PromotionError::Conflict(format!(
                "hand-off report `{}` has no submitted revision; handoff_submit submits it",
                req.handoff_id
            )));
        };
        let slot = self.records.slot(&req.artifact, &target.name)?;
        let gates = target.gates.clone();
        let stage = target.name.clone();
        let pipeline_id = (pipeline.name.clone(), pipeline.version);
        self.audit_ready()?;
        let mut head = self.records.head(&req.handoff_id)?;
        let mut change = self.change();
        let n = change.next("request");
        let mut request = Request {
            n,
            artifact: req.artifact.clone(),
            version,
            digest: artifact.digest.clone(),
            stage,
            from_stage,
            pipeline: pipeline_id,
            state: RequestState::Open,
            requested_by: who.0.clone(),
            requested_at_ms: unix_ms(),
            handoff_id: req.handoff_id.clone(),
            handoff_revision: revision,
            signoffs: Vec::new(),
            workflow_run: None,
            base_generation: slot.generation,
            promoted_at_ms: None,
            promoted_by: None,
            reason: None,
        };
        head.requests.push(request.id());
        change.put(&state::head_key(&req.handoff_id), &head)?;
        change.put_json(&state::request_key(n), &request)?;
        change.audit(transition(
            who,
            "promotion/request",
            format!("{}@{}", request.artifact, request.version),
            format!(
                "{} asks {}@{} ({}) into `{}` with report {} revision {}",
                request.id(),
                request.artifact,
                request.version,
                request.digest,
                request.stage,
                request.handoff_id,
                revision
            ),
        ))?;
        let audit = change.commit()?;
        // The workflow gate's run starts now, so that it has run by the time sign-offs are in.
        if let Some(workflow) = &gates.workflow {
            match gates::start_run(&self.args, workflow, &request, cancel).await {
                Ok(run) => {
                    request.workflow_run = Some(run);
                    let mut change = self.records.change();
                    change.put_json(&state::request_key(n), &request)?;
                    change.commit()?;
                }
                Err(e) => {
                    tracing::warn!(request = %request.id(), error = %e, "promotion: the workflow gate's run did not start");
                }
            }
        }
        Ok((request.info(), audit))
    }

    fn sign(
        &mut self,
        who: &Caller,
        req: PromotionSignRequest,
    ) -> Result<(PromotionInfo, Audit), PromotionError> {
        let mut request = self.records.request(&req.request_id)?;
        let id = request.id();
        match request.state {
            RequestState::Open => {}
            RequestState::Rejected if req.decision == Decision::Reject => {}
            RequestState::Rejected => {
                return Err(PromotionError::Conflict(format!(
                    "`{id}` was rejected; approvals wait for a new revision of report `{}` \
                     (handoff_update with `new_revision: true`, then handoff_submit)",
                    request.handoff_id
                )));
            }
            state => {
                return Err(PromotionError::Conflict(format!(
                    "`{id}` is {} and takes no more sign-offs",
                    request_state_name(state)
                )));
            }
        }
        let gates = self.stage_gates(&request)?;
        let Some(signoffs) = gates.signoffs.as_ref() else {
            return Err(bad(format!(
                "stage `{}` asks for no sign-offs (pipeline {}@{})",
                request.stage, request.pipeline.0, request.pipeline.1
            )));
        };
        if !signoffs.roles.contains(&req.role) {
            return Err(bad(format!(
                "stage `{}` does not ask for role `{}`; it asks for: {}",
                request.stage,
                req.role,
                signoffs.roles.join(", ")
            )));
        }
        if !who.holds(&req.role) {
            return Err(PromotionError::Forbidden(format!(
                "`{}` does not hold role `{}` and cannot sign in it",
                who.subject(),
                req.role
            )));
        }
        if self.args.config.separation_of_duties
            && who.governed()
            && req.decision == Decision::Approve
            && request.requester() == who.subject()
        {
            return Err(PromotionError::Forbidden(format!(
                "separation of duties: `{}` opened `{id}` and cannot approve it; another \
                 holder of `{}` must",
                who.subject(),
                req.role
            )));
        }
        if let Some(earlier) = request
            .current_signoffs()
            .iter()
            .find(|s| s.role == req.role && s.by == who.subject())
        {
            return Err(PromotionError::Conflict(format!(
                "`{}` already signed `{id}` as `{}` ({}) on revision {}",
                who.subject(),
                req.role,
                decision_name(earlier.decision),
                request.handoff_revision
            )));
        }
        self.audit_ready()?;
        let signoff = SignOff {
            role: req.role.clone(),
            by: who.subject().to_string(),
            decision: req.decision,
            comment: req.comment.clone(),
            at_ms: unix_ms(),
            revision: request.handoff_revision,
        };
        request.signoffs.push(signoff);
        let mut report = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)?;
        if req.decision == Decision::Reject {
            request.state = RequestState::Rejected;
            report.state = ReportState::ChangesRequested;
        } else if report.state == ReportState::Submitted || report.state == ReportState::InReview {
            let approved = gates::approvals(&request, signoffs);
            let needed = gates::needed(signoffs);
            report.state = if approved.len() >= needed {
                ReportState::Approved
            } else {
                ReportState::InReview
            };
        }
        let mut change = self.change();
        change.put_json(&state::request_key(request.n), &request)?;
        change.put(
            &state::revision_key(&request.handoff_id, request.handoff_revision),
            &report,
        )?;
        change.audit(transition(
            who,
            "promotion/sign",
            format!("{}@{}", request.artifact, request.version),
            format!(
                "{id}: {} as `{}` on report {} revision {}{}",
                decision_name(req.decision),
                req.role,
                request.handoff_id,
                request.handoff_revision,
                if req.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", req.comment)
                }
            ),
        ))?;
        let audit = change.commit()?;
        Ok((request.info(), audit))
    }

    /// Evaluates every gate of `request` now (starting the workflow gate's run when none ran,
    /// or again when asked and the last one failed, if `start_runs`).
    async fn evaluate(
        &mut self,
        request: &mut Request,
        start_runs: bool,
        rerun: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<GateResult>, PromotionError> {
        let gates = self.stage_gates(request)?;
        let mut results = Vec::new();
        // The version must still be where it comes from.
        if let Some(from) = &request.from_stage {
            let slot = self.records.slot(&request.artifact, from)?;
            results.push(gates::previous_stage(request, from, &slot));
        }
        // The stage must not have changed since the request opened.
        let target = self.records.slot(&request.artifact, &request.stage)?;
        if target.generation != request.base_generation {
            results.push(GateResult {
                gate: "stage".into(),
                passed: false,
                detail: format!(
                    "`{}` of {} changed after this request opened (it holds {}); open a new \
                     request",
                    request.stage,
                    request.artifact,
                    target
                        .current
                        .as_ref()
                        .map_or("nothing".to_string(), |o| o.version.clone())
                ),
            });
        }
        let artifact = self
            .read_artifact(
                &request.artifact,
                &request.version,
                Some(&request.digest),
                cancel,
            )
            .await?;
        if let Some(schema) = &gates.schema {
            results.push(gates::schema(&self.args, schema, &artifact, cancel).await);
        }
        if let Some(workflow) = &gates.workflow {
            results.push(
                gates::workflow(&self.args, workflow, request, start_runs, rerun, cancel).await,
            );
        }
        if let Some(signoffs) = &gates.signoffs {
            results.push(gates::signoffs(request, signoffs));
        }
        if let (Some(soak), Some(from)) = (gates.soak_seconds, &request.from_stage) {
            let slot = self.records.slot(&request.artifact, from)?;
            results.push(gates::soak(soak, from, &slot, unix_ms()));
        }
        let report = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)?
            .content()?;
        results.push(gates::findings(&report, gates.allow_blockers));
        Ok(results)
    }

    /// Aborts `request` for good: its artifact no longer matches the pinned digest.
    fn abort(
        &mut self,
        who: &Caller,
        mut request: Request,
        why: &str,
    ) -> Result<Audit, PromotionError> {
        request.state = RequestState::Aborted;
        request.reason = Some(why.to_string());
        let mut change = self.change();
        change.put_json(&state::request_key(request.n), &request)?;
        change.audit(transition(
            who,
            "promotion/abort",
            format!("{}@{}", request.artifact, request.version),
            format!("{} aborted: {why}", request.id()),
        ))?;
        change.commit()
    }

    async fn promote(
        &mut self,
        who: &Caller,
        req: PromotionPromoteRequest,
        cancel: &CancellationToken,
    ) -> Result<(PromotionInfo, Audit), (PromotionError, Audit)> {
        let plain = |e| (e, Audit::new());
        let mut request = self.records.request(&req.request_id).map_err(plain)?;
        let id = request.id();
        match request.state {
            // Idempotent by request id.
            RequestState::Promoted => return Ok((request.info(), Vec::new())),
            RequestState::Open => {}
            RequestState::Rejected => {
                return Err(plain(PromotionError::Conflict(format!(
                    "`{id}` was rejected ({}); submit a new revision of report `{}` first",
                    request
                        .current_signoffs()
                        .iter()
                        .filter(|s| s.decision == Decision::Reject)
                        .map(|s| format!("{} as {}: {}", s.by, s.role, s.comment))
                        .collect::<Vec<_>>()
                        .join("; "),
                    request.handoff_id
                ))));
            }
            state => {
                return Err(plain(PromotionError::Conflict(format!(
                    "`{id}` is {}{}",
                    request_state_name(state),
                    request
                        .reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ))));
            }
        }
        self.audit_ready().map_err(plain)?;
        let run_before = request.workflow_run.clone();
        let results = match self
            .evaluate(&mut request, true, req.rerun_workflow, cancel)
            .await
        {
            Ok(results) => results,
            Err(PromotionError::DigestMismatch(why)) => {
                let audit = self.abort(who, request, &why).map_err(plain)?;
                let e = PromotionError::DigestMismatch(format!("{why}; request `{id}` is aborted"));
                return Err((e, audit));
            }
            Err(e) => return Err(plain(e)),
        };
        let superseded = results.iter().any(|g| g.gate == "stage" && !g.passed);
        let failed: Vec<GateResult> = results.iter().filter(|g| !g.passed).cloned().collect();
        if !failed.is_empty() {
            let mut change = self.change();
            if superseded {
                request.state = RequestState::Superseded;
                request.reason = failed
                    .iter()
                    .find(|g| g.gate == "stage")
                    .map(|g| g.detail.clone());
                change
                    .audit(transition(
                        who,
                        "promotion/superseded",
                        format!("{}@{}", request.artifact, request.version),
                        format!("{id}: {}", request.reason.clone().unwrap_or_default()),
                    ))
                    .map_err(plain)?;
            }
            if superseded || request.workflow_run != run_before {
                change
                    .put_json(&state::request_key(request.n), &request)
                    .map_err(plain)?;
            }
            let audit = change.commit().map_err(plain)?;
            return Err((PromotionError::GatesFailed(failed), audit));
        }
        // Every gate passed: the artifact enters the stage, atomically with its history event
        // and its audit record.
        let now = unix_ms();
        let mut slot = self
            .records
            .slot(&request.artifact, &request.stage)
            .map_err(plain)?;
        let previous_version = slot.current.as_ref().map(|o| o.version.clone());
        if let Some(old) = slot.current.take() {
            slot.previous.push(old);
            if slot.previous.len() > state::KEEP_PREVIOUS {
                slot.previous.remove(0);
            }
        }
        slot.current = Some(Occupant {
            version: request.version.clone(),
            digest: request.digest.clone(),
            since_ms: now,
            request_id: Some(id.clone()),
        });
        slot.generation += 1;
        request.state = RequestState::Promoted;
        request.promoted_at_ms = Some(now);
        request.promoted_by = Some(who.subject().to_string());
        let mut report = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)
            .map_err(plain)?;
        if report.state != ReportState::Superseded {
            report.state = ReportState::Approved;
        }
        let mut change = self.change();
        let event = HistoryEvent {
            at_ms: now,
            kind: HistoryKind::Promoted,
            stage: request.stage.clone(),
            version: Some(request.version.clone()),
            previous_version,
            by: who.subject().to_string(),
            request_id: Some(id.clone()),
            signoffs: request.current_signoffs(),
            reason: None,
        };
        let e = change.next(&format!("event:{}", request.artifact));
        change
            .put_json(&state::event_key(&request.artifact, e), &event)
            .map_err(plain)?;
        change
            .put(&state::slot_key(&request.artifact, &request.stage), &slot)
            .map_err(plain)?;
        change
            .put_json(&state::request_key(request.n), &request)
            .map_err(plain)?;
        change
            .put(
                &state::revision_key(&request.handoff_id, request.handoff_revision),
                &report,
            )
            .map_err(plain)?;
        change
            .audit(transition(
                who,
                "promotion/promote",
                format!("{}@{}", request.artifact, request.version),
                format!(
                    "{id}: {}@{} ({}) entered `{}`; sign-offs: {}",
                    request.artifact,
                    request.version,
                    request.digest,
                    request.stage,
                    signoff_text(&request.current_signoffs())
                ),
            ))
            .map_err(plain)?;
        let audit = change.commit().map_err(plain)?;
        let mut info = request.info();
        info.gates = results;
        Ok((info, audit))
    }

    fn rollback(
        &mut self,
        who: &Caller,
        req: PromotionRollbackRequest,
    ) -> Result<(RollbackResponse, Audit), PromotionError> {
        if req.reason.trim().is_empty() {
            return Err(bad("`reason` is blank: say why the stage goes back"));
        }
        let mut slot = self.records.slot(&req.artifact, &req.stage)?;
        let Some(current) = slot.current.take() else {
            return Err(PromotionError::Conflict(format!(
                "`{}` of {} holds nothing to roll back",
                req.stage, req.artifact
            )));
        };
        self.audit_ready()?;
        let back = slot.previous.pop();
        let now = unix_ms();
        slot.current = back.clone().map(|o| Occupant { since_ms: now, ..o });
        slot.generation += 1;
        let mut change = self.change();
        let event = HistoryEvent {
            at_ms: now,
            kind: HistoryKind::RolledBack,
            stage: req.stage.clone(),
            version: back.as_ref().map(|o| o.version.clone()),
            previous_version: Some(current.version.clone()),
            by: who.subject().to_string(),
            request_id: None,
            signoffs: Vec::new(),
            reason: Some(req.reason.clone()),
        };
        let e = change.next(&format!("event:{}", req.artifact));
        change.put_json(&state::event_key(&req.artifact, e), &event)?;
        change.put(&state::slot_key(&req.artifact, &req.stage), &slot)?;
        change.audit(transition(
            who,
            "promotion/rollback",
            format!("{}@{}", req.artifact, current.version),
            format!(
                "`{}` of {} back from {} to {}: {}",
                req.stage,
                req.artifact,
                current.version,
                back.as_ref().map_or("nothing", |o| o.version.as_str()),
                req.reason
            ),
        ))?;
        let audit = change.commit()?;
        Ok((
            RollbackResponse {
                artifact: req.artifact,
                stage: req.stage,
                from_version: current.version,
                to_version: back.map(|o| o.version),
            },
            audit,
        ))
    }

    async fn status(
        &mut self,
        req: PromotionStatusRequest,
        cancel: &CancellationToken,
    ) -> Result<PromotionInfo, PromotionError> {
        let mut request = self.records.request(&req.request_id)?;
        let mut info = request.info();
        if request.state == RequestState::Open {
            info.gates = match self.evaluate(&mut request, false, false, cancel).await {
                Ok(results) => results,
                Err(PromotionError::DigestMismatch(why)) => vec![GateResult {
                    gate: "artifact".into(),
                    passed: false,
                    detail: why,
                }],
                Err(e) => return Err(e),
            };
        }
        Ok(info)
    }

    fn list(&self, req: PromotionListRequest) -> Result<PromotionListResponse, PromotionError> {
        let limit = req.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(bad(format!("`limit` is {limit}; give 1–500")));
        }
        let before = match &req.cursor {
            Some(c) => Some(state::request_number(c).ok_or_else(|| {
                bad("`cursor` is not one this tool gave; pass a `next_cursor` as is")
            })?),
            None => None,
        };
        let mut items = Vec::new();
        let mut next_cursor = None;
        let all: Vec<Request> = self
            .records
            .scan_json::<Request>(b"r")
            .map(|r| r.map(|(_, v)| v))
            .collect::<Result<_, _>>()?;
        for request in all.into_iter().rev() {
            if before.is_some_and(|b| request.n >= b) {
                continue;
            }
            if req.stage.as_ref().is_some_and(|s| s != &request.stage)
                || req
                    .artifact
                    .as_ref()
                    .is_some_and(|a| a != &request.artifact)
                || req.state.is_some_and(|s| s != request.state)
            {
                continue;
            }
            if items.len() == limit as usize {
                next_cursor = items.last().map(|i: &PromotionInfo| i.request_id.clone());
                break;
            }
            items.push(request.info());
        }
        Ok(PromotionListResponse { items, next_cursor })
    }

    fn history(
        &self,
        req: PromotionHistoryRequest,
    ) -> Result<PromotionHistoryResponse, PromotionError> {
        let mut prefix = vec![b'e'];
        prefix.extend_from_slice(req.artifact.as_bytes());
        prefix.push(0);
        let events: Vec<HistoryEvent> = self
            .records
            .scan_json::<HistoryEvent>(&prefix)
            .map(|r| r.map(|(_, v)| v))
            .collect::<Result<_, _>>()?;
        let pipelines = self.records.pipelines()?;
        let mut names: Vec<String> = pipeline::governing(&pipelines, &req.artifact)
            .map(|p| p.stages.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        for e in &events {
            if !names.contains(&e.stage) {
                names.push(e.stage.clone());
            }
        }
        let mut stages = Vec::new();
        for name in names {
            if let Some(o) = self.records.slot(&req.artifact, &name)?.current {
                stages.push(StageOccupant {
                    stage: name,
                    version: o.version,
                    digest: o.digest,
                    since_ms: o.since_ms,
                });
            }
        }
        if events.is_empty() && stages.is_empty() {
            return Err(PromotionError::NotFound(format!(
                "`{}` was never promoted; promotion_list shows the requests",
                req.artifact
            )));
        }
        Ok(PromotionHistoryResponse {
            artifact: req.artifact,
            stages,
            events,
        })
    }
}

fn stage_names(p: &Pipeline) -> String {
    p.stages
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

fn signoff_text(signoffs: &[SignOff]) -> String {
    if signoffs.is_empty() {
        return "none".into();
    }
    signoffs
        .iter()
        .map(|s| format!("{} as {} ({})", s.by, s.role, decision_name(s.decision)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A report state's name, as in the tools' JSON.
pub fn state_name(state: ReportState) -> &'static str {
    match state {
        ReportState::Draft => "draft",
        ReportState::Submitted => "submitted",
        ReportState::InReview => "in review",
        ReportState::Approved => "approved",
        ReportState::ChangesRequested => "changes requested",
        ReportState::Superseded => "superseded",
    }
}

/// A request state's name.
pub fn request_state_name(state: RequestState) -> &'static str {
    match state {
        RequestState::Open => "open",
        RequestState::Rejected => "rejected",
        RequestState::Promoted => "promoted",
        RequestState::Superseded => "superseded",
        RequestState::Aborted => "aborted",
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    }
}

/// Sends a transition's answer (see [`PromotionState::finish`]).
fn answer<T: Send + 'static>(
    state: &PromotionState,
    reply: Reply<T>,
    result: Result<(T, Audit), PromotionError>,
) {
    match result {
        Ok((value, audit)) => state.finish(audit, reply, Ok(value)),
        Err(e) => state.finish(Vec::new(), reply, Err(e)),
    }
}

fn read<T>(reply: Reply<T>, result: Result<T, PromotionError>) {
    let _ = reply.send(result);
}

impl Actor for PromotionActor {
    type Msg = PromotionMsg;
    type State = PromotionState;
    type Arguments = PromotionArgs;

    async fn pre_start(
        &self,
        _: ActorRef<PromotionMsg>,
        args: PromotionArgs,
    ) -> Result<PromotionState, ActorProcessingErr> {
        let records = Records::open(args.store.clone())?;
        let mut state = PromotionState { records, args };
        if state.ensure_default_pipeline()? {
            state.records.store.flush().await?;
        }
        state.drain_outbox().await?;
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<PromotionMsg>,
        msg: PromotionMsg,
        state: &mut PromotionState,
    ) -> Result<(), ActorProcessingErr> {
        use PromotionMsg as M;
        match msg {
            M::PipelineSet(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.pipeline_set(&who, req);
                    answer(state, reply, result);
                }
            }
            M::PipelineGet(req, _, reply) => {
                read(reply, state.records.pipeline(&req.name, req.version));
            }
            M::PipelineList(_, _, reply) => read(
                reply,
                state
                    .records
                    .pipelines()
                    .map(|pipelines| PipelineListResponse { pipelines }),
            ),
            M::HandoffCreate(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.handoff_create(&who, req);
                    answer(state, reply, result);
                }
            }
            M::HandoffUpdate(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.handoff_update(&who, req);
                    answer(state, reply, result);
                }
            }
            M::HandoffSubmit(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.handoff_submit(&who, req);
                    answer(state, reply, result);
                }
            }
            M::HandoffGet(req, _, reply) => {
                read(reply, state.records.handoff(&req.id, req.revision));
            }
            M::Request(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.request(&who, req, &cancel).await;
                    answer(state, reply, result);
                }
            }
            M::Sign(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.sign(&who, req);
                    answer(state, reply, result);
                }
            }
            M::Promote(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    match state.promote(&who, req, &cancel).await {
                        Ok((info, audit)) => state.finish(audit, reply, Ok(info)),
                        Err((e, audit)) => state.finish(audit, reply, Err(e)),
                    }
                }
            }
            M::Rollback(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.rollback(&who, req);
                    answer(state, reply, result);
                }
            }
            M::Status(req, cancel, reply) => {
                let result = state.status(req, &cancel).await;
                read(reply, result);
            }
            M::List(req, _, reply) => read(reply, state.list(req)),
            M::History(req, _, reply) => read(reply, state.history(req)),
        }
        Ok(())
    }
}

/// Replaces `${artifact}`, `${version}`, `${digest}`, `${stage}` and `${request}` in the string
/// values of `params` (nested ones too).
pub fn bind_params(params: &Map<String, Value>, request: &Request) -> Map<String, Value> {
    fn bind(v: &Value, request: &Request) -> Value {
        match v {
            Value::String(s) => Value::String(
                s.replace("${artifact}", &request.artifact)
                    .replace("${version}", &request.version)
                    .replace("${digest}", &request.digest)
                    .replace("${stage}", &request.stage)
                    .replace("${request}", &request.id()),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| bind(v, request)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), bind(v, request)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    params
        .iter()
        .map(|(k, v)| (k.clone(), bind(v, request)))
        .collect()
}
