//! One engine in a crash loop under concurrent load, against the real binary over Streamable
//! HTTP (rmcp's client, one session per client): the engines that did not fail keep answering
//! every call, the crashing engine is refused fast and comes back, nothing hangs.
//!
//! The figures (calls per second of the unaffected engine in the calm phase and during the
//! storm, refusals, restarts, give-ups) are printed for the record: run with `--nocapture`
//! (and `ENSEMBLE_TEST_ECHO=1` for the server's log).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Client, HttpServer, connect, metric, serve_http};
use rmcp::model::{CallToolRequestParams, CallToolResult, object};
use serde_json::{Value, json};

/// Longer than any route's deadline (30 s) would be the honest bound, but a CI-sized test
/// wants to know sooner: no call in this scenario has a reason to take more than this.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The server and the data dir it runs on (dropped in that order).
struct Server {
    http: HttpServer,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Server {
    type Target = HttpServer;
    fn deref(&self) -> &HttpServer {
        &self.http
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut HttpServer {
        &mut self.http
    }
}

/// `ensemble serve --http` on a fresh data dir with the test tools, `config` its configuration.
fn start(config: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    Server {
        http: serve_http(dir.path(), config, &[("ENSEMBLE_TEST_TOOLS", "1")]),
        _dir: dir,
    }
}

/// A call's outcome: `Ok(result)` or a protocol/transport error, or `None` past the deadline.
async fn call(c: &Client, tool: &str, args: Value) -> Option<Result<CallToolResult, String>> {
    let req = CallToolRequestParams::new(tool.to_string()).with_arguments(object(args));
    tokio::time::timeout(CALL_DEADLINE, c.call_tool(req))
        .await
        .ok()
        .map(|r| r.map_err(|e| e.to_string()))
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    tool_errors: AtomicU64,
    protocol_errors: AtomicU64,
    hung: AtomicU64,
    /// Successful calls in the calm phase and in the storm.
    calm: AtomicU64,
    storm: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, outcome: Option<Result<CallToolResult, String>>, storming: bool) {
        let error = match outcome {
            None => {
                self.hung.fetch_add(1, Ordering::Relaxed);
                Some("no answer by the deadline".to_string())
            }
            Some(Err(e)) => {
                self.protocol_errors.fetch_add(1, Ordering::Relaxed);
                Some(e)
            }
            Some(Ok(r)) if r.is_error == Some(true) => {
                self.tool_errors.fetch_add(1, Ordering::Relaxed);
                Some(text(&r))
            }
            Some(Ok(_)) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let phase = if storming { &self.storm } else { &self.calm };
                phase.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        if let Some(e) = error {
            let mut first = self.first_error.lock().expect("tally lock");
            first.get_or_insert(e);
        }
    }
}

/// What a storm did.
struct Figures {
    validation: Arc<Tally>,
    registry: Arc<Tally>,
    crash_calls: u64,
    crashed: u64,
    crashes_refused: u64,
    crash_hung: u64,
    restarts: f64,
    giveups: f64,
}

/// 8 clients validate, 8 put and list artifacts, each over its own session; after a calm phase
/// one more client calls `registry_debug_crash` ten times a second. Then every engine must serve
/// a new client again within a few seconds.
async fn storm(server: &Server) -> Figures {
    let calm_phase = Duration::from_secs(2);
    let storm_phase = Duration::from_secs(4);

    let storming = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let validation = Arc::new(Tally::default());
    let registry = Arc::new(Tally::default());

    let setup = connect(&server.url).await;
    let schema = call(
        &setup,
        "validation_register_schema",
        json!({"name": "port", "version": "1.0.0",
               "schema": {"type": "object", "properties": {"port": {"type": "integer"}}}}),
    )
    .await
    .expect("answered")
    .expect("a result");
    assert_eq!(schema.is_error, Some(false), "{}", text(&schema));

    let mut workers = Vec::new();
    for i in 0..8 {
        let (url, stop, storming, tally) = (
            server.url.clone(),
            stop.clone(),
            storming.clone(),
            validation.clone(),
        );
        workers.push(tokio::spawn(async move {
            let c = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                let out = call(
                    &c,
                    "validation_validate",
                    json!({"schema": "port", "document": {"port": i}}),
                )
                .await;
                tally.record(out, storming.load(Ordering::Relaxed));
            }
            let _ = c.cancel().await;
        }));
    }
    for i in 0..8 {
        let (url, stop, storming, tally) = (
            server.url.clone(),
            stop.clone(),
            storming.clone(),
            registry.clone(),
        );
        workers.push(tokio::spawn(async move {
            let c = connect(&url).await;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let out = if n.is_multiple_of(2) {
                    call(&c, "registry_list", json!({})).await
                } else {
                    call(
                        &c,
                        "registry_put",
                        json!({"name": format!("c{i}/a"), "version": format!("1.0.{n}"),
                               "content": {"n": n}}),
                    )
                    .await
                };
                tally.record(out, storming.load(Ordering::Relaxed));
            }
            let _ = c.cancel().await;
        }));
    }

