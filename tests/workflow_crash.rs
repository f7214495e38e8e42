//! The real binary, killed with SIGKILL in the middle of a workflow run, then restarted on the
//! same data dir: the run completes and no finished step runs again.

use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, object};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

struct Server {
    client: RunningService<RoleClient, ()>,
    pid: u32,
}

async fn start(data: &str, log: &str) -> Server {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble")).configure(|c| {
        c.args(["serve", "--data-dir", data])
            .env("ENSEMBLE_TEST_TOOLS", "1")
            .env("ENSEMBLE_TEST_LOG", log);
    });
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ensemble");
    let pid = transport.id().expect("child pid");
    let client = ().serve(transport).await.expect("MCP handshake");
    Server { client, pid }
}

async fn call(s: &Server, tool: &str, args: Value) -> Value {
    let r: CallToolResult = s
        .client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .expect("a tool result");
    assert_eq!(r.is_error, Some(false), "{tool}: {:?}", r.content);
    r.structured_content.expect("structured result")
}

/// SIGKILL to the server.
fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The data dir and the test log inside `dir`.
fn paths(dir: &tempfile::TempDir) -> (String, String) {
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    (path("data"), path("executions.log"))
}

/// Lines of the test log: one label per started execution.
fn executions(log: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn count(log: &str, label: &str) -> usize {
    executions(log).iter().filter(|l| *l == label).count()
}

#[tokio::test]
async fn a_run_killed_mid_way_resumes_without_rerunning_finished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = paths(&dir);
    let steps = ["s1", "s2", "s3", "s4", "s5"];
    // A chain of slow steps, plus one that depends on the first only.
    let mut defs: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut s = json!({"id": id, "tool": "debug_sleep",
                               "arguments": {"ms": 400, "label": id}});
            if i > 0 {
                s["depends_on"] = json!([steps[i - 1]]);
            }
            s
        })
        .collect();
    defs.push(
        json!({"id": "side", "tool": "debug_sleep", "depends_on": ["s1"],
                     "arguments": {"ms": 50, "label": "side"}}),
    );

    let run_id = {
        let s = start(&data, &log).await;
        let run = call(&s, "workflow_run", json!({"definition": {"steps": defs}})).await;
        assert_eq!(run["state"], "running");
        let run_id = run["run_id"].as_str().unwrap().to_string();
        // Kill when s3 has started: s1, s2 and side are done and journalled.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&log, "s3") == 0 {
            assert!(
                Instant::now() < deadline,
                "s3 never started: {:?}",
                executions(&log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kill9(s.pid);
        let _ = s.client.cancel().await;
        run_id
    };
    let before: Vec<String> = executions(&log);
    assert!(
        !before.contains(&"s4".to_string()),
        "killed too late: {before:?}"
    );

    let s = start(&data, &log).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = call(&s, "workflow_status", json!({"run_id": run_id})).await;
        if info["state"] != "running" {
            break info;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(info["state"], "completed", "{info}");
    for st in info["steps"].as_array().unwrap() {
        assert_eq!(st["state"], "completed", "{st}");
    }
    // Finished steps ran once; the step that was running (idempotent) ran again.
    for label in ["s1", "s2", "side", "s4", "s5"] {
        assert_eq!(count(&log, label), 1, "{label}: {:?}", executions(&log));
    }
    assert_eq!(count(&log, "s3"), 2, "{:?}", executions(&log));
    let listed = call(&s, "workflow_list", json!({"state": "completed"})).await;
    assert!(
        listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["run_id"] == run_id.as_str())
    );
    s.client.cancel().await.unwrap();
}

#[tokio::test]
async fn tasks_over_mcp_submit_wait_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = paths(&dir);
    let s = start(&data, &log).await;
    let put = call(
        &s,
        "task_submit",
        json!({"tool": "registry_put", "arguments":
               {"name": "cfg/x", "version": "1.0.0", "content": {"a": 1}}}),
    )
    .await;
    let id = put["task_id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = loop {
        let st = call(&s, "task_status", json!({"task_id": id})).await;
        if st["state"] != "queued" && st["state"] != "running" {
            break st;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["state"], "completed", "{done}");
    assert!(
        done["result"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(done["timings"]["submitted_at_ms"].as_u64().unwrap() > 0);
    // A cancelled long task reports it; an unknown tool is refused with the reason.
    let slow = call(
        &s,
        "task_submit",
        json!({"tool": "debug_sleep", "arguments": {"ms": 60000, "label": "slow"}}),
    )
    .await;
    let cancelled = call(&s, "task_cancel", json!({"task_id": slow["task_id"]})).await;
    assert_eq!(cancelled["state"], "cancelled");
    let r = s
        .client
        .call_tool(
            CallToolRequestParams::new("task_submit")
                .with_arguments(object(json!({"tool": "nope"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let stats = call(&s, "queue_stats", json!({})).await;
    assert_eq!(stats["policy"], "PRIORITY_DEADLINE");
    assert_eq!(stats["completed"], 1);
    assert_eq!(stats["cancelled"], 1);
    s.client.cancel().await.unwrap();
}

/// Many runs in flight at the kill (found by `benches/crash.rs`: some of 68 resumed runs never
/// finished): every one resumes and completes, each step's dependents released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_killed_in_flight_all_resume_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = paths(&dir);
    let runs: Vec<String> = {
        let s = start(&data, &log).await;
        let mut ids = Vec::new();
        for i in 0..120 {
            let steps = json!([
                {"id": "a", "tool": "debug_sleep", "arguments": {"ms": 300, "label": format!("a{i}")}},
                {"id": "b", "tool": "debug_sleep", "depends_on": ["a"],
                 "arguments": {"ms": 5, "label": format!("b{i}")}},
                {"id": "c", "tool": "debug_sleep", "depends_on": ["b"],
                 "arguments": {"ms": 5, "label": format!("c{i}")}}
            ]);
            let run = call(&s, "workflow_run", json!({"definition": {"steps": steps}})).await;
            ids.push(run["run_id"].as_str().unwrap().to_string());
        }
        kill9(s.pid);
        let _ = s.client.cancel().await;
        ids
    };
    let s = start(&data, &log).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &runs {
        loop {
            let info = call(&s, "workflow_status", json!({"run_id": id})).await;
            if info["state"] == "completed" {
                break;
            }
            assert_eq!(info["state"], "running", "{info}");
            assert!(Instant::now() < deadline, "run {id} did not finish: {info}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    s.client.cancel().await.unwrap();
}
