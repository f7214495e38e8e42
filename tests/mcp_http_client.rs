//! The real binary over Streamable HTTP, driven by rmcp's own HTTP client: the same tools and
//! error paths as over stdio.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, object};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["serve", "--in-memory", "--http", "127.0.0.1:0"])
        .env("ENSEMBLE_TEST_TOOLS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ensemble");
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "exited early");
        if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.lines() {});
    Server { child, url }
}

async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    c.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .expect("a tool result")
}

#[tokio::test]
async fn rmcp_http_client_lists_calls_and_gets_errors_the_mcp_way() {
    let server = start();
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(server.url.clone()))
            .await
            .expect("MCP over HTTP");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    for expected in [
        "registry_put",
        "validation_validate",
        "task_submit",
        "workflow_run",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }

    let put = call(
        &client,
        "registry_put",
        json!({"name": "web/cfg", "version": "2.0.0", "content": {"port": 80}}),
    )
    .await;
    assert_eq!(put.is_error, Some(false));
    let get = call(&client, "registry_get", json!({"name": "web/cfg"})).await;
    assert_eq!(
        get.structured_content.unwrap()["content"],
        json!({"port": 80})
    );
    let v = call(
        &client,
        "validation_validate",
        json!({"schema": {"type": "integer", "minimum": 10}, "document": 3}),
    )
    .await;
    assert_eq!(v.structured_content.unwrap()["valid"], false);

    // Unknown tool: a JSON-RPC error. Bad arguments and engine errors: isError results.
    let err = client
        .call_tool(CallToolRequestParams::new("nope").with_arguments(object(json!({}))))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code.0, -32602);
    let bad = call(&client, "registry_put", json!({"name": "x"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(format!("{:?}", bad.content).contains("version"));
    let conflict = call(
        &client,
        "registry_put",
        json!({"name": "web/cfg", "version": "2.0.0", "content": {"port": 81}}),
    )
    .await;
    assert_eq!(conflict.is_error, Some(true));

    // A crash mid-call is an error result; the restarted engine answers the next call.
    let crash = call(&client, "registry_debug_crash", json!({"reason": "test"})).await;
    assert_eq!(crash.is_error, Some(true));
    let mut again = call(&client, "registry_get", json!({"name": "web/cfg"})).await;
    for _ in 0..50 {
        if again.is_error == Some(false) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        again = call(&client, "registry_get", json!({"name": "web/cfg"})).await;
    }
    assert_eq!(again.is_error, Some(false));

    // A workflow over HTTP, waited for.
    let run = call(
        &client,
        "workflow_run",
        json!({"wait": true, "definition": {"steps": [
            {"id": "a", "tool": "registry_versions", "arguments": {"name": "web/cfg"}},
            {"id": "b", "tool": "validation_validate", "depends_on": ["a"],
             "arguments": {"schema": {"type": "array"}, "document": "${steps.a.output.versions}"}}
        ]}}),
    )
    .await;
    let run = run.structured_content.unwrap();
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["steps"][1]["output"]["valid"], true);
    client.cancel().await.unwrap();
}
