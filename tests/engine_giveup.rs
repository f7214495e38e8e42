//! A real runtime whose registry exhausts its restart intensity: the registry's own supervisor
//! gives up, the engines supervisor brings the registry back after a backoff, and the other
//! engines serve throughout; past the top-level budget the runtime is gone for good.

use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::engines::{EngineState, TreeConfig};
use ensemble::supervision::{Backoff, EventKind, Intensity};
use serde_json::json;

/// The registry tolerates one restart a minute; a given-up engine is back after 2.5–5 s (longer
/// than a retry waits for a restart, 2 s, so that its callers are refused fast meanwhile).
fn tree(budget: u32) -> TreeConfig {
    let mut tree = TreeConfig {
        budget: Intensity {
            max_restarts: budget,
            period: Duration::from_secs(600),
        },
        subtree_backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(5)),
        ..TreeConfig::default()
    };
    tree.engine_overrides.insert(
        "registry".to_string(),
        Intensity {
            max_restarts: 1,
            period: Duration::from_secs(60),
        },
    );
    tree
}

async fn runtime(budget: u32) -> Runtime {
    Runtime::builder()
        .in_memory()
        .test_tools(true)
        .supervision(tree(budget))
        .build()
        .await
        .expect("runtime")
}

async fn validate(rt: &Runtime) -> Result<serde_json::Value, String> {
    rt.router()
        .call(
            "validation_validate",
            json!({"schema": {"type": "integer"}, "document": 3}),
            None,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Crashes the registry twice: the second crash is one restart too many for its supervisor.
async fn exhaust_the_registry(rt: &Runtime) {
    for _ in 0..2 {
        rt.engines().registry.ready().await;
        let err = rt
            .router()
            .call("registry_debug_crash", json!({}), None)
            .await
            .expect_err("the crash fails the call");
        assert!(
            err.to_string().contains("failed and is restarting"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_given_up_engine_comes_back_and_the_others_never_stop() {
    let rt = runtime(10).await;
    let mut events = rt.events().subscribe();
    rt.router()
        .call(
            "registry_put",
            json!({"name": "kept", "version": "1.0.0", "content": {"a": 1}}),
            None,
        )
        .await
        .expect("put");
    let validation_generation = rt.engines().validation.generation();

    exhaust_the_registry(&rt).await;
    // While the registry's subtree waits for its restart, its calls are refused fast with the
    // time to retry, and validation answers.
    let refused = rt
        .router()
        .call("registry_list", json!({}), None)
        .await
        .expect_err("refused while restarting");
    assert!(refused.to_string().contains("retry in"), "{refused}");
    let down: Vec<_> = rt
        .engines()
        .states()
        .into_iter()
        .filter(|(_, s)| *s != EngineState::Running)
        .collect();
    assert_eq!(down, [("registry", EngineState::Restarting)]);
    validate(&rt).await.expect("validation serves");

    tokio::time::timeout(Duration::from_secs(10), rt.engines().registry.ready())
        .await
        .expect("the registry is back");
    let got = rt
        .router()
        .call("registry_get", json!({"name": "kept"}), None)
        .await
        .expect("the stored artifact survived");
    assert_eq!(got["content"], json!({"a": 1}));
    assert_eq!(rt.engines().validation.generation(), validation_generation);
    assert!(!rt.is_gone());

    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        seen.iter()
            .any(|e| &*e.supervisor == "registry" && matches!(e.kind, EventKind::GaveUp { .. }))
    );
    assert!(seen.iter().any(|e| &*e.supervisor == "engines"
        && &*e.child == "registry"
        && matches!(e.kind, EventKind::RestartScheduled { .. })));
    assert!(!seen.iter().any(|e| &*e.child == "validation"
        && matches!(e.kind, EventKind::Failed { .. } | EventKind::Stopped)));
    rt.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn past_the_top_level_budget_the_runtime_is_gone() {
    let rt = runtime(0).await;
    exhaust_the_registry(&rt).await;
    tokio::time::timeout(Duration::from_secs(5), rt.gone())
        .await
        .expect("the runtime is gone for good");
    assert!(
        rt.engines()
            .states()
            .iter()
            .all(|(_, s)| *s == EngineState::Stopped)
    );
    // Nothing waits for an engine that will never come back.
    let err = tokio::time::timeout(Duration::from_secs(2), validate(&rt))
        .await
        .expect("answered at once")
        .expect_err("no engine");
    assert!(err.contains("not running"), "{err}");
}
