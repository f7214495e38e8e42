//! Governance against the real binary: roles and bindings from a configuration file, service
//! accounts' API keys over Streamable HTTP, the configured identity over stdio. A caller sees
//! only what it may use; a hidden tool answers exactly as an unknown one.

mod common;

use std::collections::HashMap;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::service::ServiceError;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

const WRITER_KEY: &str = "ens-writer-7f1c2a";
const READER_KEY: &str = "ens-reader-93bd0e";

fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("writer", WRITER_KEY, &["writer"]),
        ("reader", READER_KEY, &["reader"]),
    ]);
    format!(
        r#"
[governance.stdio]
subject = "ops"
roles = ["reader"]

[[governance.roles]]
name = "reader"
tools = ["registry_get", "registry_list", "registry_versions", "validation_*"]
resources = ["ensemble://registry/*"]

[[governance.roles.rate_limits]]
tools = "registry_versions"
per_minute = 2

[[governance.roles]]
name = "writer"
tools = ["registry_*", "task_*"]
deny_tools = ["task_cancel"]




{accounts}"#
    )
}

use common::Client;

async fn tool_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// The JSON-RPC error of a call, as `(code, message, data)` with the tool's name replaced by
/// `TOOL`, so that a hidden tool's answer compares equal to an unknown tool's.
async fn call_error(client: &Client, tool: &str) -> (i32, String, Value) {
    let err = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(json!({}))))
        .await
        .expect_err("a JSON-RPC error");
    let ServiceError::McpError(e) = err else {
        panic!("expected a JSON-RPC error, got {err:?}")
    };
    let data = serde_json::to_string(&e.data)
        .unwrap()
        .replace(tool, "TOOL");
    (
        e.code.0,
        e.message.replace(tool, "TOOL"),
        serde_json::from_str(&data).unwrap(),
    )
}

async fn put(client: &Client, name: &str) -> rmcp::model::CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new("registry_put").with_arguments(object(json!({
                "name": name, "version": "1.0.0", "content": {"port": 80}
            }))),
        )
        .await
        .expect("registry_put answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_over_http_see_and_call_only_what_their_roles_allow() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);

    let writer = common::keys::connect_with_key(&server.url, WRITER_KEY).await;
    let names = tool_names(&writer).await;
    assert!(names.contains(&"registry_put".to_string()), "{names:?}");
    assert!(names.contains(&"task_submit".to_string()), "{names:?}");
    assert!(
        !names.contains(&"task_cancel".to_string()),
        "deny wins: {names:?}"
    );
    assert!(
        !names.contains(&"workflow_run".to_string()),
        "default deny: {names:?}"
    );
    let r = put(&writer, "webcfg").await;
    assert_ne!(r.is_error, Some(true), "{r:?}");

    let reader = common::keys::connect_with_key(&server.url, READER_KEY).await;
    let names = tool_names(&reader).await;
    assert_eq!(
        names,
        [
            "registry_get",
            "registry_list",
            "registry_versions",
            "validation_list_schemas",
            "validation_register_schema",
            "validation_validate"
        ]
    );
    // A hidden tool answers exactly as a tool that does not exist.
    let hidden = call_error(&reader, "registry_put").await;
    let unknown = call_error(&reader, "registry_frobnicate").await;
    assert_eq!(hidden, unknown);
    assert_eq!(hidden.0, -32602);
    // What the reader may use works, and sees what the writer stored.
    let got = reader
        .call_tool(
            CallToolRequestParams::new("registry_get")
                .with_arguments(object(json!({"name": "webcfg"}))),
        )
        .await
        .expect("registry_get");
    assert_ne!(got.is_error, Some(true), "{got:?}");
    // Resources: the reader may read artifacts.
    let read = reader
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "ensemble://registry/webcfg/1.0.0",
        ))
        .await;
    assert!(read.is_ok(), "{read:?}");
    // The writer's role allows no resources: the same URI does not exist for it.
    let denied = writer
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "ensemble://registry/webcfg/1.0.0",
        ))
        .await
        .expect_err("hidden resource");
    assert!(denied.to_string().contains("no resource at"), "{denied}");
    let templates = writer
        .list_all_resource_templates()
        .await
        .expect("templates");
    assert!(templates.is_empty(), "{templates:?}");

    writer.cancel().await.ok();
    reader.cancel().await.ok();
}

