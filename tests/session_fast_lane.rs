//! The session fast lane (`mcp::sessions`) with a host's slow tool: a cancelled call ends its
//! stream with no answer and stops the actor's work; a call whose client went away runs on
//! and its answer is there for a resumed stream.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::http::{HttpOptions, app};
use ensemble::runtime::router::Annotations;
use ensemble::supervision::CancellationToken;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP/1.1 request on a new connection and returns the stream, to read from.
async fn send(
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    stream
}

/// Everything the server sends until it closes the connection (within 10 s).
async fn read_all(mut stream: tokio::net::TcpStream) -> String {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the response ends within 10 s")
        .expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}

/// Reads until `needle` has arrived; returns what was read.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("data within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// The JSON-RPC messages in an SSE body (chunk sizes and all).
fn messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_end_unanswered_and_abandoned_ones_resume() {
    let runtime = Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime");
    let (_host, saw_cancel) = common::nap::host_nap(&runtime, Annotations::READ_ONLY).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("address");
    let opts = HttpOptions {
        addr: local,
        allow_origins: Vec::new(),
    };
    let shutdown = CancellationToken::new();
    let router = app(&runtime, &opts, shutdown.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let addr = local.to_string();

    // A session, as a 2025 client opens one.
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "lane", "version": "1"}}});
    let head = read_all(send(&addr, "POST", &json, &init.to_string()).await).await;
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id:"))
        .expect("a session id")
        .trim()
        .to_string();
    let in_session: Vec<(&str, &str)> = json
        .iter()
        .copied()
        .chain([
            ("Mcp-Session-Id", session.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ])
        .collect();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    read_all(send(&addr, "POST", &in_session, &initialized.to_string()).await).await;

    // Cancelled: the stream ends with its priming event only, and the actor saw the cancel.
    let nap = |id: u64, ms: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "host_nap", "arguments": {"ms": ms}}})
        .to_string()
    };
    let mut call = send(&addr, "POST", &in_session, &nap(7, 30_000)).await;
    let primed = read_until(&mut call, "retry:").await;
    assert!(primed.contains("id: 0/f"), "{primed}");
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 7, "reason": "no longer needed"}});
    read_all(send(&addr, "POST", &in_session, &cancel.to_string()).await).await;
    let rest = read_all(call).await;
    assert!(
        messages(&rest).is_empty(),
        "a cancelled call is not answered: {rest}"
    );
    // The actor hears of the cancel on its own task: the stream may end a moment before.
    common::eventually("the actor was told", || saw_cancel.load(Ordering::SeqCst)).await;

    // Abandoned after its priming event: the call runs on, and a resume gets its answer.
    let mut call = send(&addr, "POST", &in_session, &nap(8, 300)).await;
    let primed = read_until(&mut call, "retry:").await;
    let last_event = primed
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .expect("the priming event's id")
        .trim()
        .to_string();
    drop(call);
    let resume: Vec<(&str, &str)> = vec![
        ("Accept", "text/event-stream"),
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
        ("Last-Event-ID", last_event.as_str()),
    ];
    let resumed = read_all(send(&addr, "GET", &resume, "").await).await;
    let answers = messages(&resumed);
    assert_eq!(answers.len(), 1, "{resumed}");
    assert_eq!(answers[0]["id"], 8);
    assert_eq!(answers[0]["result"]["structuredContent"]["slept_ms"], 300);
    shutdown.cancel();
}
