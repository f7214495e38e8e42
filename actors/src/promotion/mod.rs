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
mod reports;
mod requests;
pub mod state;

use std::sync::{Arc, OnceLock};

use ensemble_protocol::promotion::*;
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Map, Value};

use crate::governance::audit::{AuditFilter, AuditKind, AuditLog, AuditRecord};
use crate::invoke::ToolInvoker;
use crate::registry::RegistryMsg;
use crate::store::Store;
use crate::validation::ValidationMsg;
use state::{Caller, Change, Records, Request, store_err};

/// The promotion engine's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, PromotionError>>;

/// The audit records a transition committed, with their outbox numbers.
type Audit = Vec<(u64, AuditRecord)>;

/// Where the governance audit log is, once the runtime has opened it (never, ungoverned).
pub type AuditSink = Arc<OnceLock<AuditLog>>;

/// The governance role names, once the runtime knows them (never, ungoverned): sign-off gates
/// may only name these.
pub type KnownRoles = Arc<OnceLock<Vec<String>>>;

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
    /// The engine's own: a promotion's gates were asked of the other engines; decide it.
    #[doc(hidden)]
    Decide(Box<Deciding>),
    /// The engine's own: a request's artifact was read; open it.
    #[doc(hidden)]
    Open(Box<Opening>),
    /// The engine's own: the workflow gate's run of request `n` started (or did not).
    #[doc(hidden)]
    RunStarted(u64, Result<String, String>, Reply<PromotionInfo>),
}

/// A request whose artifact the registry answered for, waiting to be opened.
#[doc(hidden)]
pub struct Opening {
    who: Caller,
    req: PromotionRequestRequest,
    artifact: Result<ensemble_protocol::registry::Artifact, PromotionError>,
    cancel: CancellationToken,
    reply: Reply<PromotionInfo>,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening")
            .field("who", &self.who)
            .field("req", &self.req)
            .finish_non_exhaustive()
    }
}

/// A promotion waiting for its decision, with what the other engines answered.
#[doc(hidden)]
pub struct Deciding {
    who: Caller,
    request_id: String,
    external: gates::External,
    reply: Reply<PromotionInfo>,
}

impl std::fmt::Debug for Deciding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deciding")
            .field("who", &self.who)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// What the records alone say of a promotion.
pub(crate) enum Prepared {
    /// Already promoted: the same answer again.
    Done(PromotionInfo),
    /// The other engines must be asked about these gates of this request.
    Ask(Box<Request>, Gates),
}

/// How the promotion engine behaves (`[promotion]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionConfig {
    /// Whoever opened a request may not approve it (governed runtimes only: ungoverned, the
    /// local owner is the only identity).
    pub separation_of_duties: bool,
    /// How long a gate's call to another engine may take, in milliseconds (a promote makes up
    /// to three such calls in turn, within the tool's 30 s timeout).
    pub gate_timeout_ms: u64,
}

