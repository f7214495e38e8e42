//! The configuration: one optional TOML file, `ENSEMBLE_*` environment variables and command
//! line flags, layered in that order over the embedded defaults.
//!
//! With no file and no variables, [`Config::default()`] is exactly how the runtime ran before
//! it had a configuration. [`load`] reads the layers, refuses a bad configuration with every
//! problem at once (each with its key, its file and line or its variable, and what is
//! accepted), and remembers where each value came from ([`Loaded::origin`]).
//!
//! ```
//! use ensemble_runtime::config::Config;
//!
//! let config: Config = toml::from_str(
//!     r#"
//!     [execution]
//!     max_concurrent = 4
//!
//!     [engines.registry]
//!     timeout_ms = 5000
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.execution.max_concurrent, 4);
//! assert_eq!(config.engines.registry.timeout_ms, 5000);
//! assert_eq!(config.engines.validation.timeout_ms, 30_000);
//! ```
//!
//! Sections still to come (`[retrieval]`, `[cluster]`, `[dashboard]`) are a field of [`Config`] and their keys in [`keys::KEYS`].

mod env;
mod file;
pub mod governance;
pub mod keys;
mod load;
mod show;
mod tree;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ensemble_actors::execution::ExecConfig;
use ensemble_protocol::execution::SchedulingPolicy;
use ensemble_supervision::{Backoff, BreakerConfig, Intensity, RetryPolicy, RoutePolicy};

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, FlagValue, Loaded, Origin, Problem, Sources, load};
pub use tree::TreeConfig;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: transports and logs.
    pub server: ServerConfig,
    /// `[store]`: where and how data is kept.
    pub store: StoreConfig,
    /// `[execution]`: the task queue.
    pub execution: ExecutionConfig,
    /// `[supervision]`: the engines supervisor's top-level budget and subtree backoff.
    pub supervision: SupervisionConfig,
    /// `[engines.<name>]`: each engine's call policy and restart intensity.
    pub engines: EnginesConfig,
    /// `[tools.<name>]`: one tool's call policy, over its engine's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolPolicy>,
    /// `[learning.<name>]`: each learner's flush interval and memory budget.
    pub learning: LearningConfig,
    /// `[governance]`: identities, roles and what they may call.
    pub governance: governance::GovernanceConfig,
    /// `[promotion]`: the promotion engine.
    pub promotion: PromotionSettings,
}

/// `[promotion]`: how the promotion engine decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionSettings {
    /// Whoever opened a promotion request may not approve it (with governance on).
    pub separation_of_duties: bool,
    /// How long a gate's call to another engine may take (ms).
    pub gate_timeout_ms: u64,
}

impl Default for PromotionSettings {
    fn default() -> Self {
        let d = ensemble_actors::promotion::PromotionConfig::default();
        Self {
            separation_of_duties: d.separation_of_duties,
            gate_timeout_ms: d.gate_timeout_ms,
        }
    }
}

impl PromotionSettings {
    /// The promotion actor's configuration.
    pub fn promotion_config(&self) -> ensemble_actors::promotion::PromotionConfig {
        ensemble_actors::promotion::PromotionConfig {
            separation_of_duties: self.separation_of_duties,
            gate_timeout_ms: self.gate_timeout_ms,
        }
    }
}

/// `[learning.<name>]`, one per learner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// The shell learner (64 MiB by default).
    pub shell: LearnerSettings,
    /// The development learner (256 MiB by default: the import contexts of a hundred crates
    /// take about 150 MiB).
    pub development: DevelopmentSettings,
    /// The quality learner (64 MiB by default: the co-change of a 10,000-commit history
    /// takes a few MiB).
    pub quality: LearnerSettings,
    /// The devops learner (128 MiB by default: about 400,000 observed changes) and its risk
    /// policy.
    pub devops: DevopsSettings,
}

/// The devops learner's settings: as any learner's, and the risk policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevopsSettings {
    /// Observations reach the disk at least this often (ms); a kill -9 loses at most this much.
    pub flush_interval_ms: u64,
    /// Memory its patterns may take; past it the least valuable are evicted.
    pub memory_budget_bytes: u64,
    /// Relative risk (failure probability over the project's failure rate) from which
    /// `devops_recommend` says canary.
    pub canary_at: f64,
    /// Relative risk from which it says hold.
    pub hold_at: f64,
}

