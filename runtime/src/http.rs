//! Streamable HTTP at `/mcp`, plus `/metrics`, `/health`, `/ready`, the live dashboard at `/`
//! (see [`crate::dashboard`]) and the loopback-only `/admin/backup` (see [`crate::admin`]), in
//! axum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::engines::EngineSlots;
use crate::governance::http::{HttpAuth, error_answer};
use crate::runtime::{Runtime, RuntimeError};
use serde_json::json;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Browser origins allowed besides the loopback ones.
    pub allow_origins: Vec<String>,
}

/// How long a graceful shutdown waits for in-flight tool calls.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a shutdown waits, once every call has been answered, before it cuts the MCP
/// streams: the answers are still being written.
pub const ANSWER_GRACE: Duration = Duration::from_millis(200);

/// What `/health` and `/ready` read. axum clones a router's state for every request, `/mcp`'s
/// included: behind an `Arc` that is one reference count, not a copy of every engine's slot.
#[derive(Clone)]
struct AppState(Arc<AppStateInner>);

struct AppStateInner {
    slots: EngineSlots,
    gone: CancellationToken,
}

/// The axum app for `runtime`; `shutdown` ends MCP sessions and streams. Requests are not
/// authenticated: a governed runtime treats every caller as anonymous (see
/// [`app_with_auth`]).
pub fn app(runtime: &Runtime, opts: &HttpOptions, shutdown: CancellationToken) -> axum::Router {
    app_with_auth(runtime, opts, shutdown, None)
}

/// [`app`], with every request to `/mcp` authenticated by `auth` (bearer tokens, API keys)
/// and the Protected Resource Metadata served.
pub fn app_with_auth(
    runtime: &Runtime,
    opts: &HttpOptions,
    shutdown: CancellationToken,
    auth: Option<HttpAuth>,
) -> axum::Router {
    let mut origins: Vec<String> = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
        .into_iter()
        .map(String::from)
        .collect();
    origins.extend(opts.allow_origins.iter().cloned());
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if !opts.addr.ip().is_unspecified() {
        hosts.push(opts.addr.ip().to_string());
    }
    let lane = crate::mcp::FastLane::new(&hosts);
    let limits = runtime.limits().clone();
    let shutdown_for_dashboard = shutdown.clone();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown)
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_json_response(true)
        .with_max_request_body_bytes(limits.max_body_bytes);
    let governance = runtime.governance().clone();
    // Without authentication a caller is anonymous; with it, a request that somehow reached
    // the handler unauthenticated is nobody.
    let default_caller = if auth.is_some() {
        governance.nobody()
    } else {
        governance.anonymous_identity()
    };
    let service = runtime
        .mcp_service()
        .with_governance(governance, default_caller);
    let fast = service.clone();
    // One shared service: axum clones a route's handler for every request, and rmcp's own
    // `Service::call` clones the whole service again (its configuration with the allowed hosts
    // and origins); behind an `Arc` a request costs a reference count instead.
    let sessions = Arc::new(crate::mcp::sessions::FastSessions::new(
        fast.clone(),
        &limits,
    ));
    let mcp = Arc::new(StreamableHttpService::new(
        move || Ok(service.for_new_session()),
        sessions.clone(),
        config,
    ));
    let prm = auth.as_ref().map(HttpAuth::routes);
    let dashboard = crate::dashboard::routes(
        crate::dashboard::Dashboard::start(runtime, shutdown_for_dashboard),
        auth.clone(),
        runtime.governance().clone(),
        opts.allow_origins.clone(),
    );
    let governance = runtime.governance().clone();
    let endpoint = move |mut req: axum::extract::Request| {
        let (mcp, fast, lane, auth) = (mcp.clone(), fast.clone(), lane.clone(), auth.clone());
        let (governance, limits, sessions) = (governance.clone(), limits.clone(), sessions.clone());
        async move {
            if req.method() != axum::http::Method::POST {
                if let Some(auth) = &auth {
                    match auth
                        .authenticate(req.headers(), req.uri().query(), None)
                        .await
                    {
                        Ok(who) => {
                            if !sessions.may_use(req.headers(), who.subject()) {
                                return session_not_found();
                            }
                            req.extensions_mut().insert(who);
                        }
                        Err(refused) => return refused,
                    }
                }
                return mcp.handle(req).await.map(axum::body::Body::new);
            }
            let (mut parts, body) = match read_body(req, &limits).await {
                Ok(read) => read,
                Err(refused) => return refused,
            };
            // Before anything parses it (see `limits`).
            if let Err(e) = crate::limits::scan(&body, &limits) {
                return over_limit(&body, &e);
            }
            if !parts.headers.contains_key("mcp-session-id")
                && sessions.is_full()
                && crate::governance::http::method_of(&body).as_deref() == Some("initialize")
            {
                return too_many_sessions(&body, limits.max_sessions);
            }
            let who = match &auth {
                Some(auth) => match admit(auth, &governance, &mut parts, &body).await {
                    Ok(who) => Some(who),
                    Err(refused) => return refused,
                },
                None => None,
            };
            // A plain stateless 2026-07-28 tools/call is answered here (see `mcp::fast`).
            if lane.admits(&parts.headers)
                && let Some(call) = fast.fast_call(&parts.headers, &body, who.as_ref())
            {
                lane.taken();
                let (status, answer) = fast.serve_fast(call).await;
                let mut response = axum::response::Response::new(axum::body::Body::from(answer));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                );
                return response;
            }
            let Some(who) = who else {
                let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(body));
                return mcp.handle(req).await.map(axum::body::Body::new);
            };
            // A session is its opener's: another caller who learned its id is told it does
            // not exist (its streams carry the opener's answers).
            if !sessions.may_use(&parts.headers, who.subject()) {
                return session_not_found();
            }
            let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(body));
            let answer = mcp.handle(req).await;
            if let Some(opened) = answer.headers().get("mcp-session-id") {
                sessions.claim(opened, who.subject());
            }
            answer.map(axum::body::Body::new)
        }
    };
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(endpoint))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(AppState(Arc::new(AppStateInner {
            slots: runtime.engines().clone(),
            gone: runtime.gone_token(),
        })))
        .merge(crate::admin::routes(runtime.store().clone()))
        .merge(dashboard);
    let app = if runtime.governance().is_governed() {
        app.merge(crate::admin::governance_routes(
            runtime.governance().clone(),
        ))
    } else {
        app
    };
    match prm {
        Some(prm) => app.merge(prm),
        None => app,
    }
}

