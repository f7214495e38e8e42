//! The MCP face of the runtime: an rmcp `ServerHandler` over the tool router.
//!
//! Unknown tools are JSON-RPC errors (-32602); bad arguments, engine errors, open breakers,
//! timeouts and crashes are tool results with `isError: true` and a message that says what to do.

// rmcp marks MCP logging deprecated (SEP-2577, for 2026-07-28); clients on 2025-11-25 and
// earlier still use `logging/setLevel`, which this server honours.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_actors::registry::RegistryMsg;
use ensemble_protocol::registry::{GetRequest, ListRequest, RegistryError};
use ensemble_supervision::ActorSlot;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tracing::Instrument;

use crate::router::{Router, ToolError, ToolSpec};

/// The rmcp handler. Cheap to clone: the HTTP transport makes one per session or request.
#[derive(Clone, Debug)]
pub struct McpService {
    router: Router,
    name: Arc<str>,
    registry: Option<ActorSlot<RegistryMsg>>,
    /// The session's `logging/setLevel`, as a severity rank; `None` until the client sets one.
    log_level: Arc<Mutex<Option<u8>>>,
    progress: ProgressClock,
}

/// One ticker shared by all calls of a service that asked for progress: rmcp's client asks on
/// every request, and a timer per call would cost more than a short call itself. The ticker
/// runs only while such calls are in flight.
#[derive(Debug, Clone)]
struct ProgressClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    every: Duration,
    ticks: tokio::sync::watch::Sender<u64>,
    running: Mutex<bool>,
}

impl ProgressClock {
    fn new(every: Duration) -> Self {
        Self {
            inner: Arc::new(ClockInner {
                every,
                ticks: tokio::sync::watch::Sender::new(0),
                running: Mutex::new(false),
            }),
        }
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        let rx = self.inner.ticks.subscribe();
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(tick(self.inner.clone()));
        }
        rx
    }
}

/// Clears `running` if the ticker is dropped with its runtime, so a later call restarts it.
struct TickerFlag(Arc<ClockInner>);

impl Drop for TickerFlag {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }
}

async fn tick(inner: Arc<ClockInner>) {
    let flag = TickerFlag(inner);
    loop {
        tokio::time::sleep(flag.0.every).await;
        // Checked under the lock that `subscribe` takes after subscribing: a call that
        // subscribed before this check keeps the ticker alive; one after it starts a new one.
        let running = flag.0.running.lock().unwrap_or_else(|p| p.into_inner());
        if flag.0.ticks.receiver_count() == 0 {
            drop(running);
            return;
        }
        drop(running);
        flag.0.ticks.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How often a long call reports progress when the client asked for it.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Artifacts are resources at `ensemble://registry/{name}/{version}`.
pub const ARTIFACT_URI_PREFIX: &str = "ensemble://registry/";

impl McpService {
    /// A handler serving `router`'s tools.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            name: "ensemble".into(),
            registry: None,
            log_level: Arc::new(Mutex::new(None)),
            progress: ProgressClock::new(PROGRESS_EVERY),
        }
    }

    /// A copy for a new session: same tools, its own logging level.
    pub fn for_new_session(&self) -> Self {
        Self {
            log_level: Arc::new(Mutex::new(None)),
            ..self.clone()
        }
    }

    /// Reports progress of long calls this often (default [`PROGRESS_EVERY`]).
    pub fn with_progress_every(mut self, every: Duration) -> Self {
        self.progress = ProgressClock::new(every);
        self
    }

    /// Sends a log message to the client if its `logging/setLevel` lets it through.
    async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, data: serde_json::Value) {
        let wanted = *self.log_level.lock().unwrap_or_else(|p| p.into_inner());
        if wanted.is_some_and(|w| rank(level) >= w) {
            let _ = peer
                .notify_logging_message(
                    LoggingMessageNotificationParam::new(level, data).with_logger("ensemble"),
                )
                .await;
        }
    }

    /// Also serve the registry's artifacts as MCP resources.
    pub fn with_registry(mut self, registry: ActorSlot<RegistryMsg>) -> Self {
        self.registry = Some(registry);
        self
    }

    fn registry(&self) -> Result<&ActorSlot<RegistryMsg>, ErrorData> {
        self.registry
            .as_ref()
            .ok_or_else(|| ErrorData::resource_not_found("this server has no registry", None))
    }
}

fn artifact_uri(name: &str, version: &str) -> String {
    format!("{ARTIFACT_URI_PREFIX}{name}/{version}")
}

fn fault(e: ensemble_supervision::ActorFault) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

/// An rmcp `Tool` from a router spec.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let mut tool = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(spec.input_schema.clone()),
    );
    if let Some(out) = &spec.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(out.clone()));
    }
    let a = spec.annotations;
    tool.with_annotations(
        ToolAnnotations::new()
            .read_only(a.read_only)
            .destructive(a.destructive)
            .idempotent(a.idempotent),
    )
}

fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