impl Default for DevopsSettings {
    fn default() -> Self {
        let policy = ensemble_protocol::devops::RiskPolicy::default();
        Self {
            flush_interval_ms: LearnerSettings::default().flush_interval_ms,
            memory_budget_bytes: 128 << 20,
            canary_at: policy.canary_at,
            hold_at: policy.hold_at,
        }
    }
}

impl DevopsSettings {
    /// The learner actor's configuration.
    pub fn learner_config(&self) -> ensemble_actors::learning::LearnerConfig {
        LearnerSettings {
            flush_interval_ms: self.flush_interval_ms,
            memory_budget_bytes: self.memory_budget_bytes,
        }
        .learner_config()
    }

    /// The risk policy.
    pub fn risk_policy(&self) -> ensemble_protocol::devops::RiskPolicy {
        ensemble_protocol::devops::RiskPolicy {
            canary_at: self.canary_at,
            hold_at: self.hold_at,
        }
    }
}

/// The development learner's settings: as any learner's, with a larger default budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevelopmentSettings {
    /// Observations reach the disk at least this often (ms); a kill -9 loses at most this much.
    pub flush_interval_ms: u64,
    /// Memory its patterns may take; past it the least valuable are evicted.
    pub memory_budget_bytes: u64,
}

impl Default for DevelopmentSettings {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 256 << 20,
            ..LearnerSettings::default().into()
        }
    }
}

impl From<LearnerSettings> for DevelopmentSettings {
    fn from(s: LearnerSettings) -> Self {
        Self {
            flush_interval_ms: s.flush_interval_ms,
            memory_budget_bytes: s.memory_budget_bytes,
        }
    }
}

impl DevelopmentSettings {
    /// The learner actor's configuration.
    pub fn learner_config(&self) -> ensemble_actors::learning::LearnerConfig {
        LearnerSettings {
            flush_interval_ms: self.flush_interval_ms,
            memory_budget_bytes: self.memory_budget_bytes,
        }
        .learner_config()
    }
}

/// One learner's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerSettings {
    /// Observations reach the disk at least this often (ms); a kill -9 loses at most this much.
    pub flush_interval_ms: u64,
    /// Memory its patterns may take; past it the least valuable are evicted.
    pub memory_budget_bytes: u64,
}

impl Default for LearnerSettings {
    fn default() -> Self {
        let d = ensemble_actors::learning::LearnerConfig::default();
        Self {
            flush_interval_ms: millis(d.flush_interval),
            memory_budget_bytes: d.memory_budget_bytes as u64,
        }
    }
}

