//! The sampler: one task that builds a [`Frame`] a second (and at once when a supervisor
//! reports something), whatever the number of pages open. Figures come from the telemetry
//! mirror, a live copy of the metrics `/metrics` serves kept as numbers (no text rendered or
//! parsed), the supervision tree from the supervisors themselves, failures from the supervisor
//! event bus.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ensemble_actors::store::Store;
use ensemble_actors::workflow::WorkflowMsg;
use ensemble_protocol::run::RunInfo;
use ensemble_supervision::{
    ActorSlot, ChildInfo, ChildStatus, EventBus, EventKind, SupervisorEvent, SupervisorMsg,
    human_duration,
};
use ractor::ActorRef;
use tokio::sync::broadcast;

use super::frame::*;
use crate::engines::EngineSlots;
use crate::governance::Governance;
use crate::telemetry::{BUCKETS, Mirror, Value};

/// How long the sampler waits for one supervisor or engine to answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(250);

/// Finished workflow runs a frame shows besides the running ones.
const RUNS_SHOWN: usize = 6;

/// Sessions a frame shows.
const SESSIONS_SHOWN: usize = 10;

/// What the sampler reads.
pub(super) struct Sources {
    pub slots: EngineSlots,
    pub root: ActorRef<SupervisorMsg>,
    pub events: EventBus,
    pub governance: Governance,
    pub store: Store,
    pub started_ms: u64,
    pub task_policy: String,
}

/// Counter readings at one moment, for rates and windowed percentiles.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    tools: HashMap<String, ToolCounts>,
    searches: f64,
    search_hist: Hist,
    steps: f64,
    cpu_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct ToolCounts {
    calls: f64,
    errors: f64,
    hist: Hist,
}

/// A histogram's cumulative buckets, `(le, count)` in rising `le`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Hist(pub Vec<(f64, f64)>);

impl Hist {
    /// The cumulative buckets of a mirrored histogram's per-bucket counts (bounds
    /// [`BUCKETS`], then `+Inf`).
    fn of_cells(cells: &[u64]) -> Self {
        let mut cumulative = 0;
        Hist(
            cells
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    cumulative += n;
                    let le = BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                    (le, cumulative as f64)
                })
                .collect(),
        )
    }

    /// Adds another series of the same histogram (same bounds).
    fn absorb(&mut self, other: Hist) {
        if self.0.is_empty() {
            *self = other;
        } else {
            for ((_, c), (_, o)) in self.0.iter_mut().zip(other.0) {
                *c += o;
            }
        }
    }

    /// The `q` quantile of what was observed between `old` and `self`, interpolated inside its
    /// bucket as Prometheus's `histogram_quantile` does; `None` without observations.
    pub(super) fn quantile_since(&self, old: Option<&Hist>, q: f64) -> Option<f64> {
        let delta: Vec<(f64, f64)> = self
            .0
            .iter()
            .map(|&(le, c)| {
                let before = old
                    .and_then(|o| o.0.iter().find(|(l, _)| *l == le))
                    .map_or(0.0, |(_, c)| *c);
                (le, (c - before).max(0.0))
            })
            .collect();
        let total = delta.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &delta {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let span = count - lower.1;
                let into = if span > 0.0 {
                    (rank - lower.1) / span
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * into);
            }
            lower = (le, count);
        }
        Some(lower.0)
    }
}

/// Gauges and totals read from one exposition.
#[derive(Debug, Default)]
struct Readings {
    breakers: HashMap<String, f64>,
    inflight: HashMap<String, f64>,
    tasks_seen: bool,
    queue_depth: f64,
    running: f64,
    hit_ratio: Option<f64>,
    task_totals: HashMap<String, f64>,
    workflows_seen: bool,
    runs_active: f64,
    learners: HashMap<String, LearnerFrame>,
    collections: Vec<CollectionFrame>,
    retrieval_seen: bool,
    schemes: Vec<SchemeFrame>,
    denials: HashMap<String, f64>,
    rate_limited: HashMap<String, f64>,
    auth_failures: f64,
    audit_entries: f64,
    audit_failures: f64,
    rss: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    threads: Option<f64>,
}

