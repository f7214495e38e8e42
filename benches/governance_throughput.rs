//! What governance costs a tool call over HTTP: `tools/call` as a stateless 2026-07-28 client
//! sends it (JSON replies, one request per call, `Authorization: Bearer <jwt>` on every
//! request) to two `ensemble serve --http` child processes (the real binary, each with its own
//! data directory on disk), in the same run:
//!
//! - **off**: no `[governance]`: every caller is the local owner (the header is sent too, and
//!   ignored);
//! - **on**: `[governance]` with `resource` set, `[governance.oauth]` with an issuer and a
//!   `jwks_file` this bench writes (one Ed25519 key), a role allowing the tools, a binding by the
//!   token's `groups` claim, and `[governance.audit]` with a signing key and a checkpoint
//!   directory. Every request's JWT (EdDSA, `aud` = the resource, minted here the way
//!   `tests/governance_oauth.rs` mints them) is validated, the call decided, and audited: the
//!   tools are read-only, so each call gets one audit entry after it runs, made durable (group
//!   commit: one disk flush per batch) before the call is answered.
//!
//! With `--breakdown`, a third server, governed the same way but authenticating with an API key
//! (no JWT), splits the cost between the token and the rest (decision and audit).
//!
//! Tools: `validation_validate` (a small document against an inline schema) and `queue_stats`
//! (a cheap engine read); concurrency 1, 16 and 64, one connection per concurrent client
//! (HTTP/1.1 keep-alive). The servers take turns, three rounds per cell, so drift on a shared
//! machine hits them alike. Each row also gives each server's CPU time per call (user + system,
//! from `/proc`). After the run the governed server's own metrics are checked: one token
//! validation per call, one audit entry per call, and how many entries each disk flush carried.
//!
//! Goal (issue 11): on ≥ 0.85 × off at concurrency 16.
//!
//! ```sh
//! cargo bench --bench governance_throughput
//! cargo bench --bench governance_throughput -- --secs 6 --concurrency 16 --tool queue_stats
//! cargo bench --bench governance_throughput -- --breakdown
//! ```
//!
//! The data directories go where `tempfile` puts temporary directories (`TMPDIR`, else `/tmp`):
//! on a tmpfs a flush costs nothing (the bench says so when it is).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

// Each bench uses part of it.
#[allow(dead_code)]
#[path = "common/serve.rs"]
mod serve;
use serve::{Server, cpu_time};

const ISSUER: &str = "https://auth.bench.test";
const RESOURCE: &str = "https://mcp.bench.test/mcp";
const KID: &str = "bench-1";
const API_KEY: &str = "bench-api-key-0123456789";

// ---- the token -----------------------------------------------------------------------------

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A fixed Ed25519 key (PKCS#8 v1, RFC 8410) and its public JWK.
fn key(seed: u8) -> (EncodingKey, Value) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    (
        EncodingKey::from_ed_der(&der),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KID, "alg": "EdDSA", "use": "sig"}),
    )
}

/// A token for `subject` in `groups`, valid for an hour, with both scopes.
fn mint(key: &EncodingKey, subject: &str, groups: &[&str]) -> String {
    let claims = json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": subject, "iat": now(), "exp": now() + 3600,
        "scope": "ensemble.tools.read ensemble.tools.call", "groups": groups,
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(KID.to_string());
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The governed server's configuration; `jwt`: authenticate with tokens, else with an API key.
fn governed_config(dir: &Path, jwt: bool) -> String {
    let jwks = dir.join("jwks.json");
    let audit = format!(
        r#"
[governance.audit]
node_id = "bench"
key_file = "{}"
checkpoint_dir = "{}"
"#,
        dir.join("audit.key").display(),
        dir.join("checkpoints").display()
    );
    let roles = r#"
[[governance.roles]]
name = "caller"
tools = ["validation_validate", "queue_stats"]
"#;
    if jwt {
        format!(
            r#"
[governance]
resource = "{RESOURCE}"

[governance.oauth]
issuer = "{ISSUER}"
jwks_file = "{}"
{roles}
[[governance.bindings]]
claim = "groups"
value = "bench"
roles = ["caller"]
{audit}"#,
            jwks.display()
        )
    } else {
        format!(
            r#"
[governance]
resource = "{RESOURCE}"
{roles}
[[governance.api_keys]]
name = "bench"
sha256 = "{}"

[[governance.bindings]]
api_key = "bench"
roles = ["caller"]
{audit}"#,
            sha256_hex(API_KEY)
        )
    }
}

// ---- the servers ---------------------------------------------------------------------------

/// Whether `path` is on a tmpfs (where a flush writes nothing to a disk).
fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid C string and `stat` a properly sized, writable out-parameter.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut stat) } == 0;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    ok && stat.f_type as i64 == TMPFS_MAGIC
}

