//! The live dashboard served by `ensemble serve --http`: a page at `/` (embedded: one HTML
//! shell, one script, one stylesheet, no network), a JSON snapshot at `/dashboard/state` and a
//! Server-Sent Events stream of one [`Frame`] a second at `/dashboard/events`.
//!
//! One sampler task builds each frame once and serialises it once; every open page receives the
//! same bytes, so five pages cost what one does. While nobody watches (no page subscribed, no
//! snapshot read for a minute) it builds one every ten seconds instead. Figures come from the
//! Prometheus exposition
//! `/metrics` serves (one source of truth), the supervision tree from the supervisors, failure
//! reasons from the supervisor event bus.
//!
//! When HTTP authentication is on, the data endpoints require a caller that may read the
//! resource `ensemble://dashboard` (a role that may observe); the page itself holds no data.

mod frame;
pub mod process;
#[cfg(test)]
mod prom;
mod sampler;

pub(crate) use sampler::reads;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ensemble_actors::governance::policy::Kind;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

pub use frame::*;

use crate::governance::Governance;
use crate::governance::http::HttpAuth;
use crate::runtime::Runtime;

/// The resource a caller must be allowed to read to see the dashboard's data.
pub const DASHBOARD_RESOURCE: &str = "ensemble://dashboard";

/// How often a frame is built.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The shortest gap between two frames (a burst of supervisor events).
const MIN_GAP: Duration = Duration::from_millis(150);

/// How often a frame is built while nobody watches (no page subscribed, no snapshot read for
/// [`WATCHED_FOR`]): the gauges the sampler keeps stay current at a tenth of the cost.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a snapshot read counts as someone watching.
const WATCHED_FOR: Duration = Duration::from_secs(60);

/// Who is watching: pages subscribed, the last snapshot read, and a bell that wakes the sampler
/// when someone starts.
#[derive(Default)]
struct Interest {
    subscribers: std::sync::atomic::AtomicI64,
    last_read_ms: std::sync::atomic::AtomicU64,
    wake: tokio::sync::Notify,
}

impl Interest {
    fn watched(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.subscribers.load(Relaxed) > 0
            || unix_ms().saturating_sub(self.last_read_ms.load(Relaxed))
                < WATCHED_FOR.as_millis() as u64
    }

    /// Someone looks: frames at full rate, and one at once.
    fn touch(&self) {
        self.last_read_ms
            .store(unix_ms(), std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A frame and its JSON, built once for every subscriber.
#[derive(Debug)]
struct Published {
    frame: Frame,
    json: Arc<str>,
}

/// The dashboard of one runtime: its sampler's latest frame and history. Cheap to clone; the
/// sampler stops with the last clone or when the server shuts down.
#[derive(Clone)]
pub struct Dashboard {
    frames: watch::Receiver<Arc<Published>>,
    history: Arc<Mutex<VecDeque<FrameLite>>>,
    interest: Arc<Interest>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Starts the sampler of `runtime`; it stops when `shutdown` is cancelled or the last
    /// clone is dropped. Call from within a tokio runtime.
    pub fn start(runtime: &Runtime, shutdown: CancellationToken) -> Self {
        let sources = sampler::Sources {
            slots: runtime.engines().clone(),
            root: runtime.supervisor().clone(),
            events: runtime.events().clone(),
            governance: runtime.governance().clone(),
            store: runtime.store().clone(),
            started_ms: runtime.started_ms(),
            task_policy: runtime.task_policy().to_string(),
        };
        let empty = Arc::new(Published {
            frame: Frame::default(),
            json: Arc::from("{}"),
        });
        // The series exists before the first page opens.
        metrics::gauge!("ensemble_dashboard_subscribers").increment(0.0);
        let (tx, rx) = watch::channel(empty);
        let history = Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY_KEPT)));
        let dashboard = Dashboard {
            frames: rx,
            history: history.clone(),
            interest: Arc::default(),
        };
        let interest = dashboard.interest.clone();
        let mut sampler = sampler::Sampler::new(sources);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now() - INTERVAL;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    _ = tick.tick() => {
                        if !interest.watched() && last.elapsed() < IDLE_INTERVAL {
                            continue;
                        }
                    }
                    _ = interest.wake.notified() => {
                        let since = last.elapsed();
                        if since < MIN_GAP {
                            tokio::time::sleep(MIN_GAP - since).await;
                        }
                    }
                    _ = sampler.event() => {
                        // Show a failure or restart at once, but not more often than MIN_GAP.
                        let since = last.elapsed();
                        if since < MIN_GAP {
                            tokio::time::sleep(MIN_GAP - since).await;
                        }
                    }
                }
                last = Instant::now();
                let frame = sampler.sample().await;
                publish_gauges(&frame);
                let json: Arc<str> = match serde_json::to_string(&frame) {
                    Ok(json) => json.into(),
                    Err(e) => {
                        tracing::warn!(%e, "a dashboard frame could not be serialised");
                        continue;
                    }
                };
                if let Ok(mut h) = history.lock() {
                    if h.len() == HISTORY_KEPT {
                        h.pop_front();
                    }
                    h.push_back(frame.lite());
                }
                tx.send_replace(Arc::new(Published { frame, json }));
            }
        });
        dashboard
    }

    /// The latest frame (the default, empty one before the first sample).
    pub fn latest(&self) -> Frame {
        self.frames.borrow().frame.clone()
    }

    /// The latest frame once it is fresh: while nobody watched, frames were built only every
    /// [`IDLE_INTERVAL`]; a read wakes the sampler and waits (up to a second) for a new one.
    async fn fresh(&self) {
        let stale = {
            let latest = self.frames.borrow();
            unix_ms().saturating_sub(latest.frame.at_ms) > INTERVAL.as_millis() as u64 * 3 / 2
        };
        let mut frames = self.frames.clone();
        frames.mark_unchanged();
        self.interest.touch();
        if stale {
            let _ = tokio::time::timeout(INTERVAL, frames.changed()).await;
        }
    }

    /// The latest frame and the history before it.
    pub fn state(&self) -> Snapshot {
        let frame = self.latest();
        let mut history: Vec<FrameLite> = self
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        // The latest frame is in the history too: it is the frame, not its own past.
        if history.last().is_some_and(|l| l.at_ms == frame.at_ms) {
            history.pop();
        }
        Snapshot { frame, history }
    }

    /// Pages subscribed to the event stream now.
    pub fn subscribers(&self) -> i64 {
        self.interest
            .subscribers
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Gauges the sampler keeps for `/metrics`: the store's size and the governance mode.
fn publish_gauges(frame: &Frame) {
    if let Some(bytes) = frame.process.store_bytes {
        metrics::gauge!("ensemble_store_size_bytes").set(bytes as f64);
    }
    if let Some(g) = &frame.governance {
        let mode = match g.mode.as_str() {
            "read_only" => 1.0,
            "lockdown" => 2.0,
            _ => 0.0,
        };
        metrics::gauge!("ensemble_governance_mode").set(mode);
    }
}

/// Who may see the dashboard's data: everyone without authentication; with it, a caller that
/// may read [`DASHBOARD_RESOURCE`].
#[derive(Clone)]
struct Access {
    dashboard: Dashboard,
    auth: Option<HttpAuth>,
    governance: Governance,
    /// Browser origins allowed besides the page's own.
    origins: Arc<Vec<String>>,
}

impl Access {
    async fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), Response> {
        if let Some(origin) = headers.get(header::ORIGIN)
            && !self.origin_allowed(origin, headers.get(header::HOST))
        {
            return Err((
                StatusCode::FORBIDDEN,
                "forbidden: this origin may not read the dashboard (add it to \
                 [server] allow_origins)\n",
            )
                .into_response());
        }
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let who = auth.authenticate(headers, query, None).await?;
        if self
            .governance
            .may_use(&who, Kind::Resource, DASHBOARD_RESOURCE)
        {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: `{}` may not observe this runtime; give its role the resource \
                     {DASHBOARD_RESOURCE}\n",
                    who.subject()
                ),
            )
                .into_response())
        }
    }

    /// Same origin as the request's host, or one of the configured ones (`*` wildcards for a
    /// port, as in `http://localhost:*`).
    fn origin_allowed(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let own = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .zip(host.and_then(|h| h.to_str().ok()))
            .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
        own || self
            .origins
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => origin.starts_with(prefix),
                None => origin == allowed,
            })
    }
}

