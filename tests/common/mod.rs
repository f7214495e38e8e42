//! `ensemble serve --http` as a child process, and rmcp's Streamable HTTP client to it.

#![allow(dead_code)]

pub mod keys;
pub mod nap;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;

/// A running `ensemble serve --http 127.0.0.1:0`; killed when dropped.
pub struct HttpServer {
    pub child: Child,
    /// `http://ADDR/mcp`.
    pub url: String,
    /// Its stderr after the "listening" line, panic backtraces left out (echoed with
    /// `ENSEMBLE_TEST_ECHO=1`).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    /// `http://ADDR`, for `/health`, `/ready` and `/metrics`.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves on `dir/data` with `config` written to `dir/ensemble.toml`, and `env` set.
pub fn serve_http(dir: &Path, config: &str, env: &[(&str, &str)]) -> HttpServer {
    let file = dir.join("ensemble.toml");
    std::fs::write(&file, config).expect("write the configuration");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
    cmd.args(["serve", "--http", "127.0.0.1:0", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The harness's own switch, not a configuration variable of the server's.
        .env_remove("ENSEMBLE_TEST_ECHO");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let echo = std::env::var_os("ENSEMBLE_TEST_ECHO").is_some();
    let mut child = cmd.spawn().expect("spawn ensemble");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("read stderr") > 0,
            "ensemble exited before listening"
        );
        if echo {
            eprint!("server: {line}");
        }
        if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
            break rest.to_string();
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if echo {
                eprintln!("server: {line}");
            }
            if !line.starts_with(' ') {
                kept.lock().expect("log").push(line);
            }
        }
    });
    HttpServer { child, url, log }
}

/// An MCP client session.
pub type Client = RunningService<RoleClient, ()>;

/// A session to `url` over Streamable HTTP.
pub async fn connect(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("MCP session over HTTP")
}

/// The sum of the samples of metric `name` whose line contains `label` (`""` for all), in a
/// Prometheus text page (0 when absent).
pub fn metric(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// Waits (bounded: 5 s) until `check` holds; panics naming `what` otherwise.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// Calls `tool` with `args` and answers its structured result; panics (naming the tool) on an
/// error of either kind.
pub async fn call_ok<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let r = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new(tool.to_string())
                .with_arguments(rmcp::model::object(args)),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
    r.structured_content.expect("structured")
}

/// The text of a call's failure (a tool error or a JSON-RPC error); panics (naming the tool)
/// if it succeeded.
pub async fn refusal<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    args: serde_json::Value,
) -> String {
    match client
        .call_tool(
            rmcp::model::CallToolRequestParams::new(tool.to_string())
                .with_arguments(rmcp::model::object(args)),
        )
        .await
    {
        Ok(r) if r.is_error == Some(true) => format!("{:?}", r.content),
        Ok(r) => panic!("{tool} answered: {r:?}"),
        Err(e) => e.to_string(),
    }
}

/// Calls `tool` through an embedded runtime's router; its answer must satisfy the tool's output
/// schema, as strict MCP clients (the Python and TypeScript SDKs) check it.
pub async fn checked(
    rt: &ensemble::runtime::Runtime,
    tool: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let answer = rt
        .router()
        .call(tool, args.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    let schema = rt
        .router()
        .spec(tool)
        .and_then(|s| s.output_schema)
        .unwrap_or_else(|| panic!("{tool} has an output schema"));
    let validator = jsonschema::validator_for(&serde_json::Value::Object((*schema).clone()))
        .unwrap_or_else(|e| panic!("{tool}'s output schema: {e}"));
    let problems: Vec<String> = validator
        .iter_errors(&answer)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{tool} answered outside its output schema: {problems:?}\n{answer}"
    );
    answer
}

/// The error of a call through an embedded runtime's router; panics if it succeeded.
pub async fn router_refusal(
    rt: &ensemble::runtime::Runtime,
    tool: &str,
    args: serde_json::Value,
) -> String {
    match rt.router().call(tool, args.clone(), None).await {
        Ok(v) => panic!("{tool} {args} should be refused, answered {v}"),
        Err(e) => e.to_string(),
    }
}

/// Exports `learner`'s snapshot from an embedded runtime: the registry artifact as
/// `registry_get` reads it (name, version, content, media type).
pub async fn export_snapshot(rt: &ensemble::runtime::Runtime, learner: &str) -> serde_json::Value {
    let snap = checked(
        rt,
        "learning_export",
        serde_json::json!({"learner": learner}),
    )
    .await;
    checked(
        rt,
        "registry_get",
        serde_json::json!({"name": snap["name"], "version": snap["version"]}),
    )
    .await
}

/// Puts an exported snapshot into another runtime's registry and imports it twice (importing
/// the same snapshot twice must count it once).
pub async fn import_snapshot_twice(
    rt: &ensemble::runtime::Runtime,
    learner: &str,
    artifact: &serde_json::Value,
) {
    checked(
        rt,
        "registry_put",
        serde_json::json!({"name": artifact["name"], "version": artifact["version"],
               "content_base64": artifact["content_base64"], "media_type": artifact["media_type"]}),
    )
    .await;
    let reference = format!(
        "{}@{}",
        artifact["name"].as_str().unwrap_or_default(),
        artifact["version"].as_str().unwrap_or_default()
    );
    for _ in 0..2 {
        checked(
            rt,
            "learning_import",
            serde_json::json!({"learner": learner, "artifact": reference}),
        )
        .await;
    }
}