impl LearnerSettings {
    /// The learner actor's configuration.
    pub fn learner_config(&self) -> ensemble_actors::learning::LearnerConfig {
        ensemble_actors::learning::LearnerConfig {
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            memory_budget_bytes: usize::try_from(self.memory_budget_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Serve Streamable HTTP here; MCP on stdio when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    /// Browser Origins accepted over HTTP.
    pub allow_origins: Vec<String>,
    /// Log lines as text or JSON (always on stderr).
    pub log_format: LogFormat,
    /// `[server.limits]`: what clients may send.
    pub limits: ServerLimits,
}

/// `[server.limits]`: what clients may send, over either transport (see
/// [`crate::limits`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Largest request body over HTTP, in bytes.
    pub max_body_bytes: u64,
    /// Deepest nesting of arrays and objects in a message.
    pub max_json_depth: u64,
    /// Longest string in a message, in bytes.
    pub max_string_bytes: u64,
    /// Most items in one array, or members in one object.
    pub max_items: u64,
    /// Most Streamable HTTP sessions open at once.
    pub max_sessions: u64,
    /// A session idle this long (seconds) is closed.
    pub session_idle_s: u64,
    /// Time to send a request's header (ms).
    pub header_read_timeout_ms: u64,
    /// Time to send a request's body (ms).
    pub body_read_timeout_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        let d = crate::limits::Limits::default();
        Self {
            max_body_bytes: d.max_body_bytes as u64,
            max_json_depth: d.max_json_depth as u64,
            max_string_bytes: d.max_string_bytes as u64,
            max_items: d.max_items as u64,
            max_sessions: d.max_sessions as u64,
            session_idle_s: d.session_idle.as_secs(),
            header_read_timeout_ms: d.header_read_timeout.as_millis() as u64,
            body_read_timeout_ms: d.body_read_timeout.as_millis() as u64,
        }
    }
}

impl ServerLimits {
    /// The limits the transports apply.
    pub fn limits(&self) -> crate::limits::Limits {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        crate::limits::Limits {
            max_body_bytes: size(self.max_body_bytes),
            max_json_depth: size(self.max_json_depth),
            max_string_bytes: size(self.max_string_bytes),
            max_items: size(self.max_items),
            max_sessions: size(self.max_sessions),
            session_idle: Duration::from_secs(self.session_idle_s),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// A temporary store instead of `data_dir`.
    pub in_memory: bool,
    /// sled's page cache, in bytes.
    pub cache_capacity_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ensemble-data"),
            in_memory: false,
            cache_capacity_bytes: ensemble_actors::store::StoreOptions::default()
                .cache_capacity_bytes,
        }
    }
}

impl StoreConfig {
    /// The store's options.
    pub fn options(&self) -> ensemble_actors::store::StoreOptions {
        ensemble_actors::store::StoreOptions {
            cache_capacity_bytes: self.cache_capacity_bytes,
        }
    }
}

/// `[execution]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// The order queued tasks run in.
    pub scheduling_policy: SchedulingPolicy,
    /// Tasks running at once.
    pub max_concurrent: usize,
    /// Tasks waiting at most.
    pub queue_capacity: usize,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        let d = ExecConfig::default();
        Self {
            scheduling_policy: d.policy,
            max_concurrent: d.max_concurrent,
            queue_capacity: d.capacity,
        }
    }
}

impl ExecutionConfig {
    /// The execution engine's configuration (the rest at its defaults).
    pub fn exec_config(&self) -> ExecConfig {
        ExecConfig {
            policy: self.scheduling_policy,
            max_concurrent: self.max_concurrent,
            capacity: self.queue_capacity,
            ..ExecConfig::default()
        }
    }
}

/// `[supervision]`: what the `engines` supervisor does when an engine's own supervisor gives up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// The top-level budget: given-up engines restarted within `period_ms` before the runtime
    /// gives up for good (then `ensemble serve` drains and exits non-zero).
    pub max_restarts: u32,
    /// The budget's period, in milliseconds.
    pub period_ms: u64,
    /// The delay before a given-up engine restarts, doubled with each give-up in a row.
    pub restart_backoff_ms: u64,
    /// The largest such delay.
    pub restart_backoff_max_ms: u64,
    /// A restarted engine that stays up this long starts again from `restart_backoff_ms`.
    pub backoff_reset_after_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        let t = TreeConfig::default();
        Self {
            max_restarts: t.budget.max_restarts,
            period_ms: millis(t.budget.period),
            restart_backoff_ms: millis(t.subtree_backoff.base),
            restart_backoff_max_ms: millis(t.subtree_backoff.max),
            backoff_reset_after_ms: millis(t.subtree_backoff_reset_after),
        }
    }
}

/// `[engines.<name>]`, one per engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnginesConfig {
    /// The artifact registry.
    pub registry: EngineSettings,
    /// JSON-schema validation.
    pub validation: EngineSettings,
    /// Task execution.
    pub execution: EngineSettings,
    /// DAG workflows.
    pub workflow: EngineSettings,
    /// Gated promotion of artifacts.
    pub promotion: EngineSettings,
    /// Full-text retrieval (RAG).
    pub retrieval: EngineSettings,
    /// SKOS taxonomies.
    pub taxonomy: EngineSettings,
}

impl EnginesConfig {
    /// One engine's settings by name.
    pub fn get(&self, engine: &str) -> Option<&EngineSettings> {
        match engine {
            "registry" => Some(&self.registry),
            "validation" => Some(&self.validation),
            "execution" => Some(&self.execution),
            "workflow" => Some(&self.workflow),
            "promotion" => Some(&self.promotion),
            "retrieval" => Some(&self.retrieval),
            "taxonomy" => Some(&self.taxonomy),
            _ => None,
        }
    }

