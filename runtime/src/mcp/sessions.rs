//! Streamable HTTP sessions (the legacy, pre-2026 way): rmcp's [`LocalSessionManager`], with
//! a fast lane for plain tool calls.
//!
//! rmcp hands each request of a session to the session's worker task, which passes it to the
//! session's service loop, which spawns the request's handler; the answer travels back the
//! same way into the request's SSE stream. Every request has been checked by rmcp's HTTP layer
//! (hosts, origins, media types, the session, protocol versions) before it reaches a session
//! manager, so [`FastSessions`] answers a plain `tools/call` (as the stateless fast lane of
//! [`super::fast`] defines it, progress heartbeat included) on a task of its own that writes
//! the answer into the request's stream, and leaves everything else to rmcp's sessions.
//!
//! What rmcp's sessions do for a call, the lane does for its own:
//! - the stream starts with a priming event and every message has an event id
//!   (`0/fN`, `1/fN`: the `f` keeps them apart from rmcp's `index/request` ids), and a client
//!   that lost the stream resumes it with `Last-Event-ID` (GET), within the last
//!   [`KEPT_ANSWERS`] calls of the session, each for as long after it ended as rmcp keeps a
//!   completed stream (`completed_cache_ttl`, 60 s);
//! - a call whose client went away runs on, its answer kept for that resume;
//! - `notifications/cancelled` stops the call and its answer is not sent; closing the session
//!   (DELETE) cancels its calls;
//! - a session whose client set a logging level, or whose handshake is not done, is left to
//!   rmcp (log messages are per session);
//! - rmcp closes a session after its idle timeout ([`Limits::session_idle`]), counting only
//!   what reaches its worker: a session busy with fast calls alone tells the worker it is alive
//!   now and then;
//! - at most [`Limits::max_sessions`] sessions are open at once (the HTTP endpoint answers an
//!   `initialize` beyond it with 503 before it gets here; [`FastSessions`] refuses one that
//!   raced past).
//!
//! [`Limits::session_idle`]: crate::limits::Limits::session_idle
//! [`Limits::max_sessions`]: crate::limits::Limits::max_sessions

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, CustomNotification, JsonRpcRequest,
    ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::McpService;
use super::fast::{CallsInFlight, Era, PlainCall};

/// How many of a session's fast calls keep their answers for a resumed stream (each for as
/// long as rmcp keeps a completed stream's, 60 s by default).
pub const KEPT_ANSWERS: usize = 256;

/// How often, at most, a session busy only with fast calls tells rmcp's worker it is alive
/// (a quarter of the idle timeout when that is shorter).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The method of the notification that tells a session's worker the session is alive; the
/// service ignores it.
const ALIVE_METHOD: &str = "notifications/ensemble/alive";

/// A fast call's end: pending, cancelled (no answer), or its answer.
type Outcome = Option<Option<Arc<ServerJsonRpcMessage>>>;

/// Why a session request failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// rmcp's session manager refused.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    /// The sessions are at their limit.
    #[error("the server has {0} sessions open, its limit (server.limits.max_sessions)")]
    Full(usize),
    /// A `Last-Event-ID` names a fast call no longer kept.
    #[error(
        "no stream {0} to resume (a session keeps its last {KEPT_ANSWERS} calls, each for a while after it ended)"
    )]
    UnknownStream(String),
}

/// The event carrying fast call `stream`'s answer.
fn answer_event(stream: u64, answer: Arc<ServerJsonRpcMessage>) -> ServerSseMessage {
    let mut event = ServerSseMessage::priming(format!("1/f{stream}"), Duration::ZERO);
    event.retry = None;
    event.message = Some(answer);
    event
}

/// A fast call's run: its answer, or `None` when it was cancelled.
type Run =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Arc<ServerJsonRpcMessage>>> + Send>>;

