//! The real `ensemble serve --http` as a child process on a data directory of the caller's, an
//! MCP session to it over Streamable HTTP, and tool calls with a deadline (shared by the crash
//! trials and the chaos load).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

/// An MCP client session.
pub type Client = RunningService<RoleClient, ()>;

/// How long [`call`] waits: no call in these scenarios has a reason to take longer.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// `ensemble serve --http 127.0.0.1:0`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// `http://ADDR/mcp`.
    pub url: String,
    /// Its warnings and errors, and what it logged about resumed workflow runs.
    pub log: Arc<Mutex<Vec<String>>>,
    /// When each panic the test tools caused was logged (as this process read its message).
    pub panic_times: Arc<Mutex<Vec<Instant>>>,
}

impl Server {
    /// Serves `data` with the configuration file `config`, with `env` set.
    pub fn start(config: &Path, data: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
        cmd.args(["serve", "--http", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn ensemble: {e}"))?;
        let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?);
        let mut line = String::new();
        let mut seen = String::new();
        let url = loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("ensemble exited before listening:\n{seen}"));
                }
                Ok(_) => {}
            }
            if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
                break rest.to_string();
            }
            seen.push_str(&line);
        };
        let log: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
            seen.lines()
                .filter(|l| notable(l))
                .map(String::from)
                .collect(),
        ));
        let kept = log.clone();
        let panic_times: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let times = panic_times.clone();
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if is_panic(&line) {
                    times.lock().expect("panic times").push(Instant::now());
                }
                if notable(&line) {
                    kept.lock().expect("log").push(line);
                }
            }
        });
        Ok(Self {
            child,
            url,
            log,
            panic_times,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR`, for `/metrics`, `/health` and `/ready`.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a server log line is the message of a panic the test tools caused (the
/// supervisor's report of the failure, which quotes it, is not).
fn is_panic(line: &str) -> bool {
    line.starts_with("registry told to crash")
}

/// A server log line worth keeping for the report (and the panics the test tools cause).
fn notable(line: &str) -> bool {
    line.contains("WARN")
        || line.contains("ERROR")
        || line.contains("resuming")
        || line.contains("told to crash")
}

/// A session to `url`, presenting `key` as its bearer credential if given.
pub async fn connect(url: &str, key: Option<&str>) -> Result<Client, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| e.to_string())
}

/// Why a call gave no result.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The tool answered with an error result.
    Tool(String),
    /// The request failed on the way (the connection, the session, the protocol).
    Transport(String),
    /// No answer within the deadline.
    Deadline(Duration),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Tool(e) => write!(f, "{e}"),
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Deadline(d) => write!(f, "no answer in {d:?}"),
        }
    }
}

/// A tool call: its structured result, or why not (a tool error, a transport error, no answer
/// within [`CALL_DEADLINE`]), in words that name the tool.
pub async fn call(c: &Client, tool: &str, args: Value) -> Result<Value, String> {
    call_within(c, tool, args, CALL_DEADLINE)
        .await
        .map_err(|e| format!("{tool}: {e}"))
}

/// A tool call with a deadline of the caller's.
pub async fn call_within(
    c: &Client,
    tool: &str,
    args: Value,
    deadline: Duration,
) -> Result<Value, CallError> {
    let req = CallToolRequestParams::new(tool.to_string()).with_arguments(object(args));
    match tokio::time::timeout(deadline, c.call_tool(req)).await {
        Err(_) => Err(CallError::Deadline(deadline)),
        Ok(Err(e)) => Err(CallError::Transport(e.to_string())),
        Ok(Ok(r)) if r.is_error == Some(true) => Err(CallError::Tool(
            r.content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        Ok(Ok(r)) => r
            .structured_content
            .ok_or_else(|| CallError::Tool("no structured result".into())),
    }
}

/// Polls workflow run `id` until it is no longer running or `deadline` passes; its last
/// status, or why it could not be read.
pub async fn wait_for_run(
    c: &Client,
    id: &str,
    deadline: std::time::Instant,
) -> Result<Value, String> {
    loop {
        let r = call(c, "workflow_status", serde_json::json!({"run_id": id})).await?;
        if r["state"] != "running" || std::time::Instant::now() >= deadline {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small deterministic generator (xorshift), so a run's choices can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded; 0 is replaced.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}
