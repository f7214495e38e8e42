//! What the dashboard shows: one [`Frame`] a second, as JSON. A part of the runtime that is
//! absent (no governance, no cluster) is `null`, and the page says so.

use serde::{Deserialize, Serialize};

/// Everything the page shows at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The frame format (1).
    pub v: u32,
    /// When it was taken (Unix ms).
    pub at_ms: u64,
    /// When the runtime started (Unix ms): a new value tells the page the server restarted.
    pub started_ms: u64,
    /// The runtime's version.
    pub version: String,
    /// Seconds since the runtime started.
    pub uptime_s: f64,
    /// The process.
    pub process: ProcessFrame,
    /// The supervision tree.
    pub supervision: Supervision,
    /// The latest supervisor events, oldest first (at most [`EVENTS_KEPT`]).
    pub events: Vec<EventFrame>,
    /// The tools that have been called, or have a breaker that is not closed.
    pub tools: Vec<ToolFrame>,
    /// The task executor.
    pub tasks: Option<TasksFrame>,
    /// The workflow engine.
    pub workflows: Option<WorkflowsFrame>,
    /// The learning servers.
    pub learners: Vec<LearnerFrame>,
    /// The retrieval engine.
    pub retrieval: Option<RetrievalFrame>,
    /// The taxonomy engine.
    pub taxonomy: Option<TaxonomyFrame>,
    /// Governance, when the runtime is governed.
    pub governance: Option<GovernanceFrame>,
    /// Cluster membership, when clustered.
    pub cluster: Option<ClusterFrame>,
}

/// How many supervisor events a frame carries.
pub const EVENTS_KEPT: usize = 20;

/// The process's own figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessFrame {
    /// Resident memory.
    pub rss_bytes: Option<u64>,
    /// CPU used over the last interval, in cores (1.0 is one core busy).
    pub cpu_ratio: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Their limit.
    pub max_fds: Option<u64>,
    /// OS threads.
    pub threads: Option<u64>,
    /// The store's size on disk (`None` in memory).
    pub store_bytes: Option<u64>,
}

/// The supervision tree: the root supervisor and each engine's own supervisor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Supervision {
    /// The root's name.
    pub root: String,
    /// The root's state.
    pub state: String,
    /// Each engine's supervisor.
    pub supervisors: Vec<SupervisorFrame>,
}

/// One supervisor and its children.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupervisorFrame {
    /// Its name (the engine's).
    pub name: String,
    /// `running`, `restarting` or `stopped`.
    pub state: String,
    /// Times the root restarted it.
    pub restarts: u64,
    /// Its children.
    pub children: Vec<ChildFrame>,
}

/// One supervised actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChildFrame {
    /// Its name.
    pub name: String,
    /// `running`, `restarting` or `stopped`.
    pub status: String,
    /// Restarts so far.
    pub restarts: u64,
    /// Its last failure.
    pub last_failure: Option<Failure>,
    /// When its scheduled restart is due (Unix ms), while it waits for one.
    pub next_restart_ms: Option<u64>,
}

/// A failure a supervisor saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What the failure said.
    pub reason: String,
    /// When (Unix ms).
    pub at_ms: u64,
}

/// One supervisor event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// When (Unix ms).
    pub at_ms: u64,
    /// The supervisor.
    pub supervisor: String,
    /// The child.
    pub child: String,
    /// `started`, `failed`, `exited`, `restart_scheduled`, `stopped` or `gave_up`.
    pub kind: String,
    /// The reason, backoff or restart count.
    pub detail: String,
}

/// One tool's traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFrame {
    /// The tool.
    pub tool: String,
    /// Calls answered since the start.
    pub calls: u64,
    /// Of which failed (any outcome but `ok` and `cancelled`).
    pub errors: u64,
    /// Calls a second over the last [`WINDOW_S`] seconds.
    pub rate: f64,
    /// Failed share of the calls over the window (`None` without calls).
    pub error_rate: Option<f64>,
    /// Median latency over the window, ms (`None` without calls).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency over the window, ms.
    pub p99_ms: Option<f64>,
    /// Calls in flight (the bulkhead's occupancy).
    pub inflight: u64,
    /// Its breaker: `closed`, `half_open` or `open` (`None` without one).
    pub breaker: Option<String>,
}

/// The window of rates and latency percentiles, seconds.
pub const WINDOW_S: u64 = 10;

/// The task executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TasksFrame {
    /// Tasks waiting.
    pub queue_depth: u64,
    /// Tasks running.
    pub running: u64,
    /// Tasks completed since the start.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Result cache hits over lookups.
    pub cache_hit_ratio: Option<f64>,
    /// How the queue is ordered.
    pub policy: String,
}

/// The workflow engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowsFrame {
    /// Runs in progress.
    pub active: u64,
    /// Steps finished a second over the window.
    pub steps_rate: f64,
    /// Runs in progress and the latest finished ones, newest first.
    pub runs: Vec<RunFrame>,
}

