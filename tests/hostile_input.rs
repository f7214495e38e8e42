//! The limits that hold under hostile input (`[server.limits]`, docs/reliability.md), each
//! against the real binary: request bodies, JSON nesting, string and array sizes (over
//! Streamable HTTP and stdio), sessions at once and idle expiry, clients that send their header
//! or body too slowly, workflow and template size and include depth, and abused SSE resumption.
//! After each, the server still answers a real client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{HttpServer, connect, serve_http};

/// Limits small enough to reach in a test.
const SMALL: &str = "[server.limits]\n\
    max_body_bytes = 65536\n\
    max_json_depth = 16\n\
    max_string_bytes = 1000\n\
    max_items = 100\n\
    max_sessions = 3\n\
    session_idle_s = 2\n\
    header_read_timeout_ms = 500\n\
    body_read_timeout_ms = 500\n";

fn small_server(dir: &tempfile::TempDir) -> HttpServer {
    serve_http(dir.path(), SMALL, &[])
}

/// `"x"` wrapped in `depth` arrays.
fn nested(depth: usize) -> String {
    format!("{}\"x\"{}", "[".repeat(depth), "]".repeat(depth))
}

/// A `tools/call` of `registry_put` whose `content` is `content` (raw JSON text).
fn put_request(id: u64, content: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"registry_put","arguments":{{"name":"hostile","version":"1.0.0","content":{content}}}}}}}"#
    )
}

/// POSTs `body` to `url` as an MCP client of the legacy protocol would (session `session`).
async fn post(url: &str, session: Option<&str>, body: String) -> reqwest::Response {
    post_as(url, None, session, body).await
}

/// [`post`] with an API key as the bearer credential.
async fn post_as(
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.body(body).send().await.expect("POST")
}

/// A legacy (2025-06-18) `initialize`, numbered `id`.
fn initialize(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "0"}}})
    .to_string()
}

/// The session an `initialize` answer opened, if any.
fn session_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Tells session `session` its handshake is done (202).
async fn initialized(url: &str, key: Option<&str>, session: &str) {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post_as(url, key, Some(session), note.to_string()).await;
    assert_eq!(r.status().as_u16(), 202);
}

/// Opens a legacy session (as `key`, when given) and completes its handshake.
async fn open_session(url: &str, key: Option<&str>) -> String {
    let r = post_as(url, key, None, initialize(0)).await;
    assert_eq!(r.status().as_u16(), 200);
    let session = session_of(&r).expect("a session");
    initialized(url, key, &session).await;
    session
}

