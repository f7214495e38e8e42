//! The promotion actor with the real registry and validation actors on a store on disk, and a
//! governance audit log: a transition whose audit record a crash left in the outbox is
//! written to the log when the engine starts again (once, however often it starts); a request
//! keeps the pipeline version it opened with; approvals carry over to a new report revision
//! when the stage says they need not be renewed.

use std::sync::{Arc, OnceLock};

use ensemble_actors::governance::audit::{AuditFilter, AuditKind, AuditLog, AuditRecord};
use ensemble_actors::governance::checkpoint::CheckpointConfig;
use ensemble_actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble_actors::promotion::state::{Caller, Records};
use ensemble_actors::promotion::{
    PromotionActor, PromotionArgs, PromotionConfig, PromotionMsg, Reply,
};
use ensemble_actors::registry::{RegistryActor, RegistryMsg};
use ensemble_actors::store::Store;
use ensemble_actors::validation::ValidationActor;
use ensemble_protocol::principal::Principal;
use ensemble_protocol::promotion::*;
use ensemble_protocol::registry::PutRequest;
use ensemble_supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use ractor::ActorRef;
use serde_json::{Map, Value, json};

/// No tools: these tests use no workflow gate.
struct NoTools;

impl ToolInvoker for NoTools {
    fn traits(&self, _: &str) -> Option<ToolTraits> {
        None
    }

    fn invoke(&self, tool: &str, _: Value, _: CancellationToken) -> InvokeFuture {
        let tool = tool.to_string();
        Box::pin(async move { Err(InvokeError::UnknownTool(tool)) })
    }
}

struct Engine {
    promotion: ActorSlot<PromotionMsg>,
    registry: ActorSlot<RegistryMsg>,
    sup: ActorRef<ensemble_supervision::SupervisorMsg>,
}

impl Engine {
    async fn start(store: &Store, audit: &AuditLog) -> Self {
        Self::start_with(store, audit, Arc::new(NoTools)).await
    }

    async fn start_with(store: &Store, audit: &AuditLog, invoker: Arc<dyn ToolInvoker>) -> Self {
        let registry = ActorSlot::new("registry");
        let validation = ActorSlot::new("validation");
        let promotion = ActorSlot::new("promotion");
        let sink = Arc::new(OnceLock::new());
        let _ = sink.set(audit.clone());
        let args = PromotionArgs {
            store: store.clone(),
            registry: registry.clone(),
            validation: validation.clone(),
            invoker,
            audit: sink,
            roles: Default::default(),
            config: PromotionConfig::default(),
        };
        let (s1, s2) = (store.clone(), store.clone());
        let spec = SupervisorSpec::new("test")
            .child(ChildSpec::actor(&registry, move || {
                (RegistryActor, s1.clone())
            }))
            .child(ChildSpec::actor(&validation, move || {
                (ValidationActor, s2.clone())
            }))
            .child(ChildSpec::actor(&promotion, move || {
                (PromotionActor, args.clone())
            }));
        let (sup, _) = Supervisor::start(spec).await.expect("engines");
        promotion.ready().await;
        Self {
            promotion,
            registry,
            sup,
        }
    }

    async fn stop(self) {
        self.sup.stop(None);
        while self.promotion.get().is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(CancellationToken, Reply<T>) -> PromotionMsg,
    ) -> Result<T, PromotionError> {
        self.promotion
            .ask(|reply| build(CancellationToken::new(), reply))
            .await
            .expect("the promotion actor answers")
    }

    async fn put(&self, name: &str, version: &str) {
        let req = PutRequest {
            name: name.into(),
            version: version.into(),
            content: Some(json!({"image": "api"})),
            content_base64: None,
            media_type: None,
            labels: Default::default(),
        };
        self.registry
            .ask(|reply| RegistryMsg::Put(req, CancellationToken::new(), reply))
            .await
            .expect("registry")
            .expect("put");
    }

    /// A submitted report, by `who`.
    async fn report(&self, who: &Caller) -> String {
        let mut content = Map::new();
        content.insert("title".into(), json!("report"));
        let h = self
            .ask(|c, r| {
                PromotionMsg::HandoffCreate(who.clone(), HandoffCreateRequest(content), c, r)
            })
            .await
            .expect("create");
        let req = HandoffSubmitRequest { id: h.id.clone() };
        self.ask(|c, r| PromotionMsg::HandoffSubmit(who.clone(), req, c, r))
            .await
            .expect("submit");
        h.id
    }

