//! The operator's controls against the real binary: read-only and lockdown modes, suspended
//! identities and disabled tools take effect on the next request, hold across a restart (even
//! a kill -9), and lockdown is lifted only by the operator (`ensemble admin mode`), never by a
//! tool call.

mod common;

use rmcp::model::{CallToolRequestParams, CallToolResult, object};
use rmcp::service::ServiceError;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ens-admin-5be1";
const USER_KEY: &str = "ens-user-0a7d";

fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("admin", ADMIN_KEY, &["admin"]),
        ("user", USER_KEY, &["user"]),
    ]);
    format!(
        r#"
[governance]
break_glass = ["apikey:admin"]

[[governance.roles]]
name = "admin"
tools = ["*"]

[[governance.roles]]
name = "user"
tools = ["registry_*"]

# Patterns naming only governance tools are valid (they exist once governance is configured).
[[governance.roles]]
name = "auditor"
tools = ["audit_query", "governance_status"]




{accounts}"#
    )
}

use common::Client;

async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult, ServiceError> {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
}

fn code(r: Result<CallToolResult, ServiceError>) -> i32 {
    match r {
        Err(ServiceError::McpError(e)) => e.code.0,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

async fn names(client: &Client) -> Vec<String> {
    let mut v: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    v.sort();
    v
}

fn put_args(version: &str) -> Value {
    json!({"name": "cfg", "version": version, "content": {"v": version}})
}

fn admin_mode(mode: &str, how: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["admin", "mode", mode, "--reason", "test"])
        .args(how)
        .output()
        .expect("ensemble admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_suspensions_and_disabled_tools_hold_and_only_the_operator_lifts_lockdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    assert!(call(&user, "registry_put", put_args("1.0.0")).await.is_ok());

    // Read-only: writes refuse with 423 and leave the user's list; reads go on.
    call(
        &admin,
        "governance_set_mode",
        json!({"mode": "read_only", "reason": "audit"}),
    )
    .await
    .expect("set read_only");
    assert_eq!(
        code(call(&user, "registry_put", put_args("1.0.1")).await),
        423
    );
    assert!(
        call(&user, "registry_get", json!({"name": "cfg"}))
            .await
            .is_ok()
    );
    let listed = names(&user).await;
    assert!(!listed.contains(&"registry_put".to_string()), "{listed:?}");
    assert!(listed.contains(&"registry_get".to_string()), "{listed:?}");

    // Lockdown: nothing for the user, the break-glass admin still works.
    call(
        &admin,
        "governance_set_mode",
        json!({"mode": "lockdown", "reason": "leak"}),
    )
    .await
    .expect("set lockdown");
    assert_eq!(
        code(call(&user, "registry_get", json!({"name": "cfg"})).await),
        423
    );
    assert!(names(&user).await.is_empty());
    assert!(
        call(&admin, "registry_get", json!({"name": "cfg"}))
            .await
            .is_ok()
    );
    // No tool loosens it, not even for the admin: not to read_only, not to normal.
    let looser = call(
        &admin,
        "governance_set_mode",
        json!({"mode": "read_only", "reason": "x"}),
    )
    .await
    .expect("a tool result");
    assert_eq!(looser.is_error, Some(true), "{looser:?}");
    let lift = call(
        &admin,
        "governance_set_mode",
        json!({"mode": "normal", "reason": "x"}),
    )
    .await
    .expect("a tool result");
    assert_eq!(lift.is_error, Some(true));
    assert!(format!("{lift:?}").contains("operator action"), "{lift:?}");

    // A kill -9 and a restart: still in lockdown.
    admin.cancel().await.ok();
    user.cancel().await.ok();
    drop(server);
    let config_text = config();
    let server = common::serve_http(dir.path(), &config_text, &[]);
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    assert_eq!(
        code(call(&user, "registry_get", json!({"name": "cfg"})).await),
        423
    );

    // The operator lifts it on the server's machine.
    let out = admin_mode("normal", &["--url", server.base()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        call(&user, "registry_get", json!({"name": "cfg"}))
            .await
            .is_ok()
    );

    // Suspension: the user's next request is refused (401 over HTTP); lifting restores it.
    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;
    call(
        &admin,
        "governance_suspend",
        json!({"subject": "apikey:user", "reason": "odd calls"}),
    )
    .await
    .expect("suspend");
    let refused = call(&user, "registry_get", json!({"name": "cfg"})).await;
    assert!(refused.is_err(), "{refused:?}");
    let (status, _) = post_status(&server.url, USER_KEY).await;
    assert_eq!(status, 401);
    call(
        &admin,
        "governance_unsuspend",
        json!({"subject": "apikey:user"}),
    )
    .await
    .expect("unsuspend");
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    assert!(
        call(&user, "registry_get", json!({"name": "cfg"}))
            .await
            .is_ok()
    );

    // A disabled tool is gone for everyone, and back when enabled.
    call(
        &admin,
        "governance_disable_tool",
        json!({"tool": "registry_get", "disabled": true}),
    )
    .await
    .expect("disable");
    assert_eq!(
        code(call(&user, "registry_get", json!({"name": "cfg"})).await),
        -32602
    );
    assert!(!names(&admin).await.contains(&"registry_get".to_string()));
    call(
        &admin,
        "governance_disable_tool",
        json!({"tool": "registry_get", "disabled": false}),
    )
    .await
    .expect("enable");
    assert!(
        call(&user, "registry_get", json!({"name": "cfg"}))
            .await
            .is_ok()
    );
    let status: Value = call(&admin, "governance_status", json!({}))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    assert_eq!(status["you"], "apikey:admin");
    assert_eq!(status["controls"]["mode"]["mode"], "normal");
    assert_eq!(status["controls"]["mode"]["change"]["by"], "operator");
    admin.cancel().await.ok();
    user.cancel().await.ok();

    // Offline, on the data directory of a stopped server: lockdown set by the operator.
    drop(server);
    let data = dir.path().join("data");
    let out = admin_mode("lockdown", &["--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = common::serve_http(dir.path(), &config_text, &[]);
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    assert_eq!(
        code(call(&user, "registry_get", json!({"name": "cfg"})).await),
        423
    );
    // While it runs, the data directory is the server's: the offline form says what to do.
    let out = admin_mode("normal", &["--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
    user.cancel().await.ok();
}

/// A bare `initialize` POST with `key`: the status.
async fn post_status(url: &str, key: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {key}"))
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .expect("HTTP");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status().as_u16(), challenge)
}