/// The SSE stream of a fast call: the priming event, heartbeats, then the answer.
struct CallStream {
    priming: Option<ServerSseMessage>,
    notes: mpsc::UnboundedReceiver<ServerSseMessage>,
    /// The call until it ends (a `Mutex` only to make the stream `Sync`: polling has `&mut`).
    call: Mutex<Option<Run>>,
    /// The answer, once the heartbeats before it have gone out.
    answer: Option<Arc<ServerJsonRpcMessage>>,
    stream: u64,
}

impl Stream for CallStream {
    type Item = ServerSseMessage;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ServerSseMessage>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(p) = this.priming.take() {
            return Poll::Ready(Some(p));
        }
        if let Poll::Ready(Some(note)) = this.notes.poll_recv(cx) {
            return Poll::Ready(Some(note));
        }
        let call = this.call.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(run) = call.as_mut() {
            let Poll::Ready(answer) = run.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            *call = None;
            this.answer = answer;
            // Heartbeats the call sent before it ended go first.
            if let Ok(note) = this.notes.try_recv() {
                return Poll::Ready(Some(note));
            }
        }
        Poll::Ready(this.answer.take().map(|a| answer_event(this.stream, a)))
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        // The client went away mid-call: as in rmcp's sessions, the call runs on and its
        // answer waits for a resume.
        let call = self
            .call
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(run), Ok(rt)) = (call, tokio::runtime::Handle::try_current()) {
            rt.spawn(run);
        }
    }
}

/// A session's SSE stream, whichever lane serves it.
type SseStream = std::pin::Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>;

fn boxed(s: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static) -> SseStream {
    Box::pin(s)
}

/// rmcp's local sessions with the fast lane for plain tool calls.
pub struct FastSessions {
    inner: LocalSessionManager,
    service: McpService,
    lanes: Mutex<HashMap<SessionId, Arc<Mutex<Lane>>>>,
    /// `ensemble_http_fast_lane_calls_total`, shared with the stateless lane.
    taken: metrics::Counter,
    /// Sessions open at most.
    max_sessions: usize,
    /// How often a session busy only with fast calls tells its worker it is alive.
    touch_every: Duration,
}

/// One session's fast-lane state.
struct Lane {
    /// The session's protocol era, once its handshake is done.
    era: Option<Era>,
    /// The client set a logging level: calls carry log messages, rmcp's way.
    logging: bool,
    next_stream: u64,
    in_flight: CallsInFlight,
    /// The last calls' outcomes, oldest first.
    kept: VecDeque<Kept>,
    /// When the session's worker last saw anything of this session.
    touched: Instant,
    /// Who opened it, when the server authenticates.
    owner: Option<String>,
}

impl Lane {
    fn new() -> Self {
        Self {
            era: None,
            logging: false,
            next_stream: 0,
            in_flight: CallsInFlight::default(),
            kept: VecDeque::new(),
            touched: Instant::now(),
            owner: None,
        }
    }
}

/// A call's outcome kept for a resume.
struct Kept {
    stream: u64,
    outcome: watch::Receiver<Outcome>,
    /// When the call ended; an ended call's answer is kept as long as rmcp keeps its own
    /// (`completed_cache_ttl`).
    ended: Option<Instant>,
}

