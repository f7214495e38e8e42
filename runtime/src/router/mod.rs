//! The tool router: a tool name maps to a route (the owning actor's slot, the tool's schemas and
//! its policy stack). JSON is decoded into the engine's typed request here, at the edge; actors
//! never see JSON.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ensemble_supervision::{
    ActorSlot, CallContext, CallError, CallOptions, CancellationToken, RoutePolicy,
};
use ractor::{Message, RpcReplyPort};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::context::ToolContext;

mod ask;
pub mod catalog;
pub mod content;
mod output;
mod resources;
mod spec;

pub use ask::attempt;
pub(crate) use ask::{BoxFuture, ask};
use ask::{policy_error, structured};
use catalog::Catalog;
pub use content::{
    Content, PromptMessage, PromptResult, ResourceContents, ResourceInfo, Role, ToolResult,
};
pub use output::{IntoToolOutput, Structured, ToolOutput};
pub(crate) use spec::valid_name;
pub use spec::{Annotations, RegisterError, ToolError, ToolSpec, schema_of};

type Handler = dyn Fn(Value, CallOptions, ToolContext) -> BoxFuture<Result<ToolOutput, ToolError>>
    + Send
    + Sync;

/// A registered tool: its spec, handler and metrics.
pub(crate) struct Route {
    /// The spec, its schemas shared: the MCP service describes the tool on every HTTP
    /// `tools/call` (to check `Mcp-Param-*` headers), and a copy of the schemas each time
    /// costs more than the call.
    pub(crate) spec: ToolSpec,
    handler: Arc<Handler>,
    metrics: RouteMetrics,
    /// The actor takes a [`ToolContext`] and reports its own progress.
    with_context: bool,
    /// The input schema marks arguments as `x-mcp-header` (SEP-2243): an HTTP request must
    /// repeat them as `Mcp-Param-*` headers, which rmcp checks.
    param_headers: bool,
}

impl Route {
    /// The actor takes a [`ToolContext`] and reports its own progress.
    pub(crate) fn takes_context(&self) -> bool {
        self.with_context
    }

    /// The input schema asks for `Mcp-Param-*` headers anywhere.
    pub(crate) fn has_param_headers(&self) -> bool {
        self.param_headers
    }
}

/// Whether `schema` holds an `x-mcp-header` annotation at any depth.
fn declares_param_headers(schema: &serde_json::Map<String, Value>) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.contains_key("x-mcp-header") || m.values().any(walk),
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    schema.contains_key("x-mcp-header") || schema.values().any(walk)
}

/// The route's metric handles, looked up once: a lookup by name and labels on every call would
/// cost more than the rest of the routing.
struct RouteMetrics {
    /// Indexed by [`Outcome`].
    calls: [metrics::Counter; 5],
    duration: metrics::Histogram,
}

#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    InvalidArguments,
    EngineError,
    Cancelled,
    RuntimeError,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::InvalidArguments,
        Outcome::EngineError,
        Outcome::Cancelled,
        Outcome::RuntimeError,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::EngineError => "engine_error",
            Outcome::Cancelled => "cancelled",
            Outcome::RuntimeError => "runtime_error",
        }
    }

    fn of(result: &Result<ToolOutput, ToolError>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(ToolError::InvalidArguments { .. }) => Outcome::InvalidArguments,
            Err(ToolError::Engine(_)) => Outcome::EngineError,
            Err(ToolError::Cancelled) => Outcome::Cancelled,
            Err(_) => Outcome::RuntimeError,
        }
    }
}

impl RouteMetrics {
    fn new(tool: &str) -> Self {
        Self {
            calls: Outcome::ALL.map(|o| {
                metrics::counter!("ensemble_tool_calls_total",
                    "tool" => tool.to_string(), "outcome" => o.label())
            }),
            duration: metrics::histogram!("ensemble_tool_call_duration_seconds",
                "tool" => tool.to_string()),
        }
    }
}

/// Tool name → route. Cheap to clone; registrations are seen by every clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    routes: RwLock<BTreeMap<String, Arc<Route>>>,
    changed: broadcast::Sender<()>,
    /// Calls in flight across all routes, for a graceful drain: a counter on the hot path, and
    /// a notification only when it falls to zero.
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
    /// Resources, prompts and completions (see [`crate::catalog`]).
    catalog: RwLock<Catalog>,
}

struct InFlight<'a>(&'a Inner);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Default for Router {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                routes: RwLock::new(BTreeMap::new()),
                changed: broadcast::Sender::new(16),
                in_flight: AtomicUsize::new(0),
                idle: tokio::sync::Notify::new(),
                catalog: RwLock::new(Catalog::default()),
            }),
        }
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "tools",
                &self.inner.routes.read().map(|r| r.len()).unwrap_or(0),
            )
            .finish()
    }
}