    tokio::time::sleep(calm_phase).await;
    storming.store(true, Ordering::Relaxed);
    let crasher = connect(&server.url).await;
    let (mut crash_calls, mut crashes_refused, mut crashed, mut crash_hung) = (0u64, 0, 0, 0);
    let storm_start = Instant::now();
    while storm_start.elapsed() < storm_phase {
        crash_calls += 1;
        match call(&crasher, "registry_debug_crash", json!({})).await {
            None => crash_hung += 1,
            Some(Ok(r)) => {
                let t = text(&r);
                if t.contains("failed and is restarting") {
                    crashed += 1;
                } else if t.contains("circuit")
                    || t.contains("retry in")
                    || t.contains("not running")
                {
                    crashes_refused += 1;
                }
            }
            Some(Err(_)) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    storming.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    // Every engine serves again within a few seconds: a new client's calls succeed.
    let after = connect(&server.url).await;
    let back = Instant::now();
    loop {
        let v = call(
            &after,
            "validation_validate",
            json!({"schema": "port", "document": {"port": 1}}),
        )
        .await;
        let r = call(&after, "registry_list", json!({})).await;
        let (ready, _) = get(server.base(), "/ready").await;
        let ok = |o: &Option<Result<CallToolResult, String>>| matches!(o, Some(Ok(r)) if r.is_error != Some(true));
        if ok(&v) && ok(&r) && ready == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "engines not back 15 s after the storm: validation {v:?}, registry {r:?}, /ready {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered_in = back.elapsed();
    let (health, _) = get(server.base(), "/health").await;
    assert_eq!(health, 200);

    let (_, metrics) = get(server.base(), "/metrics").await;
    let restarts = metric(
        &metrics,
        "ensemble_actor_restarts_total",
        "actor=\"registry\"",
    );
    let giveups = metric(&metrics, "ensemble_supervisor_giveups_total", "");
    let figures = Figures {
        validation: validation.clone(),
        registry: registry.clone(),
        crash_calls,
        crashed,
        crashes_refused,
        crash_hung,
        restarts,
        giveups,
    };
    let calm_rate = validation.calm.load(Ordering::Relaxed) as f64 / calm_phase.as_secs_f64();
    let storm_rate = validation.storm.load(Ordering::Relaxed) as f64 / storm_phase.as_secs_f64();
    println!(
        "validation calls/s: calm {calm_rate:.0}, storm {storm_rate:.0} (ratio {:.2}); \
         registry ok {} / tool errors {}; crash calls {crash_calls}: crashed the engine \
         {crashed}, refused fast {crashes_refused}; registry restarts {restarts}; give-ups {giveups}; engines back \
         {recovered_in:?} after the storm",
        storm_rate / calm_rate.max(1.0),
        registry.ok.load(Ordering::Relaxed),
        registry.tool_errors.load(Ordering::Relaxed),
    );

    figures
}

/// The engine that never failed answered every call, during the storm too, and nothing hung.
fn assert_isolated(f: &Figures) {
    let v = &f.validation;
    assert_eq!(
        (
            v.tool_errors.load(Ordering::Relaxed),
            v.protocol_errors.load(Ordering::Relaxed),
            v.hung.load(Ordering::Relaxed),
        ),
        (0, 0, 0),
        "validation failed during the storm: {:?}",
        v.first_error.lock().expect("lock")
    );
    assert!(v.storm.load(Ordering::Relaxed) > 0);
    assert_eq!(f.registry.hung.load(Ordering::Relaxed), 0);
    assert_eq!(f.registry.protocol_errors.load(Ordering::Relaxed), 0);
    assert_eq!(f.crash_hung, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_is_refused_fast_before_it_spends_the_engines_intensity() {
    let server = start("");
    let f = storm(&server).await;
    assert_isolated(&f);
    // The breaker opened on the engine's third crash, within its restart intensity (5 in
    // 10 s): the engine never gave up, and the other crash calls never reached it.
    assert!(
        f.crashed <= 3,
        "{} of {} crash calls reached the engine",
        f.crashed,
        f.crash_calls
    );
    assert_eq!(f.crashes_refused + f.crashed, f.crash_calls);
    assert_eq!(f.giveups, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engine_that_gives_up_is_restarted_alone_while_the_others_serve() {
    // Without the breaker's crash rule the crash loop spends the registry's intensity.
    let server = start(
        "[supervision]\nrestart_backoff_ms = 300\n\n\
         [tools.registry_debug_crash.breaker]\ncrash_threshold = 0\n",
    );
    let f = storm(&server).await;
    assert_isolated(&f);
    assert!(
        f.giveups >= 1.0,
        "the registry never gave up: {} give-ups",
        f.giveups
    );
    assert!(f.restarts >= 6.0, "{} restarts", f.restarts);
    // Calls arriving while the subtree waited for its restart were refused fast.
    assert!(f.crashes_refused > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_top_level_budget_ends_the_process_non_zero() {
    let mut server =
        start("[supervision]\nmax_restarts = 0\n\n[engines.registry.restart]\nmax_restarts = 1\n");
    let c = connect(&server.url).await;
    let first = call(&c, "registry_debug_crash", json!({}))
        .await
        .expect("answered")
        .expect("a result");
    assert_eq!(first.is_error, Some(true));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second crash spends the registry's intensity and the budget: the process may be
    // draining before this answer is written, so an error result and a cut session are both
    // fine; only no answer at all would not be.
    match call(&c, "registry_debug_crash", json!({})).await {
        Some(Ok(r)) => assert_eq!(r.is_error, Some(true)),
        Some(Err(_)) => {}
        None => panic!("the second crash call hung"),
    }
    // The registry gave up, the budget allows no restart: the process drains and exits.
    let deadline = Instant::now() + Duration::from_secs(35);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 35 s after the budget was spent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1), "{status}");
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("gave up for good"), "{log}");
}