impl FastSessions {
    /// Sessions for `service` (the handler rmcp builds each session's service from), within
    /// `limits` (how many, how long idle).
    pub fn new(service: McpService, limits: &crate::limits::Limits) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(limits.session_idle);
        Self {
            inner,
            service,
            lanes: Mutex::new(HashMap::new()),
            taken: metrics::counter!("ensemble_http_fast_lane_calls_total"),
            max_sessions: limits.max_sessions.max(1),
            touch_every: TOUCH_EVERY.min(limits.session_idle / 4),
        }
    }

    /// Records that `subject` opened session `id` (the `Mcp-Session-Id` of its `initialize`).
    pub fn claim(&self, id: &axum::http::HeaderValue, subject: &str) {
        let Ok(id) = id.to_str() else {
            return;
        };
        if let Some(lane) = self.lane(&SessionId::from(id)) {
            let mut l = lane.lock().unwrap_or_else(|p| p.into_inner());
            l.owner.get_or_insert_with(|| subject.to_string());
        }
    }

    /// Whether `subject` may use the session `headers` name: its own, or none named.
    pub fn may_use(&self, headers: &axum::http::HeaderMap, subject: &str) -> bool {
        let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return true;
        };
        match self.lane(&SessionId::from(id)) {
            Some(lane) => lane
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .owner
                .as_deref()
                .is_none_or(|owner| owner == subject),
            // rmcp answers an unknown session itself.
            None => true,
        }
    }

    /// Whether as many sessions are open as the limit allows.
    pub fn is_full(&self) -> bool {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).len() >= self.max_sessions
    }

    fn lane(&self, id: &SessionId) -> Option<Arc<Mutex<Lane>>> {
        self.lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The worker of `id` saw something now.
    fn touch(&self, id: &SessionId) {
        if let Some(lane) = self.lane(id) {
            lane.lock().unwrap_or_else(|p| p.into_inner()).touched = Instant::now();
        }
    }

    /// The stream answering `call`: polling it runs the call (on the connection's task, as
    /// the stateless lane does); a stream dropped before the answer leaves the call running on
    /// a task of its own, its answer kept for a resume.
    /// Also says whether the session's worker should hear the session is alive.
    fn serve(&self, lane: &Arc<Mutex<Lane>>, era: Era, call: PlainCall) -> (CallStream, bool) {
        let (done, outcome) = watch::channel(None);
        let (stream, stale, in_flight) = {
            let mut l = lane.lock().unwrap_or_else(|p| p.into_inner());
            let n = l.next_stream;
            l.next_stream += 1;
            // Oldest first: the expired are at the front (one clock read per call, typically).
            let ttl = self.inner.session_config.completed_cache_ttl;
            let now = Instant::now();
            while l
                .kept
                .front()
                .is_some_and(|k| k.ended.is_some_and(|at| now.duration_since(at) >= ttl))
            {
                l.kept.pop_front();
            }
            l.kept.push_back(Kept {
                stream: n,
                outcome,
                ended: None,
            });
            while l.kept.len() > KEPT_ANSWERS {
                l.kept.pop_front();
            }
            let stale = l.touched.elapsed() >= self.touch_every;
            if stale {
                l.touched = Instant::now();
            }
            (n, stale, l.in_flight.clone())
        };
        let cancel = in_flight.start(&call.id);
        let priming = self
            .inner
            .session_config
            .sse_retry
            .map(|retry| ServerSseMessage::priming(format!("0/f{stream}"), retry));
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let (service, lane) = (self.service.clone(), lane.clone());
        let run = async move {
            let PlainCall {
                id,
                route,
                args,
                progress,
                who,
                session,
            } = call;
            let heartbeat = progress.map(|token| {
                (token, move |note: ServerNotification| {
                    let note =
                        ServerSseMessage::from_message(ServerJsonRpcMessage::notification(note));
                    let _ = notes_tx.send(note);
                    std::future::ready(())
                })
            });
            let answer = service
                .answer_plain(
                    id.clone(),
                    &route,
                    args,
                    (&who, &session),
                    cancel.clone(),
                    era,
                    heartbeat,
                )
                .await;
            in_flight.end(&id);
            if let Some(k) = lane
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .kept
                .iter_mut()
                .find(|k| k.stream == stream)
            {
                k.ended = Some(Instant::now());
            }
            // A cancelled request gets no answer (as rmcp's sessions do).
            if cancel.is_cancelled() {
                let _ = done.send(Some(None));
                return None;
            }
            let answer = Arc::new(answer);
            let _ = done.send(Some(Some(answer.clone())));
            Some(answer)
        };
        let call = CallStream {
            priming,
            notes,
            call: Mutex::new(Some(Box::pin(run))),
            answer: None,
            stream,
        };
        (call, stale)
    }

    /// Tells the session's worker the session is alive (it counts only what reaches it).
    async fn tell_alive(&self, id: &SessionId) {
        let alive = ClientJsonRpcMessage::notification(ClientNotification::CustomNotification(
            CustomNotification::new(ALIVE_METHOD, None),
        ));
        if let Err(e) = self.inner.accept_message(id, alive).await {
            tracing::debug!(session = %id, error = %e, "could not tell a session it is alive");
        }
    }

    /// The stream of fast call `stream` after event `index`, if the lane kept it.
    fn resume_fast(
        &self,
        id: &SessionId,
        last_event_id: &str,
    ) -> Option<Result<mpsc::Receiver<ServerSseMessage>, SessionError>> {
        let (index, stream) = last_event_id.split_once("/f")?;
        let (index, stream): (u64, u64) = (index.parse().ok()?, stream.parse().ok()?);
        let unknown = || SessionError::UnknownStream(last_event_id.to_string());
        let Some(lane) = self.lane(id) else {
            return Some(Err(unknown()));
        };
        let outcome = lane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kept
            .iter()
            .find(|k| k.stream == stream)
            .map(|k| k.outcome.clone());
        let Some(mut outcome) = outcome else {
            return Some(Err(unknown()));
        };
        let (tx, rx) = mpsc::channel(1);
        if index == 0 {
            // Until the answer, or until the client goes: a client that resumes a long call
            // over and over, dropping each stream, leaves nothing waiting behind.
            tokio::spawn(async move {
                let answer = tokio::select! {
                    o = outcome.wait_for(Option::is_some) => match o {
                        Ok(o) => o.clone().flatten(),
                        Err(_) => None,
                    },
                    _ = tx.closed() => return,
                };
                if let Some(answer) = answer {
                    let _ = tx.send(answer_event(stream, answer)).await;
                }
            });
        }
        Some(Ok(rx))
    }
}

