//! The real binary over Streamable HTTP: a crash mid-call, its restart, and `/metrics`.
//!
//! Plain HTTP/1.1 on a socket keeps this test free of an HTTP client stack; the protocol steps
//! are the ones any Streamable HTTP client takes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::metric;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    child: Child,
    addr: String,
    /// What the server wrote to stderr after its "listening" line, read until it exits.
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Server {
    /// Stops the server as an operator would (SIGTERM, graceful drain) and returns its log.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait for ensemble");
        assert!(exit.success(), "ensemble exited with {exit}");
        self.log.take().expect("log").join().expect("stderr reader")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra_env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
    cmd.args(["serve", "--in-memory", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ensemble");
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "ensemble exited before listening"
        );
        if let Some(rest) = line.trim().strip_prefix("ensemble: listening on http://") {
            break rest.trim_end_matches("/mcp").to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect());
    Server {
        child,
        addr,
        log: Some(log),
    }
}

/// One HTTP/1.1 exchange; returns the status, the headers (lower-cased names) and the body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The JSON-RPC message in a JSON or SSE (possibly chunked) body.
fn message(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body.trim()) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body:?}"))
}

struct Session<'a> {
    addr: &'a str,
    id: String,
}

impl Session<'_> {
    async fn open(addr: &str) -> Session<'_> {
        let (status, headers, body) = http(
            addr,
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"}}})
            .to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(message(&body)["result"]["serverInfo"]["name"] == "ensemble");
        let id = headers
            .iter()
            .find(|(k, _)| k == "mcp-session-id")
            .expect("a session id")
            .1
            .clone();
        let s = Session { addr, id };
        s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn post(&self, msg: Value) -> (u16, String) {
        let (status, _, body) = http(
            self.addr,
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &self.id),
                ("MCP-Protocol-Version", "2025-06-18"),
            ],
            &msg.to_string(),
        )
        .await;
        (status, body)
    }

    async fn call(&self, id: u64, tool: &str, args: Value) -> Value {
        let (status, body) = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}))
            .await;
        assert_eq!(status, 200, "{body}");
        message(&body)
    }
}

#[tokio::test]
async fn a_crashed_engine_is_an_error_result_then_restarts_and_metrics_show_it() {
    let server = start(&[("ENSEMBLE_TEST_TOOLS", "1")]);
    let s = Session::open(&server.addr).await;
    let put = s
        .call(
            2,
            "registry_put",
            json!({"name": "a", "version": "1.0.0", "content": 1}),
        )
        .await;
    assert_eq!(put["result"]["isError"], false, "{put}");

    let crash = s
        .call(3, "registry_debug_crash", json!({"reason": "e2e"}))
        .await;
    assert_eq!(crash["result"]["isError"], true, "{crash}");
    let text = crash["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("engine `registry` failed and is restarting"),
        "{text}"
    );

    // Read-only calls are retried once the child is back; the data survived the restart.
    let get = s.call(4, "registry_get", json!({"name": "a"})).await;
    assert_eq!(get["result"]["isError"], false, "{get}");
    assert_eq!(get["result"]["structuredContent"]["content"], 1);

    let (status, _, metrics) = http(&server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ensemble_actor_restarts_total{actor=\"registry\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "ensemble_tool_calls_total{tool=\"registry_debug_crash\",outcome=\"runtime_error\"} 1"
        ),
        "{metrics}"
    );
    let (status, _, ready) = http(&server.addr, "GET", "/ready", &[], "").await;
    assert_eq!((status, ready.trim()), (200, "ready"));
}

#[tokio::test]
async fn host_and_origin_checks_and_the_body_limit_hold() {
    let server = start(&[]);
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let mut with_origin = headers.to_vec();
    with_origin.push(("Origin", "http://evil.example"));
    let (status, _, _) = http(&server.addr, "POST", "/mcp", &with_origin, "{}").await;
    assert_eq!(status, 403, "a foreign Origin is refused");
    let mut local_origin = headers.to_vec();
    let origin = format!("http://{}", server.addr);
    local_origin.push(("Origin", &origin));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
    let (status, _, _) = http(
        &server.addr,
        "POST",
        "/mcp",
        &local_origin,
        &init.to_string(),
    )
    .await;
    assert_eq!(status, 200, "a loopback Origin is accepted");

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(5 << 20));
    let (status, _, _) = http(&server.addr, "POST", "/mcp", &headers, &huge).await;
    assert_eq!(status, 413);
    let (status, _, health) = http(&server.addr, "GET", "/health", &[], "").await;
    assert_eq!((status, health.trim()), (200, "ok"));
}

#[tokio::test]
async fn stateless_requests_do_not_log_a_line_each_at_the_default_level() {
    // rmcp serves each 2026-07-28 request as a new session and logs its start and end at
    // `info`; at the default filter a busy stateless client must not fill the log.
    let server = start(&[]);
    for id in 1..=5 {
        let (status, _, body) = http(
            &server.addr,
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "registry_list"),
            ],
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "registry_list", "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }}})
            .to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            message(&body)["result"]["structuredContent"],
            json!({"items": []}),
            "{body}"
        );
    }
    let log = server.stop();
    let per_request: Vec<_> = log.iter().filter(|l| l.contains("rmcp")).collect();
    assert!(
        per_request.is_empty(),
        "rmcp lifecycle lines at the default level: {per_request:#?}"
    );
    assert!(
        log.len() < 5,
        "a line or more per request in the default log: {log:#?}"
    );
}