/// A real client's call still works (the server survived what came before).
async fn still_serves(url: &str) {
    let client = connect(url).await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("validation_validate").with_arguments(
                json!({"schema": {"type": "string"}, "document": "ok"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect("a call after the hostile input");
    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    client.cancel().await.expect("close");
}

/// The JSON-RPC error of an answer, with the HTTP status.
async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("a JSON answer");
    (status, body)
}

#[tokio::test]
async fn message_limits_refuse_before_parsing_and_say_which_key_to_raise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = small_server(&dir);
    let url = &server.url;
    // Too deep, with the id readable: answered by id, naming the key.
    let (status, body) = error_of(post(url, None, put_request(7, &nested(20))).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than 16 deep") && message.contains("server.limits.max_json_depth"),
        "{message}"
    );
    // 30,000 levels: refused by id all the same, no crash; without a readable id, 400.
    let (status, body) = error_of(post(url, None, put_request(8, &nested(30_000))).await).await;
    assert_eq!((status, &body["id"]), (200, &json!(8)), "{body}");
    let (status, body) = error_of(post(url, None, nested(30_000)).await).await;
    assert_eq!((status, &body["id"]), (400, &Value::Null), "{body}");
    // A string over the limit.
    let long = format!("\"{}\"", "a".repeat(1001));
    let (_, body) = error_of(post(url, None, put_request(9, &long)).await).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.limits.max_string_bytes")),
        "{body}"
    );
    // An array over the limit, and an object with too many members.
    let many = format!("[{}]", vec!["1"; 101].join(","));
    let (_, body) = error_of(post(url, None, put_request(10, &many)).await).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than 100 entries")),
        "{body}"
    );
    let members = (0..101)
        .map(|i| format!("\"k{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (_, body) =
        error_of(post(url, None, put_request(11, &format!("{{{members}}}"))).await).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.limits.max_items")),
        "{body}"
    );
    // A body over the limit: 413, naming the key.
    let huge = put_request(12, &format!("\"{}\"", "b".repeat(70_000)));
    let r = post(url, None, huge).await;
    assert_eq!(r.status().as_u16(), 413);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("server.limits.max_body_bytes"), "{text}");

    // Through rmcp's own client: the caller sees the message, and nothing was stored.
    let client = connect(url).await;
    let args = |content: Value| {
        CallToolRequestParams::new("registry_put").with_arguments(
            json!({"name": "hostile", "version": "1.0.0", "content": content})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    };
    let refused = client
        .call_tool(args(json!("c".repeat(2000))))
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("max_string_bytes"),
        "{refused}"
    );
    let got = client
        .call_tool(
            CallToolRequestParams::new("registry_get").with_arguments(
                json!({"name": "hostile"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await;
    let stored = match got {
        Ok(r) => r.is_error != Some(true),
        Err(_) => false,
    };
    assert!(!stored, "a refused put must store nothing");
    // Within the limits, the same call goes through.
    let ok = client
        .call_tool(args(json!({"a": [1, 2, 3]})))
        .await
        .expect("a put within the limits");
    assert_eq!(ok.is_error, Some(false), "{:?}", ok.content);
    client.cancel().await.expect("close");
    still_serves(url).await;
}

#[tokio::test]
async fn sessions_at_once_are_bounded_and_idle_ones_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = small_server(&dir);
    let url = &server.url;
    let open = |id: u64| async move {
        let r = post(url, None, initialize(id)).await;
        let status = r.status().as_u16();
        let session = session_of(&r);
        let retry = r.headers().get("retry-after").is_some();
        let body = r.text().await.unwrap_or_default();
        if let Some(s) = &session {
            initialized(url, None, s).await;
        }
        (status, session, retry, body)
    };
    let mut sessions = Vec::new();
    for id in 0..3 {
        let (status, session, _, body) = open(id).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(session.expect("a session id"));
    }
    // The fourth is refused while three are open: 503, Retry-After, and why.
    let (status, session, retry, body) = open(3).await;
    assert_eq!(status, 503, "{body}");
    assert!(session.is_none() && retry, "{body}");
    assert!(body.contains("server.limits.max_sessions"), "{body}");
    // Closing one makes room.
    let closed = reqwest::Client::new()
        .delete(url)
        .header("mcp-session-id", &sessions[0])
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .expect("DELETE");
    assert!(closed.status().is_success(), "{}", closed.status());
    let (status, session, _, body) = open(4).await;
    assert_eq!(status, 200, "{body}");
    sessions[0] = session.expect("a session id");

    // One session kept busy with plain tool calls (the fast lane, which the session's worker
    // does not see) outlives the idle limit; the others expire.
    let busy = sessions[1].clone();
    let call = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "validation_validate",
            "arguments": {"schema": {"type": "string"}, "document": "ok"}}})
        .to_string()
    };
    let started = Instant::now();
    let mut id = 100;
    while started.elapsed() < Duration::from_millis(3500) {
        let r = post(url, Some(&busy), call(id)).await;
        assert_eq!(r.status().as_u16(), 200, "the busy session was closed");
        id += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for idle in [&sessions[0], &sessions[2]] {
        let r = post(url, Some(idle), call(1)).await;
        assert_eq!(
            r.status().as_u16(),
            404,
            "an idle session must be gone (its client starts a new one)"
        );
    }
    let r = post(url, Some(&busy), call(2)).await;
    assert_eq!(r.status().as_u16(), 200);
    // The expired sessions' places are free again (one here, one for the client below).
    let (status, _, _, body) = open(10).await;
    assert_eq!(status, 200, "{body}");
    still_serves(url).await;
}

/// Whether the server closes `stream` within `within` (reading whatever it sends first).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> (bool, String) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (false, String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_hold_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = small_server(&dir);
    let addr = server.base().trim_start_matches("http://").to_string();
    // 200 connections that never finish their header (a slowloris), one that sends nothing.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("write");
        slow.push(s);
    }
    let mut silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // Meanwhile a real client is served.
    still_serves(&server.url).await;
    for s in &mut slow {
        let (closed, _) = closed_within(s, Duration::from_secs(5)).await;
        assert!(
            closed,
            "a connection with half a header was kept past the timeout"
        );
    }
    let (closed, _) = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a connection that sent nothing was kept past the timeout"
    );

    // A body that stops half-way: 408, naming the key, and the connection closed.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"",
    )
    .await
    .expect("write");
    let (closed, answer) = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "a stalled body's connection stays open: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("server.limits.body_read_timeout_ms"),
        "{answer}"
    );
    still_serves(&server.url).await;
}

