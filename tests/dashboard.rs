//! The live dashboard of the real binary, without a browser: the page and its assets, the JSON
//! snapshot, and the Server-Sent Events stream read frame by frame while tool calls are made
//! and an engine crashes (the browser test, `tests/dashboard_browser.rs`, drives the page).

mod common;

use std::time::Duration;

use ensemble::runtime::dashboard::{Frame, Snapshot};
use serde_json::json;

/// An open `/dashboard/events` stream, read one SSE message at a time.
struct Events {
    response: reqwest::Response,
    buffer: String,
    /// The sizes of the frames read so far.
    sizes: Vec<usize>,
}

impl Events {
    async fn open(base: &str) -> Self {
        let response = reqwest::Client::new()
            .get(format!("{base}/dashboard/events"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .expect("GET /dashboard/events");
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"].to_str().expect("ascii");
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Events {
            response,
            buffer: String::new(),
            sizes: Vec::new(),
        }
    }

    /// The next `frame` event (comments and keep-alives skipped).
    async fn next(&mut self) -> Frame {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in message.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if event.as_deref() == Some("frame") {
                    self.sizes.push(data.len());
                    return serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("a frame that is not a Frame ({e}): {data}"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a frame within 10 s")
                .expect("read the stream")
                .expect("the stream is open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// Frames until one satisfies `check` (at most 15).
    async fn until(&mut self, what: &str, check: impl Fn(&Frame) -> bool) -> Frame {
        for _ in 0..15 {
            let frame = self.next().await;
            if check(&frame) {
                return frame;
            }
        }
        panic!("no frame showed {what} within 15 frames");
    }
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_and_the_snapshot_show_calls_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve_http(dir.path(), "", &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let base = server.base().to_string();

    // The page and its two assets, embedded; the page weight stays small.
    let (status, page) = get(&format!("{base}/"), &[]).await;
    assert_eq!(status, 200);
    for id in [
        "supervision",
        "tools",
        "tasks",
        "learners",
        "retrieval",
        "governance",
        "cluster",
        "process",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "panel {id} in {page}"
        );
    }
    assert!(
        page.contains(env!("CARGO_PKG_VERSION")),
        "the version is rendered"
    );
    let mut weight = page.len();
    for asset in ["/dashboard/app.js", "/dashboard/app.css"] {
        let (status, body) = get(&format!("{base}{asset}"), &[]).await;
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 1000, "{asset} is the real asset");
        weight += body.len();
    }
    assert!(weight <= 250 * 1024, "page weight {weight} B over 250 KB");

    let mut events = Events::open(&base).await;
    let first = events.next().await;
    assert_eq!(first.v, 1);
    assert_eq!(first.version, env!("CARGO_PKG_VERSION"));
    assert!(first.started_ms > 0 && first.at_ms >= first.started_ms);
    let registry = first
        .supervision
        .supervisors
        .iter()
        .find(|s| s.name == "registry")
        .expect("the registry's supervisor is in the tree");
    assert_eq!(registry.state, "running");
    let child = registry
        .children
        .iter()
        .find(|c| c.name == "registry")
        .expect("the registry actor under its supervisor");
    assert_eq!((child.status.as_str(), child.restarts), ("running", 0));
    for engine in ["validation", "execution", "workflow", "retrieval", "shell"] {
        assert!(
            first
                .supervision
                .supervisors
                .iter()
                .any(|s| s.name == engine),
            "{engine} in {:?}",
            first.supervision.supervisors
        );
    }
    assert!(
        first.process.rss_bytes.unwrap_or(0) > 1 << 20,
        "{:?}",
        first.process
    );
    assert!(first.process.open_fds.unwrap_or(0) > 3);
    assert!(
        first.process.store_bytes.is_some(),
        "an on-disk store has a size"
    );
    assert!(
        first.governance.is_none(),
        "ungoverned: no governance panel data"
    );
    assert!(first.cluster.is_none());
    assert!(
        first
            .learners
            .iter()
            .any(|l| l.name == "shell" && l.budget_bytes > 0),
        "{:?}",
        first.learners
    );

    // Calls show up with their count, rate and latency.
    let client = common::connect(&server.url).await;
    for _ in 0..20 {
        common::call_ok(&client, "registry_list", json!({})).await;
    }
    let shown = events
        .until("20 registry_list calls", |f| {
            f.tools
                .iter()
                .any(|t| t.tool == "registry_list" && t.calls >= 20)
        })
        .await;
    let tool = shown
        .tools
        .iter()
        .find(|t| t.tool == "registry_list")
        .expect("shown");
    assert!(tool.rate > 0.0, "{tool:?}");
    assert_eq!(tool.errors, 0);
    assert_eq!(tool.error_rate, Some(0.0));
    let (p50, p99) = (tool.p50_ms.expect("p50"), tool.p99_ms.expect("p99"));
    assert!(p50 > 0.0 && p99 >= p50, "{tool:?}");
    assert_eq!(tool.breaker.as_deref(), Some("closed"));

    // A workflow run, with its DAG.
    let def = json!({"steps": [
        {"id": "fetch", "tool": "registry_list", "arguments": {}},
        {"id": "check", "tool": "validation_validate", "depends_on": ["fetch"],
         "arguments": {"schema": {"type": "integer"}, "document": 1}}]});
    let run = common::call_ok(
        &client,
        "workflow_run",
        json!({"definition": def, "wait": true}),
    )
    .await;
    let run_id = run["run_id"].as_str().expect("a run id").to_string();
    let shown = events
        .until("the workflow run", |f| {
            f.workflows
                .as_ref()
                .is_some_and(|w| w.runs.iter().any(|r| r.run_id == run_id))
        })
        .await;
    let frame_run = shown
        .workflows
        .as_ref()
        .and_then(|w| w.runs.iter().find(|r| r.run_id == run_id))
        .expect("shown");
    assert_eq!(frame_run.state, "completed");
    assert!(frame_run.finished_at_ms.is_some());
    let steps: Vec<(&str, &str, Vec<String>)> = frame_run
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str(), s.after.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("fetch", "completed", vec![]),
            ("check", "completed", vec!["fetch".to_string()])
        ]
    );

    // A crash: the failure and the restart reach the tree.
    let text = common::refusal(
        &client,
        "registry_debug_crash",
        json!({"reason": "dashboard"}),
    )
    .await;
    assert!(text.contains("restarting"), "{text}");
    let restarted = events
        .until("the registry's restart", |f| {
            f.supervision.supervisors.iter().any(|s| {
                s.children
                    .iter()
                    .any(|c| c.name == "registry" && c.restarts >= 1 && c.status == "running")
            })
        })
        .await;
    let child = restarted
        .supervision
        .supervisors
        .iter()
        .flat_map(|s| &s.children)
        .find(|c| c.name == "registry")
        .expect("the registry");
    let failure = child
        .last_failure
        .as_ref()
        .expect("the last failure is kept");
    assert!(failure.reason.contains("dashboard"), "{failure:?}");
    assert!(
        restarted
            .events
            .iter()
            .any(|e| e.child == "registry" && e.kind == "failed"),
        "{:?}",
        restarted.events
    );
    let crashed = restarted
        .tools
        .iter()
        .find(|t| t.tool == "registry_debug_crash")
        .expect("the crash call is counted");
    assert_eq!((crashed.calls, crashed.errors), (1, 1));

    // The snapshot: the same frame format, with the history behind it.
    let (status, body) = get(&format!("{base}/dashboard/state"), &[]).await;
    assert_eq!(status, 200);
    let snapshot: Snapshot = serde_json::from_str(&body).expect("a Snapshot");
    assert!(snapshot.frame.at_ms >= restarted.at_ms);
    assert!(snapshot.history.len() >= 2, "{}", snapshot.history.len());
    assert!(
        snapshot
            .history
            .windows(2)
            .all(|w| w[0].at_ms < w[1].at_ms && w[1].at_ms < snapshot.frame.at_ms + 1)
    );
    assert!(snapshot.history.iter().any(|h| {
        h.tools
            .iter()
            .any(|t| t.tool == "registry_list" && t.rate > 0.0)
    }));

    // A typical frame stays small.
    let largest = events.sizes.iter().max().copied().unwrap_or(0);
    assert!(largest <= 8 * 1024, "a frame of {largest} B is over 8 KB");

    // A foreign page may not read the data; the page's own origin may.
    let (status, body) = get(
        &format!("{base}/dashboard/state"),
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allow_origins"), "{body}");
    let own = base.clone();
    let (status, _) = get(&format!("{base}/dashboard/state"), &[("Origin", &own)]).await;
    assert_eq!(status, 200);

    // The subscriber shows in /metrics, beside the process metrics.
    let (_, metrics) = get(&format!("{base}/metrics"), &[]).await;
    assert!(common::metric(&metrics, "ensemble_dashboard_subscribers", "") >= 1.0);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "ensemble_store_size_bytes",
        "ensemble_build_info",
    ] {
        assert!(metrics.contains(&format!("\n{name}")), "{name} in /metrics");
    }
    drop(events);
    client.cancel().await.expect("close the session");
}

const OBSERVER_KEY: &str = "ens-dash-observer-4b1d";
const WORKER_KEY: &str = "ens-dash-worker-77aa";

/// A governed server: `observer` may read the dashboard, `worker` may only call tools.
pub fn governed_config() -> String {
    let accounts = common::keys::api_keys(&[
        ("observer", OBSERVER_KEY, &["observer"]),
        ("worker", WORKER_KEY, &["worker"]),
    ]);
    format!(
        r#"
[[governance.roles]]
name = "observer"
resources = ["ensemble://dashboard"]

[[governance.roles]]
name = "worker"
tools = ["registry_list"]

{accounts}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn with_authentication_only_an_observer_reads_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve_http(dir.path(), &governed_config(), &[]);
    let base = server.base().to_string();
    // The page holds no data: it loads without credentials.
    let (status, _) = get(&format!("{base}/"), &[]).await;
    assert_eq!(status, 200);
    let state = format!("{base}/dashboard/state");
    let (status, body) = get(&state, &[]).await;
    assert_eq!(status, 401, "{body}");
    let worker = format!("Bearer {WORKER_KEY}");
    let (status, body) = get(&state, &[("Authorization", &worker)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("ensemble://dashboard"),
        "says what to grant: {body}"
    );
    let (status, body) = get(
        &format!("{base}/dashboard/events"),
        &[("Authorization", &worker)],
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // A worker's call and a refusal show in the observer's view.
    let client = common::keys::connect_with_key(&server.url, WORKER_KEY).await;
    common::call_ok(&client, "registry_list", json!({})).await;
    common::refusal(&client, "registry_put", json!({})).await;
    let observer = format!("Bearer {OBSERVER_KEY}");
    let mut seen = None;
    let mut last = None;
    for _ in 0..30 {
        let (status, body) = get(&state, &[("Authorization", &observer)]).await;
        assert_eq!(status, 200, "{body}");
        let snapshot: Snapshot = serde_json::from_str(&body).expect("a Snapshot");
        let g = snapshot
            .frame
            .governance
            .clone()
            .expect("governed: a governance frame");
        if g.denials.iter().any(|d| d.identity == "apikey:worker") {
            seen = Some(g);
            break;
        }
        last = Some(g);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let g = seen.unwrap_or_else(|| panic!("the worker's denial shows within 6 s: {last:?}"));
    assert!(g.governed);
    assert_eq!(g.mode, "normal");
    assert!(
        g.sessions.iter().any(|s| s.identity == "apikey:worker"),
        "{:?}",
        g.sessions
    );
    client.cancel().await.expect("close");
}
