//! The fast lane: a stateless 2026-07-28 `tools/call` over Streamable HTTP answered on the
//! connection's own task.
//!
//! rmcp serves each stateless request by building a handler, spawning a service loop and a
//! task to await it, and spawning the request's handler from that loop: three spawns and four
//! hand-offs between tasks per call, before the call reaches its actor. For the common call
//! (a tool without a context, no progress token, no task, no input round) that is most of
//! the server's work. The fast lane takes exactly those calls, and only when every check rmcp
//! would make is sure to pass: anything else (another method, a session, an `Origin`,
//! `Mcp-Param-*` headers, an unusual `Accept`, extra `_meta`, a task-capable tool...) goes to
//! rmcp unchanged, which answers it or refuses it as it always does. The answer is built with
//! rmcp's own types, so both lanes give the client the same bytes
//! (`tests/mcp_http.rs` compares them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use rmcp::model::{
    CallToolResponse, ClientCapabilities, ClientJsonRpcMessage, ClientNotification, ClientRequest,
    ErrorCode, Implementation, JsonRpcNotification, JsonRpcRequest, ProgressNotification,
    ProgressToken, ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerNotification,
    ServerResult,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::McpService;
use super::call::{call_answer, record_outcome};
use crate::context::ToolContext;
use crate::router::Route;

/// Which protocol shapes a result: 2026-07-28 and later carry `resultType` and cache hints,
/// older peers get the legacy shape without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// 2026-07-28 or later.
    Modern,
    /// Before 2026-07-28.
    Legacy,
}

impl Era {
    /// The era of a negotiated protocol version.
    pub(crate) fn of(version: &ProtocolVersion) -> Self {
        if version.as_str() >= ProtocolVersion::V_2026_07_28.as_str() {
            Era::Modern
        } else {
            Era::Legacy
        }
    }
}

/// A plain call taken out of its request (see [`McpService::take_plain`]).
pub(crate) struct PlainCall {
    pub(crate) id: RequestId,
    pub(crate) route: Arc<Route>,
    pub(crate) args: Map<String, Value>,
    pub(crate) progress: Option<ProgressToken>,
    /// Who calls (audited with the call).
    pub(crate) who: crate::governance::Identity,
    /// The session it belongs to (for the session records).
    pub(crate) session: String,
}

/// A lane's calls in flight by request id, so that `notifications/cancelled` stops one.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallsInFlight(Arc<Mutex<HashMap<RequestId, CancellationToken>>>);

impl CallsInFlight {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers call `id`; its token is cancelled if the client cancels it.
    pub(crate) fn start(&self, id: &RequestId) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.calls().insert(id.clone(), cancel.clone());
        cancel
    }

    /// Call `id` has ended.
    pub(crate) fn end(&self, id: &RequestId) {
        self.calls().remove(id);
    }

    /// Cancels the call `message` cancels, if it is a `notifications/cancelled` for one of
    /// these.
    pub(crate) fn observe(&self, message: &ClientJsonRpcMessage) {
        if let ClientJsonRpcMessage::Notification(JsonRpcNotification {
            notification: ClientNotification::CancelledNotification(n),
            ..
        }) = message
            && let Some(request) = &n.params.request_id
            && let Some(cancel) = self.calls().remove(request)
        {
            cancel.cancel();
        }
    }

    /// Cancels every call (the session ended).
    pub(crate) fn cancel_all(&self) {
        for cancel in std::mem::take(&mut *self.calls()).into_values() {
            cancel.cancel();
        }
    }
}

/// A call the fast lane takes.
pub(crate) struct FastCall {
    id: RequestId,
    route: Arc<Route>,
    args: Map<String, Value>,
    who: crate::governance::Identity,
}

impl FastCall {
    /// Stateless requests are grouped per identity.
    fn session(&self) -> String {
        format!("stateless:{}", self.who.subject())
    }
}

/// The JSON-RPC request, with nothing the fast lane does not know: an unknown member (a task,
/// `requestState`, a progress token, a log level...) fails to parse and the request goes to
/// rmcp.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    jsonrpc: &'a str,
    id: RequestId,
    method: &'a str,
    params: Params,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta")]
    meta: Meta,
}

/// The request metadata 2026-07-28 requires (protocol version, client capabilities), and the
/// client's name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: String,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    _client_capabilities: ClientCapabilities,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", default)]
    _client_info: Option<Implementation>,
}