/// The metrics a frame reads: the ones the telemetry mirror keeps a live copy of.
pub(crate) fn reads(name: &str) -> bool {
    matches!(
        name,
        "ensemble_tool_calls_total"
            | "ensemble_tool_call_duration_seconds"
            | "ensemble_circuit_state"
            | "ensemble_inflight_calls"
            | "ensemble_task_queue_depth"
            | "ensemble_tasks_running"
            | "ensemble_cache_hit_ratio"
            | "ensemble_tasks_total"
            | "ensemble_workflow_runs_active"
            | "ensemble_workflow_steps_total"
            | "ensemble_learner_observations_total"
            | "ensemble_learner_queries_total"
            | "ensemble_learner_patterns"
            | "ensemble_learner_memory_bytes"
            | "ensemble_learner_memory_budget_bytes"
            | "ensemble_learner_accuracy"
            | "ensemble_retrieval_documents"
            | "ensemble_retrieval_searches_total"
            | "ensemble_retrieval_search_duration_seconds"
            | "ensemble_taxonomy_concepts"
            | "ensemble_governance_denials_total"
            | "ensemble_governance_rate_limited_total"
            | "ensemble_governance_auth_failures_total"
            | "ensemble_governance_audit_entries_total"
            | "ensemble_governance_audit_failures_total"
    )
}

/// A series' labels, whichever way it was read.
trait Labels {
    fn label(&self, name: &str) -> Option<&str>;
}

impl Labels for metrics::Key {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels().find(|l| l.key() == name).map(|l| l.value())
    }
}

fn label_string(labels: &dyn Labels, name: &str) -> String {
    labels.label(name).unwrap_or_default().to_string()
}

/// Counters and readings gathered series by series.
struct Reader {
    c: Counters,
    r: Readings,
}

impl Reader {
    fn new(at: Instant) -> Self {
        Self {
            c: Counters {
                at,
                tools: HashMap::new(),
                searches: 0.0,
                search_hist: Hist::default(),
                steps: 0.0,
                cpu_seconds: None,
            },
            r: Readings::default(),
        }
    }

    /// A counter's or a gauge's value.
    fn value(&mut self, name: &str, labels: &dyn Labels, v: f64) {
        let (c, r) = (&mut self.c, &mut self.r);
        let label = |k: &str| label_string(labels, k);
        match name {
            "ensemble_tool_calls_total" => {
                let t = c.tools.entry(label("tool")).or_default();
                t.calls += v;
                if !matches!(labels.label("outcome"), Some("ok" | "cancelled")) {
                    t.errors += v;
                }
            }
            "ensemble_circuit_state" => {
                r.breakers.insert(label("route"), v);
            }
            "ensemble_inflight_calls" => {
                r.inflight.insert(label("route"), v);
            }
            "ensemble_task_queue_depth" => (r.tasks_seen, r.queue_depth) = (true, v),
            "ensemble_tasks_running" => (r.tasks_seen, r.running) = (true, v),
            "ensemble_cache_hit_ratio" => r.hit_ratio = Some(v),
            "ensemble_tasks_total" => {
                r.tasks_seen = true;
                *r.task_totals.entry(label("state")).or_default() += v;
            }
            "ensemble_workflow_runs_active" => (r.workflows_seen, r.runs_active) = (true, v),
            "ensemble_workflow_steps_total" => {
                r.workflows_seen = true;
                c.steps += v;
            }
            "ensemble_learner_observations_total"
            | "ensemble_learner_queries_total"
            | "ensemble_learner_patterns"
            | "ensemble_learner_memory_bytes"
            | "ensemble_learner_memory_budget_bytes"
            | "ensemble_learner_accuracy" => {
                let learner = label("learner");
                let l = r
                    .learners
                    .entry(learner.clone())
                    .or_insert_with(|| LearnerFrame {
                        name: learner,
                        ..LearnerFrame::default()
                    });
                let n = v.max(0.0) as u64;
                match name {
                    "ensemble_learner_observations_total" => l.observations = n,
                    "ensemble_learner_queries_total" => l.queries = n,
                    "ensemble_learner_patterns" => l.patterns = n,
                    "ensemble_learner_memory_bytes" => l.memory_bytes = n,
                    "ensemble_learner_memory_budget_bytes" => l.budget_bytes = n,
                    _ => l.accuracy = v.is_finite().then_some(v),
                }
            }
            "ensemble_retrieval_documents" => {
                r.retrieval_seen = true;
                r.collections.push(CollectionFrame {
                    name: label("collection"),
                    documents: v.max(0.0) as u64,
                });
            }
            "ensemble_retrieval_searches_total" => {
                r.retrieval_seen = true;
                c.searches += v;
            }
            "ensemble_taxonomy_concepts" => r.schemes.push(SchemeFrame {
                scheme: label("scheme"),
                concepts: v.max(0.0) as u64,
            }),
            "ensemble_governance_denials_total" => {
                *r.denials.entry(label("identity")).or_default() += v;
            }
            "ensemble_governance_rate_limited_total" => {
                *r.rate_limited.entry(label("identity")).or_default() += v;
            }
            "ensemble_governance_auth_failures_total" => r.auth_failures += v,
            "ensemble_governance_audit_entries_total" => r.audit_entries += v,
            "ensemble_governance_audit_failures_total" => r.audit_failures += v,
            _ => {}
        }
    }

