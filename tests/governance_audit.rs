//! The audit log of a governed server, end to end: every call (and each change it makes, before
//! it runs) becomes an entry with who, what, a digest of the arguments (never the arguments),
//! the rule that decided and the outcome; administrators read it with `audit_query`; after the
//! server is gone, `ensemble audit verify` finds the chain and its signed checkpoints intact.

mod common;

use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ens-admin-c3a9";
const USER_KEY: &str = "ens-user-77e0";

/// `ensemble audit verify --data-dir DATA EXTRA…`, which must find the log intact; its report.
fn verified(data: &std::path::Path, extra: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("ENSEMBLE_CONFIG")
        .output()
        .expect("ensemble audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_audited_queryable_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let checkpoints = dir.path().join("checkpoints");
    let accounts = common::keys::api_keys(&[
        ("admin", ADMIN_KEY, &["admin"]),
        ("user", USER_KEY, &["user"]),
    ]);
    let config = format!(
        r#"
[[governance.roles]]
name = "admin"
tools = ["*"]
resources = ["ensemble://sessions/*"]

[[governance.roles]]
name = "user"
tools = ["registry_*"]





[governance.audit]
node_id = "test-node"
key_file = "{}"
checkpoint_dir = "{}"
checkpoint_every_entries = 4
{accounts}"#,
        keys.join("audit.key").display(),
        checkpoints.display()
    );
    let server = common::serve_http(dir.path(), &config, &[]);
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    let secret = "s3cr3t-value-never-in-the-log";
    for v in ["1.0.0", "1.0.1"] {
        user.call_tool(
            CallToolRequestParams::new("registry_put").with_arguments(object(json!({
                "name": "cfg", "version": v, "content": {"password": secret}
            }))),
        )
        .await
        .expect("registry_put");
    }
    user.call_tool(
        CallToolRequestParams::new("registry_get").with_arguments(object(json!({"name": "cfg"}))),
    )
    .await
    .expect("registry_get");
    // A tool the user may not use: audited as denied.
    let _ = user
        .call_tool(CallToolRequestParams::new("task_submit").with_arguments(object(json!({}))))
        .await;

    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;
    let page: Value = admin
        .call_tool(
            CallToolRequestParams::new("audit_query")
                .with_arguments(object(json!({"identity": "apikey:user"}))),
        )
        .await
        .expect("audit_query")
        .structured_content
        .expect("structured");
    let entries = page["entries"].as_array().expect("entries");
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let r = &e["record"];
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["target"].as_str().unwrap_or_default().to_string(),
                r["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = |k: &str, t: &str, o: &str| (k.to_string(), t.to_string(), o.to_string());
    assert_eq!(
        seen,
        [
            expect("decision", "registry_put", "started"),
            expect("call", "registry_put", "ok"),
            expect("decision", "registry_put", "started"),
            expect("call", "registry_put", "ok"),
            expect("call", "registry_get", "ok"),
            expect("call", "task_submit", "denied"),
        ]
    );
    let put = &entries[1]["record"];
    assert_eq!(put["rule"], "role user: allow registry_*");
    assert_eq!(put["args_sha256"].as_str().map(str::len), Some(64));
    assert!(put["duration_us"].as_u64().is_some());
    assert!(
        !page.to_string().contains(secret),
        "arguments in clear: {page}"
    );
    let denied = &entries[5]["record"];
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["rule"], "default deny");

    // Sessions: the user's, with its client, calls and per-tool figures.
    let listed: Value = admin
        .call_tool(
            CallToolRequestParams::new("session_list")
                .with_arguments(object(json!({"identity": "apikey:user"}))),
        )
        .await
        .expect("session_list")
        .structured_content
        .expect("structured");
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{listed}");
    let session = &sessions[0];
    assert_eq!(session["calls"], 4, "{session}");
    assert!(session["client_name"].is_string(), "{session}");
    assert!(session["protocol_version"].is_string(), "{session}");
    let id = session["id"].as_str().unwrap().to_string();
    let detail: Value = admin
        .call_tool(
            CallToolRequestParams::new("session_get").with_arguments(object(json!({"id": id}))),
        )
        .await
        .expect("session_get")
        .structured_content
        .expect("structured");
    let outcomes: Vec<&str> = detail["recent_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "ok", "denied"], "{detail}");
    assert_eq!(detail["tools"]["registry_put"]["count"], 2, "{detail}");
    assert_eq!(
        detail["tools"]["task_submit"]["error_rate"], 1.0,
        "{detail}"
    );
    let stats: Value = admin
        .call_tool(CallToolRequestParams::new("session_stats").with_arguments(object(json!({}))))
        .await
        .expect("session_stats")
        .structured_content
        .expect("structured");
    assert!(
        stats["tools"]["registry_get"]["p95_ms"].as_f64().is_some(),
        "{stats}"
    );
    let read = admin
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "ensemble://sessions/{id}"
        )))
        .await
        .expect("the session as a resource");
    assert!(format!("{read:?}").contains("recent_calls"), "{read:?}");
    // The user may not read sessions: the tool does not exist for it.
    assert!(
        user.call_tool(
            CallToolRequestParams::new("session_list").with_arguments(object(json!({})))
        )
        .await
        .is_err()
    );

    user.cancel().await.ok();
    admin.cancel().await.ok();

    // The server is gone (kill -9): the chain and the checkpoints it signed verify.
    drop(server);
    let public_key = keys.join("audit.key.pub");
    verified(
        &dir.path().join("data"),
        &[
            "--checkpoints".as_ref(),
            checkpoints.as_os_str(),
            "--public-key".as_ref(),
            public_key.as_os_str(),
        ],
    );
    assert!(
        std::fs::read_dir(&checkpoints).unwrap().count() >= 1,
        "signed checkpoints were written"
    );
}

