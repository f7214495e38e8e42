//! tools/call throughput and latency: Ensemble (a read-only tool routed through a supervised
//! actor and its policy stack) against a bare rmcp server with the same tool, in the same run.
//!
//! Modes: Streamable HTTP with legacy sessions (SSE replies) and Streamable HTTP stateless
//! 2026-07-28 (JSON replies), each two ways:
//! - `http-sse`, `http-json`: as a client reaches a server — each server a child process of
//!   this one, listening on loopback on its own tokio runtime (built as the `ensemble` binary
//!   builds its own), Ensemble with the axum app `ensemble serve --http` serves;
//! - `http-sse-inproc`, `http-json-inproc`: both servers in this process, sharing one
//!   two-worker runtime with the load generator, so client and server tasks take turns on the
//!   same scheduler;
//!
//! and stdio three ways:
//! - `stdio`: as a client runs a server — each server a child process of this one, on its own
//!   stdin/stdout pipes and its own tokio runtime; bare rmcp with `rmcp::transport::stdio()`
//!   (tokio's stdin/stdout, every read and write on the blocking pool), Ensemble as
//!   `ensemble serve` runs (`Runtime::serve_stdio`: the pipes polled by the reactor);
//! - `stdio-polled`: the same, with the bare server also on Ensemble's polled pipes
//!   (`ensemble::runtime::stdio::stdio()`), so both sides differ only in the server;
//! - `stdio-inproc`: an in-process pipe, server and client sharing one two-worker runtime: no
//!   process boundary, so the server's own cost is the largest share of a call.
//!
//! Concurrency 1, 16 and 64.
//!
//! Ensemble's side calls the echo actor by default; `--tool queue_stats` calls that real engine
//! tool instead (the execution engine's figures: a supervised engine actor, its policy stack and
//! a larger answer, 334 bytes of JSON), and `--tool validation_validate` the validation engine
//! checking a small document against a registered schema (a small answer), still against bare
//! rmcp's echo.
//!
//! Each row also gives each server's CPU time (user + system, from `/proc`) per call, for the
//! servers that run as child processes.
//!
//! Run: `cargo bench --bench mcp_throughput` (`-- --secs N` per cell, default 3; `--mode
//! http-sse|http-json|http-sse-inproc|http-json-inproc|stdio|stdio-polled|stdio-inproc` and
//! `--concurrency N` run one row; `--tool echo|queue_stats|validation_validate`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble::runtime::Runtime;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations};
use ensemble::supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use http_body_util::{BodyExt, Full};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, object,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// Only its CPU reading: this bench starts its own servers.
#[allow(dead_code)]
#[path = "common/serve.rs"]
mod serve;
use serve::cpu_time;

/// The allocator the `ensemble` binary ships with, so that both servers run as they would in
/// production (they share this process, hence this allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ---- the tool, twice ------------------------------------------------------------------------

#[derive(Clone, Deserialize, JsonSchema)]
struct EchoRequest {
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct EchoResponse {
    echo: String,
}

enum EchoMsg {
    Echo(
        EchoRequest,
        CancellationToken,
        RpcReplyPort<Result<EchoResponse, String>>,
    ),
}

struct EchoActor;

impl Actor for EchoActor {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let EchoMsg::Echo(req, cancel, reply) = msg;
        if !cancel.is_cancelled() {
            let _ = reply.send(Ok(EchoResponse { echo: req.text }));
        }
        Ok(())
    }
}

/// The baseline: the same tool answered directly in an rmcp handler.
#[derive(Clone)]
struct Bare;

fn echo_tool() -> Tool {
    Tool::new(
        "bench_echo",
        "Echo text back.",
        Arc::new(object(
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        )),
    )
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![echo_tool()]))
    }
    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = req
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("missing text", None))?
            .to_string();
        Ok(CallToolResult::structured(json!({ "echo": text })).into())
    }
}