    /// A histogram's series.
    fn histogram(&mut self, name: &str, labels: &dyn Labels, hist: Hist) {
        match name {
            "ensemble_tool_call_duration_seconds" => {
                let tool = label_string(labels, "tool");
                self.c.tools.entry(tool).or_default().hist.absorb(hist);
            }
            "ensemble_retrieval_search_duration_seconds" => self.c.search_hist.absorb(hist),
            _ => {}
        }
    }

    fn process(&mut self, p: &super::process::ProcessStats) {
        let f = |v: Option<u64>| v.map(|v| v as f64);
        self.c.cpu_seconds = p.cpu_seconds;
        self.r.rss = f(p.rss_bytes);
        self.r.open_fds = f(p.open_fds);
        self.r.max_fds = f(p.max_fds);
        self.r.threads = f(p.threads);
    }

    fn finish(self) -> (Counters, Readings) {
        (self.c, self.r)
    }
}

/// Reads the telemetry mirror and the process, at `at`.
fn read(mirror: Option<&Mirror>, at: Instant) -> (Counters, Readings) {
    let mut reader = Reader::new(at);
    if let Some(mirror) = mirror {
        mirror.for_each(|key, value| match value {
            Value::Counter(v) => reader.value(key.name(), key, v as f64),
            Value::Gauge(v) => reader.value(key.name(), key, v),
            Value::Histogram(cells) => reader.histogram(key.name(), key, Hist::of_cells(cells)),
        });
    }
    reader.process(&super::process::read());
    reader.finish()
}

fn ms(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| (s * 1e6).round() / 1e3)
}

fn count(v: f64) -> u64 {
    v.max(0.0).round() as u64
}

fn by_identity(map: HashMap<String, f64>) -> Vec<IdentityCount> {
    let mut v: Vec<IdentityCount> = map
        .into_iter()
        .filter(|(_, c)| *c > 0.0)
        .map(|(identity, c)| IdentityCount {
            identity: if identity.is_empty() {
                "(unknown)".into()
            } else {
                identity
            },
            count: count(c),
        })
        .collect();
    v.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.identity.cmp(&b.identity))
    });
    v
}

fn status_str(s: ChildStatus) -> &'static str {
    match s {
        ChildStatus::Running => "running",
        ChildStatus::Restarting => "restarting",
        ChildStatus::Stopped => "stopped",
    }
}

/// Builds frames.
pub(super) struct Sampler {
    src: Sources,
    window: VecDeque<Counters>,
    rx: broadcast::Receiver<SupervisorEvent>,
    events: VecDeque<EventFrame>,
    failures: HashMap<(String, String), Failure>,
    next_restart: HashMap<(String, String), u64>,
}

impl Sampler {
    pub(super) fn new(src: Sources) -> Self {
        let rx = src.events.subscribe();
        Self {
            src,
            window: VecDeque::new(),
            rx,
            events: VecDeque::new(),
            failures: HashMap::new(),
            next_restart: HashMap::new(),
        }
    }

