//! The engines supervisor: each engine runs under a supervisor of its own, its actor published in
//! a slot, and its tools are
//! routed to it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ensemble_actors::debug::{DebugActor, DebugMsg};
use ensemble_actors::execution::{ExecArgs, ExecConfig, ExecMsg, ExecutionActor};
use ensemble_actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble_actors::learning::development::{DevLearner, DevModel, DevMsg};
use ensemble_actors::learning::devops::{DevopsLearner, DevopsModel, DevopsMsg, DevopsObservation};
use ensemble_actors::learning::quality::{
    QualityLearner, QualityModel, QualityMsg, QualityObservation,
};
use ensemble_actors::learning::shell::{ShellLearner, ShellModel, ShellMsg};
use ensemble_actors::learning::{LearnerArgs, LearnerConfig, LearnerMsg, Model, Reply};
use ensemble_actors::promotion::{
    AuditSink, KnownRoles, PromotionActor, PromotionArgs, PromotionConfig, PromotionMsg,
};
use ensemble_actors::registry::{RegistryActor, RegistryMsg};
use ensemble_actors::retrieval::{RetrievalActor, RetrievalArgs, RetrievalMsg, SubtreeResolver};
use ensemble_actors::store::Store;
use ensemble_actors::taxonomy::{TaxonomyActor, TaxonomyMsg};
use ensemble_actors::validation::{ValidationActor, ValidationMsg};
use ensemble_actors::workflow::{
    RunObserver, WorkflowActor, WorkflowArgs, WorkflowConfig, WorkflowMsg,
};
use ensemble_supervision::{
    ActorSlot, CallContext, CancellationToken, ChildSpec, EventBus, RoutePolicy, SlotState,
    SupervisorMsg, SupervisorSpec,
};
use serde_json::Value;

use crate::config::{PolicySettings, RoutePolicies};
pub use crate::config::{TreeConfig, default_policy};
use crate::router::{
    ActorTool, Annotations, DispatchTool, RegisterError, Router, ToolError, attempt,
};
use ensemble_protocol::devops::{PredictRequest, RecommendRequest, RiskPolicy};
use ensemble_protocol::learning::{
    ExportRequest, ExportResponse, ImportRequest, ImportResponse, LearnerStats, StatsRequest,
};

/// The slots of the built-in engines, for hosts that call them with typed messages.
#[derive(Debug, Clone)]
pub struct EngineSlots {
    /// The artifact registry.
    pub registry: ActorSlot<RegistryMsg>,
    /// JSON-schema validation.
    pub validation: ActorSlot<ValidationMsg>,
    /// Task execution (queue, workers, result cache).
    pub execution: ActorSlot<ExecMsg>,
    /// DAG workflows.
    pub workflow: ActorSlot<WorkflowMsg>,
    /// Gated promotion of artifacts through stages, with hand-off reports.
    pub promotion: ActorSlot<PromotionMsg>,
    /// Full-text retrieval (RAG) collections.
    pub retrieval: ActorSlot<RetrievalMsg>,
    /// SKOS concept schemes (category filters of retrieval, classification).
    pub taxonomy: ActorSlot<TaxonomyMsg>,
    /// Test-only tools (when the runtime serves them).
    pub debug: ActorSlot<DebugMsg>,
    /// The shell learner (command history, next-command suggestions).
    pub shell: ActorSlot<LearnerMsg<ShellModel>>,
    /// The development learner (import paths and code conventions).
    pub development: ActorSlot<LearnerMsg<DevModel>>,
    /// The quality learner (which tests to run for a change).
    pub quality: ActorSlot<LearnerMsg<QualityModel>>,
    /// The devops learner (how likely a change is to fail).
    pub devops: ActorSlot<LearnerMsg<DevopsModel>>,
    /// The risk policy `devops_predict` and `devops_recommend` apply when a call gives none
    /// (`[learning.devops]`).
    pub devops_policy: RiskPolicy,
    /// Each engine's own supervisor, by engine name (for its children and their states).
    pub supervisors: BTreeMap<&'static str, ActorSlot<SupervisorMsg>>,
}

/// An engine as operators see it: serving, restarting (its actor or its whole subtree), or
/// stopped. The value of the `ensemble_engine_state{engine}` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Serving calls.
    Running,
    /// Not serving now, coming back (starting, or waiting for a restart).
    Restarting,
    /// Not serving, and nothing will restart it (its tree stopped or gave up).
    Stopped,
}

impl EngineState {
    /// The gauge value: 0 running, 1 restarting, 2 stopped.
    pub fn gauge_value(self) -> f64 {
        match self {
            EngineState::Running => 0.0,
            EngineState::Restarting => 1.0,
            EngineState::Stopped => 2.0,
        }
    }