/// A tool served by a supervised actor, before registration.
pub struct ActorTool<M: Message> {
    /// Name, `<engine>_<verb>`.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Hints.
    pub annotations: Annotations,
    /// The owning actor's slot.
    pub slot: ActorSlot<M>,
    /// The route's policy stack.
    pub policy: RoutePolicy,
}

/// A tool whose calls are sent to one of several actors, chosen per request
/// ([`Router::register_dispatch`]).
pub struct DispatchTool {
    /// Name.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Hints.
    pub annotations: Annotations,
    /// The route's policy stack.
    pub policy: RoutePolicy,
}

/// One attempt of a dispatching tool: the request and the attempt's context in, the answer or
/// why not out.
pub type Dispatch<Req, Resp> =
    dyn Fn(Req, CallContext) -> BoxFuture<Result<Resp, CallError<String>>> + Send + Sync;

/// A tool's spec: its input schema from `Req`, its output schema as given.
fn tool_spec<Req: JsonSchema, M: Message>(
    tool: &ActorTool<M>,
    output_schema: Option<Map<String, Value>>,
) -> ToolSpec {
    ToolSpec {
        name: tool.name.to_string(),
        description: tool.description.to_string(),
        input_schema: Arc::new(schema_of::<Req>()),
        output_schema: output_schema.map(Arc::new),
        annotations: tool.annotations,
    }
}

