//! The MCP face of the runtime: an rmcp `ServerHandler` over the tool router.
//!
//! Unknown tools are JSON-RPC errors (-32602); bad arguments, engine errors, open breakers,
//! timeouts and crashes are tool results with `isError: true` and a message that says what to do.

// rmcp marks MCP logging deprecated (SEP-2577, for 2026-07-28); clients on 2025-11-25 and
// earlier still use `logging/setLevel`, which this server honours.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, ServerRequest,
    SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tracing::Instrument;

use crate::context::{ContextError, ContextEvent, ToolContext};
pub use crate::convert::to_mcp_tool;
use crate::convert::{into_call_result, resource_error, unknown_tool};
use crate::router::catalog::{Complete, CompletionTarget, PromptError, ResourceError};
use crate::router::{BoxFuture, Router, ToolError};

/// The rmcp handler. Cheap to clone: the HTTP transport makes one per session or request.
#[derive(Clone)]
pub struct McpService {
    router: Router,
    name: Arc<str>,
    /// The session's `logging/setLevel`, as a severity rank; `None` until the client sets one.
    log_level: Arc<Mutex<Option<u8>>>,
    /// The session's `resources/subscribe` URIs.
    subscriptions: Arc<Mutex<HashSet<String>>>,
    progress: ProgressClock,
    /// Tools offered as MCP tasks to clients that negotiated the tasks extension.
    task_tools: Arc<HashSet<String>>,
    /// Names this handler's session in logs (`local-N`) when the transport has no session id
    /// (stdio). A number, formatted only when a span is recorded: stateless HTTP makes a
    /// handler per request.
    session: u64,
    /// The tasks of every session (cloned handles share them: a stateless client polls on
    /// another request than the one that started its task).
    tasks: rmcp::task_manager::TaskManager,
}

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService")
            .field("name", &self.name)
            .field("router", &self.router)
            .field("task_tools", &self.task_tools)
            .field("running_tasks", &self.tasks.running_task_count())
            .finish()
    }
}

/// A process-unique number for a session without a transport session id.
fn next_session_name() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The session a request belongs to: the Streamable HTTP `Mcp-Session-Id`, else the handler's
/// own name for its session (stdio, stateless HTTP).
struct SessionOf<'a>(&'a RequestContext<RoleServer>, u64);

impl std::fmt::Display for SessionOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self
            .0
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
        {
            Some(id) => f.write_str(id),
            None => write!(f, "local-{}", self.1),
        }
    }
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

impl McpService {
    /// A handler serving `router`'s tools, resources, prompts and completions.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            name: "ensemble".into(),
            log_level: Arc::new(Mutex::new(None)),
            subscriptions: Arc::new(Mutex::new(HashSet::new())),
            progress: ProgressClock::new(PROGRESS_EVERY),
            task_tools: Arc::new(HashSet::new()),
            tasks: rmcp::task_manager::TaskManager::new(),
            session: next_session_name(),
        }
    }

    /// Offers these tools as MCP tasks to clients that negotiated the tasks extension (others
    /// call them as usual): the call answers with a task id at once, progress becomes the
    /// task's status message, and `tasks/cancel` stops the work.
    pub fn with_task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.task_tools = Arc::new(tools.into_iter().map(Into::into).collect());
        self
    }

    /// A copy for a new session: same router, its own logging level and subscriptions.
    pub fn for_new_session(&self) -> Self {
        Self {
            session: next_session_name(),
            log_level: Arc::new(Mutex::new(None)),
            subscriptions: Arc::new(Mutex::new(HashSet::new())),
            ..self.clone()
        }
    }

    /// Reports progress of long calls this often (default [`PROGRESS_EVERY`]).
    pub fn with_progress_every(mut self, every: Duration) -> Self {
        self.progress = ProgressClock::new(every);
        self
    }

    /// Sends a log message to the client if its `logging/setLevel` lets it through.
    async fn log(
        &self,
        peer: &Peer<RoleServer>,
        level: LoggingLevel,
        logger: &str,
        data: serde_json::Value,
    ) {
        if self.logs(level) {
            let _ = peer
                .notify_logging_message(
                    LoggingMessageNotificationParam::new(level, data).with_logger(logger),
                )
                .await;
        }
    }

    /// Whether the session's `logging/setLevel` lets a message of `level` through (checked
    /// before a message is built: most sessions never set a level).
    fn logs(&self, level: LoggingLevel) -> bool {
        let wanted = *self.log_level.lock().unwrap_or_else(|p| p.into_inner());
        wanted.is_some_and(|w| rank(level) >= w)
    }

    fn subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(uri)
    }
}

/// Client requests a tool's actor made through its context, answered concurrently with the
/// call and inside the handler future, so rmcp sends them on the call's own stream.
#[derive(Default)]
struct Outstanding(Vec<BoxFuture<()>>);

impl Outstanding {
    fn push(&mut self, f: BoxFuture<()>) {
        self.0.push(f);
    }