    /// Lower-case name, as in logs and `/ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Running => "running",
            EngineState::Restarting => "restarting",
            EngineState::Stopped => "stopped",
        }
    }

    fn of<M: ractor::Message>(state: &SlotState<M>) -> Self {
        match state {
            SlotState::Running { .. } => EngineState::Running,
            // A stopped slot under a live tree is between its exit and its scheduled restart.
            SlotState::Starting | SlotState::Restarting { .. } | SlotState::Stopped => {
                EngineState::Restarting
            }
            SlotState::Gone => EngineState::Stopped,
        }
    }
}

/// Something done to each engine's slot in turn (slots differ in message type).
trait SlotVisitor {
    fn visit<M: ractor::Message>(&mut self, name: &'static str, slot: &ActorSlot<M>);
}

impl EngineSlots {
    /// Empty slots for every engine, named after it.
    fn new() -> Self {
        Self {
            registry: ActorSlot::new("registry"),
            validation: ActorSlot::new("validation"),
            execution: ActorSlot::new("execution"),
            workflow: ActorSlot::new("workflow"),
            promotion: ActorSlot::new("promotion"),
            retrieval: ActorSlot::new("retrieval"),
            taxonomy: ActorSlot::new("taxonomy"),
            debug: ActorSlot::new("debug"),
            shell: ActorSlot::new("shell"),
            development: ActorSlot::new("development"),
            quality: ActorSlot::new("quality"),
            devops: ActorSlot::new("devops"),
            devops_policy: RiskPolicy::default(),
            supervisors: BTreeMap::new(),
        }
    }

    /// Visits every engine that runs (the test-only one only when it was started).
    fn each(&self, v: &mut impl SlotVisitor) {
        v.visit("registry", &self.registry);
        v.visit("validation", &self.validation);
        v.visit("execution", &self.execution);
        v.visit("workflow", &self.workflow);
        v.visit("promotion", &self.promotion);
        v.visit("taxonomy", &self.taxonomy);
        v.visit("retrieval", &self.retrieval);
        v.visit("shell", &self.shell);
        v.visit("development", &self.development);
        v.visit("quality", &self.quality);
        v.visit("devops", &self.devops);
        if self.supervisors.contains_key("debug") {
            v.visit("debug", &self.debug);
        }
    }

    /// Every built-in engine's state, by name (the test-only engine when it runs).
    pub fn states(&self) -> Vec<(&'static str, EngineState)> {
        struct States(Vec<(&'static str, EngineState)>);
        impl SlotVisitor for States {
            fn visit<M: ractor::Message>(&mut self, name: &'static str, slot: &ActorSlot<M>) {
                self.0.push((name, EngineState::of(&slot.state())));
            }
        }
        let mut states = States(Vec::new());
        self.each(&mut states);
        states.0
    }

    /// Keeps `ensemble_engine_state{engine}` equal to each engine's state, until the slots
    /// are dropped.
    pub(crate) fn export_states(&self) {
        struct Export;
        impl SlotVisitor for Export {
            fn visit<M: ractor::Message>(&mut self, name: &'static str, slot: &ActorSlot<M>) {
                let gauge = metrics::gauge!("ensemble_engine_state", "engine" => name);
                let mut rx = slot.subscribe();
                gauge.set(EngineState::of(&rx.borrow_and_update()).gauge_value());
                tokio::spawn(async move {
                    while rx.changed().await.is_ok() {
                        gauge.set(EngineState::of(&rx.borrow_and_update()).gauge_value());
                    }
                });
            }
        }
        self.each(&mut Export);
    }
}

/// How the engines run.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// The execution engine's policy, workers and limits.
    pub execution: ExecConfig,
    /// The workflow engine's journal and limits.
    pub workflow: WorkflowConfig,
    /// Start the test-only engine.
    pub test_tools: bool,
    /// Where the test-only engine logs each sleep's label.
    pub test_log: Option<PathBuf>,
    /// The supervision tree's intensities, budget and backoffs.
    pub tree: TreeConfig,
    /// The policy settings of the engines' tools (`[engines.<name>]`, `[tools.<name>]`).
    pub policies: RoutePolicies,
    /// The shell learner's flush interval and memory budget (`[learning.shell]`).
    pub shell: LearnerConfig,
    /// The development learner's (`[learning.development]`).
    pub development: LearnerConfig,
    /// The quality learner's (`[learning.quality]`).
    pub quality: LearnerConfig,
    /// The devops learner's (`[learning.devops]`).
    pub devops: LearnerConfig,
    /// The devops learner's risk policy (`[learning.devops]`).
    pub devops_policy: ensemble_protocol::devops::RiskPolicy,
    /// The promotion engine's (`[promotion]`).
    pub promotion: PromotionConfig,
    /// The governance audit log, set once the runtime has opened it (before the engines
    /// start); the promotion engine records its transitions there.
    pub audit: AuditSink,
    /// The governance role names, set with the audit log (sign-off gates name only these).
    pub roles: KnownRoles,
    /// Where retrieval collections keep their index files (`<data-dir>/retrieval`); in memory
    /// when `None`.
    pub retrieval_dir: Option<PathBuf>,
}

/// Category filters of retrieval ask the taxonomy engine for the concepts under the ones named.
fn subtree_resolver(taxonomy: ActorSlot<TaxonomyMsg>) -> SubtreeResolver {
    Arc::new(move |concepts: Vec<String>| {
        let taxonomy = taxonomy.clone();
        Box::pin(async move {
            taxonomy
                .ask(move |reply| TaxonomyMsg::Subtrees(concepts, reply))
                .await
                .map(|s| (s.members, s.unknown))
                .map_err(|fault| format!("the taxonomy engine: {fault}"))
        })
    })
}

/// The policy of a call that may legitimately take long (a waiting `workflow_run`): a
/// bulkhead only; a deadline or a slow-call breaker would punish it for doing its job.
fn long_call_policy(route: &str, settings: &PolicySettings) -> RoutePolicy {
    RoutePolicy::builder(route)
        .bulkhead(settings.bulkhead)
        .build()
}

impl ToolInvoker for Router {
    fn traits(&self, tool: &str) -> Option<ToolTraits> {
        self.annotations(tool).map(|a| ToolTraits {
            read_only: a.read_only,
            idempotent: a.idempotent,
        })
    }