/// One workflow run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFrame {
    /// Its id.
    pub run_id: String,
    /// The template it came from.
    pub template: Option<String>,
    /// `running`, `completed`, `failed`, `cancelled` or `interrupted`.
    pub state: String,
    /// Created (Unix ms).
    pub created_at_ms: u64,
    /// Finished (Unix ms).
    pub finished_at_ms: Option<u64>,
    /// Its steps (the DAG).
    pub steps: Vec<StepFrame>,
}

/// One step of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepFrame {
    /// Its id.
    pub id: String,
    /// Its tool.
    pub tool: String,
    /// Where it is.
    pub state: String,
    /// The steps it waits for.
    pub after: Vec<String>,
}

/// One learning server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LearnerFrame {
    /// `shell`, `development`, `quality` or `devops`.
    pub name: String,
    /// Observations taken since the start.
    pub observations: u64,
    /// Queries answered since the start.
    pub queries: u64,
    /// Patterns held.
    pub patterns: u64,
    /// Memory held.
    pub memory_bytes: u64,
    /// Its budget.
    pub budget_bytes: u64,
    /// Its running accuracy, when it measures one.
    pub accuracy: Option<f64>,
}

/// The retrieval engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalFrame {
    /// Collections and their documents.
    pub collections: Vec<CollectionFrame>,
    /// Searches since the start.
    pub searches: u64,
    /// Searches a second over the window.
    pub search_rate: f64,
    /// Median search latency over the window, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

/// One collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionFrame {
    /// Its name.
    pub name: String,
    /// Its documents.
    pub documents: u64,
}

/// The taxonomy engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaxonomyFrame {
    /// Each concept scheme.
    pub schemes: Vec<SchemeFrame>,
}

/// One concept scheme.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemeFrame {
    /// Its URI.
    pub scheme: String,
    /// Its concepts.
    pub concepts: u64,
}

/// Governance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GovernanceFrame {
    /// Whether calls are authenticated and authorised.
    pub governed: bool,
    /// `normal`, `read_only` or `lockdown`.
    pub mode: String,
    /// Refused calls per identity since the start.
    pub denials: Vec<IdentityCount>,
    /// Rate-limited calls per identity since the start.
    pub rate_limited: Vec<IdentityCount>,
    /// Refused credentials since the start.
    pub auth_failures: u64,
    /// The audit log.
    pub audit: Option<AuditFrame>,
    /// The latest sessions.
    pub sessions: Vec<SessionFrame>,
}

/// A count for one identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityCount {
    /// The subject.
    pub identity: String,
    /// How many.
    pub count: u64,
}

/// The audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFrame {
    /// Entries written since the start.
    pub entries: u64,
    /// The hash chain's head (hex, first 16 digits).
    pub head: String,
    /// Entries covered by the last signed checkpoint.
    pub checkpoint: Option<u64>,
    /// Write or checkpoint failures since the start.
    pub failures: u64,
}

/// One MCP session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionFrame {
    /// Its id.
    pub id: String,
    /// The client's name and version.
    pub client: String,
    /// Its identity.
    pub identity: String,
    /// Calls made.
    pub calls: u64,
}

/// Cluster membership.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterFrame {
    /// The members.
    pub members: Vec<MemberFrame>,
}

/// One cluster member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberFrame {
    /// Its node name.
    pub node: String,
    /// `up`, `suspect` or `down`.
    pub state: String,
    /// Since its last heartbeat, ms.
    pub heartbeat_age_ms: u64,
    /// The engines it runs.
    pub engines: Vec<String>,
}

/// The part of a frame kept for the history the page draws on load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameLite {
    /// When (Unix ms).
    pub at_ms: u64,
    /// Each tool's rate, error rate and latency.
    pub tools: Vec<ToolLite>,
    /// Memory and CPU.
    pub process: ProcessLite,
}

/// A tool in a [`FrameLite`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolLite {
    /// The tool.
    pub tool: String,
    /// Calls a second.
    pub rate: f64,
    /// Failed share.
    pub error_rate: Option<f64>,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

/// The process in a [`FrameLite`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessLite {
    /// Resident memory.
    pub rss_bytes: Option<u64>,
    /// CPU in cores.
    pub cpu_ratio: Option<f64>,
}

impl Frame {
    /// The part kept in the history.
    pub fn lite(&self) -> FrameLite {
        FrameLite {
            at_ms: self.at_ms,
            tools: self
                .tools
                .iter()
                .map(|t| ToolLite {
                    tool: t.tool.clone(),
                    rate: t.rate,
                    error_rate: t.error_rate,
                    p50_ms: t.p50_ms,
                    p99_ms: t.p99_ms,
                })
                .collect(),
            process: ProcessLite {
                rss_bytes: self.process.rss_bytes,
                cpu_ratio: self.process.cpu_ratio,
            },
        }
    }
}

/// What `/dashboard/state` answers: the latest frame and up to [`HISTORY_KEPT`] earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The latest frame.
    pub frame: Frame,
    /// Earlier frames, oldest first.
    pub history: Vec<FrameLite>,
}

/// Frames kept in the history (two minutes at one a second).
pub const HISTORY_KEPT: usize = 120;