/// Every call answered before a kill -9 has its entries in the log afterwards (made durable
/// through the write-ahead file, put back at the next start if the store had not reached
/// them): `ensemble audit verify` finds them all, chained, and the restarted server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_call_is_missing_from_the_log_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = common::keys::api_keys(&[("user", USER_KEY, &["user"])]);
    let config = format!(
        r#"
[[governance.roles]]
name = "user"
tools = ["registry_*", "audit_query"]

[governance.audit]
node_id = "killed"
{accounts}"#
    );
    const CLIENTS: usize = 8;
    const CALLS: usize = 25;
    let server = common::serve_http(dir.path(), &config, &[]);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let url = server.url.clone();
        clients.push(tokio::spawn(async move {
            let user = common::keys::connect_with_key(&url, USER_KEY).await;
            for i in 0..CALLS {
                let put = user
                    .call_tool(
                        CallToolRequestParams::new("registry_put").with_arguments(object(
                            json!({"name": format!("c{c}"), "version": format!("1.0.{i}"),
                                   "content": {"i": i}}),
                        )),
                    )
                    .await
                    .expect("registry_put");
                assert_ne!(put.is_error, Some(true), "{put:?}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    // Each put is a change: a `decision` entry before it runs and a `call` entry after.
    let acknowledged = (CLIENTS * CALLS * 2) as u64;
    drop(server); // kill -9, at once after the last answer

    let stdout = verified(&dir.path().join("data"), &[]);
    let entries: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("entries"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("an entries line: {stdout}"));
    assert!(
        entries >= acknowledged,
        "{entries} < {acknowledged}: {stdout}"
    );

    // The server starts again on the same directory and its log goes on from there.
    let server = common::serve_http(dir.path(), &config, &[]);
    let user = common::keys::connect_with_key(&server.url, USER_KEY).await;
    let page = user
        .call_tool(
            CallToolRequestParams::new("audit_query")
                .with_arguments(object(json!({"tool": "registry_put", "limit": 1}))),
        )
        .await
        .expect("audit_query");
    let page: Value = page.structured_content.expect("structured");
    assert!(
        page["total"].as_u64().is_some_and(|t| t >= acknowledged),
        "{page}"
    );
}