/// The arguments as the tool's typed request, or what to fix.
fn decode<Req: DeserializeOwned>(tool: &str, args: Value) -> Result<Req, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments {
        tool: tool.to_string(),
        message: e.to_string(),
    })
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a tool whose typed request `Req` is sent to the actor in `tool.slot` as the
    /// message `make(req, cancel, reply)`; the actor answers `Result<Resp, E>`.
    pub fn register_actor<M, Req, Resp, E>(
        &self,
        tool: ActorTool<M>,
        make: fn(Req, CancellationToken, RpcReplyPort<Result<Resp, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        Resp: Serialize + JsonSchema + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let spec = tool_spec::<Req, M>(&tool, Some(schema_of::<Resp>()));
        let (slot, policy, name) = (tool.slot, tool.policy, tool.name);
        let handler = move |args: Value,
                            opts: CallOptions,
                            _ctx: ToolContext|
              -> BoxFuture<Result<ToolOutput, ToolError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                let req: Req = decode(name, args)?;
                let answer = policy
                    .call(opts, |ctx| {
                        // Each attempt sends its own copy: a retry must not find it consumed.
                        let req = req.clone();
                        attempt(&slot, ctx, move |cancel, reply| make(req, cancel, reply))
                    })
                    .await;
                structured(answer)
            })
        };
        self.insert(spec, Arc::new(handler), false)
    }

    /// Registers a tool whose calls go to one of several actors, chosen by `route` from the
    /// request (the learners' `learning_stats` names its learner); `route` makes the attempt,
    /// typically with [`attempt`]. Each attempt runs under `tool.policy` like any actor tool's.
    pub fn register_dispatch<Req, Resp, F>(
        &self,
        tool: DispatchTool,
        route: F,
    ) -> Result<(), RegisterError>
    where
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        Resp: Serialize + JsonSchema + Send + 'static,
        F: Fn(Req, CallContext) -> BoxFuture<Result<Resp, CallError<String>>>
            + Send
            + Sync
            + 'static,
    {
        let spec = ToolSpec {
            name: tool.name.to_string(),
            description: tool.description.to_string(),
            input_schema: Arc::new(schema_of::<Req>()),
            output_schema: Some(Arc::new(schema_of::<Resp>())),
            annotations: tool.annotations,
        };
        let (policy, name) = (tool.policy, tool.name);
        let route: Arc<Dispatch<Req, Resp>> = Arc::new(route);
        let handler = move |args: Value,
                            opts: CallOptions,
                            _ctx: ToolContext|
              -> BoxFuture<Result<ToolOutput, ToolError>> {
            let (policy, route) = (policy.clone(), route.clone());
            Box::pin(async move {
                let req: Req = decode(name, args)?;
                structured(policy.call(opts, |ctx| route(req.clone(), ctx)).await)
            })
        };
        self.insert(spec, Arc::new(handler), false)
    }

    /// Registers a tool whose actor gets a [`ToolContext`] with each call: the message is
    /// `make(req, ctx, reply)`. Through the context the actor checks cancellation, reports
    /// progress, sends log messages and asks the client to sample or elicit; the MCP handler
    /// serving the call delivers them. The actor answers `Result<Resp, E>`: `Ok` is the result
    /// ([`Structured`] JSON or an MCP `CallToolResult` with content blocks), `Err` becomes a tool
    /// result with `isError: true` and `E`'s message.
    ///
    /// A context-aware tool reports its own progress, so the runtime does not add its periodic
    /// "still running" reports to its calls.
    ///
    /// ```ignore
    /// enum Msg { Run(Args, ToolContext, RpcReplyPort<Result<Structured<Out>, String>>) }
    /// router.register_actor_with_context(ActorTool { name: "host_run", .. }, Msg::Run)?;
    /// ```
    pub fn register_actor_with_context<M, Req, Resp, E>(
        &self,
        tool: ActorTool<M>,
        make: fn(Req, ToolContext, RpcReplyPort<Result<Resp, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        Resp: IntoToolOutput,
        E: std::fmt::Display + Send + 'static,
    {
        let spec = tool_spec::<Req, M>(&tool, Resp::output_schema());
        let (slot, policy, name) = (tool.slot, tool.policy, tool.name);
        let handler = move |args: Value,
                            opts: CallOptions,
                            ctx: ToolContext|
              -> BoxFuture<Result<ToolOutput, ToolError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                let req: Req = decode(name, args)?;
                let answer = ask(&slot, &policy, opts, move |attempt, reply| {
                    make(req.clone(), ctx.with_cancel(attempt.clone()), reply)
                })
                .await;
                match answer {
                    Ok(resp) => resp.into_output().map_err(ToolError::Runtime),
                    Err(e) => Err(policy_error(e)),
                }
            })
        };
        self.insert(spec, Arc::new(handler), true)
    }

    fn insert(
        &self,
        spec: ToolSpec,
        handler: Arc<Handler>,
        with_context: bool,
    ) -> Result<(), RegisterError> {
        if !valid_name(&spec.name) {
            return Err(RegisterError::InvalidName(spec.name));
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
        if routes.contains_key(&spec.name) {
            return Err(RegisterError::Duplicate(spec.name));
        }
        let metrics = RouteMetrics::new(&spec.name);
        let param_headers = declares_param_headers(&spec.input_schema);
        routes.insert(
            spec.name.clone(),
            Arc::new(Route {
                spec,
                handler,
                metrics,
                with_context,
                param_headers,
            }),
        );
        drop(routes);
        let _ = self.inner.changed.send(());
        Ok(())
    }

    /// Removes a tool; true if it existed.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self
            .inner
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some();
        if removed {
            let _ = self.inner.changed.send(());
        }
        removed
    }

    /// Every tool, ordered by name.
    pub fn list(&self) -> Vec<ToolSpec> {
        self.each_route(|r| r.spec.clone())
    }

    /// One tool's spec.
    pub fn spec(&self, name: &str) -> Option<ToolSpec> {
        self.route(name).map(|r| r.spec.clone())
    }

    /// `f` of every route, ordered by tool name.
    pub(crate) fn each_route<T>(&self, mut f: impl FnMut(&Route) -> T) -> Vec<T> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| f(r))
            .collect()
    }

    /// One tool's annotations (cheaper than [`Router::spec`], which copies the schemas).
    pub fn annotations(&self, name: &str) -> Option<Annotations> {
        self.route(name).map(|r| r.spec.annotations)
    }

    /// A receiver notified whenever the tool list changes (for `notifications/tools/list_changed`).
    pub fn subscribe_changes(&self) -> broadcast::Receiver<()> {
        self.inner.changed.subscribe()
    }

    pub(crate) fn route(&self, name: &str) -> Option<Arc<Route>> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.inner.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Tool calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Waits until no tool call is in flight (bound it with a timeout).
    pub async fn drained(&self) {
        loop {
            // Registered before the check, so a drop to zero in between is not missed.
            let idle = self.inner.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Calls tool `name` with JSON `args`. Retries apply when the tool is read-only or
    /// idempotent; `cancel` is the caller's cancellation. A context-aware tool gets a detached
    /// [`ToolContext`]; a tool answering with content blocks gives the MCP result as JSON.
    pub async fn call(
        &self,
        name: &str,
        args: Value,
        cancel: Option<CancellationToken>,
    ) -> Result<Value, ToolError> {
        let ctx = ToolContext::detached(cancel.clone().unwrap_or_default());
        self.call_in(name, args, cancel, ctx)
            .await
            .map(ToolOutput::into_value)
    }

    /// Calls tool `name` with JSON `args` and a [`ToolContext`] whose events the caller serves
    /// (the MCP handler does this for each `tools/call`).
    pub async fn call_with_context(
        &self,
        name: &str,
        args: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let cancel = Some(ctx.cancellation().clone());
        self.call_in(name, args, cancel, ctx).await
    }

    async fn call_in(
        &self,
        name: &str,
        args: Value,
        cancel: Option<CancellationToken>,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let route = self
            .route(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
        self.call_route(&route, args, cancel, ctx).await
    }

    /// Calls a route already looked up (the MCP handler looks it up once per call).
    pub(crate) async fn call_route(
        &self,
        route: &Route,
        args: Value,
        cancel: Option<CancellationToken>,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let opts = CallOptions {
            idempotent: route.spec.annotations.retryable(),
            timeout: None,
            cancel,
        };
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.inner);
        let started = Instant::now();
        let result = (route.handler)(args, opts, ctx).await;
        route.metrics.calls[Outcome::of(&result) as usize].increment(1);
        route
            .metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        result
    }
}