#[tokio::test]
async fn sse_resumption_cannot_be_abused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), "", &[]);
    let url = &server.url;
    let (a, b) = (open_session(url, None).await, open_session(url, None).await);
    // Session A makes a plain call (the session fast lane); its answer is kept for a resume
    // of stream `f0`.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "registry_put",
        "arguments": {"name": "secret-of-a", "version": "1.0.0", "content": {}}}});
    let r = post(url, Some(&a), call.to_string()).await;
    let answer = r.text().await.unwrap_or_default();
    assert!(answer.contains("secret-of-a"), "{answer}");
    let resume = |session: Option<String>, last: &str| {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("last-event-id", last.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        async move {
            let r = tokio::time::timeout(Duration::from_secs(10), req.send())
                .await
                .expect("an answer within 10 s")
                .expect("GET");
            let status = r.status().as_u16();
            let body = tokio::time::timeout(Duration::from_secs(10), r.text())
                .await
                .expect("the stream ends within 10 s")
                .unwrap_or_default();
            (status, body)
        }
    };
    // B names A's stream: B has no such stream, and gets nothing of A's.
    let (status, body) = resume(Some(b.clone()), "0/f0").await;
    assert!(status < 500, "{status}");
    assert!(!body.contains("secret-of-a"), "{body}");
    // Garbage, huge numbers and paths: an empty stream or a 4xx, never a hang or a 5xx.
    for last in [
        "garbage",
        "99999999999999999999999/f1",
        "0/f18446744073709551615",
        "../../etc/passwd",
        "0/f",
        "/",
        "-1/f-1",
    ] {
        let (status, body) = resume(Some(b.clone()), last).await;
        assert!(status < 500, "{last}: {status} {body}");
        assert!(!body.contains("secret-of-a"), "{last}: {body}");
    }
    // Without a session, or with an unknown one.
    let (status, _) = resume(None, "0/f0").await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = resume(Some("not-a-session".into()), "0/f0").await;
    assert_eq!(status, 404);
    // A's own resume, a thousand times over: each answered, nothing left behind.
    let started = Instant::now();
    for _ in 0..1000 {
        let (status, body) = resume(Some(a.clone()), "0/f0").await;
        assert_eq!(status, 200);
        assert!(body.contains("secret-of-a"), "{body}");
    }
    eprintln!("1000 resumes in {:?}", started.elapsed());
    still_serves(url).await;
}

#[tokio::test]
async fn workflow_and_template_size_and_include_depth_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), "", &[]);
    let client = connect(&server.url).await;
    let call = |tool: &'static str, args: Value| {
        let client = &client;
        async move {
            client
                .call_tool(
                    CallToolRequestParams::new(tool)
                        .with_arguments(args.as_object().cloned().unwrap_or_default()),
                )
                .await
                .expect("a tool result")
        }
    };
    // 10,001 steps: refused whole, quickly, with what to do.
    let steps: Vec<Value> = (0..10_001)
        .map(|i| json!({"id": format!("s{i}"), "tool": "validation_validate"}))
        .collect();
    let r = call("workflow_validate", json!({"definition": {"steps": steps}})).await;
    let problems = r.structured_content.as_ref().map(|v| v["problems"].clone());
    assert_eq!(
        problems,
        Some(json!([{"kind": "too_many_steps", "count": 10001, "limit": 10000}]))
    );
    // 10,000 steps in a chain, each using the first one's output: valid, and validated in one
    // pass (a walk per reference took 50 million steps).
    let steps: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut s = json!({"id": format!("s{i}"), "tool": "validation_validate",
                "arguments": {"schema": {}, "document": "${steps.s0.output}"}});
            if i > 0 {
                s["depends_on"] = json!([format!("s{}", i - 1)]);
            } else {
                s["arguments"] = json!({"schema": {}, "document": 1});
            }
            s
        })
        .collect();
    let started = Instant::now();
    let r = call("workflow_validate", json!({"definition": {"steps": steps}})).await;
    eprintln!("a 10,000-step chain validated in {:?}", started.elapsed());
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["valid"].clone()),
        Some(json!(true)),
        "{:?}",
        r.content
    );
    // Templates: an include chain 20 deep, and one that doubles at each of 16 levels.
    let step = json!([{"id": "a", "tool": "validation_validate",
        "arguments": {"schema": {}, "document": 1}}]);
    for depth in (0..20).rev() {
        let mut t = json!({"name": format!("deep{depth}"), "version": "1.0.0", "steps": step});
        if depth < 19 {
            t["includes"] = json!([{"template": format!("deep{}", depth + 1), "prefix": "i"}]);
        }
        let r = call("template_register", json!({"template": t})).await;
        assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    }
    for level in (0..16).rev() {
        let mut t = json!({"name": format!("wide{level}"), "version": "1.0.0", "steps": step});
        if level < 15 {
            let child = format!("wide{}", level + 1);
            t["includes"] = json!([{"template": child, "prefix": "l"},
                                   {"template": child, "prefix": "r"}]);
        }
        let r = call("template_register", json!({"template": t})).await;
        assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    }
    let r = call("template_instantiate", json!({"name": "deep0"})).await;
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(
        text.contains("deeper than") || text.contains("16"),
        "{text}"
    );
    let started = Instant::now();
    let r = call("template_instantiate", json!({"name": "wide0"})).await;
    eprintln!("a doubling template refused in {:?}", started.elapsed());
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("10000"), "{text}");
    client.cancel().await.expect("close");
}

