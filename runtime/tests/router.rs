//! The router in front of the real engines, under a real supervisor.

use ensemble_actors::store::Store;
use ensemble_runtime::engines::{EngineConfig, default_policy, engines, register_tools};
use ensemble_runtime::router::{ActorTool, Annotations, Router, ToolError};
use ensemble_supervision::{Backoff, CancellationToken, EventBus, Supervisor};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

async fn runtime() -> (
    Router,
    ractor::ActorRef<ensemble_supervision::SupervisorMsg>,
) {
    let store = Store::temporary().unwrap();
    let router = Router::new();
    let (spec, slots) = engines(
        &store,
        &EventBus::default(),
        std::sync::Arc::new(router.clone()),
        ensemble_runtime::runs::run_observer(&router),
        &EngineConfig::default(),
    );
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    register_tools(&router, &slots, false).unwrap();
    (router, sup)
}

#[tokio::test]
async fn tools_are_listed_in_order_with_real_schemas() {
    let (router, sup) = runtime().await;
    let names: Vec<String> = router.list().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "cache_invalidate",
            "development_check_style",
            "development_learn",
            "development_suggest_imports",
            "devops_observe",
            "devops_predict",
            "devops_recommend",
            "devops_report_outcome",
            "handoff_create",
            "handoff_get",
            "handoff_submit",
            "handoff_update",
            "learning_export",
            "learning_import",
            "learning_stats",
            "promotion_history",
            "promotion_list",
            "promotion_pipeline_get",
            "promotion_pipeline_list",
            "promotion_pipeline_set",
            "promotion_promote",
            "promotion_request",
            "promotion_rollback",
            "promotion_sign",
            "promotion_status",
            "quality_observe_commits",
            "quality_observe_results",
            "quality_select_tests",
            "queue_set_policy",
            "queue_stats",
            "rag_create_collection",
            "rag_delete",
            "rag_drop_collection",
            "rag_get",
            "rag_index",
            "rag_index_artifact",
            "rag_search",
            "rag_stats",
            "registry_get",
            "registry_list",
            "registry_put",
            "registry_versions",
            "shell_check",
            "shell_feedback",
            "shell_observe",
            "shell_suggest",
            "task_cancel",
            "task_list",
            "task_set_priority",
            "task_status",
            "task_submit",
            "taxonomy_ancestors",
            "taxonomy_classify",
            "taxonomy_descendants",
            "taxonomy_export",
            "taxonomy_get_concept",
            "taxonomy_import",
            "taxonomy_list",
            "taxonomy_search_labels",
            "taxonomy_validate",
            "template_get",
            "template_instantiate",
            "template_list",
            "template_register",
            "validation_list_schemas",
            "validation_register_schema",
            "validation_validate",
            "workflow_cancel",
            "workflow_list",
            "workflow_run",
            "workflow_status",
            "workflow_validate"
        ]
    );
    let put = router.spec("registry_put").unwrap();
    assert_eq!(put.input_schema["type"], "object");
    let required = put.input_schema["required"].as_array().unwrap();
    assert!(required.contains(&json!("name")) && required.contains(&json!("version")));
    assert!(put.output_schema.unwrap()["properties"]["digest"].is_object());
    assert!(router.spec("registry_get").unwrap().annotations.read_only);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn put_get_and_validate_through_the_router() {
    let (router, sup) = runtime().await;
    let put = router
        .call(
            "registry_put",
            json!({"name": "orders/schema", "version": "1.0.0", "content": {"type": "object"}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(put["created"], true);
    let got = router
        .call("registry_get", json!({"name": "orders/schema"}), None)
        .await
        .unwrap();
    assert_eq!(got["digest"], put["digest"]);
    assert_eq!(got["content"], json!({"type": "object"}));

    router
        .call(
            "validation_register_schema",
            json!({"name": "order", "version": "1.0.0", "schema": {"type": "object", "required": ["id"]}}),
            None,
        )
        .await
        .unwrap();
    let v = router
        .call(
            "validation_validate",
            json!({"schema": "order", "document": {}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["path"], "");
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn every_error_path_says_what_to_fix() {
    let (router, sup) = runtime().await;
    let err = router
        .call("registry_fetch", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::UnknownTool("registry_fetch".into()));

    let err = router
        .call("registry_put", json!({"name": "a", "content": 1}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidArguments { message, .. } if message.contains("missing field `version`")),
        "{err}"
    );
    let err = router
        .call(
            "registry_get",
            json!({"name": "a", "versoin": "1.0.0"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `versoin`"), "{err}");

    router
        .call(
            "registry_put",
            json!({"name": "a", "version": "1.0.0", "content": 1}),
            None,
        )
        .await
        .unwrap();
    let err = router
        .call(
            "registry_put",
            json!({"name": "a", "version": "1.0.0", "content": 2}),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Engine(m) if m.contains("versions are immutable")),
        "{err}"
    );
    sup.stop_and_wait(None, None).await.unwrap();
}

#[derive(Clone, Deserialize, JsonSchema)]
struct CrashRequest {
    panic: bool,
}

#[derive(Serialize, JsonSchema)]
struct CrashResponse {
    ok: bool,
}

enum CrashMsg {
    Go(
        CrashRequest,
        CancellationToken,
        RpcReplyPort<Result<CrashResponse, String>>,
    ),
}

struct Crashy;

impl Actor for Crashy {
    type Msg = CrashMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<CrashMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<CrashMsg>,
        msg: CrashMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let CrashMsg::Go(req, cancel, reply) = msg;
        if cancel.is_cancelled() {
            return Ok(());
        }
        assert!(!req.panic, "told to crash");
        let _ = reply.send(Ok(CrashResponse { ok: true }));
        Ok(())
    }
}

#[tokio::test]
async fn a_crash_mid_call_is_an_error_result_and_the_next_call_succeeds() {
    let slot = ensemble_supervision::ActorSlot::new("crashy");
    let spec = ensemble_supervision::SupervisorSpec::new("host")
        .backoff(Backoff::ZERO)
        .child(ensemble_supervision::ChildSpec::actor(&slot, || {
            (Crashy, ())
        }));
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    let router = Router::new();
    router
        .register_actor(
            ActorTool {
                name: "crashy_go",
                description: "Answers, or crashes when told to.",
                annotations: Annotations::default(),
                slot: slot.clone(),
                policy: default_policy("crashy_go"),
            },
            CrashMsg::Go,
        )
        .unwrap();
    let err = router
        .call("crashy_go", json!({"panic": true}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Runtime(m) if m.contains("engine `crashy` failed and is restarting")),
        "{err}"
    );
    slot.ready().await;
    let ok = router
        .call("crashy_go", json!({"panic": false}), None)
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true}));
    sup.stop_and_wait(None, None).await.unwrap();
}
