//! The configuration's policy settings reach the routes: an engine's breaker opens after the
//! calls it is configured to judge by, not after the defaults' ten.

use ensemble_runtime::Runtime;
use ensemble_runtime::config::Config;
use serde_json::json;

/// Calls `registry_debug_crash` (the registry actor panics) twice; the second call's error.
async fn second_crash_error(config: &Config) -> String {
    let runtime = Runtime::builder()
        .config(config)
        .in_memory()
        .test_tools(true)
        .build()
        .await
        .expect("runtime");
    let first = runtime
        .router()
        .call("registry_debug_crash", json!({}), None)
        .await;
    assert!(first.is_err(), "the registry actor panics");
    let second = runtime
        .router()
        .call("registry_debug_crash", json!({}), None)
        .await
        .expect_err("a crash again, or a refusal");
    runtime.shutdown().await.expect("shutdown");
    second.to_string()
}

#[tokio::test]
async fn an_engines_breaker_settings_take_effect() {
    let mut config = Config::default();
    let breaker = &mut config.engines.registry.breaker;
    breaker.sliding_window_size = 1;
    breaker.minimum_calls = 1;
    breaker.wait_in_open_ms = 60_000;
    let error = second_crash_error(&config).await;
    assert!(
        error.contains("circuit breaker is open"),
        "one failure opens a breaker judging one call: {error}"
    );

    let error = second_crash_error(&Config::default()).await;
    assert!(
        !error.contains("circuit breaker"),
        "the default breaker waits for ten calls: {error}"
    );
}