    /// Waits for the next supervisor event (to sample at once), or forever once the bus is
    /// closed.
    pub(super) async fn event(&mut self) {
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    self.note(e);
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    fn note(&mut self, e: SupervisorEvent) {
        let at_ms =
            e.at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
        let key = (e.supervisor.to_string(), e.child.to_string());
        let (kind, detail) = match e.kind {
            EventKind::Started { starts } => {
                self.next_restart.remove(&key);
                ("started", format!("start {starts}"))
            }
            EventKind::Failed { reason } => {
                self.failures.insert(
                    key.clone(),
                    Failure {
                        reason: reason.clone(),
                        at_ms,
                    },
                );
                ("failed", reason)
            }
            EventKind::Exited { reason } => ("exited", reason.unwrap_or_default()),
            EventKind::RestartScheduled { delay, attempt } => {
                self.next_restart
                    .insert(key.clone(), at_ms + delay.as_millis() as u64);
                (
                    "restart_scheduled",
                    format!("in {} (attempt {attempt})", human_duration(delay)),
                )
            }
            EventKind::Stopped => ("stopped", String::new()),
            EventKind::GaveUp { restarts, period } => (
                "gave_up",
                format!("{restarts} restarts within {}", human_duration(period)),
            ),
        };
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(EventFrame {
            at_ms,
            supervisor: key.0,
            child: key.1,
            kind: kind.into(),
            detail,
        });
    }

    /// Takes the events already waiting.
    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.note(e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    }

    /// One frame, now.
    pub(super) async fn sample(&mut self) -> Frame {
        self.drain();
        let now = Instant::now();
        let (counters, readings) = read(crate::telemetry::mirror(), now);
        // The window: the oldest reading at most WINDOW_S old, the newest being this one.
        while self.window.front().is_some_and(|c| {
            now.duration_since(c.at) > Duration::from_secs(WINDOW_S) + Duration::from_millis(500)
        }) {
            self.window.pop_front();
        }
        let frame = self.build(&counters, readings).await;
        self.window.push_back(counters);
        frame
    }

    async fn build(&mut self, c: &Counters, r: Readings) -> Frame {
        let old = self.window.front();
        let secs = old
            .map(|o| c.at.duration_since(o.at).as_secs_f64())
            .filter(|s| *s > 0.05);
        let rate = |now: f64, before: f64| secs.map_or(0.0, |s| ((now - before).max(0.0)) / s);
        let at_ms = super::unix_ms();

        // Tools that have answered a call, have one in flight, or a breaker not closed (every
        // tool's series exist from its registration, at 0).
        let mut tools: Vec<ToolFrame> = c
            .tools
            .iter()
            .filter(|(name, t)| {
                t.calls > 0.0
                    || r.inflight.get(*name).is_some_and(|v| *v > 0.0)
                    || r.breakers.get(*name).is_some_and(|v| *v > 0.0)
            })
            .map(|(name, t)| {
                let o = old.and_then(|o| o.tools.get(name));
                let (calls0, errors0) = o.map_or((0.0, 0.0), |o| (o.calls, o.errors));
                let window_calls = (t.calls - calls0).max(0.0);
                let hist0 = o.map(|o| &o.hist);
                ToolFrame {
                    tool: name.clone(),
                    calls: count(t.calls),
                    errors: count(t.errors),
                    rate: rate(t.calls, calls0),
                    error_rate: (window_calls > 0.0)
                        .then(|| ((t.errors - errors0).max(0.0) / window_calls).min(1.0)),
                    p50_ms: ms(t.hist.quantile_since(hist0, 0.5)),
                    p99_ms: ms(t.hist.quantile_since(hist0, 0.99)),
                    inflight: r.inflight.get(name).map_or(0, |v| count(*v)),
                    breaker: r.breakers.get(name).map(|v| breaker_str(*v).into()),
                }
            })
            .collect();
        // A route whose breaker is not closed shows even without a call series.
        for (route, state) in &r.breakers {
            if *state > 0.0 && !c.tools.contains_key(route) {
                tools.push(ToolFrame {
                    tool: route.clone(),
                    inflight: r.inflight.get(route).map_or(0, |v| count(*v)),
                    breaker: Some(breaker_str(*state).into()),
                    ..ToolFrame::default()
                });
            }
        }
        tools.sort_by(|a, b| a.tool.cmp(&b.tool));

        let cpu_ratio = match (c.cpu_seconds, old.and_then(|o| o.cpu_seconds), secs) {
            (Some(now), Some(before), Some(s)) => {
                Some(((now - before).max(0.0) / s * 1e3).round() / 1e3)
            }
            _ => None,
        };
        let process = ProcessFrame {
            rss_bytes: r.rss.map(count),
            cpu_ratio,
            open_fds: r.open_fds.map(count),
            max_fds: r.max_fds.map(count),
            threads: r.threads.map(count),
            store_bytes: self.src.store.size_on_disk(),
        };

        let tasks = r.tasks_seen.then(|| TasksFrame {
            queue_depth: count(r.queue_depth),
            running: count(r.running),
            completed: r.task_totals.get("completed").map_or(0, |v| count(*v)),
            failed: r.task_totals.get("failed").map_or(0, |v| count(*v)),
            cancelled: r.task_totals.get("cancelled").map_or(0, |v| count(*v)),
            cache_hit_ratio: r.hit_ratio,
            policy: self.src.task_policy.clone(),
        });

        let runs = self.runs().await;
        let workflows = (r.workflows_seen || runs.is_some()).then(|| WorkflowsFrame {
            active: count(r.runs_active),
            steps_rate: rate(c.steps, old.map_or(0.0, |o| o.steps)),
            runs: runs.unwrap_or_default(),
        });

        let mut learners: Vec<LearnerFrame> = r.learners.into_values().collect();
        for l in &mut learners {
            // The gauge starts at 0: a learner that has seen nothing has no accuracy yet.
            if l.observations == 0 {
                l.accuracy = None;
            }
        }
        learners.sort_by(|a, b| a.name.cmp(&b.name));

        let retrieval = r.retrieval_seen.then(|| {
            let mut collections = r.collections;
            collections.retain(|c| c.documents > 0 || !c.name.is_empty());
            collections.sort_by(|a, b| a.name.cmp(&b.name));
            let hist0 = old.map(|o| &o.search_hist);
            RetrievalFrame {
                collections,
                searches: count(c.searches),
                search_rate: rate(c.searches, old.map_or(0.0, |o| o.searches)),
                p50_ms: ms(c.search_hist.quantile_since(hist0, 0.5)),
                p99_ms: ms(c.search_hist.quantile_since(hist0, 0.99)),
            }
        });
        let taxonomy = (!r.schemes.is_empty()).then(|| {
            let mut schemes = r.schemes;
            schemes.sort_by(|a, b| a.scheme.cmp(&b.scheme));
            TaxonomyFrame { schemes }
        });

        let g = &self.src.governance;
        let governance = g.is_governed().then(|| GovernanceFrame {
            governed: true,
            mode: g.controls().mode.mode.as_str().into(),
            denials: by_identity(r.denials),
            rate_limited: by_identity(r.rate_limited),
            auth_failures: count(r.auth_failures),
            audit: g.audit_log().map(|log| AuditFrame {
                entries: count(r.audit_entries),
                head: log.head()[..8].iter().map(|b| format!("{b:02x}")).collect(),
                checkpoint: log.last_checkpoint(),
                failures: count(r.audit_failures),
            }),
            sessions: g
                .sessions()
                .list(None, SESSIONS_SHOWN)
                .into_iter()
                .map(|s| SessionFrame {
                    client: [s.client_name, s.client_version]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                    id: s.id,
                    identity: s.identity,
                    calls: s.calls,
                })
                .collect(),
        });

        Frame {
            v: 1,
            at_ms,
            started_ms: self.src.started_ms,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: (at_ms.saturating_sub(self.src.started_ms) / 100) as f64 / 10.0,
            process,
            supervision: self.supervision().await,
            events: self.events.iter().cloned().collect(),
            tools,
            tasks,
            workflows,
            learners,
            retrieval,
            taxonomy,
            governance,
            cluster: None,
        }
    }

    /// The tree: the root's children (one supervisor per engine), each with its own children.
    async fn supervision(&self) -> Supervision {
        let root_name = self.src.root.get_name().unwrap_or_else(|| "engines".into());
        let root = ractor::call_t!(
            self.src.root,
            SupervisorMsg::Children,
            ASK_TIMEOUT.as_millis() as u64
        )
        .ok();
        let mut supervisors = Vec::new();
        for (name, slot) in &self.src.slots.supervisors {
            let info = root
                .as_ref()
                .and_then(|r| r.iter().find(|c| c.name == *name));
            supervisors.push(self.supervisor(name, slot, info).await);
        }
        // Children of the root that are not engine supervisors (a host's own actors).
        for info in root.iter().flatten() {
            if !self.src.slots.supervisors.contains_key(info.name.as_str()) {
                supervisors.push(SupervisorFrame {
                    name: info.name.clone(),
                    state: status_str(info.status).into(),
                    restarts: info.starts.saturating_sub(1),
                    children: Vec::new(),
                });
            }
        }
        Supervision {
            state: if root.is_some() { "running" } else { "stopped" }.into(),
            root: root_name,
            supervisors,
        }
    }

    async fn supervisor(
        &self,
        name: &str,
        slot: &ActorSlot<SupervisorMsg>,
        info: Option<&ChildInfo>,
    ) -> SupervisorFrame {
        let children = match slot.get() {
            Ok(actor) => ractor::call_t!(
                actor,
                SupervisorMsg::Children,
                ASK_TIMEOUT.as_millis() as u64
            )
            .ok(),
            Err(_) => None,
        };
        let state = match (&children, info) {
            (Some(_), _) => "running",
            (None, Some(i)) if i.status == ChildStatus::Stopped => "stopped",
            (None, _) if self.src.root.get_status() != ractor::ActorStatus::Running => "stopped",
            (None, _) => "restarting",
        };
        SupervisorFrame {
            name: name.into(),
            state: state.into(),
            restarts: info.map_or(0, |i| i.starts.saturating_sub(1)),
            children: children
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let key = (name.to_string(), c.name.clone());
                    ChildFrame {
                        status: status_str(c.status).into(),
                        restarts: c.starts.saturating_sub(1),
                        last_failure: self.failures.get(&key).cloned(),
                        next_restart_ms: (c.status == ChildStatus::Restarting)
                            .then(|| self.next_restart.get(&key).copied())
                            .flatten(),
                        name: c.name,
                    }
                })
                .collect(),
        }
    }

    /// Running workflow runs and the latest finished ones, with their steps (from the
    /// engine's memory: no store read, whatever the number of runs on disk).
    async fn runs(&self) -> Option<Vec<RunFrame>> {
        let recent = self
            .src
            .slots
            .workflow
            .ask(|reply| WorkflowMsg::Recent(RUNS_SHOWN, reply));
        let runs = tokio::time::timeout(ASK_TIMEOUT, recent).await.ok()?.ok()?;
        Some(
            runs.into_iter()
                .take(RUNS_SHOWN * 2)
                .map(run_frame)
                .collect(),
        )
    }
}