impl ServerHandler for McpService {
    async fn set_level(
        &self,
        req: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) = Some(rank(req.level));
        Ok(())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            self.name.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ))
        .with_instructions(
            "Ensemble: engines as supervised actors. Tools are named <engine>_<verb>; \
             every tool has an input and output JSON Schema."
                .to_string(),
        )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        // Tools registered or removed later (a host adding its own) reach this client as
        // `notifications/tools/list_changed`, for as long as it is connected.
        let mut changes = self.router.subscribe_changes();
        let peer = ctx.peer;
        tokio::spawn(async move {
            // A lagged receiver still knows the list changed; only a closed router ends it.
            while !matches!(
                changes.recv().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed)
            ) {
                if peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
    }

    async fn list_resources(
        &self,
        params: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let registry = self.registry()?;
        let req = ListRequest {
            cursor: params.and_then(|p| p.cursor),
            limit: Some(100),
            ..ListRequest::default()
        };
        let page = registry
            .ask(|reply| RegistryMsg::List(req, ctx.ct.clone(), reply))
            .await
            .map_err(fault)?
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let resources = page
            .items
            .into_iter()
            .map(|a| {
                Resource::new(
                    artifact_uri(&a.name, &a.latest),
                    format!("{}@{}", a.name, a.latest),
                )
                .with_mime_type(a.media_type)
                .with_size(a.size)
                .with_description(format!(
                    "artifact {} version {} ({})",
                    a.name, a.latest, a.digest
                ))
            })
            .collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = if self.registry.is_some() {
            vec![
                ResourceTemplate::new(
                    format!("{ARTIFACT_URI_PREFIX}{{name}}/{{version}}"),
                    "registry artifact",
                )
                .with_description("One version of an artifact in the registry; content verified against its digest."),
            ]
        } else {
            Vec::new()
        };
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let registry = self.registry()?;
        let uri = req.uri;
        let Some((name, version)) = uri
            .strip_prefix(ARTIFACT_URI_PREFIX)
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource at {uri}; artifacts are at {ARTIFACT_URI_PREFIX}{{name}}/{{version}}"
                ),
                Some(serde_json::json!({ "uri": uri })),
            ));
        };
        let get = GetRequest {
            name: name.to_string(),
            version: Some(version.to_string()),
        };
        let artifact = registry
            .ask(|reply| RegistryMsg::Get(get, ctx.ct.clone(), reply))
            .await
            .map_err(fault)?
            .map_err(|e| match e {
                RegistryError::NotFound { .. } => ErrorData::resource_not_found(
                    e.to_string(),
                    Some(serde_json::json!({ "uri": uri })),
                ),
                e => ErrorData::internal_error(
                    e.to_string(),
                    Some(serde_json::json!({ "uri": uri })),
                ),
            })?;
        let contents = match (artifact.content, artifact.content_base64) {
            (Some(json), _) => ResourceContents::text(json.to_string(), uri.clone()),
            (None, Some(b64)) => ResourceContents::blob(b64, uri.clone()),
            (None, None) => ResourceContents::blob(String::new(), uri.clone()),
        }
        .with_mime_type(artifact.media_type);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn list_tools(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.router.list().iter().map(to_mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.spec(name).as_ref().map(to_mcp_tool)
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = req.name.to_string();
        let args = serde_json::Value::Object(req.arguments.unwrap_or_default());
        let span = tracing::info_span!("tool_call", tool = %name, request_id = %ctx.id);
        let started = std::time::Instant::now();
        let call = self
            .router
            .call(&name, args, Some(ctx.ct.clone()))
            .instrument(span);
        let outcome = match ctx.meta.get_progress_token() {
            // The client asked for progress: a long call reports that it is still running.
            Some(token) => {
                let mut call = std::pin::pin!(call);
                let mut ticks = self.progress.subscribe();
                let every = self.progress.inner.every;
                loop {
                    tokio::select! {
                        r = &mut call => break r,
                        Ok(()) = ticks.changed() => {
                            // Ticks are shared: a call reports once it has run a whole period.
                            if started.elapsed() < every {
                                continue;
                            }
                            let elapsed = started.elapsed().as_secs_f64();
                            let _ = ctx
                                .peer
                                .notify_progress(
                                    ProgressNotificationParam::new(token.clone(), elapsed)
                                        .with_message(format!("`{name}` running for {elapsed:.1}s")),
                                )
                                .await;
                        }
                    }
                }
            }
            None => call.await,
        };
        match &outcome {
            Ok(_) => {
                self.log(
                    &ctx.peer,
                    LoggingLevel::Debug,
                    serde_json::json!({"tool": name, "ms": started.elapsed().as_millis() as u64}),
                )
                .await
            }
            Err(e) => {
                let level = match e {
                    ToolError::Runtime(_) => LoggingLevel::Error,
                    _ => LoggingLevel::Warning,
                };
                self.log(
                    &ctx.peer,
                    level,
                    serde_json::json!({"tool": name, "error": e.to_string()}),
                )
                .await
            }
        }
        match outcome {
            Ok(value) => Ok(CallToolResult::structured(value).into()),
            Err(ToolError::UnknownTool(tool)) => Err(ErrorData::invalid_params(
                format!("unknown tool `{tool}`; tools/list shows the tools this server has"),
                Some(serde_json::json!({ "tool": tool })),
            )),
            Err(ToolError::Cancelled) => Err(ErrorData::internal_error(
                "the request was cancelled".to_string(),
                None,
            )),
            Err(e) => Ok(error_result(e.to_string()).into()),
        }
    }
}