/// One raw HTTP request to the server: `(status, headers, body)`.
async fn raw(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HashMap<String, String>, String) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("HTTP");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    (status, headers, resp.text().await.unwrap_or_default())
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_credentials_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let json = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    let (status, headers, _) = raw(&server.url, "POST", &json, INIT).await;
    assert_eq!(status, 401);
    // API keys only: no authorization server, so no metadata to point to.
    let challenge = &headers["www-authenticate"];
    assert_eq!(challenge, "Bearer realm=\"ensemble\"");

    let bad = [json[0], json[1], ("authorization", "Bearer not-a-key")];
    let (status, headers, _) = raw(&server.url, "POST", &bad, INIT).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"].contains("error=\"invalid_token\""),
        "{headers:?}"
    );

    // A valid key in the query string is refused: tokens go in the header only.
    let in_query = format!("{}?access_token={WRITER_KEY}", server.url);
    let (status, headers, _) = raw(&in_query, "POST", &json, INIT).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"].contains("invalid_request"),
        "{headers:?}"
    );
    // Also with the right header: the URL must not carry one.
    let auth = format!("Bearer {WRITER_KEY}");
    let good = [json[0], json[1], ("authorization", auth.as_str())];
    let (status, _, _) = raw(&in_query, "POST", &good, INIT).await;
    assert_eq!(status, 401);

    // The GET stream is authenticated too.
    let (status, _, _) = raw(&server.url, "GET", &[("accept", "text/event-stream")], "").await;
    assert_eq!(status, 401);

    // The right key gets through.
    let (status, _, body) = raw(&server.url, "POST", &good, INIT).await;
    assert_eq!(status, 200, "{body}");

    // MCP's metadata must name an authorization server: with API keys only there is none.
    let (status, _, _) = raw(
        &format!("{}/.well-known/oauth-protected-resource/mcp", server.base()),
        "GET",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 404);

    // A header that disagrees with the body does not decide anything: the body's call is
    // what is authorized (and the key may make it).
    let lying = [
        json[0],
        json[1],
        ("authorization", auth.as_str()),
        ("mcp-method", "tools/list"),
    ];
    let (status, _, _) = raw(&server.url, "POST", &lying, INIT).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_client_is_the_configured_identity() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ensemble.toml");
    std::fs::write(&file, config()).unwrap();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble")).configure(|c| {
        c.args(["serve", "--in-memory", "--config"]).arg(&file);
    });
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ensemble");
    let client = ().serve(transport).await.expect("MCP over stdio");
    let names = tool_names(&client).await;
    assert!(names.contains(&"registry_get".to_string()), "{names:?}");
    assert!(!names.contains(&"registry_put".to_string()), "{names:?}");
    // The stdio lane (plain calls skip rmcp's machinery) hides it too.
    let hidden = call_error(&client, "registry_put").await;
    let unknown = call_error(&client, "registry_frobnicate").await;
    assert_eq!(hidden, unknown);
    client.cancel().await.ok();
}

#[test]
fn a_bad_governance_section_is_reported_whole_by_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ensemble.toml");
    std::fs::write(
        &file,
        r#"
[[governance.roles]]
name = "reader"
tools = ["registry_gte"]

[[governance.bindings]]
subject = "alice"
roles = ["raeder"]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("governance.roles[0].tools")
            && err.contains("\"registry_gte\" matches no tool (did you mean `registry_get`?)"),
        "{err}"
    );
    assert!(
        err.contains("governance.bindings[0].roles")
            && err.contains("there is no role `raeder` (did you mean `reader`?)"),
        "{err}"
    );
}

#[test]
fn a_public_address_without_authentication_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["serve", "--in-memory", "--http", "0.0.0.0:0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without authentication")
            && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

