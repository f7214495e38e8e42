//! The shell learner against the real binary: killed with SIGKILL while observations stream in,
//! it loses at most its flush interval of acknowledged observations, and what it stored reads
//! back whole after the restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, HttpServer, connect, serve_http};
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const FLUSH: Duration = Duration::from_millis(200);
const MARGIN: Duration = Duration::from_millis(800);

fn start(dir: &Path) -> HttpServer {
    let config = format!(
        "[learning.shell]\nflush_interval_ms = {}\n",
        FLUSH.as_millis()
    );
    serve_http(dir, &config, &[])
}

async fn call(c: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("{:?}", r.content));
    }
    r.structured_content
        .ok_or_else(|| "no structured result".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_loses_at_most_the_flush_interval_and_corrupts_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Observations stored by the earlier trials on the same data dir.
    let mut earlier = 0u64;
    for trial in 0..3u64 {
        let mut server = start(dir.path());
        let c = connect(&server.url).await;
        let started = Instant::now();
        // Kill at a different moment each trial, while observations stream in.
        let kill_after = Duration::from_millis(1500 + 500 * trial);
        let mut acked: Vec<Instant> = Vec::new();
        let mut n = 0u64;
        while started.elapsed() < kill_after {
            n += 1;
            let command = format!("step {} of trial {trial}", n % 7);
            if call(
                &c,
                "shell_observe",
                json!({"user": "ana", "command": command}),
            )
            .await
            .is_ok()
            {
                acked.push(Instant::now());
            }
        }
        let killed_at = Instant::now();
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        drop(c);

        let before_kill = acked.len() as u64;
        // Everything acknowledged more than one flush interval (and a margin for a slow fsync
        // on a busy machine) before the kill must be on disk.
        let safe = acked
            .iter()
            .filter(|t| killed_at.duration_since(**t) > FLUSH + MARGIN)
            .count() as u64;

        let server = start(dir.path());
        let c = connect(&server.url).await;
        let stats = call(&c, "learning_stats", json!({"learner": "shell"}))
            .await
            .expect("the learner reads its data back");
        let stored = stats["observations"].as_u64().expect("observations");
        assert!(
            stored >= earlier + safe,
            "trial {trial}: {stored} stored, {earlier} from earlier trials + {safe} acknowledged \
             well before the kill"
        );
        assert!(stored <= earlier + before_kill, "more stored than observed");
        println!(
            "trial {trial}: {before_kill} acknowledged, {safe} of them over {FLUSH:?} + \
             {MARGIN:?} before the kill; {} on disk after the restart",
            stored - earlier
        );
        earlier = stored;
        // What is stored answers: suggestions for the user come back.
        let s = call(&c, "shell_suggest", json!({"user": "ana"}))
            .await
            .expect("suggest");
        assert!(!s["suggestions"].as_array().expect("list").is_empty());
        let _ = c.cancel().await;
    }
}