/// Authenticates a POST to `/mcp` and, for a `tools/call`, admits it (a hidden tool goes on
/// to be answered as unknown; one over its rate limit is answered 429 here). The caller ends
/// up in the request's extensions.
async fn admit(
    auth: &HttpAuth,
    governance: &crate::governance::Governance,
    parts: &mut axum::http::request::Parts,
    body: &[u8],
) -> Result<crate::governance::Identity, axum::response::Response> {
    use crate::governance::http::{EdgeAdmitted, probe, rate_limited};
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // The body says what the request is: a header may disagree (rmcp refuses a mismatch only
    // for 2026-07-28 requests), and the scope check must not trust it.
    let mut read = Some(probe(body));
    let method = read
        .as_ref()
        .and_then(|p| p.method.clone())
        .or_else(|| header("mcp-method"));
    let who = auth
        .authenticate(&parts.headers, parts.uri.query(), method.as_deref())
        .await?;
    if method.as_deref() == Some("tools/call") {
        let probed = read.get_or_insert_with(|| probe(body));
        let tool = probed.name.clone().or_else(|| header("mcp-name"));
        if let Some(tool) = tool {
            match governance.admit(&who, &tool) {
                crate::governance::Admission::Allowed => {
                    parts.extensions.insert(EdgeAdmitted);
                }
                crate::governance::Admission::Limited(limited) => {
                    let mut record = ensemble_actors::governance::audit::AuditRecord::new(
                        ensemble_actors::governance::audit::AuditKind::Decision,
                        who.subject(),
                        "tools/call",
                    );
                    record.target = Some(tool.clone());
                    record.allowed = Some(false);
                    record.rule = Some(format!("rate limit {}", limited.policy));
                    record.outcome = Some("rate_limited".into());
                    // Refused either way; a log that cannot be written is in the server's log.
                    if let Err(e) = governance.audit(record).await {
                        tracing::error!(error = %e, "the audit log cannot be written");
                    }
                    return Err(rate_limited(&limited, probed.id.take(), &tool));
                }
                // The handler answers these (unknown tool; the controls' refusal).
                crate::governance::Admission::Hidden(_)
                | crate::governance::Admission::Refused(_) => {}
            }
        }
    }
    parts.extensions.insert(who.clone());
    Ok(who)
}

/// What rmcp answers for a session it does not know.
fn session_not_found() -> axum::response::Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// A request over one of the message limits, refused before it is parsed: answered by its id
/// when that can be read (200, as any JSON-RPC error: the client shows the message to whoever
/// called), else 400.
fn over_limit(body: &[u8], e: &crate::limits::Exceeded) -> axum::response::Response {
    let id = crate::governance::http::probe(body).id;
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let code = rmcp::model::ErrorCode::INVALID_REQUEST.0;
    error_answer(status, id, json!({"code": code, "message": e.to_string()}))
}

/// An `initialize` while the sessions are at their limit: 503, to try again later.
fn too_many_sessions(body: &[u8], max: usize) -> axum::response::Response {
    let message = format!(
        "the server has {max} sessions open, its limit (server.limits.max_sessions): try again \
         once one closes or expires"
    );
    let code = rmcp::model::ErrorCode::INTERNAL_ERROR.0;
    let mut response = error_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::governance::http::probe(body).id,
        json!({"code": code, "message": message}),
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}