    fn invoke(&self, tool: &str, arguments: Value, cancel: CancellationToken) -> InvokeFuture {
        let (router, tool) = (self.clone(), tool.to_string());
        Box::pin(async move {
            router
                .call(&tool, arguments, Some(cancel))
                .await
                .map_err(|e| match e {
                    ToolError::UnknownTool(t) => InvokeError::UnknownTool(t),
                    ToolError::Cancelled => InvokeError::Cancelled,
                    other => InvokeError::Failed(other.to_string()),
                })
        })
    }
}

/// A request about queued tasks or workflow runs, wrapped by `acting_for` (the engine's
/// `ActingFor`) when the caller of the tool call being served sees only the work it submitted
/// (governed, with no role in `governance.all_work_roles`).
pub(crate) fn for_caller<M>(msg: M, acting_for: fn(String, Box<M>) -> M) -> M {
    match crate::governance::work_owner() {
        Some(owner) => acting_for(owner, Box::new(msg)),
        None => msg,
    }
}

/// `task_submit`: the task acts for its caller (the tool runs with their rights; a result
/// cached for someone else is not looked up for a caller who may not call the tool).
fn submit_as_caller(
    mut req: ensemble_protocol::execution::SubmitRequest,
    cancel: CancellationToken,
    reply: ractor::RpcReplyPort<
        Result<
            ensemble_protocol::execution::SubmitResponse,
            ensemble_protocol::execution::ExecError,
        >,
    >,
) -> ExecMsg {
    req.submitter = crate::governance::current_principal();
    if let Some((who, governance)) = crate::governance::current_call()
        && !governance.allows(
            &who,
            ensemble_actors::governance::policy::Kind::Tool,
            &req.tool,
        )
    {
        req.cache_ttl_s = None;
    }
    // A caller who sees only its own work may wait only for its own tasks.
    for_caller(ExecMsg::Submit(req, cancel, reply), ExecMsg::ActingFor)
}

/// The engines supervisor's spec and the slots of its children: each engine runs under a
/// supervisor of its own (its own restart intensity), and the one-for-one `engines`
/// supervisor restarts a given-up engine after a growing backoff, within the top-level budget.
/// The orchestration engines call tools through `invoker` (the runtime's router); the
/// workflow engine tells `runs` of each run that changes.
pub fn engines(
    store: &Store,
    events: &EventBus,
    invoker: Arc<dyn ToolInvoker>,
    runs: RunObserver,
    config: &EngineConfig,
) -> (SupervisorSpec, EngineSlots) {
    let mut slots = EngineSlots::new();
    let (s1, s2) = (store.clone(), store.clone());
    let shell_args = LearnerArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: config.shell,
    };
    let dev_args = LearnerArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: config.development,
    };
    let quality_args = LearnerArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: config.quality,
    };
    let devops_args = LearnerArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: config.devops,
    };
    slots.devops_policy = config.devops_policy;
    let exec_args = ExecArgs {
        store: store.clone(),
        invoker: invoker.clone(),
        config: config.execution,
    };
    let promotion_args = PromotionArgs {
        store: store.clone(),
        registry: slots.registry.clone(),
        validation: slots.validation.clone(),
        invoker: invoker.clone(),
        audit: config.audit.clone(),
        roles: config.roles.clone(),
        config: config.promotion,
    };
    let retrieval_args = RetrievalArgs {
        store: store.clone(),
        dir: config.retrieval_dir.clone(),
        registry: slots.registry.clone(),
        subtrees: Some(subtree_resolver(slots.taxonomy.clone())),
    };
    let s3 = store.clone();
    let workflow_args = WorkflowArgs {
        store: store.clone(),
        exec: slots.execution.clone(),
        invoker,
        config: config.workflow,
        observer: Some(runs),
    };
    let tree = &config.tree;
    let mut children = vec![
        (
            "registry",
            ChildSpec::actor(&slots.registry, move || (RegistryActor, s1.clone())),
        ),
        (
            "validation",
            ChildSpec::actor(&slots.validation, move || (ValidationActor, s2.clone())),
        ),
        (
            "execution",
            ChildSpec::actor(&slots.execution, move || {
                (ExecutionActor, exec_args.clone())
            }),
        ),
        (
            "workflow",
            ChildSpec::actor(&slots.workflow, move || {
                (WorkflowActor, workflow_args.clone())
            }),
        ),
        (
            "promotion",
            ChildSpec::actor(&slots.promotion, move || {
                (PromotionActor, promotion_args.clone())
            }),
        ),
        (
            "taxonomy",
            ChildSpec::actor(&slots.taxonomy, move || (TaxonomyActor, s3.clone())),
        ),
        (
            "retrieval",
            ChildSpec::actor(&slots.retrieval, move || {
                (RetrievalActor, retrieval_args.clone())
            }),
        ),
        (
            "shell",
            ChildSpec::actor(&slots.shell, move || {
                (ShellLearner::default(), shell_args.clone())
            }),
        ),
        (
            "development",
            ChildSpec::actor(&slots.development, move || {
                (DevLearner::default(), dev_args.clone())
            }),
        ),
        (
            "quality",
            ChildSpec::actor(&slots.quality, move || {
                (QualityLearner::default(), quality_args.clone())
            }),
        ),
        (
            "devops",
            ChildSpec::actor(&slots.devops, move || {
                (DevopsLearner::default(), devops_args.clone())
            }),
        ),
    ];
    if config.test_tools {
        let log = config.test_log.clone();
        children.push((
            "debug",
            ChildSpec::actor(&slots.debug, move || (DebugActor, log.clone())),
        ));
    }
    let mut spec = SupervisorSpec::new("engines")
        .events(events.clone())
        .intensity(tree.budget.max_restarts, tree.budget.period)
        .backoff(tree.subtree_backoff)
        .backoff_reset_after(tree.subtree_backoff_reset_after);
    for (name, child) in children {
        let intensity = tree.intensity(name);
        let engine = SupervisorSpec::new(name)
            .events(events.clone())
            .intensity(intensity.max_restarts, intensity.period)
            .backoff(tree.engine_backoff)
            .child(child);
        let slot = ActorSlot::new(name);
        spec = spec.child(ChildSpec::supervisor(engine, &slot));
        slots.supervisors.insert(name, slot);
    }
    (spec, slots)
}