/// A stateless 2026-07-28 `tools/call` with a key: answered by the runtime's own HTTP lane for
/// an allowed tool (the fast-lane counter moves), and as unknown for a hidden one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stateless_lane_is_governed_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let auth = format!("Bearer {READER_KEY}");
    let call = |tool: &'static str| {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}
        }}})
        .to_string();
        let (url, auth) = (server.url.clone(), auth.clone());
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
                ("authorization", auth.as_str()),
            ];
            let (status, _, body) = raw(&url, "POST", &headers, &body).await;
            (
                status,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let metrics = || async {
        reqwest::get(format!("{}/metrics", server.base()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let lane = |m: &str| common::metric(m, "ensemble_http_fast_lane_calls_total", "");
    let before = lane(&metrics().await);
    let (status, allowed) = call("registry_list").await;
    assert_eq!(status, 200, "{allowed}");
    assert!(
        allowed["result"]["structuredContent"].is_object(),
        "{allowed}"
    );
    assert_eq!(lane(&metrics().await), before + 1.0, "answered in the lane");
    let (_, hidden) = call("registry_put").await;
    let (_, unknown) = call("registry_frobnicate").await;
    assert_eq!(hidden["error"]["code"], json!(-32602), "{hidden}");
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("registry_put", "TOOL"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace("registry_frobnicate", "TOOL")
    );
}

/// Calls `registry_versions` three times over a 2026-07-28 stateless POST with `key`.
async fn versions_over_http(url: &str, key: &str) -> Vec<(u16, HashMap<String, String>, Value)> {
    let mut out = Vec::new();
    for id in 0..3 {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "registry_versions", "arguments": {"name": "nothing"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}
        }}})
        .to_string();
        let auth = format!("Bearer {key}");
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "registry_versions"),
            ("authorization", auth.as_str()),
        ];
        let (status, headers, body) = raw(url, "POST", &headers, &body).await;
        out.push((
            status,
            headers,
            serde_json::from_str(&body).unwrap_or(Value::Null),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_429_over_http_and_a_json_rpc_error_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let answers = versions_over_http(&server.url, READER_KEY).await;
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert_eq!(answers[1].0, 200, "{:?}", answers[1]);
    let (status, headers, body) = &answers[2];
    assert_eq!(*status, 429, "{body}");
    let retry: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=30).contains(&retry), "{headers:?}");
    assert_eq!(headers["ratelimit-policy"], "\"reader/0\";q=2;w=60");
    assert!(
        headers["ratelimit"].starts_with("\"reader/0\";r=0;t="),
        "{headers:?}"
    );
    assert_eq!(body["id"], json!(2));
    assert_eq!(body["error"]["code"], json!(429));
    assert!(body["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0);
    // Each identity has its own allowance; the writer's role has no limit at all.
    let writer = versions_over_http(&server.url, WRITER_KEY).await;
    assert!(writer.iter().all(|(s, ..)| *s == 200), "{writer:?}");

    // Over stdio the same limit is a JSON-RPC error with the same code and retry time.
    let file = dir.path().join("ensemble.toml");
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble")).configure(|c| {
        c.args(["serve", "--in-memory", "--config"]).arg(&file);
    });
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ensemble");
    let client = ().serve(transport).await.expect("MCP over stdio");
    let call = || {
        client.call_tool(
            CallToolRequestParams::new("registry_versions")
                .with_arguments(object(json!({"name": "nothing"}))),
        )
    };
    assert!(call().await.is_ok());
    assert!(call().await.is_ok());
    let Err(ServiceError::McpError(e)) = call().await else {
        panic!("the third call is refused")
    };
    assert_eq!(e.code.0, 429, "{e:?}");
    assert!(
        e.message.starts_with("rate limited: registry_versions"),
        "{e:?}"
    );
    assert!(e.data.unwrap()["retry_after_ms"].as_u64().unwrap() > 0);
    client.cancel().await.ok();
}

/// `ensemble call --url` sends the credential in `ENSEMBLE_TOKEN` (or the file
/// `ENSEMBLE_TOKEN_FILE` names); without one, a governed server refuses the session and the
/// error says where a credential goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_call_url_presents_the_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let call = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"));
        cmd.args(["call", "registry_list", "--url", &server.url])
            .env_remove("ENSEMBLE_TOKEN")
            .env_remove("ENSEMBLE_TOKEN_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("ensemble call")
    };
    let without = call(&[]);
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("ENSEMBLE_TOKEN"), "{stderr}");

    let with = call(&[("ENSEMBLE_TOKEN", READER_KEY)]);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    let out: Value = serde_json::from_slice(&with.stdout).expect("the result as JSON");
    assert!(out["items"].is_array(), "{out}");

    let file = dir.path().join("token");
    std::fs::write(&file, format!("{READER_KEY}\n")).unwrap();
    let from_file = call(&[("ENSEMBLE_TOKEN_FILE", file.to_str().unwrap())]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    // A key the server does not know is refused.
    let wrong = call(&[("ENSEMBLE_TOKEN", "ens-nobody-0000")]);
    assert!(!wrong.status.success());
}