fn run_frame(info: RunInfo) -> RunFrame {
    RunFrame {
        state: serde_json::to_value(info.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        run_id: info.run_id,
        template: info.template,
        created_at_ms: info.created_at_ms,
        finished_at_ms: info.finished_at_ms,
        steps: info
            .steps
            .into_iter()
            .map(|s| StepFrame {
                state: s.state.as_str().into(),
                after: s.depends_on,
                id: s.id,
                tool: s.tool,
            })
            .collect(),
    }
}

fn breaker_str(v: f64) -> &'static str {
    if v >= 2.0 {
        "open"
    } else if v >= 1.0 {
        "half_open"
    } else {
        "closed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::prom::Sample;

    impl Labels for Sample {
        fn label(&self, name: &str) -> Option<&str> {
            Sample::label(self, name)
        }
    }

    #[test]
    fn a_frame_reads_the_mirror() {
        use std::sync::Arc;
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("buckets")
            .build_recorder();
        let mirror = Arc::new(Mirror::default());
        let tap = crate::telemetry::Tap::new(prometheus, mirror.clone(), reads);
        metrics::with_local_recorder(&tap, || {
            let ok =
                metrics::counter!("ensemble_tool_calls_total", "tool" => "a", "outcome" => "ok");
            let bad = metrics::counter!("ensemble_tool_calls_total",
                "tool" => "a", "outcome" => "engine_error");
            let took = metrics::histogram!("ensemble_tool_call_duration_seconds", "tool" => "a");
            for _ in 0..90 {
                ok.increment(1);
                took.record(0.000_7);
            }
            for _ in 0..10 {
                bad.increment(1);
                took.record(0.2);
            }
            metrics::gauge!("ensemble_circuit_state", "route" => "a").set(2.0);
            metrics::gauge!("ensemble_learner_patterns", "learner" => "shell").set(12.0);
            metrics::counter!("ensemble_governance_denials_total",
                "kind" => "tool", "identity" => "bob")
            .increment(4);
        });
        let (c, r) = read(Some(&mirror), Instant::now());
        let a = &c.tools["a"];
        assert_eq!((a.calls, a.errors), (100.0, 10.0));
        assert_eq!(a.hist.0.len(), BUCKETS.len() + 1, "every bucket and +Inf");
        assert_eq!(a.hist.0.last(), Some(&(f64::INFINITY, 100.0)));
        // 90 of 100 in (0.5, 1] ms, 10 in (100, 250] ms.
        let p50 = a.hist.quantile_since(None, 0.5).expect("p50");
        assert!(p50 > 0.000_5 && p50 <= 0.001, "{p50}");
        let p99 = a.hist.quantile_since(None, 0.99).expect("p99");
        assert!(p99 > 0.1 && p99 <= 0.25, "{p99}");
        assert_eq!(r.breakers.get("a"), Some(&2.0));
        assert_eq!(r.learners["shell"].patterns, 12);
        assert_eq!(r.denials.get("bob"), Some(&4.0));
        assert!(
            r.rss.is_some() && c.cpu_seconds.is_some(),
            "the process is read too"
        );
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_of_the_window() {
        let old = Hist(vec![
            (0.001, 10.0),
            (0.01, 10.0),
            (0.1, 10.0),
            (f64::INFINITY, 10.0),
        ]);
        // 100 new observations: 50 under 1 ms, 40 in (1, 10] ms, 10 in (10, 100] ms.
        let new = Hist(vec![
            (0.001, 60.0),
            (0.01, 100.0),
            (0.1, 110.0),
            (f64::INFINITY, 110.0),
        ]);
        let p50 = new.quantile_since(Some(&old), 0.5).expect("p50");
        assert!(
            (p50 - 0.001).abs() < 1e-12,
            "rank 50 is the top of the first bucket: {p50}"
        );
        let p90 = new.quantile_since(Some(&old), 0.9).expect("p90");
        assert!((p90 - 0.01).abs() < 1e-12, "{p90}");
        let p99 = new.quantile_since(Some(&old), 0.99).expect("p99");
        // rank 99: 9 of the 10 in (0.01, 0.1].
        assert!((p99 - (0.01 + 0.09 * 0.9)).abs() < 1e-9, "{p99}");
        assert_eq!(new.quantile_since(Some(&new), 0.5), None, "nothing new");
        // Past the last finite bucket: its bound.
        let over = Hist(vec![(0.001, 0.0), (f64::INFINITY, 5.0)]);
        assert_eq!(over.quantile_since(None, 0.5), Some(0.001));
    }

    #[test]
    fn errors_are_every_outcome_but_ok_and_cancelled() {
        let text = "ensemble_tool_calls_total{tool=\"a\",outcome=\"ok\"} 7\n\
                    ensemble_tool_calls_total{tool=\"a\",outcome=\"cancelled\"} 1\n\
                    ensemble_tool_calls_total{tool=\"a\",outcome=\"engine_error\"} 2\n\
                    ensemble_tool_calls_total{tool=\"a\",outcome=\"invalid_arguments\"} 3\n\
                    ensemble_governance_denials_total{kind=\"tool\",identity=\"bob\"} 2\n\
                    ensemble_governance_denials_total{kind=\"resource\",identity=\"bob\"} 1\n";
        let mut reader = Reader::new(Instant::now());
        for s in super::super::prom::parse(text) {
            reader.value(&s.name, &s, s.value);
        }
        let (c, r) = reader.finish();
        let a = &c.tools["a"];
        assert_eq!((a.calls, a.errors), (13.0, 5.0));
        let d = by_identity(r.denials);
        assert_eq!(
            d,
            [IdentityCount {
                identity: "bob".into(),
                count: 3
            }]
        );
    }
}
