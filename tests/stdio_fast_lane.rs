//! The stdio transport's fast lane answers plain tool calls itself: the same session driven
//! line by line through a transport with the lane and one without must read the same
//! answers, cancellation included, and the lane must take exactly the calls it may.

mod common;

use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::router::Annotations;
use ensemble::runtime::stdio::LineTransport;
use ensemble::runtime::stdio::transport::FastLaneCount;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Session {
    write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    read: tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    lane: FastLaneCount,
}

impl Session {
    async fn start(runtime: &Runtime, with_lane: bool) -> Session {
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(server_io);
        let service = runtime
            .mcp_service()
            .with_progress_every(Duration::from_millis(40));
        let mut transport = LineTransport::new(r, w);
        if with_lane {
            transport = transport.with_fast_lane(service.clone());
        }
        let lane = transport.fast_lane_count();
        tokio::spawn(async move {
            if let Ok(running) = service.serve(transport).await {
                let _ = running.waiting().await;
            }
        });
        let (read, write) = tokio::io::split(client_io);
        let mut s = Session {
            write,
            read: BufReader::new(read).lines(),
            lane,
        };
        let init = s
            .ask(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "lines", "version": "1"}}}),
            )
            .await;
        assert!(init.contains("\"protocolVersion\""), "{init}");
        s.say(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn say(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.expect("write");
    }

    async fn answer(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.read.next_line())
            .await
            .expect("an answer within 10 s")
            .expect("read")
            .expect("a line")
    }

    /// Sends a request and reads up to its answer (past any notification before it).
    async fn ask(&mut self, message: Value) -> String {
        self.say(message).await;
        loop {
            let line = self.answer().await;
            if !line.contains("\"method\"") {
                return line;
            }
        }
    }
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_answers_as_rmcp_does_and_takes_only_plain_calls() {
    let runtime = Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime");
    let (_host, _) = common::nap::host_nap(&runtime, Annotations::READ_ONLY).await;
    let mut fast = Session::start(&runtime, true).await;
    let mut slow = Session::start(&runtime, false).await;

    // Plain calls: an answer, a tool's error, arguments of the wrong type.
    let plain = [
        call(1, "registry_list", json!({})),
        call(
            2,
            "validation_validate",
            json!({"schema": "no.such", "document": {}}),
        ),
        call(3, "registry_list", json!({"prefix": 7})),
        json!({"jsonrpc": "2.0", "id": "s-4", "method": "tools/call",
               "params": {"name": "registry_list"}}),
        // rmcp's client asks for progress on every call.
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
            "name": "registry_list", "arguments": {}, "_meta": {"progressToken": "p6"}}}),
    ];
    // Calls the lane leaves to rmcp: an unknown tool, other request metadata.
    let others = [
        call(5, "no_such_tool", json!({})),
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {
            "name": "registry_list", "arguments": {},
            "_meta": {"progressToken": "p10", "trace": "abc"}}}),
    ];
    for request in plain.iter().chain(&others) {
        let (a, b) = (
            fast.ask(request.clone()).await,
            slow.ask(request.clone()).await,
        );
        assert_eq!(a, b, "the lanes answered {request} differently");
    }
    assert_eq!(fast.lane.get(), plain.len() as u64);

    // A long call with a progress token gets a heartbeat, then its answer, in both.
    let nap = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
        "name": "host_nap", "arguments": {"ms": 300}, "_meta": {"progressToken": "p11"}}});
    let mut answers = Vec::new();
    for s in [&mut fast, &mut slow] {
        s.say(nap.clone()).await;
        let mut beats = Vec::new();
        let answer = loop {
            let line: Value = serde_json::from_str(&s.answer().await).expect("JSON");
            if line.get("id").is_some() {
                break line;
            }
            beats.push(line);
        };
        assert!(!beats.is_empty(), "no heartbeat before {answer}");
        for beat in &beats {
            assert_eq!(beat["method"], "notifications/progress", "{beat}");
            assert_eq!(beat["params"]["progressToken"], "p11", "{beat}");
            let message = beat["params"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("`host_nap` running for"), "{beat}");
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["result"]["structuredContent"]["slept_ms"], 300);
    let taken = plain.len() as u64 + 1;
    assert_eq!(fast.lane.get(), taken);

    // A cancelled call gets no answer in either: the next line is the next request's.
    for s in [&mut fast, &mut slow] {
        s.say(call(7, "host_nap", json!({"ms": 30_000}))).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.say(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": 7, "reason": "changed my mind"}}),
        )
        .await;
    }
    // Time for a wrongly written answer to arrive first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fast.lane.get(), taken + 1, "the lane took it");

    // Once the client sets a logging level, calls carry log messages: rmcp's way.
    for s in [&mut fast, &mut slow] {
        let ok = s
            .ask(
                json!({"jsonrpc": "2.0", "id": 8, "method": "logging/setLevel",
                        "params": {"level": "debug"}}),
            )
            .await;
        assert!(ok.contains("\"id\":8"), "not the answer to setLevel: {ok}");
    }
    let (a, b) = (
        fast.ask(call(9, "registry_list", json!({}))).await,
        slow.ask(call(9, "registry_list", json!({}))).await,
    );
    assert_eq!(a, b);
    assert_eq!(fast.lane.get(), taken + 1, "left to rmcp");
    assert_eq!(slow.lane.get(), 0);
}
