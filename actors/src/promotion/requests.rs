//! Pipelines and promotion requests: opening, signing, promoting (every gate evaluated, the
//! stage entered atomically), rolling back, and what the tools show of them.

use ensemble_protocol::promotion::*;

use super::state::{self, Caller, Occupant, Request};
use super::{Audit, Prepared, PromotionState, bad, gates, pipeline, transition};
use super::{signoff_text, stage_names};
use crate::clock::unix_ms;

impl PromotionState {
    // ---- pipelines ---------------------------------------------------------------------------

    pub(super) fn ensure_default_pipeline(&mut self) -> Result<bool, PromotionError> {
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

    pub(super) fn pipeline_set(
        &mut self,
        who: &Caller,
        req: PipelineSetRequest,
    ) -> Result<(Pipeline, Audit), PromotionError> {
        let mut problems = pipeline::problems(&req);
        if let Some(known) = self.args.roles.get() {
            problems.extend(pipeline::unknown_roles(&req, known));
        }
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

    // ---- requests ----------------------------------------------------------------------------

    pub(super) fn pipeline_of(&self, request: &Request) -> Result<Pipeline, PromotionError> {
        self.records
            .pipeline(&request.pipeline.0, Some(request.pipeline.1))
    }

    pub(super) fn stage_gates(&self, request: &Request) -> Result<Gates, PromotionError> {
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

    /// Opens a request for `artifact` (read through the registry before, outside the
    /// mailbox). Answers the request, its audit records, and the workflow gate whose run is to
    /// start now (so that it has run by the time the sign-offs are in).
    pub(super) fn open_request(
        &mut self,
        who: &Caller,
        req: PromotionRequestRequest,
        artifact: Result<ensemble_protocol::registry::Artifact, PromotionError>,
    ) -> Result<(Request, Audit, Option<WorkflowGate>), PromotionError> {
        let artifact = artifact?;
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
        let Some((revision, carried)) = self.records.latest_submitted(&req.handoff_id)? else {
            return Err(PromotionError::Conflict(format!(
                "hand-off report `{}` has no submitted revision; handoff_submit submits it",
                req.handoff_id
            )));
        };
        if carried.state == ReportState::ChangesRequested {
            return Err(PromotionError::Conflict(format!(
                "revision {revision} of report `{}` had changes requested; submit a new \
                 revision (handoff_update with `new_revision: true`, then handoff_submit)",
                req.handoff_id
            )));
        }
        if let Some(open) = self
            .records
            .open_requests(&req.artifact, &target.name)?
            .into_iter()
            .find(|r| r.version == version)
        {
            return Err(PromotionError::Conflict(format!(
                "`{}` already asks for {}@{version} to enter `{}` ({}); promotion_status \
                 shows it",
                open.id(),
                req.artifact,
                target.name,
                open.state
            )));
        }
        let slot = self.records.slot(&req.artifact, &target.name)?;
        let gates = target.gates.clone();
        let stage = target.name.clone();
        let pipeline_id = (pipeline.name.clone(), pipeline.version);
        self.audit_ready()?;
        let mut head = self.records.head(&req.handoff_id)?;
        let mut change = self.change();
        let n = change.next("request");
        let request = Request {
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
        change.put(&state::open_key(&request.artifact, &request.stage, n), &n)?;
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
        Ok((request, audit, gates.workflow))
    }

    /// Records the run the workflow gate of request `n` started.
    pub(super) fn run_started(
        &mut self,
        n: u64,
        run: &str,
    ) -> Result<PromotionInfo, PromotionError> {
        let mut request = self
            .records
            .get_json::<Request>(&state::request_key(n))?
            .ok_or_else(|| PromotionError::Store(format!("request pr-{n} vanished")))?;
        if request.workflow_run.is_none() {
            request.workflow_run = Some(run.to_string());
            let mut change = self.records.change();
            change.put_json(&state::request_key(n), &request)?;
            change.commit()?;
        }
        Ok(request.info())
    }

    pub(super) fn sign(
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
                    state
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
                earlier.decision,
                request.handoff_revision
            )));
        }
        // Each approval of a request is a different person's (a phase gate's six roles take
        // six people), when identities are real.
        if self.args.config.separation_of_duties
            && who.governed()
            && req.decision == Decision::Approve
            && let Some(earlier) = request
                .current_signoffs()
                .iter()
                .find(|s| s.by == who.subject() && s.decision == Decision::Approve)
        {
            return Err(PromotionError::Forbidden(format!(
                "separation of duties: `{}` already approved `{id}` as `{}`; another person \
                 must approve as `{}`",
                who.subject(),
                earlier.role,
                req.role
            )));
        }
        let carried = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)?;
        if req.decision == Decision::Approve && carried.state == ReportState::ChangesRequested {
            return Err(changes_requested(&request));
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
        let mut report = carried;
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
                req.decision,
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

    /// The gates the engine decides from its own records, now: the version still in the stage
    /// it comes from, the stage unchanged since the request opened (before the other engines'
    /// results), then the sign-offs, the soak and the findings (after them).
    pub(super) fn local_gates(&self, request: &Request) -> Result<gates::Local, PromotionError> {
        let stage = self.stage_gates(request)?;
        let mut before = Vec::new();
        if let Some(from) = &request.from_stage {
            let slot = self.records.slot(&request.artifact, from)?;
            before.push(gates::previous_stage(request, from, &slot));
        }
        let target = self.records.slot(&request.artifact, &request.stage)?;
        if target.generation != request.base_generation {
            before.push(GateResult {
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
        let mut after = Vec::new();
        if let Some(signoffs) = &stage.signoffs {
            after.push(gates::signoffs(request, signoffs));
        }
        if let (Some(soak), Some(from)) = (stage.soak_seconds, &request.from_stage) {
            let slot = self.records.slot(&request.artifact, from)?;
            after.push(gates::soak(soak, from, &slot, unix_ms()));
        }
        let report = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)?
            .content()?;
        after.push(gates::findings(&report, stage.allow_blockers));
        Ok(gates::Local {
            before,
            after,
            stage,
        })
    }

    /// Aborts `request` for good: its artifact no longer matches the pinned digest.
    pub(super) fn abort(
        &mut self,
        who: &Caller,
        mut request: Request,
        why: &str,
    ) -> Result<Audit, PromotionError> {
        request.state = RequestState::Aborted;
        request.reason = Some(why.to_string());
        let mut change = self.change();
        change.remove(&state::open_key(
            &request.artifact,
            &request.stage,
            request.n,
        ));
        change.put_json(&state::request_key(request.n), &request)?;
        change.audit(transition(
            who,
            "promotion/abort",
            format!("{}@{}", request.artifact, request.version),
            format!("{} aborted: {why}", request.id()),
        ))?;
        change.commit()
    }

    /// What `promotion_promote` can tell from the engine's records alone: a request already
    /// promoted (the same answer again), one that cannot be promoted, or one whose gates the
    /// other engines must now be asked about.
    pub(super) fn prepare_promote(
        &self,
        req: &PromotionPromoteRequest,
    ) -> Result<Prepared, PromotionError> {
        let request = self.records.request(&req.request_id)?;
        if request.state == RequestState::Promoted {
            // Idempotent by request id.
            return Ok(Prepared::Done(request.info()));
        }
        self.promotable(&request)?;
        self.audit_ready()?;
        let gates = self.stage_gates(&request)?;
        Ok(Prepared::Ask(Box::new(request), gates))
    }

    /// Refuses a request that is not open, or whose report revision had changes requested.
    fn promotable(&self, request: &Request) -> Result<(), PromotionError> {
        let id = request.id();
        match request.state {
            RequestState::Open => {}
            RequestState::Rejected => {
                return Err(PromotionError::Conflict(format!(
                    "`{id}` was rejected ({}); submit a new revision of report `{}` first",
                    request
                        .current_signoffs()
                        .iter()
                        .filter(|s| s.decision == Decision::Reject)
                        .map(|s| format!("{} as {}: {}", s.by, s.role, s.comment))
                        .collect::<Vec<_>>()
                        .join("; "),
                    request.handoff_id
                )));
            }
            state => {
                return Err(PromotionError::Conflict(format!(
                    "`{id}` is {}{}",
                    state,
                    request
                        .reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )));
            }
        }
        let carried = self
            .records
            .revision(&request.handoff_id, request.handoff_revision)?;
        if carried.state == ReportState::ChangesRequested {
            return Err(changes_requested(request));
        }
        Ok(())
    }

    /// Decides `promotion_promote` once the other engines answered (`external`): the records
    /// are read again, so whatever changed meanwhile (another request won the stage, a
    /// rejection) decides too. All gates pass: the artifact enters the stage.
    pub(super) fn decide(
        &mut self,
        who: &Caller,
        request_id: &str,
        external: gates::External,
    ) -> Result<(PromotionInfo, Audit), (PromotionError, Audit)> {
        let plain = |e| (e, Audit::new());
        let mut request = self.records.request(request_id).map_err(plain)?;
        let id = request.id();
        if request.state == RequestState::Promoted {
            return Ok((request.info(), Vec::new()));
        }
        self.promotable(&request).map_err(plain)?;
        self.audit_ready().map_err(plain)?;
        let run_before = request.workflow_run.clone();
        if let Some(run) = &external.workflow_run {
            request.workflow_run = Some(run.clone());
        }
        match external.artifact {
            Ok(()) => {}
            Err(PromotionError::DigestMismatch(why)) => {
                let audit = self.abort(who, request, &why).map_err(plain)?;
                let e = PromotionError::DigestMismatch(format!("{why}; request `{id}` is aborted"));
                return Err((e, audit));
            }
            Err(e) => return Err(plain(e)),
        }
        let results = self
            .local_gates(&request)
            .map_err(plain)?
            .with(external.schema, external.workflow);
        let superseded = results.iter().any(|g| g.gate == "stage" && !g.passed);
        let failed: Vec<GateResult> = results.iter().filter(|g| !g.passed).cloned().collect();
        for gate in &failed {
            metrics::counter!("ensemble_promotion_gate_failures_total", "gate" => gate.gate.clone())
                .increment(1);
        }
        if !failed.is_empty() {
            let mut change = self.change();
            if superseded {
                change.remove(&state::open_key(
                    &request.artifact,
                    &request.stage,
                    request.n,
                ));
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
        // The other requests for this stage opened against what it held before: they lost.
        let others: Vec<Request> = self
            .records
            .open_requests(&request.artifact, &request.stage)
            .map_err(plain)?
            .into_iter()
            .filter(|r| r.n != request.n)
            .collect();
        let mut change = self.change();
        change.remove(&state::open_key(
            &request.artifact,
            &request.stage,
            request.n,
        ));
        for mut other in others {
            other.state = RequestState::Superseded;
            other.reason = Some(format!(
                "{id} put {} into `{}` first; open a new request",
                request.version, request.stage
            ));
            change
                .put_json(&state::request_key(other.n), &other)
                .map_err(plain)?;
            change.remove(&state::open_key(&other.artifact, &other.stage, other.n));
            change
                .audit(transition(
                    who,
                    "promotion/superseded",
                    format!("{}@{}", other.artifact, other.version),
                    format!(
                        "{}: {}",
                        other.id(),
                        other.reason.clone().unwrap_or_default()
                    ),
                ))
                .map_err(plain)?;
        }
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

    pub(super) fn rollback(
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

    /// `promotion_status` from the engine's records: the request, and (when it is open) the
    /// gates decided here and what to ask the other engines.
    pub(super) fn prepare_status(
        &self,
        req: &PromotionStatusRequest,
    ) -> Result<(PromotionInfo, Option<(Request, gates::Local)>), PromotionError> {
        let request = self.records.request(&req.request_id)?;
        let info = request.info();
        if request.state != RequestState::Open {
            return Ok((info, None));
        }
        let local = self.local_gates(&request)?;
        Ok((info, Some((request, local))))
    }

    pub(super) fn list(
        &self,
        req: PromotionListRequest,
    ) -> Result<PromotionListResponse, PromotionError> {
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

    pub(super) fn history(
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

/// The refusal of a request whose report revision a reviewer rejected (on this request or
/// another carrying the same revision).
fn changes_requested(request: &Request) -> PromotionError {
    PromotionError::Conflict(format!(
        "revision {} of report `{}`, which `{}` carries, had changes requested; submit a new \
         revision (handoff_update with `new_revision: true`, then handoff_submit)",
        request.handoff_revision,
        request.handoff_id,
        request.id()
    ))
}