/// A tool of the engine in `slot`, with its engine's (or its own) policy stack.
pub(crate) fn engine_tool<M: ractor::Message>(
    slot: &ActorSlot<M>,
    name: &'static str,
    description: &'static str,
    annotations: Annotations,
    policies: &RoutePolicies,
) -> ActorTool<M> {
    ActorTool {
        name,
        description,
        annotations,
        slot: slot.clone(),
        policy: policies.route_policy(slot.name(), name),
    }
}

/// Registers the built-in engines' tools with the default policies; `test_tools` adds tools
/// that exist only to exercise failure handling (`registry_debug_crash`).
pub fn register_tools(
    router: &Router,
    slots: &EngineSlots,
    test_tools: bool,
) -> Result<(), RegisterError> {
    register_tools_with(router, slots, test_tools, &RoutePolicies::default())
}

/// [`register_tools`] with each route's policy from `policies`.
pub fn register_tools_with(
    router: &Router,
    slots: &EngineSlots,
    test_tools: bool,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let reg = |name, description, annotations| {
        engine_tool(&slots.registry, name, description, annotations, policies)
    };
    router.register_actor(
        reg(
            "registry_put",
            "Store an immutable, semver-versioned artifact (JSON `content` or `content_base64`); \
             returns its sha256 digest. Re-putting identical content is a no-op.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        RegistryMsg::Put,
    )?;
    router.register_actor(
        reg(
            "registry_get",
            "Read an artifact version (latest when `version` is absent); the content is verified \
             against its digest.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::Get,
    )?;
    router.register_actor(
        reg(
            "registry_list",
            "List artifacts with their latest version, filtered by name prefix or label, \
             paginated with `cursor`.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::List,
    )?;
    if test_tools {
        router.register_actor(
            reg(
                "registry_debug_crash",
                "Test only: makes the registry actor panic while it holds this call.",
                Annotations::default(),
            ),
            RegistryMsg::Crash,
        )?;
    }
    router.register_actor(
        reg(
            "registry_versions",
            "List the versions of one artifact, lowest first.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::Versions,
    )?;
    let val = |name, description, annotations| {
        engine_tool(&slots.validation, name, description, annotations, policies)
    };
    router.register_actor(
        val(
            "validation_register_schema",
            "Register a JSON Schema (2020-12) under a name and semver version; an invalid schema \
             is rejected with the reason.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        ValidationMsg::Register,
    )?;
    router.register_actor(
        val(
            "validation_validate",
            "Validate a document against a registered schema (\"name\" or \"name@version\") or \
             an inline schema; returns every violation with its JSON pointer.",
            Annotations::READ_ONLY,
        ),
        ValidationMsg::Validate,
    )?;
    router.register_actor(
        val(
            "validation_list_schemas",
            "List registered schemas and their versions.",
            Annotations::READ_ONLY,
        ),
        ValidationMsg::List,
    )?;
    register_execution_tools(router, &slots.execution, policies)?;
    register_workflow_tools(router, &slots.workflow, policies)?;
    crate::promotion::register(router, &slots.promotion, policies)?;
    crate::retrieval::register(router, &slots.retrieval, policies)?;
    crate::taxonomy::register(router, &slots.taxonomy, &slots.retrieval, policies)?;
    register_learning_tools(router, &slots.shell, policies)?;
    register_development_tools(router, &slots.development, policies)?;
    register_quality_tools(router, &slots.quality, policies)?;
    register_devops_tools(router, slots, policies)?;
    register_learner_admin(router, slots, policies)?;
    if test_tools {
        router.register_actor(
            engine_tool(
                &slots.debug,
                "debug_sleep",
                "Test only: sleeps `ms` milliseconds (cancellable), recording `label` when it \
                 starts.",
                Annotations::IDEMPOTENT_WRITE,
                policies,
            ),
            DebugMsg::Sleep,
        )?;
    }
    Ok(())
}

const CANCEL: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
};

fn register_execution_tools(
    router: &Router,
    slot: &ActorSlot<ExecMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "task_submit",
            "Submit a tool call for asynchronous execution: {tool, arguments, priority?, \
             deadline? (Unix ms), timeout_ms?, cache_ttl_s?, wait_for? (task ids)}. Returns \
             the task id at once; a full queue refuses with an error.",
            Annotations::default(),
        ),
        submit_as_caller,
    )?;
    router.register_actor(
        tool(
            "task_status",
            "A task's state (queued, running, completed, failed, cancelled, expired), result or \
             error, and timings.",
            Annotations::READ_ONLY,
        ),
        |r, c, p| for_caller(ExecMsg::Status(r, c, p), ExecMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "task_cancel",
            "Cancel a queued or running task; a running tool is told to stop.",
            CANCEL,
        ),
        |r, c, p| for_caller(ExecMsg::Cancel(r, c, p), ExecMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "task_list",
            "List tasks, newest first, optionally by state; paginated with `cursor`.",
            Annotations::READ_ONLY,
        ),
        |r, c, p| for_caller(ExecMsg::List(r, c, p), ExecMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "task_set_priority",
            "Change a queued task's priority; it is reordered at once.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        |r, c, p| for_caller(ExecMsg::SetPriority(r, c, p), ExecMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "queue_stats",
            "The execution queue's figures: policy, queued, blocked, running, totals by outcome, \
             and the result cache's hits, misses and hit rate.",
            Annotations::READ_ONLY,
        ),
        ExecMsg::Stats,
    )?;
    router.register_actor(
        tool(
            "queue_set_policy",
            "Switch the scheduling policy (FIFO, PRIORITY, DEADLINE, PRIORITY_DEADLINE); queued \
             tasks are reordered.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        ExecMsg::SetPolicy,
    )?;
    router.register_actor(
        tool(
            "cache_invalidate",
            "Drop cached task results: exactly one of `tool`, `prefix` (key prefix) or \
             `pattern` (glob over keys `tool\\u0000{canonical arguments}`).",
            CANCEL,
        ),
        ExecMsg::Invalidate,
    )?;
    Ok(())
}

fn register_workflow_tools(
    router: &Router,
    slot: &ActorSlot<WorkflowMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "workflow_validate",
            "Check a workflow definition without running it; every problem (unknown tools, \
             unknown references, duplicate ids, cycles with their steps) is listed at once.",
            Annotations::READ_ONLY,
        ),
        WorkflowMsg::Validate,
    )?;
    router.register_actor_with_context(
        ActorTool {
            policy: long_call_policy(
                "workflow_run",
                &policies.settings(slot.name(), "workflow_run"),
            ),
            ..tool(
                "workflow_run",
                "Run a workflow (a DAG of tool calls; `${params.x}` and \
                 `${steps.<id>.output.<path>}` in arguments). Answers at once with the run id, \
                 or when the run ends if `wait` is true. Runs are journalled and resume after a \
                 restart. While waiting, each finished step is reported as progress. A \
                 template run missing required parameters asks the user for them (elicitation, \
                 or an input-required result) when the client can be asked.",
                Annotations::default(),
            )
        },
        crate::runs::run_with_progress,
    )?;
    router.register_actor(
        tool(
            "workflow_status",
            "A run's state and every step's state, output or error, and timings.",
            Annotations::READ_ONLY,
        ),
        |r, c, p| for_caller(WorkflowMsg::Status(r, c, p), WorkflowMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "workflow_cancel",
            "Cancel a run: running steps are told to stop, pending ones never start.",
            CANCEL,
        ),
        |r, c, p| for_caller(WorkflowMsg::Cancel(r, c, p), WorkflowMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "workflow_list",
            "List runs, oldest first, optionally by state; paginated with `cursor`.",
            Annotations::READ_ONLY,
        ),
        |r, c, p| for_caller(WorkflowMsg::List(r, c, p), WorkflowMsg::ActingFor),
    )?;
    router.register_actor(
        tool(
            "template_register",
            "Register a named, semver-versioned workflow template: typed parameters (string, \
             integer, number, boolean, array, object; required/default/pattern), steps using \
             `${param}`, and includes of other templates under a prefix. Every problem is \
             listed; versions are immutable.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        WorkflowMsg::TemplateRegister,
    )?;
    router.register_actor(
        tool(
            "template_get",
            "A template version (latest when `version` is absent; a semver requirement such as \
             ^1.2 picks the highest match).",
            Annotations::READ_ONLY,
        ),
        WorkflowMsg::TemplateGet,
    )?;
    router.register_actor(
        tool(
            "template_list",
            "The registered templates with their versions.",
            Annotations::READ_ONLY,
        ),
        WorkflowMsg::TemplateList,
    )?;
    router.register_actor(
        tool(
            "template_instantiate",
            "Turn a template and parameters into a concrete workflow definition; every \
             parameter problem is listed at once.",
            Annotations::READ_ONLY,
        ),
        WorkflowMsg::TemplateInstantiate,
    )?;
    Ok(())
}

/// The names of the built-in tools (with the test-only ones when `test_tools`), for checking a
/// configuration's `[tools.<name>]` before any engine starts.
pub fn builtin_tool_names(test_tools: bool) -> Vec<String> {
    let router = Router::new();
    let slots = EngineSlots::new();
    // Registration only fails on a duplicate name, which the built-in set has not.
    let _ = register_tools(&router, &slots, test_tools);
    router.list().into_iter().map(|t| t.name).collect()
}

type Shell = LearnerMsg<ShellModel>;

fn register_learning_tools(
    router: &Router,
    slot: &ActorSlot<Shell>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "shell_observe",
            "Learn one command a user ran: {user, command, cwd?, exit_code?}. Acknowledged at \
             once; on disk within the learner's flush interval (1 s by default).",
            Annotations::default(),
        ),
        Shell::Observe,
    )?;
    router.register_actor(
        tool(
            "shell_suggest",
            "The commands a user is likely to run next, best first, with scores: from their own \
             history (the last 1–3 commands), and for a new user from everyone's. `prefix` keeps \
             the commands that start with it.",
            Annotations::READ_ONLY,
        ),
        |req, cancel, reply| Shell::Model(ShellMsg::Suggest(req, cancel, reply)),
    )?;
    router.register_actor(
        tool(
            "shell_check",
            "Judge whether a command line or script is safe to run: {verdict: allow|warn|block, \
             risk 0..1, findings [{rule, severity, message, span}], safer_alternative?}. Parsed as \
             bash parses it (quotes, pipes, redirections, substitutions, `sudo`/`env`/`xargs`, \
             `bash -c` strings), judged by a built-in rule base (destructive deletes, disk \
             writes, fork bombs, download-and-execute, reverse and bind shells, shell escapes, \
             privilege and permission changes, credential reads, persistence, history \
             tampering) and by what shell_feedback taught; scripts are also linted by ShellCheck \
             when it is installed.",
            Annotations::READ_ONLY,
        ),
        |req, cancel, reply| Shell::Model(ShellMsg::Check(req, cancel, reply)),
    )?;
    router.register_actor(
        tool(
            "shell_feedback",
            "Teach the safety model one labelled command: {command, label: harmless|malicious, \
             category?}. shell_check then weighs commands that resemble it, and answers this \
             exact command by its label.",
            Annotations::default(),
        ),
        |req, cancel, reply| Shell::Model(ShellMsg::Feedback(req, cancel, reply)),
    )?;
    Ok(())
}