/// The dashboard's routes: `/`, `/dashboard/app.js`, `/dashboard/app.css`,
/// `/dashboard/state` and `/dashboard/events`.
pub fn routes(
    dashboard: Dashboard,
    auth: Option<HttpAuth>,
    governance: Governance,
    origins: Vec<String>,
) -> axum::Router {
    let access = Access {
        dashboard,
        auth,
        governance,
        origins: Arc::new(origins),
    };
    axum::Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/app.js", get(app_js))
        .route("/dashboard/app.css", get(app_css))
        .route("/dashboard/state", get(state))
        .route("/dashboard/events", get(events))
        .with_state(access)
}

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX_HTML.replace("{{VERSION}}", env!("CARGO_PKG_VERSION")),
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
}

async fn app_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_CSS,
    )
}

async fn state(State(access): State<Access>, req: Request) -> Response {
    if let Err(refused) = access.check(req.headers(), req.uri().query()).await {
        return refused;
    }
    access.dashboard.fresh().await;
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(access.dashboard.state()),
    )
        .into_response()
}

/// Counts a page subscribed to the event stream while it is.
struct Subscriber(Arc<Interest>);

impl Subscriber {
    fn new(interest: Arc<Interest>) -> Self {
        let now = interest
            .subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        metrics::gauge!("ensemble_dashboard_subscribers").set(now as f64);
        interest.touch();
        Subscriber(interest)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let now = self
            .0
            .subscribers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            - 1;
        metrics::gauge!("ensemble_dashboard_subscribers").set(now as f64);
    }
}

async fn events(State(access): State<Access>, req: Request) -> Response {
    if let Err(refused) = access.check(req.headers(), req.uri().query()).await {
        return refused;
    }
    let subscriber = Subscriber::new(access.dashboard.interest.clone());
    let mut first = true;
    // The latest frame at once, then each new one; the stream ends when the sampler does.
    let stream = tokio_stream::wrappers::WatchStream::new(access.dashboard.frames.clone())
        .filter(|p| !p.frame.version.is_empty())
        .map(move |p| {
            let _counted = &subscriber;
            let mut event = Event::default().event("frame").data(&*p.json);
            if std::mem::take(&mut first) {
                // Reconnect quickly after a server restart.
                event = event.retry(Duration::from_secs(1));
            }
            Ok::<_, Infallible>(event)
        });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
