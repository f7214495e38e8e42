//! The quality and devops learners against the real binary: what they acknowledged a flush
//! interval before a SIGKILL is there after the restart, and answers as before.

mod common;

use std::time::Duration;

use common::{connect, serve_http};
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const CONFIG: &str = "[learning.quality]\nflush_interval_ms = 200\n\n\
                      [learning.devops]\nflush_interval_ms = 200\n";

async fn call(c: &common::Client, tool: &str, args: Value) -> Value {
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
    r.structured_content.expect("structured")
}

fn commits() -> Value {
    let commits: Vec<Value> = (0..40)
        .map(|i| {
            let files = if i % 2 == 0 {
                json!([
                    "src/main/java/org/a/Cache.java",
                    "src/test/java/org/a/SmokeSuite.java"
                ])
            } else {
                json!([format!("src/main/java/org/a/Other{i}.java")])
            };
            json!({"sha": format!("k{i}"), "files": files})
        })
        .collect();
    json!(commits)
}

fn select() -> Value {
    json!({"repo": "svc", "changed_files": ["src/main/java/org/a/Cache.java"],
           "candidates": [{"id": "org.a.SmokeSuite"}, {"id": "org.a.OtherTest"},
                          {"id": "org.a.CacheLoaderTest"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_keeps_what_was_acknowledged_a_flush_interval_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve_http(dir.path(), CONFIG, &[]);
    let c = connect(&server.url).await;
    call(
        &c,
        "quality_observe_commits",
        json!({"repo": "svc", "commits": commits()}),
    )
    .await;
    for i in 0..60 {
        let lines = 1 + (i * 37) % 400;
        call(
            &c,
            "devops_observe",
            json!({"project": "svc", "change_id": format!("d{i}"), "time": 1_700_000_000 + i * 3600,
                   "features": {"lines": lines, "exp": (i * 53) % 300}}),
        )
        .await;
        call(
            &c,
            "devops_report_outcome",
            json!({"project": "svc", "change_id": format!("d{i}"),
                   "outcome": if lines > 200 { "failure" } else { "success" },
                   "time": 1_700_000_000 + i * 3600}),
        )
        .await;
    }
    let ranked = call(&c, "quality_select_tests", select()).await;
    let risk = call(
        &c,
        "devops_predict",
        json!({"project": "svc", "features": {"lines": 390, "exp": 3}}),
    )
    .await;
    // Well past the flush interval, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    drop(c);

    let server = serve_http(dir.path(), CONFIG, &[]);
    let c = connect(&server.url).await;
    let again = call(&c, "quality_select_tests", select()).await;
    assert_eq!(again, ranked, "the same ranking after the restart");
    assert_eq!(again["ranked"][0]["id"], "org.a.SmokeSuite", "{again}");
    assert_eq!(again["commits_known"], 40, "{again}");
    let risk_again = call(
        &c,
        "devops_predict",
        json!({"project": "svc", "features": {"lines": 390, "exp": 3}}),
    )
    .await;
    assert_eq!(risk_again["project_outcomes"], 60, "{risk_again}");
    let (a, b) = (
        risk["failure_probability"].as_f64().unwrap(),
        risk_again["failure_probability"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-9, "{risk}\n{risk_again}");
    let _ = c.cancel().await;
}