/// One JSON-RPC message per line from the child's stdout, by id.
fn answer_for(lines: &mut impl BufRead, id: &Value) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("read stdout") > 0,
            "the server closed stdout"
        );
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        if &v["id"] == id {
            return v;
        }
    }
}

#[test]
fn stdio_applies_the_same_limits_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ensemble.toml");
    std::fs::write(&config, SMALL).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["serve", "--in-memory", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ensemble");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut send = |line: String| {
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    };
    send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "0"}}})
        .to_string(),
    );
    answer_for(&mut out, &json!(0));
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
    send(put_request(1, &nested(20)));
    let a = answer_for(&mut out, &json!(1));
    assert!(
        a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_json_depth")),
        "{a}"
    );
    send(put_request(2, &format!("\"{}\"", "z".repeat(5000))));
    let a = answer_for(&mut out, &json!(2));
    assert!(
        a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_string_bytes")),
        "{a}"
    );
    // 100,000 levels: refused by id all the same (reading the head skips the rest without
    // recursing), and the session goes on.
    send(put_request(3, &nested(100_000)));
    let a = answer_for(&mut out, &json!(3));
    assert!(
        a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deep")),
        "{a}"
    );
    send(put_request(4, "{\"ok\":[1,2,3]}"));
    let a = answer_for(&mut out, &json!(4));
    assert_eq!(a["result"]["isError"], false, "{a}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_governed_session_is_its_openers_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[governance.roles]]\nname = \"caller\"\ntools = [\"registry_*\"]\n{}",
        common::keys::api_keys(&[
            ("alice", "ens-alice-51c0", &["caller"]),
            ("mallory", "ens-mallory-77e2", &["caller"]),
        ])
    );
    let server = serve_http(dir.path(), &config, &[]);
    let url = &server.url;
    const ALICE: Option<&str> = Some("ens-alice-51c0");
    const MALLORY: Option<&str> = Some("ens-mallory-77e2");
    let session = open_session(url, ALICE).await;
    let put = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "registry_put",
        "arguments": {"name": "alice-secret", "version": "1.0.0", "content": {}}}});
    let r = post_as(url, ALICE, Some(&session), put.to_string()).await;
    let answer = r.text().await.unwrap_or_default();
    assert!(answer.contains("alice-secret"), "{answer}");
    // Mallory, with a valid key of her own and Alice's session id: no such session, on every
    // method.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let r = post_as(url, MALLORY, Some(&session), list.clone()).await;
    assert_eq!(r.status().as_u16(), 404);
    let resume = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("authorization", "Bearer ens-mallory-77e2")
        .header("mcp-session-id", &session)
        .header("last-event-id", "0/f0")
        .send()
        .await
        .expect("GET");
    assert_eq!(resume.status().as_u16(), 404);
    let close = reqwest::Client::new()
        .delete(url)
        .header("mcp-protocol-version", "2025-06-18")
        .header("authorization", "Bearer ens-mallory-77e2")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(close.status().as_u16(), 404);
    // Alice's session is untouched.
    let r = post_as(url, ALICE, Some(&session), list).await;
    assert_eq!(r.status().as_u16(), 200);
}
