//! Deferred work runs with the rights of whoever submitted it: a workflow step calling a tool
//! its submitter may not call fails with the reason (while the same workflow submitted by
//! someone who may, completes), also after the server was killed mid-run and resumed the run
//! from its journal; a queued task likewise.

mod common;

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ens-admin-91f0";
const RUNNER_KEY: &str = "ens-runner-3c2b";
const PEER_KEY: &str = "ens-peer-6a1d";

fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("admin", ADMIN_KEY, &["admin"]),
        ("runner", RUNNER_KEY, &["runner"]),
        ("peer", PEER_KEY, &["runner"]),
    ]);
    format!(
        r#"
[governance]
all_work_roles = ["admin"]

[[governance.roles]]
name = "admin"
tools = ["*"]

[[governance.roles]]
name = "runner"
tools = ["workflow_*", "task_*", "registry_get", "registry_list", "debug_sleep"]
resources = ["ensemble://workflows/runs/*"]




{accounts}"#
    )
}

use common::{Client, call_ok as call, refusal};

fn workflow(first: Value) -> Value {
    json!({"definition": {"steps": [
        first,
        {"id": "store", "tool": "registry_put", "depends_on": ["first"],
         "arguments": {"name": "made-by-a-run", "version": "1.0.0", "content": {"ok": true}}}
    ]}})
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

/// The task's status once it left the queue and ended.
async fn task_ended(client: &Client, id: &Value) -> Value {
    for _ in 0..200 {
        let info = call(client, "task_status", json!({"task_id": id})).await;
        if info["state"] != "queued" && info["state"] != "running" {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("task {id} did not end")
}

async fn wait_ended(client: &Client, run_id: &str) -> Value {
    for _ in 0..200 {
        let run = call(client, "workflow_status", json!({"run_id": run_id})).await;
        if run["state"] != "running" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_and_tasks_run_with_their_submitters_rights_also_after_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ENSEMBLE_TEST_TOOLS", "1")];
    let server = common::serve_http(dir.path(), &config(), &env);
    let runner = common::keys::connect_with_key(&server.url, RUNNER_KEY).await;
    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;

    let mut req = workflow(json!({"id": "first", "tool": "registry_list", "arguments": {}}));
    req["wait"] = json!(true);
    let run = call(&runner, "workflow_run", req.clone()).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(step(&run, "first")["state"], "completed");
    let store = step(&run, "store");
    assert_eq!(store["state"], "failed");
    let why = store["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("`apikey:runner` may not call `registry_put`"),
        "{why}"
    );
    // The same workflow from an identity that may: it completes.
    let run = call(&admin, "workflow_run", req).await;
    assert_eq!(run["state"], "completed", "{run}");

    // A task, likewise.
    let task = call(
        &runner,
        "task_submit",
        json!({"tool": "registry_put", "arguments": {"name": "t", "version": "1.0.0", "content": {}}}),
    )
    .await;
    let info = task_ended(&runner, &task["task_id"]).await;
    assert_eq!(info["state"], "failed", "{info}");
    assert!(
        info["error"]
            .as_str()
            .unwrap_or_default()
            .contains("may not call `registry_put`"),
        "{info}"
    );

    // Work submitted from within deferred work is its submitter's too: a step that queues a
    // task of a tool the runner may not call, and a task that starts a run doing so.
    let nested = json!({"definition": {"steps": [
        {"id": "first", "tool": "task_submit", "arguments": {
            "tool": "registry_put",
            "arguments": {"name": "nested", "version": "1.0.0", "content": {}}}}
    ]}, "wait": true});
    let run = call(&runner, "workflow_run", nested).await;
    let info = task_ended(&runner, &step(&run, "first")["output"]["task_id"]).await;
    assert_eq!(info["state"], "failed", "{info}");
    assert!(
        info["error"]
            .as_str()
            .unwrap_or_default()
            .contains("may not call `registry_put`"),
        "{info}"
    );
    let found = call(&admin, "registry_list", json!({})).await;
    assert!(!found.to_string().contains("nested"), "{found}");

    // A run killed mid-step resumes after a restart, still as its submitter.
    let run = call(
        &runner,
        "workflow_run",
        workflow(json!({"id": "first", "tool": "debug_sleep", "arguments": {"ms": 1500}})),
    )
    .await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner.cancel().await.ok();
    admin.cancel().await.ok();
    drop(server); // kill -9
    let server = common::serve_http(dir.path(), &config(), &env);
    let runner = common::keys::connect_with_key(&server.url, RUNNER_KEY).await;
    let run = wait_ended(&runner, &run_id).await;
    assert_eq!(step(&run, "first")["state"], "completed", "{run}");
    let store = step(&run, "store");
    assert_eq!(store["state"], "failed", "{run}");
    assert!(
        store["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`apikey:runner` may not call `registry_put`"),
        "{run}"
    );
    runner.cancel().await.ok();
}

/// An MCP task belongs to whoever started it: another identity holding its id is told there is
/// no such task, for `tasks/get` and `tasks/cancel` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_task_is_its_starters_alone() {
    use rmcp::ServiceExt;
    use rmcp::model::{
        CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig, GetTaskParams,
        Implementation,
    };
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let with_tasks = |key: &str| {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(key),
        );
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::from_build_env(),
        )
        .serve(transport)
    };
    let runner = with_tasks(RUNNER_KEY).await.expect("runner session");
    let admin = with_tasks(ADMIN_KEY).await.expect("admin session");
    let def = json!({"steps": [{"id": "a", "tool": "debug_sleep", "arguments": {"ms": 3000}}]});
    let response = runner
        .call_tool_once(
            CallToolRequestParams::new("workflow_run")
                .with_arguments(object(json!({"definition": def, "wait": true}))),
        )
        .await
        .expect("workflow_run");
    let CallToolResponse::Task(created) = response else {
        panic!("a task: {response:?}");
    };
    let id = created.task.task_id.clone();
    assert!(
        runner
            .peer()
            .get_task(GetTaskParams::new(id.clone()))
            .await
            .is_ok()
    );
    let theirs = admin.peer().get_task(GetTaskParams::new(id.clone())).await;
    assert!(
        format!("{theirs:?}").contains(&format!("unknown task: {id}")),
        "{theirs:?}"
    );
    let cancel = admin
        .peer()
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await;
    assert!(cancel.is_err(), "{cancel:?}");
    // The starter may.
    runner
        .peer()
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .expect("the starter cancels its task");

    // Both ends of the call are in the audit log: it answered with the task, then the task
    // ended (cancelled), each entry naming the runner.
    let query = |outcome: &str| {
        CallToolRequestParams::new("audit_query").with_arguments(object(
            json!({"tool": "workflow_run", "identity": "apikey:runner", "outcome": outcome}),
        ))
    };
    let started = admin.call_tool(query("task")).await.expect("audit_query");
    let started = started.structured_content.expect("structured");
    assert_eq!(
        started["entries"].as_array().map(Vec::len),
        Some(1),
        "{started}"
    );
    let mut ended = Value::Null;
    for _ in 0..200 {
        let r = admin
            .call_tool(query("cancelled"))
            .await
            .expect("audit_query");
        ended = r.structured_content.expect("structured");
        if ended["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = &ended["entries"][0]["record"];
    assert_eq!(entry["detail"], format!("MCP task {id} ended"), "{ended}");
    assert!(entry["duration_us"].as_u64().is_some(), "{ended}");
    runner.cancel().await.ok();
    admin.cancel().await.ok();
}

/// Queued tasks and workflow runs are their submitter's: another identity, even with the same
/// role, is told there is no such task or run, and lists leave them out; a role in
/// `governance.all_work_roles` sees everyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_and_runs_are_their_submitters_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let runner = common::keys::connect_with_key(&server.url, RUNNER_KEY).await;
    let peer = common::keys::connect_with_key(&server.url, PEER_KEY).await;
    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;

    let task = call(&runner, "task_submit", json!({"tool": "registry_list"})).await;
    let task_id = task["task_id"].clone();
    let def = json!({"steps": [{"id": "a", "tool": "debug_sleep", "arguments": {"ms": 20}}]});
    let run = call(&runner, "workflow_run", json!({"definition": def})).await;
    let run_id = run["run_id"].as_str().expect("run id").to_string();

    // The submitter sees both.
    assert_eq!(
        call(&runner, "task_status", json!({"task_id": task_id})).await["task_id"],
        task_id
    );
    assert_eq!(
        call(&runner, "workflow_status", json!({"run_id": run_id})).await["run_id"],
        run_id.as_str()
    );

    // Another identity with the same role: no such task, no such run.
    let why = refusal(&peer, "task_status", json!({"task_id": task_id})).await;
    assert!(why.contains("no task"), "{why}");
    let why = refusal(&peer, "task_cancel", json!({"task_id": task_id})).await;
    assert!(why.contains("no task"), "{why}");
    // Waiting for another's task answers as waiting for one that does not exist.
    let unknown = task_id.as_u64().expect("task id") + 1_000_000;
    let others = refusal(
        &peer,
        "task_submit",
        json!({"tool": "registry_list", "wait_for": [task_id]}),
    )
    .await;
    let nobodys = refusal(
        &peer,
        "task_submit",
        json!({"tool": "registry_list", "wait_for": [unknown]}),
    )
    .await;
    assert!(others.contains("does not know"), "{others}");
    assert_eq!(
        others.replace(&task_id.to_string(), "N"),
        nobodys.replace(&unknown.to_string(), "N")
    );
    let why = refusal(&peer, "workflow_status", json!({"run_id": run_id})).await;
    assert!(why.contains(&run_id), "{why}");
    let why = refusal(&peer, "workflow_cancel", json!({"run_id": run_id})).await;
    assert!(why.contains(&run_id), "{why}");
    let ids = |page: &Value, list: &str, id: &str| -> Vec<Value> {
        page[list]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t[id].clone())
            .collect()
    };
    let theirs = call(&peer, "task_list", json!({})).await;
    assert!(
        !ids(&theirs, "tasks", "task_id").contains(&task_id),
        "{theirs}"
    );
    let theirs = call(&peer, "workflow_list", json!({})).await;
    assert!(
        !ids(&theirs, "runs", "run_id").contains(&json!(run_id)),
        "{theirs}"
    );
    let uri = format!("ensemble://workflows/runs/{run_id}");
    let read = peer
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
        .await;
    assert!(read.is_err(), "{read:?}");
    let listed = peer.list_all_resources().await.expect("resources/list");
    assert!(listed.iter().all(|r| r.uri != uri), "{listed:?}");
    #[allow(deprecated)] // resources/subscribe: a 2025-11-25 session
    let subscribed = peer
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri.clone()))
        .await;
    assert!(
        format!("{subscribed:?}").contains("-32002"),
        "{subscribed:?}"
    );

    // The submitter lists and reads them; so does a role that sees all work.
    let mine = call(&runner, "task_list", json!({})).await;
    assert!(ids(&mine, "tasks", "task_id").contains(&task_id), "{mine}");
    assert!(
        runner
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
            .await
            .is_ok()
    );
    #[allow(deprecated)]
    runner
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri.clone()))
        .await
        .expect("the submitter subscribes to its run");
    let all = call(&admin, "task_list", json!({})).await;
    assert!(ids(&all, "tasks", "task_id").contains(&task_id), "{all}");
    let all = call(&admin, "workflow_list", json!({})).await;
    assert!(
        ids(&all, "runs", "run_id").contains(&json!(run_id)),
        "{all}"
    );
    assert_eq!(
        call(&admin, "workflow_status", json!({"run_id": run_id})).await["run_id"],
        run_id.as_str()
    );
}