    /// Completes when at least one request has been answered; never while none is pending.
    fn progress(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let before = self.0.len();
            self.0.retain_mut(|f| f.as_mut().poll(cx).is_pending());
            if self.0.len() < before {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// Sends the actor's request to the client and its answer back to the actor.
async fn serve_request(
    peer: Peer<RoleServer>,
    request: ServerRequest,
    answer: tokio::sync::oneshot::Sender<Result<ClientResult, ContextError>>,
) {
    let caps = peer.peer_info().map(|info| info.capabilities.clone());
    let missing = match &request {
        ServerRequest::CreateMessageRequest(_)
            if caps.as_ref().is_none_or(|c| c.sampling.is_none()) =>
        {
            Some("sampling")
        }
        ServerRequest::ElicitRequest(_)
            if caps.as_ref().is_none_or(|c| c.elicitation.is_none()) =>
        {
            Some("elicitation")
        }
        _ => None,
    };
    let result = match missing {
        Some(capability) => Err(ContextError::Unsupported(capability)),
        None => peer
            .send_request(request)
            .await
            .map_err(|e| ContextError::Client(e.to_string())),
    };
    let _ = answer.send(result);
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
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .enable_tasks()
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
        // `notifications/tools/list_changed`, and changes to resources it subscribed to as
        // `notifications/resources/updated`, for as long as it is connected.
        let mut tools = self.router.subscribe_changes();
        let mut updates = self.router.subscribe_resource_updates();
        let peer = ctx.peer;
        let session = self.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                // A lagged receiver still knows something changed; only a closed router ends it.
                let sent = tokio::select! {
                    r = tools.recv() => match r {
                        Err(RecvError::Closed) => break,
                        _ => peer.notify_tool_list_changed().await,
                    },
                    r = updates.recv() => match r {
                        Err(RecvError::Closed) => break,
                        Err(RecvError::Lagged(_)) => Ok(()),
                        Ok(uri) if session.subscribed(&uri) => {
                            peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                                .await
                        }
                        Ok(_) => Ok(()),
                    },
                };
                if sent.is_err() {
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
        let cursor = params.and_then(|p| p.cursor);
        let page = self
            .router
            .list_resources(cursor.as_deref(), ctx.ct.clone())
            .await
            .map_err(|e| match e {
                ResourceError::NotFound(m) => ErrorData::invalid_params(m, None),
                ResourceError::Failed(m) => ErrorData::internal_error(m, None),
            })?;
        let mut result = ListResourcesResult::with_all_items(page.resources);
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.router.resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let contents = self
            .router
            .read_resource(&req.uri, ctx.ct.clone())
            .await
            .map_err(|e| resource_error(e, &req.uri))?;
        Ok(ReadResourceResult::new(contents).into())
    }

    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !self.router.serves_resource(&req.uri) {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource at {}; resources/list shows what this server has",
                    req.uri
                ),
                Some(serde_json::json!({ "uri": req.uri })),
            ));
        }
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        req: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(self.router.prompts()))
    }

    async fn get_prompt(
        &self,
        req: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = req
            .arguments
            .unwrap_or_default()
            .into_iter()
            .collect::<serde_json::Map<_, _>>();
        self.router
            .get_prompt(&req.name, args, ctx.ct.clone())
            .await
            .map(Into::into)
            .map_err(|e| match e {
                e @ (PromptError::UnknownPrompt(_) | PromptError::InvalidArguments { .. }) => {
                    ErrorData::invalid_params(
                        e.to_string(),
                        Some(serde_json::json!({ "prompt": req.name })),
                    )
                }
                PromptError::Failed(m) => ErrorData::internal_error(m, None),
            })
    }

    async fn complete(
        &self,
        req: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let target = match req.r#ref {
            Reference::Prompt(p) => CompletionTarget::Prompt(p.name),
            Reference::Resource(r) => CompletionTarget::ResourceTemplate(r.uri),
            _ => return Ok(CompleteResult::new(CompletionInfo::default())),
        };
        let complete = Complete {
            target,
            argument: req.argument.name,
            value: req.argument.value,
            context: req
                .context
                .and_then(|c| c.arguments)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        };
        let mut values = self
            .router
            .complete(complete, ctx.ct.clone())
            .await
            .map_err(|m| ErrorData::internal_error(m, None))?;
        let total = values.len();
        values.truncate(CompletionInfo::MAX_VALUES);
        let mut info =
            CompletionInfo::new(values).map_err(|m| ErrorData::internal_error(m, None))?;
        info.total = u32::try_from(total).ok();
        info.has_more = Some(total > CompletionInfo::MAX_VALUES);
        Ok(CompleteResult::new(info))
    }

    async fn list_tools(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.router.mcp_tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.mcp_tool(name)
    }

    async fn get_task(
        &self,
        req: rmcp::model::GetTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        Ok(rmcp::model::GetTaskResult::new(
            self.tasks.get_task(&req.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        req: rmcp::model::UpdateTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.update_task(&req.task_id, req.input_responses)
    }

    async fn cancel_task(
        &self,
        req: rmcp::model::CancelTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel_task(&req.task_id)
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Boxed: the call's state is ~3 KB, and rmcp's request future — which holds the
        // largest handler future inline — is moved several times on its way into each spawned
        // request task. One allocation costs less than those copies.
        Box::pin(self.serve_call(req, ctx)).await
    }
}

impl McpService {
    /// `tools/call`: a task for task-capable clients, else the call through the router with
    /// the actor's context events delivered on the way.
    async fn serve_call(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = req.name.to_string();
        let args = serde_json::Value::Object(req.arguments.unwrap_or_default());
        if self.task_tools.contains(&name)
            && ctx
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks())
            && self.router.annotations(&name).is_some()
        {
            let task = crate::tasks::spawn(&self.tasks, self.router.clone(), name, args);
            return Ok(CallToolResponse::Task(rmcp::model::CreateTaskResult::new(
                task,
            )));
        }
        let span = tracing::info_span!(
            "tool_call",
            tool = %name,
            request_id = %ctx.id,
            session_id = %SessionOf(&ctx, self.session)
        );
        let started = std::time::Instant::now();
        let token = ctx.meta.get_progress_token();
        // A tool that takes a context reports its own progress; others get a heartbeat when
        // the client asked for progress.
        // Looked up once for the whole call.
        let Some(route) = self.router.route(&name) else {
            return Err(unknown_tool(&name));
        };
        let with_context = route.takes_context();
        let mut ticks = (token.is_some() && !with_context).then(|| self.progress.subscribe());
        let every = self.progress.inner.every;
        // Only a tool that takes a context gets a channel back (no allocation for the rest).
        let (tool_ctx, mut events) = if with_context {
            let (c, rx) = ToolContext::attached(ctx.ct.clone());
            (c, Some(rx))
        } else {
            (ToolContext::detached(ctx.ct.clone()), None)
        };
        let call = self
            .router
            .call_route(
                &route,
                args,
                Some(tool_ctx.cancellation().clone()),
                tool_ctx,
            )
            .instrument(span.clone());
        let mut call = std::pin::pin!(call);
        let mut requests = Outstanding::default();
        // Everything the actor sends goes out from this future: rmcp then puts it on this
        // request's stream (server→client requests and progress; log messages go to the
        // session's stream).
        let outcome = loop {
            tokio::select! {
                biased;
                Some(event) = async {
                    match events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.deliver(&ctx, &name, token.as_ref(), event, &mut requests).await;
                }
                () = requests.progress() => {}
                r = &mut call => break r,
                Some(()) = async {
                    match ticks.as_mut() {
                        Some(t) => t.changed().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    // Ticks are shared: a call reports once it has run a whole period.
                    if started.elapsed() < every {
                        continue;
                    }
                    let elapsed = started.elapsed().as_secs_f64();
                    if let Some(token) = &token {
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
        };
        // What the actor sent before it answered goes out before the answer.
        while let Some(event) = events.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.deliver(&ctx, &name, token.as_ref(), event, &mut requests)
                .await;
        }
        if !span.is_disabled() {
            span.in_scope(|| {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                match &outcome {
                    Ok(_) => tracing::debug!(ms, "tool call answered"),
                    Err(ToolError::Runtime(e)) => {
                        tracing::warn!(ms, error = %e, "tool call failed")
                    }
                    Err(e) => tracing::info!(ms, error = %e, "tool call refused"),
                }
            });
        }
        match &outcome {
            Ok(_) if !self.logs(LoggingLevel::Debug) => {}
            Ok(_) => {
                self.log(
                    &ctx.peer,
                    LoggingLevel::Debug,
                    "ensemble",
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
                    "ensemble",
                    serde_json::json!({"tool": name, "error": e.to_string()}),
                )
                .await
            }
        }
        match into_call_result(outcome) {
            Ok(result) => Ok(result.into()),
            Err(ToolError::UnknownTool(tool)) => Err(unknown_tool(&tool)),
            Err(_) => Err(ErrorData::internal_error(
                "the request was cancelled".to_string(),
                None,
            )),
        }
    }

    /// Turns one event from a tool's context into what the client sees.
    async fn deliver(
        &self,
        ctx: &RequestContext<RoleServer>,
        tool: &str,
        token: Option<&rmcp::model::ProgressToken>,
        event: ContextEvent,
        requests: &mut Outstanding,
    ) {
        match event {
            ContextEvent::Progress {
                progress,
                total,
                message,
            } => {
                // Without a token the client did not ask for progress.
                if let Some(token) = token {
                    let mut p = ProgressNotificationParam::new(token.clone(), progress);
                    if let Some(total) = total {
                        p = p.with_total(total);
                    }
                    if let Some(message) = message {
                        p = p.with_message(message);
                    }
                    let _ = ctx.peer.notify_progress(p).await;
                }
            }
            ContextEvent::Log {
                level,
                logger,
                data,
            } => {
                self.log(&ctx.peer, level, logger.as_deref().unwrap_or(tool), data)
                    .await
            }
            ContextEvent::Request { request, answer } => {
                requests.push(Box::pin(serve_request(ctx.peer.clone(), request, answer)));
            }
        }
    }
}
