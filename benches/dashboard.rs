//! What open dashboards cost: `tools/call` throughput over HTTP against one `ensemble serve
//! --http` child process (the real binary, in memory) with **0** and with **5** pages
//! subscribed to `/dashboard/events`, in the same run.
//!
//! The load: stateless 2026-07-28 `tools/call` requests of `validation_validate` (a small
//! document against an inline schema), JSON replies, one connection per concurrent client
//! (HTTP/1.1 keep-alive), concurrency 16. A subscriber reads its stream as a browser does and
//! counts frames and bytes.
//!
//! Three cases take turns in every round, in a rotating order: no page, no page again (the
//! A/A control: how far two identical cases drift apart on this machine), and five pages. Each
//! gives calls/s, latency and the server's CPU time per call (user + system, from `/proc`);
//! the per-round ratios against the first case, and their median, are printed besides the
//! pooled figures. Last, the server's CPU time without calls, with the pages open and
//! without, read from the scheduler's per-thread nanosecond counters: the dashboard's own
//! cost, free of the load's noise.
//!
//! Goal (issue 17): with five dashboards open, throughput drops by at most 2%; an SSE frame
//! of a typical runtime is at most 8 KB.
//!
//! ```sh
//! cargo bench --bench dashboard
//! cargo bench --bench dashboard -- --secs 2 --rounds 12 --concurrency 32 --subscribers 10
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;

// Each bench uses part of it.
#[allow(dead_code)]
#[path = "common/serve.rs"]
mod serve;
use serve::{Server, cpu_time};

async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// `concurrency` clients calling `validation_validate` for `secs`: (latencies, elapsed).
async fn load(addr: SocketAddr, concurrency: usize, secs: f64) -> (Vec<Duration>, Duration) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "validation_validate",
        "arguments": {
            "schema": {"type": "object", "required": ["id", "qty"], "properties": {
                "id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
                "qty": {"type": "integer", "minimum": 1}}},
            "document": {"id": "order-17", "qty": 3}
        },
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }
    }})
    .to_string();
    let body = Bytes::from(body);
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(connect(addr).await);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let host = addr.to_string();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (body, host) = (body.clone(), host.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let req = hyper::Request::post("/mcp")
                        .header("host", &host)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .header("mcp-protocol-version", "2026-07-28")
                        .header("mcp-method", "tools/call")
                        .header("mcp-name", "validation_validate")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    sender.ready().await.expect("ready");
                    let resp = sender.send_request(req).await.expect("response");
                    let status = resp.status();
                    let answer = resp.into_body().collect().await.expect("body").to_bytes();
                    assert!(
                        status == 200 && answer.windows(12).any(|w| w == b"\"valid\":true"),
                        "unexpected reply ({status}): {}",
                        String::from_utf8_lossy(&answer)
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

/// What the subscribers read.
#[derive(Default)]
struct Reading {
    frames: AtomicU64,
    bytes: AtomicU64,
    largest: AtomicU64,
}

/// A page subscribed to `/dashboard/events`, reading until its task is aborted.
async fn subscribe(addr: SocketAddr, reading: Arc<Reading>) {
    let mut sender = connect(addr).await;
    let req = hyper::Request::get("/dashboard/events")
        .header("host", addr.to_string())
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("subscribe");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut pending = String::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            if let Some(line) = message.lines().find(|l| l.starts_with("data:")) {
                let size = line.len() as u64 - 5;
                reading.frames.fetch_add(1, Ordering::Relaxed);
                reading.bytes.fetch_add(size, Ordering::Relaxed);
                reading.largest.fetch_max(size, Ordering::Relaxed);
            }
        }
    }
}

/// How long pages are given to connect and read their first frame before a measurement.
const SETTLE: Duration = Duration::from_millis(300);

/// `n` pages subscribed, reading into `reading`, until dropped.
struct Pages(Vec<tokio::task::JoinHandle<()>>);

impl Pages {
    async fn open(addr: SocketAddr, n: usize, reading: &Arc<Reading>) -> Self {
        let pages = (0..n)
            .map(|_| tokio::spawn(subscribe(addr, reading.clone())))
            .collect();
        tokio::time::sleep(SETTLE).await;
        Self(pages)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        for page in &self.0 {
            page.abort();
        }
    }
}

struct Cell {
    calls: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
    cpu: Duration,
}