    /// Every engine's settings with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &EngineSettings)> {
        keys::ENGINES
            .iter()
            .filter_map(|name| self.get(name).map(|s| (*name, s)))
    }
}

/// One engine's settings: the policy of its tools' routes, and its restart intensity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Calls in flight at once per tool.
    pub bulkhead: usize,
    /// A call's deadline, retries included.
    pub timeout_ms: u64,
    /// The circuit breaker of each tool.
    pub breaker: BreakerSettings,
    /// Retries of read-only and idempotent tools.
    pub retry: RetrySettings,
    /// Restarts tolerated before the engine's supervisor gives up.
    pub restart: RestartSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        let p = PolicySettings::default();
        Self {
            bulkhead: p.bulkhead,
            timeout_ms: p.timeout_ms,
            breaker: p.breaker,
            retry: p.retry,
            restart: RestartSettings::default(),
        }
    }
}

impl EngineSettings {
    /// The route policy settings of this engine's tools.
    pub fn policy(&self) -> PolicySettings {
        PolicySettings {
            bulkhead: self.bulkhead,
            timeout_ms: self.timeout_ms,
            breaker: self.breaker,
            retry: self.retry,
        }
    }
}

/// Circuit breaker settings (resilience4j's names; durations in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Most recent calls judged.
    pub sliding_window_size: u32,
    /// Calls recorded before any rate is judged.
    pub minimum_calls: u32,
    /// Failure percentage that opens the breaker.
    pub failure_rate_threshold: f32,
    /// Slow-call percentage that opens the breaker.
    pub slow_call_rate_threshold: f32,
    /// A call at least this long is slow.
    pub slow_call_duration_ms: u64,
    /// Time open before probing.
    pub wait_in_open_ms: u64,
    /// Probe calls while half-open.
    pub permitted_calls_in_half_open: u32,
    /// Crashes of the engine (counted once per crash) that open the breaker at once; 0: off.
    pub crash_threshold: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerConfig::default().into()
    }
}

impl From<BreakerConfig> for BreakerSettings {
    fn from(c: BreakerConfig) -> Self {
        Self {
            sliding_window_size: c.sliding_window_size,
            minimum_calls: c.minimum_calls,
            failure_rate_threshold: c.failure_rate_threshold,
            slow_call_rate_threshold: c.slow_call_rate_threshold,
            slow_call_duration_ms: millis(c.slow_call_duration),
            wait_in_open_ms: millis(c.wait_in_open),
            permitted_calls_in_half_open: c.permitted_calls_in_half_open,
            crash_threshold: c.crash_threshold,
        }
    }
}

impl From<BreakerSettings> for BreakerConfig {
    fn from(s: BreakerSettings) -> Self {
        Self {
            sliding_window_size: s.sliding_window_size,
            minimum_calls: s.minimum_calls,
            failure_rate_threshold: s.failure_rate_threshold,
            slow_call_rate_threshold: s.slow_call_rate_threshold,
            slow_call_duration: Duration::from_millis(s.slow_call_duration_ms),
            wait_in_open: Duration::from_millis(s.wait_in_open_ms),
            permitted_calls_in_half_open: s.permitted_calls_in_half_open,
            crash_threshold: s.crash_threshold,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: RetryPolicy::default().max_attempts,
        }
    }
}

/// Restart intensity: more than `max_restarts` within `period_ms` and the supervisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartSettings {
    /// Restarts tolerated within the period.
    pub max_restarts: u32,
    /// The period, in milliseconds.
    pub period_ms: u64,
}

impl Default for RestartSettings {
    fn default() -> Self {
        Intensity::default().into()
    }
}

impl From<Intensity> for RestartSettings {
    fn from(i: Intensity) -> Self {
        Self {
            max_restarts: i.max_restarts,
            period_ms: millis(i.period),
        }
    }
}

impl From<RestartSettings> for Intensity {
    fn from(s: RestartSettings) -> Self {
        Self {
            max_restarts: s.max_restarts,
            period: Duration::from_millis(s.period_ms),
        }
    }
}