async fn ensemble_runtime() -> (Runtime, ActorRef<ensemble::supervision::SupervisorMsg>) {
    let runtime = Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime");
    let slot = ActorSlot::new("bench_echo");
    let (sup, _) = Supervisor::start(
        SupervisorSpec::new("bench").child(ChildSpec::actor(&slot, || (EchoActor, ()))),
    )
    .await
    .expect("supervisor");
    runtime
        .router()
        .register_actor(
            ActorTool {
                name: "bench_echo",
                description: "Echo text back.",
                annotations: Annotations::READ_ONLY,
                slot,
                policy: default_policy("bench_echo"),
            },
            EchoMsg::Echo,
        )
        .expect("register");
    // The schema `validation_validate` checks against (compiled once, on first use).
    runtime
        .router()
        .call(
            "validation_register_schema",
            json!({"name": "bench.order", "version": "1.0.0", "schema": {
                "type": "object",
                "required": ["id", "qty"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
                    "qty": {"type": "integer", "minimum": 1}
                }
            }}),
            None,
        )
        .await
        .expect("validation_register_schema");
    (runtime, sup)
}

// ---- HTTP servers ---------------------------------------------------------------------------

async fn listen(app: axum::Router) -> SocketAddr {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn bare_http() -> SocketAddr {
    let config = StreamableHttpServerConfig::default().with_json_response(true);
    let svc = StreamableHttpService::new(
        || Ok(Bare),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    listen(axum::Router::new().nest_service("/mcp", svc)).await
}

async fn ensemble_http(runtime: &Runtime) -> SocketAddr {
    let opts = ensemble::runtime::http::HttpOptions {
        addr: "127.0.0.1:0".parse().expect("addr"),
        allow_origins: Vec::new(),
    };
    listen(ensemble::runtime::http::app(
        runtime,
        &opts,
        CancellationToken::new(),
    ))
    .await
}

// ---- a minimal HTTP/1.1 MCP client (hyper) --------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum HttpMode {
    /// `initialize` creates a session; replies are SSE streams.
    LegacySse,
    /// 2026-07-28 stateless requests; replies are JSON.
    StatelessJson,
}

struct HttpClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    session: Option<String>,
    mode: HttpMode,
}

impl HttpClient {
    async fn connect(addr: SocketAddr, mode: HttpMode) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut c = Self {
            sender,
            addr,
            session: None,
            mode,
        };
        if mode == HttpMode::LegacySse {
            let (headers, _) = c
                .post(
                    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}}),
                    None,
                )
                .await;
            c.session = headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            c.post(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                None,
            )
            .await;
        }
        c
    }

    async fn post(&mut self, body: Value, tool: Option<&str>) -> (hyper::HeaderMap, Bytes) {
        let mut req = hyper::Request::post("/mcp")
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        if self.mode == HttpMode::StatelessJson {
            req = req
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", tool.unwrap_or_default());
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("response");
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (headers, body)
    }

    async fn call(&mut self, id: u64, call: Call) {
        let tool = call.tool;
        let mut params = json!({"name": tool, "arguments": (call.args)()});
        if self.mode == HttpMode::StatelessJson {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            });
        }
        let (_, body) = self
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
                Some(tool),
            )
            .await;
        let text = std::str::from_utf8(&body).expect("utf-8");
        assert!(text.contains(call.expect), "unexpected reply: {text}");
    }
}

// ---- load -----------------------------------------------------------------------------------

/// What a load generator calls, and what the answer must hold.
#[derive(Clone, Copy)]
struct Call {
    tool: &'static str,
    args: fn() -> Value,
    /// Text the JSON answer holds.
    expect: &'static str,
    /// A key of the structured answer.
    key: &'static str,
}

const ECHO: Call = Call {
    tool: "bench_echo",
    args: || json!({"text": "hello"}),
    expect: "\"echo\":\"hello\"",
    key: "echo",
};