impl SessionManager for FastSessions {
    type Error = SessionError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if self.is_full() {
            return Err(SessionError::Full(self.max_sessions));
        }
        let (id, transport) = self.inner.create_session().await?;
        self.lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Arc::new(Mutex::new(Lane::new())));
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let answer = self.inner.initialize_session(id, message).await?;
        if let ServerJsonRpcMessage::Response(r) = &answer
            && let ServerResult::InitializeResult(init) = &r.result
            && let Some(lane) = self.lane(id)
        {
            let mut l = lane.lock().unwrap_or_else(|p| p.into_inner());
            l.era = Some(Era::of(&init.protocol_version));
            l.touched = Instant::now();
        }
        Ok(answer)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let lane = self
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(lane) = lane {
            lane.lock()
                .unwrap_or_else(|p| p.into_inner())
                .in_flight
                .cancel_all();
        }
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let lane = self.lane(id);
        if let Some(lane) = &lane {
            let (era, logging) = {
                let l = lane.lock().unwrap_or_else(|p| p.into_inner());
                (l.era, l.logging)
            };
            let mut message = message;
            if let (Some(era), false) = (era, logging)
                && let Some(call) = self.service.take_plain(&mut message)
            {
                self.taken.increment(1);
                let (stream, stale) = self.serve(lane, era, call);
                if stale {
                    self.tell_alive(id).await;
                }
                return Ok(boxed(stream));
            }
            if let ClientJsonRpcMessage::Request(JsonRpcRequest {
                request: ClientRequest::SetLevelRequest(_),
                ..
            }) = &message
            {
                lane.lock().unwrap_or_else(|p| p.into_inner()).logging = true;
            }
            lane.lock().unwrap_or_else(|p| p.into_inner()).touched = Instant::now();
            return Ok(boxed(self.inner.create_stream(id, message).await?));
        }
        Ok(boxed(self.inner.create_stream(id, message).await?))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        if let Some(lane) = self.lane(id) {
            let mut l = lane.lock().unwrap_or_else(|p| p.into_inner());
            l.in_flight.observe(&message);
            l.touched = Instant::now();
        }
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        if let Some(fast) = self.resume_fast(id, &last_event_id) {
            return Ok(boxed(ReceiverStream::new(fast?)));
        }
        self.touch(id);
        Ok(boxed(self.inner.resume(id, last_event_id).await?))
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.inner.restore_session(id).await?)
    }

    fn event_store(
        &self,
    ) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.inner.event_store()
    }
}