/// `[tools.<name>]`: what one tool changes of its engine's policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolPolicy {
    /// See [`EngineSettings::bulkhead`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<usize>,
    /// See [`EngineSettings::timeout_ms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// See [`BreakerSettings`].
    #[serde(skip_serializing_if = "BreakerOverride::is_empty")]
    pub breaker: BreakerOverride,
    /// See [`RetrySettings`].
    #[serde(skip_serializing_if = "RetryOverride::is_empty")]
    pub retry: RetryOverride,
}

/// The breaker settings a tool changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)] // The fields are those of BreakerSettings.
pub struct BreakerOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate_threshold: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_rate_threshold: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_in_open_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permitted_calls_in_half_open: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_threshold: Option<u32>,
}

impl BreakerOverride {
    /// Changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The retry settings a tool changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    /// See [`RetrySettings::max_attempts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

impl RetryOverride {
    /// Changes nothing.
    pub fn is_empty(&self) -> bool {
        self.max_attempts.is_none()
    }
}

/// The settings of one route's policy stack: bulkhead → circuit breaker → timeout → retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicySettings {
    /// Calls in flight at once.
    pub bulkhead: usize,
    /// A call's deadline, retries included, in milliseconds.
    pub timeout_ms: u64,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
    /// Retries (of idempotent calls only).
    pub retry: RetrySettings,
}

impl Default for PolicySettings {
    /// Each route's policy before there was a configuration: 256 in flight, the breaker's
    /// defaults, 30 s, 3 attempts.
    fn default() -> Self {
        Self {
            bulkhead: 256,
            timeout_ms: 30_000,
            breaker: BreakerSettings::default(),
            retry: RetrySettings::default(),
        }
    }
}

/// Per-route policy defaults: a bulkhead, a breaker, a deadline, and retries for idempotent
/// tools.
pub fn default_policy(route: &str) -> RoutePolicy {
    PolicySettings::default().route_policy(route)
}

impl PolicySettings {
    /// The policy stack of `route` with these settings.
    pub fn route_policy(&self, route: &str) -> RoutePolicy {
        RoutePolicy::builder(route)
            .bulkhead(self.bulkhead)
            .breaker(self.breaker.into())
            .timeout(Duration::from_millis(self.timeout_ms))
            .retry(RetryPolicy {
                max_attempts: self.retry.max_attempts,
                ..RetryPolicy::default()
            })
            .build()
    }

    /// These settings with what `tool` changes.
    pub fn with(mut self, tool: &ToolPolicy) -> Self {
        let b = &tool.breaker;
        self.bulkhead = tool.bulkhead.unwrap_or(self.bulkhead);
        self.timeout_ms = tool.timeout_ms.unwrap_or(self.timeout_ms);
        let s = &mut self.breaker;
        s.sliding_window_size = b.sliding_window_size.unwrap_or(s.sliding_window_size);
        s.minimum_calls = b.minimum_calls.unwrap_or(s.minimum_calls);
        s.failure_rate_threshold = b.failure_rate_threshold.unwrap_or(s.failure_rate_threshold);
        s.slow_call_rate_threshold = b
            .slow_call_rate_threshold
            .unwrap_or(s.slow_call_rate_threshold);
        s.slow_call_duration_ms = b.slow_call_duration_ms.unwrap_or(s.slow_call_duration_ms);
        s.wait_in_open_ms = b.wait_in_open_ms.unwrap_or(s.wait_in_open_ms);
        s.permitted_calls_in_half_open = b
            .permitted_calls_in_half_open
            .unwrap_or(s.permitted_calls_in_half_open);
        s.crash_threshold = b.crash_threshold.unwrap_or(s.crash_threshold);
        self.retry.max_attempts = tool.retry.max_attempts.unwrap_or(self.retry.max_attempts);
        self
    }
}

/// The policy settings of every built-in route: per engine, and per tool over its engine's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutePolicies {
    engines: BTreeMap<String, PolicySettings>,
    tools: BTreeMap<String, ToolPolicy>,
}

impl RoutePolicies {
    /// The route policies a configuration sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            engines: config
                .engines
                .iter()
                .map(|(name, s)| (name.to_string(), s.policy()))
                .collect(),
            tools: config.tools.clone(),
        }
    }

    /// The settings of `tool`, a tool of `engine` (an engine without settings: the defaults).
    pub fn settings(&self, engine: &str, tool: &str) -> PolicySettings {
        let base = self.engines.get(engine).copied().unwrap_or_default();
        match self.tools.get(tool) {
            Some(t) => base.with(t),
            None => base,
        }
    }

    /// The policy stack of `tool`, a tool of `engine`.
    pub fn route_policy(&self, engine: &str, tool: &str) -> RoutePolicy {
        self.settings(engine, tool).route_policy(tool)
    }
}