const QUEUE_STATS: Call = Call {
    tool: "queue_stats",
    args: || json!({}),
    expect: "\"policy\":",
    key: "policy",
};

const VALIDATE: Call = Call {
    tool: "validation_validate",
    args: || json!({"schema": "bench.order@1.0.0", "document": {"id": "order-17", "qty": 3}}),
    expect: "\"valid\":true",
    key: "valid",
};

struct Cell {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// The server process's CPU time (user + system) per call, when it is a child process.
    cpu_per_call: Option<Duration>,
    calls: usize,
}

/// One measured stretch of load: each call's latency, the time it took, and the CPU time the
/// server process used meanwhile (child processes only).
type Run = (Vec<Duration>, Duration, Option<Duration>);

/// The CPU time `pid` uses while `f` runs.
async fn with_cpu<T>(
    pid: Option<u32>,
    f: impl std::future::Future<Output = T>,
) -> (T, Option<Duration>) {
    let before = pid.and_then(cpu_time);
    let out = f.await;
    let used = pid
        .and_then(cpu_time)
        .zip(before)
        .map(|(a, b)| a.saturating_sub(b));
    (out, used)
}

/// Rounds per cell: the two servers take turns, so drift on a shared machine hits both alike.
const ROUNDS: usize = 3;

fn merge(parts: Vec<Run>) -> Cell {
    let elapsed = parts.iter().map(|p| p.1).sum();
    let cpu: Option<Duration> = parts.iter().map(|p| p.2).sum();
    let mut cell = summarize(parts.into_iter().flat_map(|p| p.0).collect(), elapsed);
    cell.cpu_per_call = cpu.map(|c| c / cell.calls.max(1) as u32);
    cell
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Cell {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Cell {
        calls_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        cpu_per_call: None,
        calls: lat.len(),
    }
}

async fn http_load(
    addr: SocketAddr,
    mode: HttpMode,
    call: Call,
    concurrency: usize,
    secs: f64,
) -> (Vec<Duration>, Duration) {
    // (the CPU time is measured around this by the caller, which knows the process)
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(async move {
                let mut client = HttpClient::connect(addr, mode).await;
                let mut lat = Vec::new();
                let mut id = 1;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    client.call(id, call).await;
                    lat.push(t.elapsed());
                    id += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    (all, started.elapsed())
}

/// Which server a child process of this bench serves on its stdin/stdout.
const SERVE_ENV: &str = "ENSEMBLE_BENCH_SERVE";

/// The child's side, on a runtime built as the `ensemble` binary builds its own: serve `bare`
/// or `ensemble` on stdio until the client closes the pipe, or `bare-http` or `ensemble-http`
/// on a loopback port (written to stdout) until the parent closes our stdin.
fn serve_child(which: &str) {
    logs_as_ensemble_serve();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        match which {
            "bare-http" => {
                println!("{}", bare_http().await);
                wait_for_eof().await;
            }
            "ensemble-http" => {
                let (runtime, sup) = ensemble_runtime().await;
                println!("{}", ensemble_http(&runtime).await);
                wait_for_eof().await;
                let _ = sup.stop_and_wait(None, None).await;
            }
            "bare" => {
                let running = Bare.serve(rmcp::transport::stdio()).await.expect("serve");
                let _ = running.waiting().await;
            }
            "bare-polled" => {
                let running = Bare
                    .serve(ensemble::runtime::stdio::stdio())
                    .await
                    .expect("serve");
                let _ = running.waiting().await;
            }
            _ => {
                let (runtime, sup) = ensemble_runtime().await;
                let _ = runtime.serve_stdio().await;
                let _ = sup.stop_and_wait(None, None).await;
            }
        }
    });
}

/// The log subscriber `ensemble serve` installs by default, for both servers: at level `info`
/// each call's spans are recorded (rmcp's `serve_inner` per session or stateless request,
/// Ensemble's `tool_call`), which is part of what a server with logs costs. Logs go to stderr,
/// as the binary's do: a line per call would show in the bench's output. `ENSEMBLE_LOG` sets
/// the filter, as for the binary.
fn logs_as_ensemble_serve() {
    tracing_subscriber::fmt()
        .with_env_filter(ensemble::log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn wait_for_eof() {
    let mut rest = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut rest).await;
}

/// An HTTP server in a child process of this bench; killed when dropped.
struct HttpChild {
    _child: tokio::process::Child,
    pid: Option<u32>,
    addr: SocketAddr,
}

impl HttpChild {
    /// Starts `bare-http` or `ensemble-http` and reads the address it listens on.
    async fn spawn(which: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
            .env(SERVE_ENV, which)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        tokio::io::BufReader::new(child.stdout.take().expect("child stdout"))
            .read_line(&mut line)
            .await
            .expect("child address");
        let addr = line.trim().parse().expect("child address");
        Self {
            pid: child.id(),
            _child: child,
            addr,
        }
    }
}

/// Where a stdio server runs.
enum Stdio<'a, S> {
    /// A child process serving on its stdin/stdout.
    Child(&'a str),
    /// In this process, through an in-memory pipe.
    InProcess(&'a S),
}

impl<S> Clone for Stdio<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Stdio<'_, S> {}

async fn stdio_load<S: ServerHandler + Clone>(
    server: Stdio<'_, S>,
    call: Call,
    concurrency: usize,
    secs: f64,
) -> Run {
    let mut pid = None;
    let client = match server {
        Stdio::Child(which) => {
            let mut cmd = tokio::process::Command::new(std::env::current_exe().expect("exe"));
            cmd.env(SERVE_ENV, which);
            let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("spawn server");
            pid = transport.id();
            ().serve(transport).await.expect("client")
        }
        Stdio::InProcess(server) => {
            let (server_io, client_io) = tokio::io::duplex(1 << 20);
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(running) = server.serve(server_io).await {
                    let _ = running.waiting().await;
                }
            });
            ().serve(client_io).await.expect("client")
        }
    };
    let client = Arc::new(client);
    let ((all, elapsed), cpu) = with_cpu(pid, stdio_calls(&client, call, concurrency, secs)).await;
    (all, elapsed, cpu)
}

async fn stdio_calls(
    client: &Arc<rmcp::service::RunningService<rmcp::RoleClient, ()>>,
    call: Call,
    concurrency: usize,
    secs: f64,
) -> (Vec<Duration>, Duration) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = client
                        .call_tool(
                            CallToolRequestParams::new(call.tool)
                                .with_arguments(object((call.args)())),
                        )
                        .await
                        .expect("call");
                    assert!(
                        r.structured_content
                            .as_ref()
                            .is_some_and(|v| v.get(call.key).is_some()),
                        "unexpected reply: {r:?}"
                    );
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    (all, started.elapsed())
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn row(mode: &str, c: usize, bare: &Cell, ens: &Cell) {
    let cpu = |c: &Cell| {
        c.cpu_per_call.map_or("–".to_string(), |d| {
            format!("{:.1} µs", d.as_secs_f64() * 1e6)
        })
    };
    println!(
        "| {mode} | {c} | {:.0} | {:.0} | {:.2} | {} / {} | {} / {} | {:.2} | {} / {} |",
        bare.calls_per_sec,
        ens.calls_per_sec,
        ens.calls_per_sec / bare.calls_per_sec,
        us(bare.p50),
        us(bare.p99),
        us(ens.p50),
        us(ens.p99),
        ens.p99.as_secs_f64() / bare.p99.as_secs_f64(),
        cpu(bare),
        cpu(ens),
    );
}

fn main() {
    if let Ok(which) = std::env::var(SERVE_ENV) {
        return serve_child(&which);
    }
    let mut args = std::env::args().skip(1);
    let mut secs = 3.0;
    let mut only_mode: Option<String> = None;
    let mut only_c: Option<usize> = None;
    let mut ens_call = ECHO;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--mode" => only_mode = args.next(),
            "--concurrency" => only_c = args.next().and_then(|s| s.parse().ok()),
            "--tool" => {
                ens_call = match args.next().as_deref() {
                    Some("queue_stats") => QUEUE_STATS,
                    Some("validation_validate") => VALIDATE,
                    _ => ECHO,
                }
            }
            _ => {}
        }
    }
    let wanted = |mode: &str, c: usize| {
        only_mode.as_deref().is_none_or(|m| m == mode) && only_c.is_none_or(|x| x == c)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let (runtime, sup) = ensemble_runtime().await;
        let bare_addr = bare_http().await;
        let ens_addr = ensemble_http(&runtime).await;
        println!("\nEnsemble calls `{}`; bare rmcp calls its echo.", ens_call.tool);
        println!("\n| mode | concurrency | bare rmcp calls/s | ensemble calls/s | throughput ratio | bare p50 / p99 | ensemble p50 / p99 | p99 ratio | server CPU per call, bare / ensemble |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let http_rows = [
            ("http legacy+SSE (child process)", "http-sse", HttpMode::LegacySse, false),
            ("http stateless+JSON (child process)", "http-json", HttpMode::StatelessJson, false),
            ("http legacy+SSE (in-process)", "http-sse-inproc", HttpMode::LegacySse, true),
            ("http stateless+JSON (in-process)", "http-json-inproc", HttpMode::StatelessJson, true),
        ];
        let mut children: Option<(HttpChild, HttpChild)> = None;
        for (name, key, mode, in_process) in http_rows {
            for c in [1, 16, 64] {
                if !wanted(key, c) {
                    continue;
                }
                let (bare_at, ens_at) = if in_process {
                    (bare_addr, ens_addr)
                } else {
                    if children.is_none() {
                        children = Some((
                            HttpChild::spawn("bare-http").await,
                            HttpChild::spawn("ensemble-http").await,
                        ));
                    }
                    children.as_ref().map(|(b, e)| (b.addr, e.addr)).expect("children")
                };
                let (mut bare, mut ens) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    let (bare_pid, ens_pid) = children
                        .as_ref()
                        .filter(|_| !in_process)
                        .map(|(b, e)| (b.pid, e.pid))
                        .unwrap_or_default();
                    let per = secs / ROUNDS as f64;
                    let ((l, t), cpu) =
                        with_cpu(bare_pid, http_load(bare_at, mode, ECHO, c, per)).await;
                    bare.push((l, t, cpu));
                    let ((l, t), cpu) =
                        with_cpu(ens_pid, http_load(ens_at, mode, ens_call, c, per)).await;
                    ens.push((l, t, cpu));
                }
                row(name, c, &merge(bare), &merge(ens));
            }
        }
        drop(children);
        let service = runtime.mcp_service();
        for (name, key) in [
            ("stdio (child process)", "stdio"),
            ("stdio (child process, both on polled pipes)", "stdio-polled"),
            ("stdio (in-process pipe)", "stdio-inproc"),
        ] {
            for c in [1, 16, 64] {
                if !wanted(key, c) {
                    continue;
                }
                let ens = Stdio::<ensemble::runtime::mcp::McpService>::Child("ensemble");
                let (bare, ens) = if key == "stdio" {
                    (Stdio::<Bare>::Child("bare"), ens)
                } else if key == "stdio-polled" {
                    (Stdio::<Bare>::Child("bare-polled"), ens)
                } else {
                    (Stdio::InProcess(&Bare), Stdio::InProcess(&service))
                };
                let (mut b, mut e) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    b.push(stdio_load(bare, ECHO, c, secs / ROUNDS as f64).await);
                    e.push(stdio_load(ens, ens_call, c, secs / ROUNDS as f64).await);
                }
                row(name, c, &merge(b), &merge(e));
            }
        }
        let _ = sup.stop_and_wait(None, None).await;
    });
}