impl Cell {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    fn at(&self, q: f64) -> f64 {
        let i = ((self.lat.len() as f64 * q) as usize).min(self.lat.len().saturating_sub(1));
        self.lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// CPU time the live threads of process `pid` have run, in nanoseconds (the scheduler's
/// `/proc/PID/task/*/schedstat`; finer than the clock ticks of `/proc/PID/stat`).
fn thread_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ratios(xs: &[f64]) -> String {
    xs.iter()
        .map(|r| format!("{:+.1}%", (r - 1.0) * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut secs, mut concurrency, mut subscribers, mut rounds) = (2.0, 16usize, 5usize, 12usize);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<f64>().ok());
        match a.as_str() {
            "--secs" => secs = value().unwrap_or(secs),
            "--concurrency" => concurrency = value().map_or(concurrency, |v| v as usize),
            "--subscribers" => subscribers = value().map_or(subscribers, |v| v as usize),
            "--rounds" => rounds = value().map_or(rounds, |v| (v as usize).max(1)),
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let server = Server::in_memory();
    let pid = server.pid();
    // The cases: pages open in each.
    let pages_of = [0, 0, subscribers];
    rt.block_on(async {
        // Warm up.
        load(server.addr, concurrency, 1.0).await;
        let mut cells: [Cell; 3] = std::array::from_fn(|_| Cell {
            calls: 0,
            elapsed: Duration::ZERO,
            lat: Vec::new(),
            cpu: Duration::ZERO,
        });
        let reading = Arc::new(Reading::default());
        let mut subscribed_secs = 0.0;
        let (mut control, mut open) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Rotate the order, so that drift within a round falls on each case in turn.
            let mut rates = [0.0; 3];
            for k in 0..3 {
                let i = (k + round) % 3;
                let pages = pages_of[i];
                let open = Pages::open(server.addr, pages, &reading).await;
                let cpu0 = cpu_time(pid).unwrap_or_default();
                let (lat, elapsed) = load(server.addr, concurrency, secs).await;
                let cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu0);
                drop(open);
                subscribed_secs += (elapsed + SETTLE).as_secs_f64() * pages as f64;
                rates[i] = lat.len() as f64 / elapsed.as_secs_f64();
                let c = &mut cells[i];
                c.calls += lat.len();
                c.elapsed += elapsed;
                c.lat.extend(lat);
                c.cpu += cpu;
            }
            control.push(rates[1] / rates[0]);
            open.push(rates[2] / rates[0]);
        }
        for c in &mut cells {
            c.lat.sort_unstable();
        }
        println!(
            "tools/call validation_validate, concurrency {concurrency}, {rounds} rounds × {secs} s per case, same server\n"
        );
        println!("| case | pages open | calls/s | p50 µs | p99 µs | server CPU µs/call | vs A |");
        println!("|---|---|---|---|---|---|---|");
        let base = cells[0].rate();
        for ((c, pages), name) in cells.iter().zip(pages_of).zip(["A", "A′ (control)", "B"]) {
            println!(
                "| {name} | {pages} | {:.0} | {:.0} | {:.0} | {:.1} | {:+.1}% |",
                c.rate(),
                c.at(0.5),
                c.at(0.99),
                c.cpu.as_secs_f64() * 1e6 / c.calls.max(1) as f64,
                (c.rate() / base - 1.0) * 100.0
            );
        }
        println!(
            "\nper-round ratio A′/A (control): {} — median {:+.1}%",
            ratios(&control),
            (median(control.clone()) - 1.0) * 100.0
        );
        println!(
            "per-round ratio B/A ({subscribers} pages): {} — median {:+.1}%",
            ratios(&open),
            (median(open.clone()) - 1.0) * 100.0
        );

        // What the dashboard itself costs the server, without calls: its CPU time with the
        // pages open against none. Without a page for a minute the sampler drops to its idle
        // rate (a frame every 10 s); the cases here come within that minute, so both sample
        // at 1 Hz and the difference is what serving the pages adds; the sampler's own cost
        // is the first figure less the process's idle floor.
        let idle_secs = 5.0;
        let mut idle_cpu = [0.0; 2];
        for (i, pages) in [subscribers, 0].into_iter().enumerate() {
            let open = Pages::open(server.addr, pages, &reading).await;
            let cpu0 = thread_cpu_ns(pid);
            tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
            let cpu = thread_cpu_ns(pid).saturating_sub(cpu0);
            drop(open);
            subscribed_secs += (idle_secs + SETTLE.as_secs_f64()) * pages as f64;
            idle_cpu[i] = cpu as f64 / 1e6 / idle_secs;
        }
        let busy = &cells[0];
        let busy_cpu_ms = busy.cpu.as_secs_f64() * 1e3 / busy.elapsed.as_secs_f64();
        println!(
            "\nserver CPU without calls ({idle_secs} s each): {:.3} ms/s with {subscribers} pages open, \
             {:.3} ms/s with none; under load the server used {busy_cpu_ms:.0} ms/s, so the \
             pages cost at most {:.3}% of it",
            idle_cpu[0],
            idle_cpu[1],
            idle_cpu[0] / busy_cpu_ms * 100.0
        );
        let frames = reading.frames.load(Ordering::Relaxed);
        println!(
            "\nSSE: {frames} frames read ({:.2} per subscriber-second), mean {:.0} B, largest {} B",
            frames as f64 / subscribed_secs.max(1e-9),
            reading.bytes.load(Ordering::Relaxed) as f64 / frames.max(1) as f64,
            reading.largest.load(Ordering::Relaxed)
        );
    });
}