/// Reads an MCP request's body, with lone surrogate escapes in its JSON repaired
/// ([`crate::surrogates`]) so that the request reaches its tool and is answered rather than
/// refused whole as unparsable; a body over [`Limits::max_body_bytes`] is refused with 413, one
/// not sent whole within [`Limits::body_read_timeout`] with 408.
///
/// [`Limits::max_body_bytes`]: crate::limits::Limits::max_body_bytes
/// [`Limits::body_read_timeout`]: crate::limits::Limits::body_read_timeout
async fn read_body(
    req: axum::extract::Request,
    limits: &crate::limits::Limits,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), axum::response::Response> {
    let (parts, body) = req.into_parts();
    let max = limits.max_body_bytes;
    let read = tokio::time::timeout(limits.body_read_timeout, axum::body::to_bytes(body, max));
    let Ok(read) = read.await else {
        let mut refused = (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms \
                 (server.limits.body_read_timeout_ms)\n",
                limits.body_read_timeout.as_millis()
            ),
        )
            .into_response();
        // What is left of the body is not read: the connection cannot carry another request.
        refused.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Err(refused);
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over {max} bytes (server.limits.max_body_bytes)\n"
                    ),
                )
                    .into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {e}\n"),
                )
                    .into_response()
            });
        }
    };
    if crate::surrogates::may_hold_surrogate(&bytes) {
        let mut v = bytes.to_vec();
        if crate::surrogates::repair(&mut v) > 0 {
            return Ok((parts, axum::body::Bytes::from(v)));
        }
    }
    Ok((parts, bytes))
}

/// Alive unless the engines are gone for good (the top-level restart budget is spent): a
/// liveness probe then restarts the process, which is exiting anyway.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    if state.0.gone.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "gone: the engines gave up for good and the process is exiting\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let down: Vec<String> = state
        .0
        .slots
        .states()
        .into_iter()
        .filter(|(_, s)| *s != crate::engines::EngineState::Running)
        .map(|(name, s)| format!("{name} ({})", s.as_str()))
        .collect();
    if down.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: engine(s) {} not running\n", down.join(", ")),
        )
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::render(),
    )
}

/// Serves until `shutdown` completes or the runtime's engines are gone for good, then drains
/// in-flight requests.
pub async fn serve(
    runtime: &Runtime,
    opts: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let config = runtime.governance().config();
    if !opts.addr.ip().is_loopback() && !config.authenticates() && !config.insecure_no_auth {
        return Err(RuntimeError::Governance(format!(
            "refusing to serve {} without authentication: anyone who can reach it could call \
             every tool. Configure [governance.oauth] or [[governance.api_keys]], listen on \
             127.0.0.1, or pass --insecure-no-auth if something in front of it authenticates",
            opts.addr
        )));
    }
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| RuntimeError::Transport(format!("cannot listen on {}: {e}", opts.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| RuntimeError::Transport(e.to_string()))?;
    let opts = HttpOptions {
        addr: local,
        ..opts
    };
    let governance = runtime.governance();
    let auth = if governance.is_governed() {
        Some(
            HttpAuth::new(governance, local)
                .await
                .map_err(|e| RuntimeError::Governance(e.to_string()))?,
        )
    } else {
        None
    };
    let sessions = CancellationToken::new();
    let app = app_with_auth(runtime, &opts, sessions.clone(), auth);
    tracing::info!(addr = %local, "serving MCP over Streamable HTTP at /mcp");
    eprintln!("ensemble: listening on http://{local}/mcp");
    let drain = sessions.clone();
    let router = runtime.router().clone();
    let gone = runtime.gone_token();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = gone.cancelled() => {}
        }
        let in_flight = router.in_flight();
        tracing::info!(in_flight, "shutting down: draining in-flight tool calls");
        // In-flight calls answer before the MCP streams are cut (bounded).
        if tokio::time::timeout(DRAIN_TIMEOUT, router.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = router.in_flight(),
                "drain timed out; cutting streams"
            );
        }
        // A call counts as done when its handler returns; rmcp then writes its answer to the
        // session's stream. Give those writes a moment before the streams are cut, so that the
        // last answers reach their clients.
        tokio::time::sleep(ANSWER_GRACE).await;
        drain.cancel();
    };
    serve_connections(listener, app, runtime.limits().header_read_timeout, stop).await;
    Ok(())
}

/// Accepts connections on `listener` and serves `app` on each (HTTP/1.1), until `stop`
/// completes; then stops accepting, lets each connection finish the request it is serving,
/// and returns once all are closed.
///
/// A client gets `header_timeout` to send each request's header, the first and every next
/// one on a kept-alive connection: a connection that sends no complete header within it is
/// closed, so a client that trickles bytes (or sends none) cannot hold connections for ever.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let connections = tokio_util::task::TaskTracker::new();
    let closing = CancellationToken::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: accepting again at once would spin.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Without TCP_NODELAY every SSE reply waits ~40 ms on Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        // The peer address is what the admin endpoints check (loopback callers only).
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            tower_service::Service::call(&mut app.clone(), req)
        });
        let closing = closing.clone();
        connections.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    return;
                }
                _ = closing.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}