#[tokio::test]
async fn the_fast_lane_answers_stateless_calls_with_rmcps_own_bytes() {
    // A plain stateless 2026-07-28 tools/call is answered by the runtime itself
    // (`mcp::fast`); a loopback `Origin` header sends the same request through rmcp. Both
    // must give the client the same status, type and body, for answers, tool errors and
    // refused arguments alike, and only the first kind may be counted as the fast lane's.
    let server = start(&[]);
    let origin = format!("http://{}", server.addr);
    let calls = [
        (json!(1), "registry_list", json!({})),
        (json!("req-7"), "registry_list", json!({"prefix": "none."})),
        (
            json!(2),
            "validation_validate",
            json!({"schema": "no.such.schema", "document": {}}),
        ),
        (json!(3), "registry_list", json!({"prefix": 42})),
        (
            json!(4),
            "validation_validate",
            json!({"schema": {"type": "integer"}, "document": "text"}),
        ),
    ];
    let fast_before = {
        let (_, _, page) = http(&server.addr, "GET", "/metrics", &[], "").await;
        metric(&page, "ensemble_http_fast_lane_calls_total", "")
    };
    for (id, tool, args) in &calls {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}
        }}})
        .to_string();
        let headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ];
        let mut through_rmcp = headers.clone();
        through_rmcp.push(("Origin", &origin));
        let fast = http(&server.addr, "POST", "/mcp", &headers, &body).await;
        let slow = http(&server.addr, "POST", "/mcp", &through_rmcp, &body).await;
        let content_type = |h: &[(String, String)]| {
            h.iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(fast.0, slow.0, "status of {tool} {args}");
        assert_eq!(content_type(&fast.1), content_type(&slow.1));
        assert_eq!(
            fast.2, slow.2,
            "the two lanes answered {tool} {args} differently"
        );
        let answer = message(&fast.2);
        assert_eq!(answer["id"], *id, "{answer}");
        assert!(answer.get("result").is_some(), "{answer}");
    }
    let (_, _, page) = http(&server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(
        metric(&page, "ensemble_http_fast_lane_calls_total", "") - fast_before,
        calls.len() as f64,
        "every plain call, and only those, went through the fast lane"
    );
}

/// A chunked HTTP/1.1 body's content (the body itself if it is not chunked).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
    }
    out
}

/// The SSE events of a (chunked) body: (id, data) per event.
fn events(body: &str) -> Vec<(Option<String>, String)> {
    dechunk(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e: &str| {
            let field = |name: &str| {
                e.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            (field("id:"), field("data:").unwrap_or_default())
        })
        .collect()
}

#[tokio::test]
async fn session_calls_take_the_fast_lane_and_answer_resume_and_refuse_as_rmcp_does() {
    // Session `fast` calls plain tools through the session fast lane; session `slow` set a
    // logging level, so its calls go through rmcp's session (at `emergency`, with no log
    // messages). Both must answer the same, each stream primed; the fast lane's streams resume.
    let server = start(&[]);
    let fast = Session::open(&server.addr).await;
    let slow = Session::open(&server.addr).await;
    let (status, _) = slow
        .post(
            json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                     "params": {"level": "emergency"}}),
        )
        .await;
    assert_eq!(status, 200);
    let taken = |page: &str| metric(page, "ensemble_http_fast_lane_calls_total", "");
    let (_, _, page) = http(&server.addr, "GET", "/metrics", &[], "").await;
    let before = taken(&page);
    let calls = [
        ("registry_list", json!({})),
        (
            "validation_validate",
            json!({"schema": "no.such", "document": {}}),
        ),
        ("registry_list", json!({"prefix": 3})),
    ];
    let mut last_priming = None;
    for (n, (tool, args)) in calls.iter().enumerate() {
        let request = json!({"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call",
                             "params": {"name": tool, "arguments": args,
                                        "_meta": {"progressToken": n}}});
        let (a_status, a) = fast.post(request.clone()).await;
        let (b_status, b) = slow.post(request).await;
        assert_eq!((a_status, b_status), (200, 200), "{a}\n{b}");
        assert_eq!(message(&a), message(&b), "{tool} {args}");
        for body in [&a, &b] {
            let ev = events(body);
            assert!(
                ev.len() == 2 && ev[0].0.is_some() && ev[0].1.is_empty() && ev[1].0.is_some(),
                "a priming event, then the answer with an id: {body:?}"
            );
        }
        last_priming = events(&a)[0].0.clone();
    }
    let (_, _, page) = http(&server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(
        taken(&page) - before,
        calls.len() as f64,
        "the plain calls of `fast`, and only those, took the lane"
    );

    // A stream cut after its priming event resumes with the answer; after the answer, with
    // nothing.
    let primed = last_priming.expect("a priming id");
    let resume = |last: String| {
        let (addr, id) = (server.addr.clone(), fast.id.clone());
        async move {
            http(
                &addr,
                "GET",
                "/mcp",
                &[
                    ("Accept", "text/event-stream"),
                    ("Mcp-Session-Id", &id),
                    ("MCP-Protocol-Version", "2025-06-18"),
                    ("Last-Event-ID", &last),
                ],
                "",
            )
            .await
        }
    };
    let (status, _, body) = resume(primed.clone()).await;
    assert_eq!(status, 200, "{body}");
    let replayed = events(&body);
    assert_eq!(replayed.len(), 1, "{body:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&replayed[0].1).expect("JSON")["id"],
        12
    );
    let answered = primed.replacen("0/", "1/", 1);
    let (status, _, body) = resume(answered).await;
    assert_eq!(status, 200, "{body}");
    assert!(events(&body).is_empty(), "{body:?}");
    // An id nobody gave: rmcp answers an empty stream (a client retrying the same id would
    // loop on an error), for its own ids and for the lane's alike.
    for unknown in ["0/f999999", "0/999999"] {
        let (status, _, body) = resume(unknown.to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert!(events(&body).is_empty(), "{unknown}: {body:?}");
    }
}
