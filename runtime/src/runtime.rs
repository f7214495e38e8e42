//! The runtime: the store, the supervised engines, the router, and the transports.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ensemble_actors::store::{Store, StoreError, StoreOptions};
use ensemble_supervision::{EventBus, Supervisor, SupervisorMsg};
use ractor::ActorRef;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RoutePolicies};
use crate::engines::{EngineConfig, EngineSlots, TreeConfig, engines, register_tools_with};
use crate::mcp::McpService;
use crate::router::Router;
use ensemble_actors::execution::ExecConfig;

/// Why the runtime could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engines could not start.
    #[error("the engines could not start: {0}")]
    Engines(String),
    /// A tool could not be registered.
    #[error(transparent)]
    Register(#[from] crate::router::RegisterError),
    /// The MCP transport failed.
    #[error("MCP transport: {0}")]
    Transport(String),
    /// The governance configuration cannot be used.
    #[error("{0}")]
    Governance(String),
}

/// Builds a [`Runtime`].
///
/// ```no_run
/// # async fn run() -> Result<(), ensemble_runtime::runtime::RuntimeError> {
/// let runtime = ensemble_runtime::runtime::Runtime::builder().in_memory().build().await?;
/// let answer = runtime
///     .router()
///     .call("registry_list", serde_json::json!({}), None)
///     .await;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    data_dir: Option<PathBuf>,
    in_memory: bool,
    test_tools: bool,
    test_log: Option<PathBuf>,
    execution: ExecConfig,
    tree: TreeConfig,
    events: Option<EventBus>,
    store_options: StoreOptions,
    policies: RoutePolicies,
    shell: ensemble_actors::learning::LearnerConfig,
    development: ensemble_actors::learning::LearnerConfig,
    quality: ensemble_actors::learning::LearnerConfig,
    devops: ensemble_actors::learning::LearnerConfig,
    devops_policy: ensemble_protocol::devops::RiskPolicy,
    promotion: ensemble_actors::promotion::PromotionConfig,
    task_tools: Vec<String>,
    required_task_tools: Vec<String>,
    input_first_task_tools: Vec<String>,
    governance: crate::config::governance::GovernanceConfig,
    limits: crate::limits::Limits,
}

impl RuntimeBuilder {
    /// Persist in `dir` (default `./ensemble-data`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keep everything in a temporary store that disappears with the runtime.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// Also serve tools that exist only to test failure handling (`registry_debug_crash`).
    pub fn test_tools(mut self, on: bool) -> Self {
        self.test_tools = on;
        self
    }