// ---- a minimal HTTP/1.1 MCP client (hyper) -------------------------------------------------

/// What is called, and what its JSON answer holds.
#[derive(Clone, Copy)]
struct Call {
    tool: &'static str,
    args: fn() -> Value,
    expect: &'static str,
}

const VALIDATE: Call = Call {
    tool: "validation_validate",
    args: || {
        json!({
            "schema": {
                "type": "object",
                "required": ["id", "qty"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
                    "qty": {"type": "integer", "minimum": 1}
                }
            },
            "document": {"id": "order-17", "qty": 3}
        })
    },
    expect: "\"valid\":true",
};

const QUEUE_STATS: Call = Call {
    tool: "queue_stats",
    args: || json!({}),
    expect: "\"policy\":",
};

struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Client {
    async fn connect(addr: SocketAddr, authorization: &str) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        Self {
            sender,
            host: addr.to_string(),
            authorization: authorization.to_string(),
        }
    }

    /// POSTs `body` to `/mcp` as a stateless 2026-07-28 `tools/call` of `tool`.
    async fn post(&mut self, tool: &str, body: String, auth: bool) -> (u16, Bytes) {
        let mut req = hyper::Request::post("/mcp")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool);
        if auth {
            req = req.header("authorization", &self.authorization);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    async fn call(&mut self, id: u64, call: Call, args: &Value) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": call.tool,
            "arguments": args,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }});
        let (status, body) = self.post(call.tool, body.to_string(), true).await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            status == 200 && text.contains(call.expect),
            "unexpected reply ({status}): {text}"
        );
    }
}

/// `concurrency` clients calling `call` on `addr` for `secs`: (calls, elapsed, server CPU).
async fn load(
    server: &Server,
    authorization: &str,
    call: Call,
    concurrency: usize,
    secs: f64,
) -> (Vec<Duration>, Duration, Duration) {
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(Client::connect(server.addr, authorization).await);
    }
    let cpu_before = cpu_time(server.pid()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let args = (call.args)();
                let mut lat = Vec::new();
                let mut id = 1;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    client.call(id, call, &args).await;
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
    let elapsed = started.elapsed();
    let cpu = cpu_time(server.pid())
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    (all, elapsed, cpu)
}

/// Calls/s, p50, p99 and server CPU per call over a cell's rounds.
struct Cell {
    rate: f64,
    p50: Duration,
    p99: Duration,
    cpu: Duration,
    calls: usize,
}