type Dev = LearnerMsg<DevModel>;

fn register_development_tools(
    router: &Router,
    slot: &ActorSlot<Dev>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "development_learn",
            "Learn how a codebase is written from its files: {files: [{path, content}], crate?, \
             dependencies?}. Rust files are parsed; every `use` form (groups, renames, globs, \
             `crate::`/`super::` paths, re-exports) teaches which path each name is imported \
             from, per codebase and across codebases; item names and `use` groups teach its \
             conventions. Files that do not parse are listed with the reason; the rest are \
             learned.",
            Annotations::default(),
        ),
        Dev::Observe,
    )?;
    router.register_actor(
        tool(
            "development_suggest_imports",
            "For each name a Rust file uses but neither imports nor defines, the paths it is \
             likely imported from, ranked, with scores: {content, path?, crate?, dependencies?}. \
             Candidates from crates outside `dependencies` rank below the others.",
            Annotations::READ_ONLY,
        ),
        |req, cancel, reply| Dev::Model(DevMsg::SuggestImports(req, cancel, reply)),
    )?;
    router.register_actor(
        tool(
            "development_check_style",
            "Where a Rust file departs from the conventions learned for its codebase (item \
             names' casing per kind, the order of `use` groups, the names of common values, \
             module layout: `a/mod.rs` or `a.rs` beside `a/`, unit tests last), each with a \
             suggested fix and a confidence; only deviations above `min_confidence` (default \
             0.9) are reported.",
            Annotations::READ_ONLY,
        ),
        |req, cancel, reply| Dev::Model(DevMsg::CheckStyle(req, cancel, reply)),
    )?;
    Ok(())
}