impl Default for PromotionConfig {
    fn default() -> Self {
        Self {
            separation_of_duties: true,
            gate_timeout_ms: 5_000,
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
    /// The governance roles, when governed.
    pub roles: KnownRoles,
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
    committer: tokio::sync::mpsc::UnboundedSender<Committed>,
}

fn bad(message: impl Into<String>) -> PromotionError {
    PromotionError::BadRequest(message.into())
}

/// The `action` label values of `ensemble_promotion_transitions_total`.
const ACTIONS: &[&str] = &[
    "abort",
    "handoff_create",
    "handoff_submit",
    "handoff_update",
    "pipeline_set",
    "promote",
    "request",
    "rollback",
    "sign",
    "superseded",
];

/// The `gate` label values of `ensemble_promotion_gate_failures_total`.
const GATES: &[&str] = &[
    "previous_stage",
    "schema",
    "workflow",
    "signoffs",
    "soak",
    "findings",
];

/// An audit record of a promotion transition by `who` (counted in
/// `ensemble_promotion_transitions_total{action}`).
fn transition(who: &Caller, action: &str, target: String, detail: String) -> AuditRecord {
    let what = action
        .strip_prefix("promotion/")
        .unwrap_or(action)
        .to_string();
    metrics::counter!("ensemble_promotion_transitions_total", "action" => what).increment(1);
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
    /// logged, without holding the mailbox. A refusal that committed nothing is answered at
    /// once.
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
        let done = Box::new(move |durable: Result<(), PromotionError>| {
            let _ = reply.send(durable.and(answer));
        });
        if let Err(unsent) = self.committer.send(Committed { audit, done }) {
            (unsent.0.done)(Err(PromotionError::Store(
                "the promotion engine is stopping".into(),
            )));
        }
    }
}

/// A committed transition waiting to be durable and logged, and what answers it.
struct Committed {
    audit: Audit,
    done: Box<dyn FnOnce(Result<(), PromotionError>) + Send>,
}

/// Makes committed transitions durable, then logs their audit records, in the order the
/// engine decided them; transitions waiting together share one flush and one log write.
///
/// The store is flushed *before* the records go to the audit log: a record in the log always
/// describes a transition the store kept. A crash between the two leaves the records in the
/// outbox, which the next start writes to the log.
async fn commit_loop(
    store: Store,
    tree: crate::store::Tree,
    audit: AuditSink,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Committed>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let records: Vec<AuditRecord> = batch
            .iter()
            .flat_map(|c| c.audit.iter().map(|(_, r)| r.clone()))
            .collect();
        let numbers: Vec<u64> = batch
            .iter()
            .flat_map(|c| c.audit.iter().map(|(n, _)| *n))
            .collect();
        let durable = async {
            store.flush().await.map_err(store_err)?;
            if let Some(log) = audit.get().filter(|_| !records.is_empty()) {
                log.append_many(records).await.map_err(|e| {
                    PromotionError::Store(format!(
                        "the change is stored; its audit record is written at the next start: \
                         the audit log: {e}"
                    ))
                })?;
                // Durable with a later flush; a crash before it only repeats a check.
                if let Err(e) = state::clear_outbox(&tree, &numbers) {
                    tracing::warn!(error = %e, "promotion: the outbox was not cleared");
                }
            }
            Ok::<(), PromotionError>(())
        }
        .await;
        for c in batch {
            (c.done)(durable.clone());
        }
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
        .map(|s| format!("{} as {} ({})", s.by, s.role, s.decision))
        .collect::<Vec<_>>()
        .join(", ")
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
        // Every series at 0 from the start, so that a rate sees the first of each.
        for action in ACTIONS {
            metrics::counter!("ensemble_promotion_transitions_total", "action" => *action)
                .increment(0);
        }
        for gate in GATES {
            metrics::counter!("ensemble_promotion_gate_failures_total", "gate" => *gate)
                .increment(0);
        }
        let records = Records::open(args.store.clone())?;
        let (committer, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(commit_loop(
            records.store.clone(),
            records.tree.clone(),
            args.audit.clone(),
            rx,
        ));
        let mut state = PromotionState {
            records,
            args,
            committer,
        };
        if state.ensure_default_pipeline()? {
            state.records.store.flush().await?;
        }
        state.drain_outbox().await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<PromotionMsg>,
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
            // The artifact is read outside the mailbox, then the request opened here.
            M::Request(who, req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let args = state.args.clone();
                tokio::spawn(async move {
                    let artifact =
                        gates::read_artifact(&args, &req.artifact, &req.version, None, &cancel)
                            .await;
                    let opening = Opening {
                        who,
                        req,
                        artifact,
                        cancel,
                        reply,
                    };
                    let _ = myself.send_message(M::Open(Box::new(opening)));
                });
            }
            M::Open(o) => {
                let Opening {
                    who,
                    req,
                    artifact,
                    cancel,
                    reply,
                } = *o;
                match state.open_request(&who, req, artifact) {
                    Err(e) => state.finish(Vec::new(), reply, Err(e)),
                    Ok((request, audit, None)) => state.finish(audit, reply, Ok(request.info())),
                    // The request is on record (its audit records queued in order); the
                    // workflow gate's run starts outside the mailbox, and the answer carries it.
                    Ok((request, audit, Some(workflow))) => {
                        let (durable, done) = tokio::sync::oneshot::channel();
                        state.finish(audit, RpcReplyPort::from(durable), Ok(()));
                        let args = state.args.clone();
                        tokio::spawn(async move {
                            let run = gates::start_run(&args, &workflow, &request, &cancel).await;
                            match done.await {
                                Ok(Ok(())) => {
                                    let _ =
                                        myself.send_message(M::RunStarted(request.n, run, reply));
                                }
                                Ok(Err(e)) => {
                                    let _ = reply.send(Err(e));
                                }
                                Err(_) => {}
                            }
                        });
                    }
                }
            }
            M::RunStarted(n, run, reply) => {
                let info = match run {
                    Ok(run) => state.run_started(n, &run),
                    Err(e) => {
                        tracing::warn!(request = n, error = %e, "promotion: the workflow gate's run did not start");
                        state.records.request(&format!("pr-{n}")).map(|r| r.info())
                    }
                };
                match info {
                    Ok(info) => state.finish(Vec::new(), reply, Ok(info)),
                    Err(e) => state.finish(Vec::new(), reply, Err(e)),
                }
            }
            M::Sign(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.sign(&who, req);
                    answer(state, reply, result);
                }
            }
            M::Promote(who, req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                match state.prepare_promote(&req) {
                    Err(e) => state.finish(Vec::new(), reply, Err(e)),
                    Ok(Prepared::Done(info)) => state.finish(Vec::new(), reply, Ok(info)),
                    // The other engines are asked outside the mailbox: reads and sign-offs go
                    // on meanwhile, and the decision comes back here, on the records as they
                    // are then.
                    Ok(Prepared::Ask(request, gates)) => {
                        let args = state.args.clone();
                        tokio::spawn(async move {
                            let request_id = request.id();
                            let external = gates::external(
                                args,
                                *request,
                                gates,
                                true,
                                req.rerun_workflow,
                                cancel,
                            )
                            .await;
                            let deciding = Deciding {
                                who,
                                request_id,
                                external,
                                reply,
                            };
                            // A stopped engine drops the reply: the caller is told it failed.
                            let _ = myself.send_message(M::Decide(Box::new(deciding)));
                        });
                    }
                }
            }
            M::Decide(d) => {
                let Deciding {
                    who,
                    request_id,
                    external,
                    reply,
                } = *d;
                match state.decide(&who, &request_id, external) {
                    Ok((info, audit)) => state.finish(audit, reply, Ok(info)),
                    Err((e, audit)) => state.finish(audit, reply, Err(e)),
                }
            }
            M::Rollback(who, req, cancel, reply) => {
                if !cancel.is_cancelled() {
                    let result = state.rollback(&who, req);
                    answer(state, reply, result);
                }
            }
            M::Status(req, cancel, reply) => match state.prepare_status(&req) {
                Err(e) => read(reply, Err(e)),
                Ok((info, None)) => read(reply, Ok(info)),
                Ok((mut info, Some((request, local)))) => {
                    let args = state.args.clone();
                    tokio::spawn(async move {
                        let stage = local.stage.clone();
                        let external =
                            gates::external(args, request, stage, false, false, cancel).await;
                        info.gates = match external.artifact {
                            Err(PromotionError::DigestMismatch(why)) => vec![GateResult {
                                gate: "artifact".into(),
                                passed: false,
                                detail: why,
                            }],
                            Err(e) => return read(reply, Err(e)),
                            Ok(()) => local.with(external.schema, external.workflow),
                        };
                        read(reply, Ok(info));
                    });
                }
            },
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