    /// Where the test-only `debug_sleep` tool records each sleep's label (a line per start).
    pub fn test_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.test_log = Some(path.into());
        self
    }

    /// The shell learner's flush interval and memory budget.
    pub fn shell_learner(mut self, config: ensemble_actors::learning::LearnerConfig) -> Self {
        self.shell = config;
        self
    }

    /// The development learner's flush interval and memory budget.
    pub fn development_learner(mut self, config: ensemble_actors::learning::LearnerConfig) -> Self {
        self.development = config;
        self
    }

    /// The quality learner's flush interval and memory budget.
    pub fn quality_learner(mut self, config: ensemble_actors::learning::LearnerConfig) -> Self {
        self.quality = config;
        self
    }

    /// The devops learner's flush interval and memory budget, and the risk policy
    /// `devops_predict` and `devops_recommend` apply when a call gives none.
    pub fn devops_learner(
        mut self,
        config: ensemble_actors::learning::LearnerConfig,
        policy: ensemble_protocol::devops::RiskPolicy,
    ) -> Self {
        self.devops = config;
        self.devops_policy = policy;
        self
    }

    /// The execution engine's scheduling policy, workers and queue capacity.
    pub fn execution(mut self, config: ExecConfig) -> Self {
        self.execution = config;
        self
    }

    /// The supervision tree's per-engine restart intensities, top-level budget and backoffs.
    pub fn supervision(mut self, tree: TreeConfig) -> Self {
        self.tree = tree;
        self
    }

    /// Everything a [`Config`] sets: the store (`[store]`), the execution engine
    /// (`[execution]`), the engines' and tools' policies and restart intensities
    /// (`[engines.*]`, `[tools.*]`), and what clients may send (`[server.limits]`); the rest of
    /// `[server]` is the transports' business, not the builder's.
    pub fn config(mut self, config: &Config) -> Self {
        self.data_dir = Some(config.store.data_dir.clone());
        self.in_memory = config.store.in_memory;
        self.store_options = config.store.options();
        self.execution = config.execution.exec_config();
        self.policies = RoutePolicies::from_config(config);
        self.shell = config.learning.shell.learner_config();
        self.development = config.learning.development.learner_config();
        self.quality = config.learning.quality.learner_config();
        self.devops = config.learning.devops.learner_config();
        self.devops_policy = config.learning.devops.risk_policy();
        self.promotion = config.promotion.promotion_config();
        self.tree = config.tree();
        self.governance = config.governance.clone();
        self.limits = config.server.limits.limits();
        self
    }

    /// What clients may send, over either transport (`[server.limits]`).
    pub fn limits(mut self, limits: crate::limits::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Also offers these tools (a host's own, registered later) as MCP tasks to clients that
    /// negotiated the tasks extension, beside `workflow_run`; other clients call them as usual.
    pub fn task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.task_tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Serves these tools (a host's own) only as MCP tasks: a client without the tasks extension
    /// gets JSON-RPC error -32021 (missing required client capability) naming it.
    pub fn required_task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_task_tools
            .extend(tools.into_iter().map(Into::into));
        self
    }

    /// Serves these tools (a host's own) only as MCP tasks, after the input they ask for first:
    /// a protocol 2026-07-28 client answers their questions in input-required rounds and then
    /// gets the task (see [`McpService::with_input_first_task_tools`]).
    pub fn input_first_task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.input_first_task_tools
            .extend(tools.into_iter().map(Into::into));
        self
    }

    /// Governs the runtime: identities, roles and what they may call (`[governance]`).
    /// Checked at [`build`](Self::build) against the tools, resources and prompts served then.
    pub fn governance(mut self, config: crate::config::governance::GovernanceConfig) -> Self {
        self.governance = config;
        self
    }

    /// Send supervisor events to `events`.
    pub fn events(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
    }

    /// Opens the store, starts the engines and registers their tools.
    pub async fn build(self) -> Result<Runtime, RuntimeError> {
        // Before any route takes its metric handles.
        crate::telemetry::prometheus();
        let store = if self.in_memory {
            Store::temporary_with(&self.store_options)?
        } else {
            Store::open_with(
                self.data_dir
                    .unwrap_or_else(|| PathBuf::from("ensemble-data")),
                &self.store_options,
            )?
        };
        let events = self.events.unwrap_or_default();
        let started_ms = crate::dashboard::unix_ms();
        let task_policy = serde_json::to_value(self.execution.policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        // The orchestration engines call tools through the router, so it exists first.
        let router = Router::new();
        let config = EngineConfig {
            execution: self.execution,
            workflow: ensemble_actors::workflow::WorkflowConfig {
                durable: !self.in_memory,
                ..Default::default()
            },
            test_tools: self.test_tools,
            test_log: self.test_log,
            tree: self.tree,
            policies: self.policies,
            shell: self.shell,
            development: self.development,
            quality: self.quality,
            devops: self.devops,
            devops_policy: self.devops_policy,
            promotion: self.promotion,
            audit: Default::default(),
            roles: Default::default(),
            retrieval_dir: (!self.in_memory).then(|| store.path().join("retrieval")),
        };
        let invoker = crate::governance::invoker::GovernedInvoker::new(router.clone());
        let (spec, slots) = engines(
            &store,
            &events,
            Arc::new(invoker.clone()),
            crate::runs::run_observer(&router),
            &config,
        );
        // Tools first: a workflow resuming at start calls them. (A host's own tools come
        // later; a resumed step that calls one before it is registered fails as unknown.)
        register_tools_with(&router, &slots, self.test_tools, &config.policies)?;
        crate::artifacts::register_artifact_resources(&router, &slots.registry)?;
        crate::runs::register_run_resources(&router, &slots.workflow)?;
        let governed = self.governance.is_configured();
        let mut tools: Vec<String> = router
            .mcp_tools()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        if governed {
            tools.extend(
                crate::governance::tools::TOOLS
                    .iter()
                    .map(|t| t.to_string()),
            );
        }
        let known = ensemble_actors::governance::policy::Known {
            tools,
            prompts: router.prompts().into_iter().map(|p| p.name).collect(),
            resource_schemes: vec!["ensemble".into()],
        };
        let read_only = {
            let router = router.clone();
            move |tool: &str| router.annotations(tool).is_some_and(|a| a.read_only)
        };
        let governance = crate::governance::Governance::from_config(&self.governance, &known)
            .and_then(|g| {
                g.attach(
                    &store,
                    read_only,
                    crate::governance::tools::TOOLS
                        .iter()
                        .map(|t| t.to_string()),
                )
            })
            .map_err(|e| RuntimeError::Governance(e.to_string()))?;
        if governance.is_governed() {
            crate::governance::tools::register(&router, &governance)?;
        }
        // Before any engine starts: a workflow resuming at start runs as its submitter, and
        // the promotion engine writes what a crash left in its outbox to the audit log.
        invoker.govern(governance.clone());
        if let Some(log) = governance.audit_log() {
            let _ = config.audit.set(log.clone());
        }
        if governance.is_governed() {
            let roles = self.governance.roles.iter().map(|r| r.name.clone());
            let _ = config.roles.set(roles.collect());
        }
        governance.spawn_retain(std::time::Duration::from_secs(60));
        let (supervisor, stopped) = Supervisor::start(spec)
            .await
            .map_err(|e| RuntimeError::Engines(e.to_string()))?;
        slots.export_states();
        let gone = CancellationToken::new();
        let stopping = Arc::new(AtomicBool::new(false));
        {
            let (gone, stopping) = (gone.clone(), stopping.clone());
            tokio::spawn(async move {
                let _ = stopped.await;
                if !stopping.load(Ordering::Acquire) {
                    tracing::error!(
                        "the engines are gone for good: the top-level restart budget is spent"
                    );
                    gone.cancel();
                }
            });
        }
        // Waiting workflow runs (and the test engine's sleeps) are what runs long.
        let mut task_tools = vec!["workflow_run".to_string(), "debug_sleep".to_string()];
        task_tools.extend(self.task_tools);
        Ok(Runtime {
            router,
            governance,
            task_tools: Arc::new(task_tools),
            required_task_tools: Arc::new(self.required_task_tools),
            input_first_task_tools: Arc::new(self.input_first_task_tools),
            store,
            supervisor,
            slots,
            events,
            gone,
            stopping,
            started_ms,
            task_policy,
            limits: Arc::new(self.limits),
        })
    }
}

/// A running Ensemble: engines under supervision, their tools routed, ready to serve.
#[derive(Debug)]
pub struct Runtime {
    router: Router,
    /// Who may use what.
    governance: crate::governance::Governance,
    /// Tools offered as MCP tasks.
    task_tools: Arc<Vec<String>>,
    /// Tools served only as MCP tasks.
    required_task_tools: Arc<Vec<String>>,
    /// Task-only tools that gather their input first.
    input_first_task_tools: Arc<Vec<String>>,
    store: Store,
    supervisor: ActorRef<SupervisorMsg>,
    slots: EngineSlots,
    events: EventBus,
    /// Cancelled when the engines supervisor stopped without being asked to.
    gone: CancellationToken,
    stopping: Arc<AtomicBool>,
    /// When it was built (Unix ms).
    started_ms: u64,
    /// How the task queue is ordered (`fifo`, `priority`…).
    task_policy: String,
    /// What clients may send.
    limits: Arc<crate::limits::Limits>,
}

impl Runtime {
    /// Starts building a runtime.
    pub fn builder() -> RuntimeBuilder {
        // Each learner with its own defaults, as a configuration without `[learning]` has.
        let learning = crate::config::LearningConfig::default();
        RuntimeBuilder {
            shell: learning.shell.learner_config(),
            development: learning.development.learner_config(),
            quality: learning.quality.learner_config(),
            devops: learning.devops.learner_config(),
            devops_policy: learning.devops.risk_policy(),
            ..RuntimeBuilder::default()
        }
    }

    /// The tool router: register a host's own actor tools here.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The built-in engines' slots, for typed calls without JSON.
    pub fn engines(&self) -> &EngineSlots {
        &self.slots
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The supervisor event stream.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// When the runtime was built (Unix ms).
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// How the task queue is ordered (`fifo`, `priority`, `deadline`, `priority_deadline`).
    pub fn task_policy(&self) -> &str {
        &self.task_policy
    }

    /// What clients may send, over either transport.
    pub fn limits(&self) -> &Arc<crate::limits::Limits> {
        &self.limits
    }

    /// The engines supervisor.
    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// Completes when the engines are gone for good: the `engines` supervisor spent its
    /// top-level restart budget and stopped everything. A runtime in that state serves nothing;
    /// its host should drain and exit (so that a service manager restarts it), as
    /// `ensemble serve` does.
    pub async fn gone(&self) {
        self.gone.cancelled().await
    }

    /// True once the engines are gone for good (see [`gone`](Self::gone)).
    pub fn is_gone(&self) -> bool {
        self.gone.is_cancelled()
    }

    /// A token cancelled when the engines are gone for good, for tasks that outlive a borrow.
    pub fn gone_token(&self) -> CancellationToken {
        self.gone.clone()
    }

    /// The runtime's governance.
    pub fn governance(&self) -> &crate::governance::Governance {
        &self.governance
    }

    /// An MCP handler over this runtime's tools, its caller the stdio identity.
    pub fn mcp_service(&self) -> McpService {
        McpService::new(self.router.clone())
            .with_governance(self.governance.clone(), self.governance.stdio_identity())
            .with_task_tools(self.task_tools.iter().cloned())
            .with_required_task_tools(self.required_task_tools.iter().cloned())
            .with_input_first_task_tools(self.input_first_task_tools.iter().cloned())
    }

    /// Serves MCP on stdin/stdout until the client closes the stream.
    pub async fn serve_stdio(&self) -> Result<(), RuntimeError> {
        let service = self.mcp_service();
        let transport = crate::stdio::stdio_transport()
            .with_limits(self.limits.clone())
            .with_fast_lane(service.clone());
        let running = service
            .serve(transport)
            .await
            .map_err(|e| RuntimeError::Transport(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| RuntimeError::Transport(e.to_string()))?;
        Ok(())
    }

    /// Stops the engines gracefully (newest first) and flushes the store.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        self.stopping.store(true, Ordering::Release);
        let _ = self.supervisor.stop_and_wait(None, None).await;
        // A last signed checkpoint of the audit log.
        self.governance.close().await;
        self.store.flush().await?;
        Ok(())
    }
}