type Quality = LearnerMsg<QualityModel>;

fn register_quality_tools(
    router: &Router,
    slot: &ActorSlot<Quality>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "quality_observe_commits",
            "Learn a repository's history: {repo, commits: [{sha, parents, date, files}]}, oldest \
             first. Teaches which files change together with which tests; commits already \
             learned are skipped, commits touching more than 50 files teach change counts only.",
            Annotations::default(),
        ),
        |req, cancel, reply| Quality::Observe(QualityObservation::Commits(req), cancel, reply),
    )?;
    router.register_actor(
        tool(
            "quality_observe_results",
            "Learn which tests failed for a change: {repo, sha?, changed_files, failed_tests, \
             passed_tests?}. quality_select_tests then ranks those tests first when the same \
             files change again.",
            Annotations::default(),
        ),
        |req, cancel, reply| Quality::Observe(QualityObservation::Results(req), cancel, reply),
    )?;
    router.register_actor(
        tool(
            "quality_select_tests",
            "Choose the tests to run for a change: {repo, changed_files, candidates: [{id, \
             path?}], budget?: fraction (0.33) or count (50), a third by default}. Every \
             candidate ranked, most likely to fail first, with a score and a reason (past \
             failure with these files, co-change, name match, package, recent change), and \
             the selection within the budget.",
            Annotations::READ_ONLY,
        ),
        |req, cancel, reply| Quality::Model(QualityMsg::Select(req, cancel, reply)),
    )?;
    Ok(())
}