fn cell(parts: Vec<(Vec<Duration>, Duration, Duration)>) -> Cell {
    let elapsed: Duration = parts.iter().map(|p| p.1).sum();
    let cpu: Duration = parts.iter().map(|p| p.2).sum();
    let mut lat: Vec<Duration> = parts.into_iter().flat_map(|p| p.0).collect();
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Cell {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        cpu: cpu / lat.len().max(1) as u32,
        calls: lat.len(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

/// The sum of the samples of metric `name` whose line contains `label`, in a Prometheus page.
fn metric(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_page(addr: SocketAddr) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("metrics");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

const ROUNDS: usize = 3;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut secs = 3.0;
    let mut only_c: Option<usize> = None;
    let mut only_tool: Option<String> = None;
    let mut breakdown = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--concurrency" => only_c = args.next().and_then(|s| s.parse().ok()),
            "--tool" => only_tool = args.next(),
            "--breakdown" => breakdown = true,
            _ => {}
        }
    }
    let (signing, jwk) = key(7);
    let token = mint(&signing, "bench-client", &["bench"]);
    let write_jwks = move |dir: &Path| {
        std::fs::write(
            dir.join("jwks.json"),
            json!({ "keys": [jwk.clone()] }).to_string(),
        )
        .expect("write the JWKS");
    };
    let jwt_config = {
        let write_jwks = write_jwks.clone();
        move |dir: &Path| {
            write_jwks(dir);
            governed_config(dir, true)
        }
    };
    let key_config = |dir: &Path| governed_config(dir, false);
    let off = Server::on_disk(None);
    let on = Server::on_disk(Some(&jwt_config));
    let keyed = breakdown.then(|| Server::on_disk(Some(&key_config)));
    let bearer = format!("Bearer {token}");
    let key_bearer = format!("Bearer {API_KEY}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // Governance is on where it should be: no token, no call; a token for another group
        // sees no tool; and off where it should be.
        let args = (VALIDATE.args)().to_string();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"validation_validate","arguments":{args},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        );
        let mut c = Client::connect(on.addr, &bearer).await;
        let (status, _) = c.post("validation_validate", body.clone(), false).await;
        assert_eq!(status, 401, "the governed server refuses a call without a token");
        let outsider = format!("Bearer {}", mint(&signing, "mallory", &["guests"]));
        let mut c = Client::connect(on.addr, &outsider).await;
        let (_, answer) = c.post("validation_validate", body.clone(), true).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("\"valid\":true"),
            "a token outside the bound group may not call the tool"
        );
        let mut c = Client::connect(off.addr, &bearer).await;
        let (status, _) = c.post("validation_validate", body, false).await;
        assert_eq!(status, 200, "the ungoverned server needs no token");
        let before = metrics_page(on.addr).await;

        let tmpfs = on_tmpfs(&std::env::temp_dir());
        println!(
            "\nensemble serve --http, stateless 2026-07-28 JSON tools/call with `Authorization: \
             Bearer <EdDSA JWT>` on every request; data directories in {} ({}); {secs} s per \
             cell and server, in {ROUNDS} alternating rounds.\n",
            std::env::temp_dir().display(),
            if tmpfs { "tmpfs: audit flushes are free" } else { "on disk" }
        );
        let keyed_cols = if breakdown {
            " API key (no JWT) calls/s | API key / off | API key server CPU µs per call |"
        } else {
            ""
        };
        println!(
            "| tool | concurrency | off calls/s | on calls/s | on / off |{keyed_cols} off p50 / p99 µs | on p50 / p99 µs | server CPU µs per call, off / on |"
        );
        println!(
            "|---|---|---|---|---|{}---|---|---|",
            if breakdown { "---|---|---|" } else { "" }
        );
        let mut on_calls = 0usize;
        for call in [VALIDATE, QUEUE_STATS] {
            if only_tool.as_deref().is_some_and(|t| t != call.tool) {
                continue;
            }
            for c in [1usize, 16, 64] {
                if only_c.is_some_and(|x| x != c) {
                    continue;
                }
                let per = secs / ROUNDS as f64;
                let (mut a, mut b, mut k) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    a.push(load(&off, &bearer, call, c, per).await);
                    b.push(load(&on, &bearer, call, c, per).await);
                    if let Some(keyed) = &keyed {
                        k.push(load(keyed, &key_bearer, call, c, per).await);
                    }
                }
                let (a, b) = (cell(a), cell(b));
                on_calls += b.calls;
                let keyed_cells = if breakdown {
                    let k = cell(k);
                    format!(
                        " {:.0} | {:.2} | {:.1} |",
                        k.rate,
                        k.rate / a.rate,
                        k.cpu.as_secs_f64() * 1e6
                    )
                } else {
                    String::new()
                };
                println!(
                    "| {} | {c} | {:.0} | {:.0} | {:.2} |{keyed_cells} {} / {} | {} / {} | {:.1} / {:.1} |",
                    call.tool,
                    a.rate,
                    b.rate,
                    b.rate / a.rate,
                    us(a.p50),
                    us(a.p99),
                    us(b.p50),
                    us(b.p99),
                    a.cpu.as_secs_f64() * 1e6,
                    b.cpu.as_secs_f64() * 1e6,
                );
            }
        }
        // What the governed server did for those calls, by its own account.
        let after = metrics_page(on.addr).await;
        let delta = |name: &str, label: &str| metric(&after, name, label) - metric(&before, name, label);
        let validations = delta("ensemble_governance_token_validations_total", "outcome=\"ok\"");
        let entries = delta("ensemble_governance_audit_entries_total", "");
        let flushes = delta("ensemble_governance_audit_flushes_total", "");
        println!(
            "\ngoverned server: {on_calls} calls answered; {validations:.0} tokens validated, \
             {entries:.0} audit entries in {flushes:.0} flushes ({:.1} entries per flush)",
            entries / flushes.max(1.0)
        );
        assert!(
            validations >= on_calls as f64,
            "every request's token is validated ({validations} for {on_calls} calls)"
        );
        assert!(
            entries >= on_calls as f64,
            "every call is audited ({entries} entries for {on_calls} calls)"
        );
        println!("goal: on / off >= 0.85 at concurrency 16");
    });
}