    async fn request(&self, who: &Caller, artifact: &str, handoff: &str) -> PromotionInfo {
        let req = PromotionRequestRequest {
            artifact: artifact.into(),
            version: "1.0.0".into(),
            handoff_id: handoff.into(),
            stage: None,
        };
        self.ask(|c, r| PromotionMsg::Request(who.clone(), req, c, r))
            .await
            .expect("request")
    }

    async fn promote(&self, who: &Caller, id: &str) -> Result<PromotionInfo, PromotionError> {
        let req = PromotionPromoteRequest {
            request_id: id.into(),
            rerun_workflow: false,
        };
        self.ask(|c, r| PromotionMsg::Promote(who.clone(), req, c, r))
            .await
    }

    async fn pipeline(&self, who: &Caller, gates: Gates) -> Pipeline {
        let req = PipelineSetRequest {
            name: "p".into(),
            pattern: "app/*".into(),
            stages: vec![StageDef {
                name: "dev".into(),
                gates,
            }],
        };
        self.ask(|c, r| PromotionMsg::PipelineSet(who.clone(), req, c, r))
            .await
            .expect("pipeline")
    }
}

fn person(subject: &str, roles: &[&str]) -> Caller {
    Caller(Some(Principal {
        subject: subject.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }))
}

fn promotions(log: &AuditLog) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        kind: Some(AuditKind::Change),
        ..Default::default()
    };
    log.query(&filter, None, 10_000)
        .expect("query")
        .entries
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.action.starts_with("promotion/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_record_left_in_the_outbox_is_logged_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let engine = Engine::start(&store, &log).await;
    let before = promotions(&log).len();
    engine.stop().await;

    // A transition committed with its audit record, then a crash before the log had it.
    let mut records = Records::open(store.clone()).unwrap();
    let mut record = AuditRecord::new(AuditKind::Change, "apikey:dev", "promotion/promote");
    record.target = Some("app/a@1.0.0".into());
    record.detail = Some("pr-9: app/a@1.0.0 entered `dev`".into());
    let mut change = records.change().auditing(true);
    change.audit(record.clone()).unwrap();
    change.commit().unwrap();
    store.flush().await.unwrap();
    assert_eq!(records.outbox().unwrap().len(), 1);

    for _ in 0..2 {
        let engine = Engine::start(&store, &log).await;
        let logged = promotions(&log);
        assert_eq!(logged.len(), before + 1, "{logged:#?}");
        assert_eq!(logged.last(), Some(&record));
        engine.stop().await;
    }
    let records = Records::open(store.clone()).unwrap();
    assert!(records.outbox().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_keeps_the_pipeline_version_it_opened_with() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let engine = Engine::start(&store, &log).await;
    let dev = person("dev", &["developer"]);
    assert_eq!(engine.pipeline(&dev, Gates::default()).await.version, 1);
    engine.put("app/a", "1.0.0").await;
    engine.put("app/b", "1.0.0").await;
    let ho = engine.report(&dev).await;
    let old = engine.request(&dev, "app/a", &ho).await;
    assert_eq!(old.pipeline, "p@1");
    let strict = Gates {
        signoffs: Some(SignoffGate {
            roles: vec!["qa".into()],
            min: None,
            renew_on_revision: true,
        }),
        ..Gates::default()
    };
    assert_eq!(engine.pipeline(&dev, strict.clone()).await.version, 2);
    // The same definition again is no new version.
    assert_eq!(engine.pipeline(&dev, strict).await.version, 2);
    let new = engine.request(&dev, "app/b", &ho).await;
    assert_eq!(new.pipeline, "p@2");
    assert_eq!(
        engine.promote(&dev, &old.request_id).await.unwrap().state,
        RequestState::Promoted
    );
    let refused = engine.promote(&dev, &new.request_id).await.unwrap_err();
    assert!(refused.to_string().contains("signoffs"), "{refused}");
    // Both pipeline definitions and both outcomes are on record.
    let actions: Vec<String> = promotions(&log).into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "promotion/pipeline_set")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "promotion/promote").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_carry_over_a_new_revision_only_when_the_stage_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let engine = Engine::start(&store, &log).await;
    let dev = person("dev", &["developer"]);
    let qa = person("qa", &["qa"]);
    for (renew, artifact) in [(false, "app/keep"), (true, "app/renew")] {
        engine
            .pipeline(
                &dev,
                Gates {
                    signoffs: Some(SignoffGate {
                        roles: vec!["qa".into()],
                        min: None,
                        renew_on_revision: renew,
                    }),
                    ..Gates::default()
                },
            )
            .await;
        engine.put(artifact, "1.0.0").await;
        let ho = engine.report(&dev).await;
        let r = engine.request(&dev, artifact, &ho).await;
        let sign = PromotionSignRequest {
            request_id: r.request_id.clone(),
            role: "qa".into(),
            decision: Decision::Approve,
            comment: "ok".into(),
        };
        engine
            .ask(|c, p| PromotionMsg::Sign(qa.clone(), sign, c, p))
            .await
            .unwrap();
        let mut fields = Map::new();
        fields.insert("id".into(), json!(ho));
        fields.insert("new_revision".into(), json!(true));
        fields.insert("summary".into(), json!("revised"));
        engine
            .ask(|c, p| PromotionMsg::HandoffUpdate(dev.clone(), HandoffUpdateInput(fields), c, p))
            .await
            .unwrap();
        let submit = HandoffSubmitRequest { id: ho.clone() };
        engine
            .ask(|c, p| PromotionMsg::HandoffSubmit(dev.clone(), submit, c, p))
            .await
            .unwrap();
        let promoted = engine.promote(&dev, &r.request_id).await;
        if renew {
            let e = promoted.unwrap_err().to_string();
            assert!(e.contains("waiting for: qa"), "{e}");
        } else {
            let info = promoted.unwrap();
            assert_eq!(info.handoff_revision, 2);
            assert_eq!(info.signoffs.len(), 1, "{info:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_approval_is_a_different_persons_when_governed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let engine = Engine::start(&store, &log).await;
    let dev = person("dev", &["developer"]);
    let both = person("pat", &["qa", "security"]);
    let sec = person("sam", &["security"]);
    engine
        .pipeline(
            &dev,
            Gates {
                signoffs: Some(SignoffGate {
                    roles: vec!["qa".into(), "security".into()],
                    min: None,
                    renew_on_revision: true,
                }),
                ..Gates::default()
            },
        )
        .await;
    engine.put("app/a", "1.0.0").await;
    let ho = engine.report(&dev).await;
    let r = engine.request(&dev, "app/a", &ho).await;
    let sign = |who: &Caller, role: &str| {
        let who = who.clone();
        let req = PromotionSignRequest {
            request_id: r.request_id.clone(),
            role: role.into(),
            decision: Decision::Approve,
            comment: String::new(),
        };
        engine.ask(move |c, p| PromotionMsg::Sign(who, req, c, p))
    };
    sign(&both, "qa").await.unwrap();
    let e = sign(&both, "security").await.unwrap_err().to_string();
    assert!(
        e.contains("already approved") && e.contains("another person"),
        "{e}"
    );
    sign(&sec, "security").await.unwrap();
    assert_eq!(
        engine.promote(&dev, &r.request_id).await.unwrap().state,
        RequestState::Promoted
    );
}

/// A workflow engine whose runs complete only when the test says so.
struct HeldRuns(Arc<tokio::sync::Semaphore>);

impl ToolInvoker for HeldRuns {
    fn traits(&self, _: &str) -> Option<ToolTraits> {
        None
    }

    fn invoke(&self, tool: &str, _: Value, _: CancellationToken) -> InvokeFuture {
        let (tool, held) = (tool.to_string(), self.0.clone());
        Box::pin(async move {
            match tool.as_str() {
                "workflow_run" => {
                    held.acquire()
                        .await
                        .map_err(|e| InvokeError::Failed(e.to_string()))?
                        .forget();
                    Ok(json!({"run_id": "wf-1"}))
                }
                "workflow_status" => {
                    held.acquire()
                        .await
                        .map_err(|e| InvokeError::Failed(e.to_string()))?
                        .forget();
                    Ok(json!({"run_id": "wf-1", "state": "completed"}))
                }
                _ => Err(InvokeError::UnknownTool(tool)),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_answers_while_a_request_or_a_promotion_waits_on_another_engine() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let held = Arc::new(tokio::sync::Semaphore::new(0));
    let engine = Engine::start_with(&store, &log, Arc::new(HeldRuns(held.clone()))).await;
    let dev = person("dev", &["developer"]);
    engine
        .pipeline(
            &dev,
            Gates {
                workflow: Some(WorkflowGate {
                    template: "smoke".into(),
                    version: None,
                    params: Map::new(),
                }),
                ..Gates::default()
            },
        )
        .await;
    engine.put("app/a", "1.0.0").await;
    let ho = engine.report(&dev).await;
    // Opening the request starts the gate's run: held, while the engine answers others.
    let opening = {
        let slot = engine.promotion.clone();
        let (who, req) = (
            dev.clone(),
            PromotionRequestRequest {
                artifact: "app/a".into(),
                version: "1.0.0".into(),
                handoff_id: ho.clone(),
                stage: None,
            },
        );
        tokio::spawn(async move {
            slot.ask(|reply| PromotionMsg::Request(who, req, CancellationToken::new(), reply))
                .await
        })
    };
    let pipelines = engine
        .ask(|c, p| PromotionMsg::PipelineList(PipelineListRequest {}, c, p))
        .await
        .unwrap();
    assert_eq!(pipelines.pipelines.len(), 2);
    assert!(!opening.is_finished());
    held.add_permits(1);
    let r = opening.await.unwrap().unwrap().unwrap();
    assert_eq!(r.workflow_run.as_deref(), Some("wf-1"));
    let promotion = {
        let slot = engine.promotion.clone();
        let (who, req) = (
            dev.clone(),
            PromotionPromoteRequest {
                request_id: r.request_id.clone(),
                rerun_workflow: false,
            },
        );
        tokio::spawn(async move {
            slot.ask(|reply| PromotionMsg::Promote(who, req, CancellationToken::new(), reply))
                .await
        })
    };
    // The promotion waits on the run's status; the engine still answers.
    let listed = engine
        .ask(|c, p| PromotionMsg::List(PromotionListRequest::default(), c, p))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].state, RequestState::Open);
    assert!(!promotion.is_finished());
    held.add_permits(1);
    let info = promotion.await.unwrap().unwrap().unwrap();
    assert_eq!(info.state, RequestState::Promoted);
}

/// One step a user may take.
#[derive(Debug, Clone)]
enum Op {
    /// `person` asks for `artifact@version` to enter its next stage.
    Request { artifact: usize, version: usize },
    /// `person` signs one of the requests made so far.
    Sign {
        request: usize,
        person: usize,
        approve: bool,
    },
    /// The releaser promotes one of the requests made so far.
    Promote { request: usize },
    /// A new revision of the report is submitted.
    Revise,
    /// The releaser rolls `artifact`'s `stage` back.
    Rollback { artifact: usize, stage: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0..2usize, 0..2usize).prop_map(|(artifact, version)| Op::Request { artifact, version }),
        (0..8usize, 0..3usize, proptest::bool::weighted(0.85)).prop_map(
            |(request, person, approve)| Op::Sign {
                request,
                person,
                approve
            }
        ),
        (0..8usize).prop_map(|request| Op::Promote { request }),
        Just(Op::Revise),
        (0..2usize, 0..2usize).prop_map(|(artifact, stage)| Op::Rollback { artifact, stage }),
    ]
}

/// Whatever users do, in whatever order: a stage holds what its last history event says; every
/// promoted request put its version into its stage exactly once, with one audit record; an
/// answered promotion is promoted; at most one request is open per version and stage.
async fn run_ops(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let engine = Engine::start(&store, &log).await;
    let dev = person("dev", &["developer"]);
    let signers = [
        person("qa1", &["qa"]),
        person("qa2", &["qa"]),
        person("sec", &["security"]),
    ];
    let releaser = person("rel", &["release"]);
    let signoffs = SignoffGate {
        roles: vec!["qa".into(), "security".into()],
        min: Some(1),
        renew_on_revision: true,
    };
    let req = PipelineSetRequest {
        name: "p".into(),
        pattern: "app/*".into(),
        stages: vec![
            StageDef {
                name: "dev".into(),
                gates: Gates::default(),
            },
            StageDef {
                name: "prod".into(),
                gates: Gates {
                    signoffs: Some(signoffs),
                    ..Gates::default()
                },
            },
        ],
    };
    engine
        .ask(|c, r| PromotionMsg::PipelineSet(dev.clone(), req, c, r))
        .await
        .unwrap();
    let artifacts = ["app/a", "app/b"];
    let versions = ["1.0.0", "2.0.0"];
    for a in artifacts {
        for v in versions {
            engine.put(a, v).await;
        }
    }
    let ho = engine.report(&dev).await;
    let mut requests: Vec<String> = Vec::new();
    let mut promoted_answers = Vec::new();
    for op in ops {
        match op {
            Op::Request { artifact, version } => {
                let req = PromotionRequestRequest {
                    artifact: artifacts[artifact].into(),
                    version: versions[version].into(),
                    handoff_id: ho.clone(),
                    stage: None,
                };
                if let Ok(info) = engine
                    .ask(|c, r| PromotionMsg::Request(dev.clone(), req, c, r))
                    .await
                {
                    requests.push(info.request_id);
                }
            }
            Op::Sign {
                request,
                person,
                approve,
            } => {
                // Any request made so far (the index wraps around them).
                let Some(id) = requests.get(request % requests.len().max(1)) else {
                    continue;
                };
                let who = signers[person].clone();
                let role = if person == 2 { "security" } else { "qa" };
                let req = PromotionSignRequest {
                    request_id: id.clone(),
                    role: role.into(),
                    decision: if approve {
                        Decision::Approve
                    } else {
                        Decision::Reject
                    },
                    comment: String::new(),
                };
                let _ = engine.ask(|c, r| PromotionMsg::Sign(who, req, c, r)).await;
            }
            Op::Promote { request } => {
                // Any request made so far (the index wraps around them).
                let Some(id) = requests.get(request % requests.len().max(1)) else {
                    continue;
                };
                if let Ok(info) = engine.promote(&releaser, id).await {
                    assert_eq!(info.state, RequestState::Promoted);
                    promoted_answers.push(id.clone());
                }
            }
            Op::Revise => {
                let mut fields = Map::new();
                fields.insert("id".into(), json!(ho));
                fields.insert("new_revision".into(), json!(true));
                let _ = engine
                    .ask(|c, p| {
                        PromotionMsg::HandoffUpdate(dev.clone(), HandoffUpdateInput(fields), c, p)
                    })
                    .await;
                let submit = HandoffSubmitRequest { id: ho.clone() };
                let _ = engine
                    .ask(|c, p| PromotionMsg::HandoffSubmit(dev.clone(), submit, c, p))
                    .await;
            }
            Op::Rollback { artifact, stage } => {
                let req = PromotionRollbackRequest {
                    artifact: artifacts[artifact].into(),
                    stage: ["dev", "prod"][stage].into(),
                    reason: "property".into(),
                };
                let _ = engine
                    .ask(|c, p| PromotionMsg::Rollback(releaser.clone(), req, c, p))
                    .await;
            }
        }
    }
    // Every request as the engine sees it now.
    let listed = engine
        .ask(|c, p| {
            PromotionMsg::List(
                PromotionListRequest {
                    limit: Some(500),
                    ..Default::default()
                },
                c,
                p,
            )
        })
        .await
        .unwrap()
        .items;
    let promoted: Vec<&PromotionInfo> = listed
        .iter()
        .filter(|r| r.state == RequestState::Promoted)
        .collect();
    for id in &promoted_answers {
        assert!(promoted.iter().any(|r| &r.request_id == id), "{id}");
    }
    let mut open = std::collections::BTreeSet::new();
    for r in listed
        .iter()
        .filter(|r| matches!(r.state, RequestState::Open | RequestState::Rejected))
    {
        assert!(
            open.insert((r.artifact.clone(), r.stage.clone(), r.version.clone())),
            "two open requests for {}@{} into {}",
            r.artifact,
            r.version,
            r.stage
        );
    }
    for artifact in artifacts {
        let req = PromotionHistoryRequest {
            artifact: artifact.into(),
        };
        let Ok(history) = engine.ask(|c, p| PromotionMsg::History(req, c, p)).await else {
            assert!(promoted.iter().all(|r| r.artifact != artifact));
            continue;
        };
        // Each promoted request entered its stage exactly once.
        for r in promoted.iter().filter(|r| r.artifact == artifact) {
            let entered = history
                .events
                .iter()
                .filter(|e| e.request_id.as_deref() == Some(r.request_id.as_str()))
                .count();
            assert_eq!(entered, 1, "{} in {history:?}", r.request_id);
        }
        // What each stage holds is what its last event left there.
        for stage in ["dev", "prod"] {
            let last = history.events.iter().rev().find(|e| e.stage == stage);
            let holds = history.stages.iter().find(|s| s.stage == stage);
            assert_eq!(
                holds.map(|s| s.version.clone()),
                last.and_then(|e| e.version.clone()),
                "{artifact} {stage}: {history:?}"
            );
        }
    }
    let audited = promotions(&log)
        .into_iter()
        .filter(|r| r.action == "promotion/promote")
        .count();
    assert_eq!(audited, promoted.len());
    engine.stop().await;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn the_request_state_machine_keeps_its_invariants(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_ops(ops));
    }
}