type Devops = LearnerMsg<DevopsModel>;

fn register_devops_tools(
    router: &Router,
    slots: &EngineSlots,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let slot = &slots.devops;
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "devops_observe",
            "Record a change before its outcome is known: {project, change_id, time, features: \
             {name: number}} (size, spread, history, author experience; any named numeric \
             features).",
            Annotations::default(),
        ),
        |req, cancel, reply| Devops::Observe(DevopsObservation::Change(req), cancel, reply),
    )?;
    router.register_actor(
        tool(
            "devops_report_outcome",
            "Report how an observed change turned out: {project, change_id, outcome: \
             success|failure, time}. The model learns it at once; predictions as of an earlier \
             time never use it.",
            Annotations::default(),
        ),
        |req, cancel, reply| Devops::Observe(DevopsObservation::Outcome(req), cancel, reply),
    )?;
    let policy = slots.devops_policy;
    register_with_policy(
        router,
        slot,
        DispatchTool {
            name: "devops_predict",
            description: "How likely a change is to fail: {project, features, time?} → \
                 {failure_probability, relative_risk, risk: low|medium|high, top_factors: \
                 [{feature, value, contribution}]}. A project with few outcomes leans on every \
                 project's experience.",
            annotations: Annotations::READ_ONLY,
            policy: policies.route_policy("devops", "devops_predict"),
        },
        policy,
        DevopsMsg::Predict,
    )?;
    register_with_policy(
        router,
        slot,
        DispatchTool {
            name: "devops_recommend",
            description: "What to do with a change: deploy, canary or hold, with the reason, \
                 from its predicted risk and the risk policy (configured in \
                 [learning.devops], or `policy` {canary_at, hold_at} for this call).",
            annotations: Annotations::READ_ONLY,
            policy: policies.route_policy("devops", "devops_recommend"),
        },
        policy,
        DevopsMsg::Recommend,
    )?;
    Ok(())
}

/// A devops request that may name its own risk policy; the configured one fills it in.
trait WithPolicy {
    fn policy(&mut self) -> &mut Option<RiskPolicy>;
}

impl WithPolicy for PredictRequest {
    fn policy(&mut self) -> &mut Option<RiskPolicy> {
        &mut self.policy
    }
}

impl WithPolicy for RecommendRequest {
    fn policy(&mut self) -> &mut Option<RiskPolicy> {
        &mut self.policy
    }
}