/// The one value of header `name`, if there is exactly one and it is text.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// Whether every `Accept` value is a plain list of media types (no parameters, no quoting)
/// naming both JSON and SSE: a subset of what rmcp accepts.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains([';', '"']) {
            return false;
        }
        for essence in value.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

fn is_json(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split_once(';')
            .map_or(v, |(essence, _)| essence)
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// A host as rmcp compares hosts: lower-cased, without brackets.
fn normalized(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// The `Host` header's host, normalized, if it parses as rmcp parses it.
fn host_of(headers: &HeaderMap) -> Option<String> {
    let host = single(headers, header::HOST.as_str())?;
    let authority = axum::http::uri::Authority::try_from(host).ok()?;
    Some(normalized(authority.host()))
}

/// The checks of the HTTP layer, made once per server: the hosts rmcp lets in.
#[derive(Clone)]
pub(crate) struct FastLane {
    /// Allowed hosts without a port, normalized as rmcp normalizes them.
    hosts: Arc<[String]>,
    /// `ensemble_http_fast_lane_calls_total`: the calls this lane answered.
    taken: metrics::Counter,
}

impl FastLane {
    /// A fast lane for a server that allows `hosts` (rmcp's `allowed_hosts`). Entries with a
    /// port are left to rmcp; an empty list (rmcp then allows any host) admits nothing here.
    pub(crate) fn new(hosts: &[String]) -> Self {
        let hosts = hosts
            .iter()
            .filter_map(|h| match axum::http::uri::Authority::try_from(h.trim()) {
                Ok(a) if a.port().is_some() => None,
                Ok(a) => Some(normalized(a.host())),
                Err(_) => Some(normalized(h.trim())),
            })
            .collect();
        Self {
            hosts,
            taken: metrics::counter!("ensemble_http_fast_lane_calls_total"),
        }
    }

    /// Counts a call this lane answered.
    pub(crate) fn taken(&self) {
        self.taken.increment(1);
    }

    /// Whether the headers of a POST to `/mcp` pass every check rmcp makes of a stateless
    /// 2026-07-28 `tools/call` (the body is checked by [`McpService::fast_call`]).
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        single(headers, "mcp-protocol-version") == Some(ProtocolVersion::V_2026_07_28.as_str())
            && single(headers, "mcp-method") == Some("tools/call")
            && single(headers, "mcp-name").is_some_and(|n| !n.starts_with("=?"))
            && !headers.contains_key("mcp-session-id")
            && !headers.contains_key(header::ORIGIN)
            && !headers.contains_key("last-event-id")
            && !headers.keys().any(|k| k.as_str().starts_with("mcp-param-"))
            && headers.get_all(header::CONTENT_TYPE).iter().count() == 1
            && headers.get(header::CONTENT_TYPE).is_some_and(is_json)
            && accepts_json_and_sse(headers)
            && host_of(headers).is_some_and(|h| self.hosts.contains(&h))
    }
}

impl McpService {
    /// The call in `body` if the fast lane can answer it exactly as rmcp would (headers
    /// already [admitted](FastLane::admits)); `None` sends the request to rmcp.
    pub(crate) fn fast_call(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        who: Option<&crate::governance::Identity>,
    ) -> Option<FastCall> {
        let envelope: Envelope = serde_json::from_slice(body).ok()?;
        if envelope.jsonrpc != "2.0"
            || envelope.method != "tools/call"
            || envelope.params.meta.protocol_version != ProtocolVersion::V_2026_07_28.as_str()
            || single(headers, "mcp-name") != Some(envelope.params.name.as_str())
        {
            return None;
        }
        // With a caller, the edge authenticated and admitted the call (see `http::admit`).
        let route = self.plain_route(
            &envelope.params.name,
            who.unwrap_or(&self.identity),
            who.is_some(),
        )?;
        if route.has_param_headers() {
            return None;
        }
        Some(FastCall {
            id: envelope.id,
            route,
            args: envelope.params.arguments.unwrap_or_default(),
            who: who.unwrap_or(&self.identity).clone(),
        })
    }

    /// The route of `name` if a call of it can skip rmcp's request machinery: the tool takes
    /// no context (no progress, log messages or client requests of its own) and is not offered
    /// as a task.
    pub(crate) fn plain_route(
        &self,
        name: &str,
        who: &crate::governance::Identity,
        counted: bool,
    ) -> Option<Arc<Route>> {
        if self.task_tools.contains(name) || self.input_first_tools.contains(name) {
            return None;
        }
        // A call the caller may not make, or that a rate limit may refuse, takes rmcp's path.
        if !self.lane_may(who, name, counted) {
            return None;
        }
        self.router.route(name).filter(|r| !r.takes_context())
    }

    /// The plain call in `message`, if it is one: a `tools/call` with no request metadata but
    /// a progress token (rmcp's client sends one with every call), no input round, and a
    /// [plain route](Self::plain_route). Its arguments are moved out of `message`, which is
    /// not used again then.
    pub(crate) fn take_plain(&self, message: &mut ClientJsonRpcMessage) -> Option<PlainCall> {
        let ClientJsonRpcMessage::Request(JsonRpcRequest {
            id,
            request: ClientRequest::CallToolRequest(call),
            ..
        }) = message
        else {
            return None;
        };
        let p = &mut call.params;
        let metas = [
            p.meta.as_ref(),
            call.extensions.get::<rmcp::model::RequestMetaObject>(),
        ];
        let mut progress = None;
        for meta in metas.into_iter().flatten().filter(|m| !m.is_empty()) {
            match meta.get_progress_token() {
                Some(token) if meta.len() == 1 => progress = Some(token),
                _ => return None,
            }
        }
        if p.request_state.is_some() || p.input_responses.is_some() {
            return None;
        }
        let who = self.caller(&call.extensions);
        // Named only where sessions are recorded (governed runtimes): a lane call allocates
        // nothing it does not use.
        let session = if self.governance.audits() {
            call.extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.headers.get("mcp-session-id"))
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| format!("local-{}", self.session), str::to_string)
        } else {
            String::new()
        };
        let counted = Self::admitted_at_edge(&call.extensions);
        let route = self.plain_route(&call.params.name, &who, counted)?;
        let p = &mut call.params;
        Some(PlainCall {
            id: id.clone(),
            route,
            args: p.arguments.take().unwrap_or_default(),
            progress,
            who,
            session,
        })
    }

    /// Calls `route` and answers as rmcp's handler would for a peer on protocol `era`: the
    /// JSON-RPC message, logged as any call is. `cancel` stops the call. With `progress`, a
    /// call running longer than the service's progress period reports a heartbeat through it,
    /// as [`McpService::serve_call`] does for tools that report none themselves.
    // The three lanes each hold these apart; a struct would be built only to be taken apart.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn answer_plain<N, F>(
        &self,
        id: RequestId,
        route: &Route,
        args: Map<String, Value>,
        (who, caller_session): (&crate::governance::Identity, &str),
        cancel: CancellationToken,
        era: Era,
        progress: Option<(ProgressToken, N)>,
    ) -> ServerJsonRpcMessage
    where
        N: FnMut(ServerNotification) -> F,
        F: std::future::Future<Output = ()>,
    {
        let session = super::next_session_name();
        let name = route.spec.name.as_str();
        let span = tracing::debug_span!(
            "tool_call",
            tool = %name,
            request_id = %id,
            session_id = %format_args!("local-{session}")
        );
        let started = Instant::now();
        let args = Value::Object(args);
        let audited = match self
            .audit_start(who, name, &args, caller_session.to_string(), None)
            .await
        {
            Ok(a) => a,
            Err(error) => return ServerJsonRpcMessage::error(error, Some(id)),
        };
        let call = self
            .router
            .call_route(
                route,
                args,
                Some(cancel.clone()),
                ToolContext::detached(cancel),
            )
            .instrument(span.clone());
        // A governed call acts as its caller (a task it submits runs with their rights).
        let call = if self.governance.is_governed() {
            tokio_util::either::Either::Left(crate::governance::with_caller(
                who.clone(),
                self.governance.clone(),
                call,
            ))
        } else {
            tokio_util::either::Either::Right(call)
        };
        let outcome = match progress {
            None => call.await,
            Some((token, mut notify)) => {
                let mut call = std::pin::pin!(call);
                let mut ticks = self.progress.subscribe();
                loop {
                    tokio::select! {
                        biased;
                        r = &mut call => break r,
                        changed = ticks.changed() => {
                            if changed.is_err() {
                                break call.await;
                            }
                            if let Some(beat) = self.progress.heartbeat(name, &token, started) {
                                notify(ServerNotification::ProgressNotification(
                                    ProgressNotification::new(beat),
                                ))
                                .await;
                            }
                        }
                    }
                }
            }
        };
        record_outcome(
            &span,
            name,
            &id,
            &format_args!("local-{session}"),
            started,
            &outcome,
        );
        if let Some(audited) = audited {
            let how = match &outcome {
                Ok(crate::router::ToolOutput::Content(r)) if r.is_error == Some(true) => "error",
                Ok(_) => "ok",
                Err(crate::router::ToolError::Cancelled) => "cancelled",
                Err(_) => "error",
            };
            if let Err(error) = self.audit_end(audited, how).await {
                return ServerJsonRpcMessage::error(error, Some(id));
            }
        }
        match call_answer(outcome) {
            Ok(result) => {
                let mut result = ServerResult::from(CallToolResponse::from(result));
                match era {
                    Era::Modern => result.fill_missing_cache_hints(),
                    Era::Legacy => {
                        result.strip_result_type_for_legacy_peer();
                        result.strip_non_object_output_for_legacy_peer();
                    }
                }
                ServerJsonRpcMessage::response(result, id)
            }
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        }
    }

    /// Answers a fast-lane call: the HTTP status and the JSON-RPC message, as rmcp's JSON
    /// response mode would give them. Dropping the future (the client went away) cancels the
    /// actor's work.
    pub(crate) async fn serve_fast(&self, call: FastCall) -> (StatusCode, Vec<u8>) {
        let session = if self.governance.audits() {
            call.session()
        } else {
            String::new()
        };
        let FastCall {
            id,
            route,
            args,
            who,
        } = call;
        let cancel = CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        // A progress token sends a request to rmcp (`Meta` has no room for one): a JSON answer
        // has no room for progress notifications.
        let message = self
            .answer_plain(
                id,
                &route,
                args,
                (&who, &session),
                cancel,
                Era::Modern,
                None::<(
                    ProgressToken,
                    fn(ServerNotification) -> std::future::Ready<()>,
                )>,
            )
            .await;
        let status = match &message {
            ServerJsonRpcMessage::Error(e) => match e.error.code {
                ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
                ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
                | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
                | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
                _ => StatusCode::OK,
            },
            _ => StatusCode::OK,
        };
        match serde_json::to_vec(&message) {
            Ok(body) => (status, body),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the answer could not be encoded: {e}").into_bytes(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8080"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    fn lane() -> FastLane {
        FastLane::new(&["localhost".into(), "127.0.0.1".into(), "::1".into()])
    }

    #[test]
    fn admits_a_plain_stateless_call() {
        assert!(lane().admits(&headers(GOOD)));
        let mut ipv6 = GOOD.to_vec();
        ipv6[0] = ("host", "[::1]:9");
        assert!(lane().admits(&headers(&ipv6)));
    }

    #[test]
    fn leaves_to_rmcp_whatever_it_might_refuse_or_treat_otherwise() {
        let with = |extra: (&'static str, &'static str)| {
            let mut h = headers(GOOD);
            h.append(extra.0, HeaderValue::from_static(extra.1));
            lane().admits(&h)
        };
        let without = |name: &str| {
            let mut h = headers(GOOD);
            h.remove(name);
            lane().admits(&h)
        };
        let replaced = |name: &'static str, value: &'static str| {
            let mut h = headers(GOOD);
            h.insert(name, HeaderValue::from_static(value));
            lane().admits(&h)
        };
        assert!(!with(("origin", "http://localhost:3000")));
        assert!(!with(("mcp-session-id", "abc")));
        assert!(!with(("mcp-param-region", "eu")));
        assert!(!with(("mcp-method", "tools/call")), "a repeated header");
        for h in [
            "host",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "accept",
        ] {
            assert!(!without(h), "{h} missing");
        }
        assert!(!replaced("host", "evil.example:80"));
        assert!(!replaced("mcp-protocol-version", "2025-11-25"));
        assert!(!replaced("mcp-method", "tools/list"));
        assert!(!replaced("mcp-name", "=?base64?ZWNobw==?="));
        assert!(!replaced("content-type", "text/plain"));
        assert!(!replaced("accept", "application/json"));
        assert!(!replaced(
            "accept",
            "application/json;q=0, text/event-stream"
        ));
        assert!(replaced("content-type", "application/json; charset=utf-8"));
    }

    #[test]
    fn a_host_list_with_ports_or_none_admits_nothing_it_cannot_match() {
        assert!(!FastLane::new(&["127.0.0.1:8080".into()]).admits(&headers(GOOD)));
        assert!(!FastLane::new(&[]).admits(&headers(GOOD)));
    }
}