impl Config {
    /// The supervision tree: each engine's restart intensity, the top-level budget and the
    /// subtree backoff.
    pub fn tree(&self) -> TreeConfig {
        let s = &self.supervision;
        TreeConfig {
            engine_overrides: self.restart_intensities(),
            budget: Intensity {
                max_restarts: s.max_restarts,
                period: Duration::from_millis(s.period_ms),
            },
            subtree_backoff: Backoff::new(
                Duration::from_millis(s.restart_backoff_ms),
                Duration::from_millis(s.restart_backoff_max_ms),
            ),
            subtree_backoff_reset_after: Duration::from_millis(s.backoff_reset_after_ms),
            ..TreeConfig::default()
        }
    }

    /// Each engine's restart intensity, by engine name.
    pub fn restart_intensities(&self) -> BTreeMap<String, Intensity> {
        self.engines
            .iter()
            .map(|(name, s)| (name.to_string(), s.restart.into()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of a fully set configuration, as key patterns.
    fn leaf_patterns(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    path.push(k.clone());
                    leaf_patterns(v, path, out);
                    path.pop();
                }
            }
            _ => {
                let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                out.push(keys::pattern_of(&segs));
            }
        }
    }

    #[test]
    fn the_key_table_is_the_keys_of_config() {
        let mut full = Config::default();
        full.server.http = Some("127.0.0.1:7300".parse().unwrap());
        full.governance.resource = Some("https://mcp.example/mcp".into());
        full.governance.oauth.issuer = Some("https://as.example".into());
        full.governance.oauth.jwks_file = Some("jwks.json".into());
        full.governance.oauth.jwks_url = Some("https://as.example/jwks".into());
        full.governance.audit.checkpoint_dir = Some("checkpoints".into());
        full.governance.audit.key_file = Some("audit.key".into());
        full.tools.insert(
            "registry_get".into(),
            ToolPolicy {
                bulkhead: Some(1),
                timeout_ms: Some(1),
                breaker: BreakerOverride {
                    sliding_window_size: Some(1),
                    minimum_calls: Some(1),
                    failure_rate_threshold: Some(1.0),
                    slow_call_rate_threshold: Some(1.0),
                    slow_call_duration_ms: Some(1),
                    wait_in_open_ms: Some(1),
                    permitted_calls_in_half_open: Some(1),
                    crash_threshold: Some(1),
                },
                retry: RetryOverride {
                    max_attempts: Some(1),
                },
            },
        );
        let value = toml::Value::try_from(&full).unwrap();
        let mut found = Vec::new();
        leaf_patterns(&value, &mut Vec::new(), &mut found);
        found.sort();
        found.dedup();
        let mut table: Vec<String> = keys::KEYS.iter().map(|k| k.path.to_string()).collect();
        table.sort();
        assert_eq!(found, table);
    }

    #[test]
    fn defaults_are_todays_policies() {
        let p = RoutePolicies::from_config(&Config::default());
        assert_eq!(
            p.settings("registry", "registry_get"),
            PolicySettings::default()
        );
        let breaker: BreakerConfig = p.settings("workflow", "x").breaker.into();
        assert_eq!(breaker, BreakerConfig::default());
        assert_eq!(
            Config::default().restart_intensities()["execution"],
            Intensity::default()
        );
    }

    #[test]
    fn a_tool_changes_only_what_it_sets() {
        let mut config = Config::default();
        config.engines.registry.timeout_ms = 5_000;
        config.tools.insert(
            "registry_get".into(),
            ToolPolicy {
                bulkhead: Some(8),
                ..ToolPolicy::default()
            },
        );
        let p = RoutePolicies::from_config(&config);
        let get = p.settings("registry", "registry_get");
        assert_eq!((get.bulkhead, get.timeout_ms), (8, 5_000));
        let put = p.settings("registry", "registry_put");
        assert_eq!((put.bulkhead, put.timeout_ms), (256, 5_000));
    }
}