/// Registers a devops tool whose request gets `policy` when it names none.
fn register_with_policy<Req, Resp>(
    router: &Router,
    slot: &ActorSlot<Devops>,
    tool: DispatchTool,
    policy: RiskPolicy,
    make: fn(Req, CancellationToken, Reply<Resp>) -> DevopsMsg,
) -> Result<(), RegisterError>
where
    Req: WithPolicy
        + serde::de::DeserializeOwned
        + schemars::JsonSchema
        + Clone
        + Send
        + Sync
        + 'static,
    Resp: serde::Serialize + schemars::JsonSchema + Send + 'static,
{
    let slot = slot.clone();
    router.register_dispatch(tool, move |mut req: Req, ctx: CallContext| {
        let slot = slot.clone();
        req.policy().get_or_insert(policy);
        Box::pin(async move { attempt(&slot, ctx, |c, r| Devops::Model(make(req, c, r))).await })
    })
}

/// The learners by name, for the tools every learner answers.
const LEARNERS: &str = "`shell`, `development`, `quality` or `devops`";

/// A request every learner answers: it names its learner, and becomes any learner's message.
trait ToLearner: serde::de::DeserializeOwned + schemars::JsonSchema + Clone + Send + Sync {
    /// The answer.
    type Resp: serde::Serialize + schemars::JsonSchema + Send + 'static;
    fn learner(&self) -> &str;
    fn message<M: Model>(
        self,
        cancel: CancellationToken,
        reply: Reply<Self::Resp>,
    ) -> LearnerMsg<M>;
}

impl ToLearner for StatsRequest {
    type Resp = LearnerStats;
    fn learner(&self) -> &str {
        &self.learner
    }
    fn message<M: Model>(self, c: CancellationToken, r: Reply<LearnerStats>) -> LearnerMsg<M> {
        LearnerMsg::Stats(self, c, r)
    }
}

impl ToLearner for ExportRequest {
    type Resp = ExportResponse;
    fn learner(&self) -> &str {
        &self.learner
    }
    fn message<M: Model>(self, c: CancellationToken, r: Reply<ExportResponse>) -> LearnerMsg<M> {
        LearnerMsg::Export(self, c, r)
    }
}

impl ToLearner for ImportRequest {
    type Resp = ImportResponse;
    fn learner(&self) -> &str {
        &self.learner
    }
    fn message<M: Model>(self, c: CancellationToken, r: Reply<ImportResponse>) -> LearnerMsg<M> {
        LearnerMsg::Import(self, c, r)
    }
}

/// Registers `tool`, sent to the learner its request names.
fn register_to_learner<Req: ToLearner + 'static>(
    router: &Router,
    slots: &EngineSlots,
    tool: DispatchTool,
) -> Result<(), RegisterError> {
    let (shell, dev) = (slots.shell.clone(), slots.development.clone());
    let (quality, devops) = (slots.quality.clone(), slots.devops.clone());
    router.register_dispatch(tool, move |req: Req, ctx: CallContext| {
        let (shell, dev) = (shell.clone(), dev.clone());
        let (quality, devops) = (quality.clone(), devops.clone());
        Box::pin(async move {
            match req.learner() {
                "shell" => attempt(&shell, ctx, |c, r| req.message(c, r)).await,
                "development" => attempt(&dev, ctx, |c, r| req.message(c, r)).await,
                "quality" => attempt(&quality, ctx, |c, r| req.message(c, r)).await,
                "devops" => attempt(&devops, ctx, |c, r| req.message(c, r)).await,
                other => Err(ensemble_supervision::CallError::Engine(format!(
                    "unknown learner `{other}`: the learners are {LEARNERS}"
                ))),
            }
        })
    })
}

/// `learning_stats`, `learning_export` and `learning_import`: sent to the learner the request
/// names.
fn register_learner_admin(
    router: &Router,
    slots: &EngineSlots,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    register_to_learner::<StatsRequest>(
        router,
        slots,
        DispatchTool {
            name: "learning_stats",
            description: "A learner's figures: observations, queries, patterns, memory against \
                 its budget, evictions, and its own running accuracy.",
            annotations: Annotations::READ_ONLY,
            policy: policies.route_policy("learning", "learning_stats"),
        },
    )?;
    register_to_learner::<ExportRequest>(
        router,
        slots,
        DispatchTool {
            name: "learning_export",
            description: "Write a snapshot of what a learner learned as a registry artifact \
                 (`learning/<learner>/<instance>`, a new version per export), for other \
                 instances to import.",
            annotations: Annotations::default(),
            policy: policies.route_policy("learning", "learning_export"),
        },
    )?;
    register_to_learner::<ImportRequest>(
        router,
        slots,
        DispatchTool {
            name: "learning_import",
            description: "Merge a snapshot that another instance exported (`artifact`: name or \
                 name@version). Counts are kept per instance, so importing the same snapshot \
                 twice counts it once.",
            annotations: Annotations::IDEMPOTENT_WRITE,
            policy: policies.route_policy("learning", "learning_import"),
        },
    )
}
