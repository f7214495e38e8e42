//! The cost of a server that does nothing yet: idle memory and the time to `/ready`, for
//! `ensemble serve --http 127.0.0.1:0 --data-dir <empty>` against baselines in the same run.
//!
//! - **idle memory**: `Rss` and `Anonymous` from `/proc/PID/smaps_rollup` once `/ready` answers
//!   200 and one second has passed. Baseline: a bare rmcp Streamable HTTP server in axum (one
//!   tool, no engines, no store; this benchmark's own binary, with the same allocator), started
//!   the same way.
//! - **startup to ready**: from spawning the process to the first 200 from `/ready` (polled every
//!   millisecond over plain TCP), median and p95. Baselines: `ensemble version` (spawn to exit:
//!   exec, the dynamic loader, the tokio runtime, clap) and the bare server (spawn to 200).
//!
//! Where an idle server's memory went (2026-11-30, `perf record -e page-faults -d` on the
//! `profiling` build, faults in mimalloc's arena attributed to the first caller outside the
//! allocator):
//! - before: mimalloc 3 commits its arena eagerly and advises transparent huge pages on it, so
//!   the first touch of each region faulted in a 2 MiB page: 47 of 47 MiB anonymous were huge
//!   pages. Now `no_thp` and `PR_SET_THP_DISABLE` (src/main.rs): 4.9 MiB.
//! - of those ~3 MiB of heap: the tool catalogue's schemas, held as `ToolSpec` JSON, cloned, and
//!   converted to rmcp `Tool`s (~1.2 MiB); sled 0.34's metrics histograms, built even with
//!   its metrics off (~0.7 MiB, `vals.resize_with(1 << 16)`); the supervisor event bus's
//!   channel (0.14 MiB); the rest in small pieces. Thread stacks and per-thread state for 11
//!   threads (2 tokio workers, 7 idle `sled-io` threads sled keeps, its flusher, main) make up
//!   most of the remainder. Resident memory beyond `Anonymous` is the binary's own clean pages.
//! - sled's page cache (`store.cache_capacity_bytes`, now 64 MiB by default) is filled only as
//!   pages are used: on an empty store it costs nothing, whatever its size.
//!
//! Run: `cargo bench --bench footprint` (`-- --runs N`, default 20; `-- --bin PATH` measures
//! another `ensemble` binary too, e.g. an older build, in the same table).
//! Linux only (`/proc`). Both servers log to a file, not a terminal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, object,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

/// The allocator the `ensemble` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bare baseline: one tool answered in an rmcp handler.
#[derive(Clone)]
struct Bare;

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo",
            "Echo text back.",
            Arc::new(object(schema)),
        )]))
    }
    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::structured(json!({ "echo": req.arguments })).into())
    }
}

/// The child mode: serve the bare baseline on loopback, announcing the address on stderr the
/// way `ensemble serve --http` does.
fn serve_bare() {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let config = StreamableHttpServerConfig::default().with_json_response(true);
        let mcp = StreamableHttpService::new(
            || Ok(Bare),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let app = axum::Router::new()
            .nest_service("/mcp", mcp)
            .route("/ready", axum::routing::get(|| async { "ready\n" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        eprintln!("bare: listening on http://{addr}/mcp");
        axum::serve(listener, app).await.expect("serve");
    });
}

/// A server under measurement: the process, its log and its data directory.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's stderr until it announces its address.
fn announced_addr(child: &mut Child) -> SocketAddr {
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .expect("stderr");
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.trim_end_matches("/mcp").trim();
            break addr.parse().expect("an address");
        }
    };
    // Keep draining so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    addr
}

/// The status code of `GET /ready`, or `None` when nothing answers yet.
fn ready_status(addr: SocketAddr) -> Option<u16> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        tcp,
        "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Spawns `cmd` (a server), waits for the first 200 from `/ready`, and returns the server and
/// the time that took.
fn start(mut cmd: Command, dir: tempfile::TempDir) -> (Server, Duration) {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let addr = announced_addr(&mut child);
    loop {
        if ready_status(addr) == Some(200) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t0.elapsed();
    (
        Server {
            child,
            addr,
            _dir: dir,
        },
        took,
    )
}

fn ensemble_cmd(bin: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("ENSEMBLE_CONFIG")
        .env("ENSEMBLE_LOG", "warn");
    cmd
}

fn bare_cmd() -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("--serve-bare");
    cmd
}

/// `Rss` and `Anonymous` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Anonymous:"))
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

struct Subject {
    name: String,
    make: Box<dyn Fn(&Path) -> Command>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 20usize;
    let mut others: Vec<PathBuf> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--serve-bare" => return serve_bare(),
            "--runs" => runs = args.next().and_then(|s| s.parse().ok()).unwrap_or(runs),
            "--bin" => others.extend(args.next().map(PathBuf::from)),
            _ => {} // cargo bench passes --bench
        }
    }
    let ensemble = PathBuf::from(env!("CARGO_BIN_EXE_ensemble"));
    let mut subjects = vec![Subject {
        name: "bare rmcp + axum".into(),
        make: Box::new(|_| bare_cmd()),
    }];
    for bin in std::iter::once(ensemble.clone()).chain(others) {
        subjects.push(Subject {
            name: format!("ensemble serve ({})", bin.display()),
            make: Box::new(move |dir| ensemble_cmd(&bin, dir)),
        });
    }

    println!("idle memory, 1 s after the first 200 from /ready (median of 3 starts)\n");
    println!("| server | Rss MiB | Anonymous MiB | threads |");
    println!("|---|---|---|---|");
    let mut anon_base = None;
    for s in &subjects {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (server, _) = start((s.make)(dir.path()), dir);
            std::thread::sleep(Duration::from_secs(1));
            let pid = server.child.id();
            let (rss, anon) = memory_kib(pid);
            samples.push((rss, anon, threads(pid)));
            let _ = server.addr;
        }
        samples.sort();
        let (rss, anon, threads) = samples[1];
        let ratio = match anon_base {
            None => {
                anon_base = Some(anon.max(1));
                String::new()
            }
            Some(b) => format!(" ({:.1}x)", anon as f64 / b as f64),
        };
        println!(
            "| {} | {:.1} | {:.1}{} | {} |",
            s.name,
            rss as f64 / 1024.0,
            anon as f64 / 1024.0,
            ratio,
            threads
        );
    }

    println!("\nstartup: spawn to the first 200 from /ready, {runs} runs\n");
    println!("| what | median ms | p95 ms | min ms |");
    println!("|---|---|---|---|");
    let report = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        println!(
            "| {name} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(times[0])
        );
    };
    let version: Vec<Duration> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            let status = Command::new(&ensemble)
                .arg("version")
                .stdout(Stdio::null())
                .status()
                .expect("ensemble version");
            assert!(status.success());
            t0.elapsed()
        })
        .collect();
    report("`ensemble version` (spawn to exit)", version);
    for s in &subjects {
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let dir = tempfile::tempdir().expect("tempdir");
                start((s.make)(dir.path()), dir).1
            })
            .collect();
        report(&s.name, times);
    }
}
