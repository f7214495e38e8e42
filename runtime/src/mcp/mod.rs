//! The MCP face of the runtime: an rmcp `ServerHandler` over the tool router.
//!
//! Unknown tools are JSON-RPC errors (-32602); bad arguments, engine errors, open breakers,
//! timeouts and crashes are tool results with `isError: true` and a message that says what to do.

// rmcp marks MCP logging deprecated (SEP-2577, for 2026-07-28); clients on 2025-11-25 and
// earlier still use `logging/setLevel`, which this server honours.
#![allow(deprecated)]

mod call;
mod fast;
mod govern;
mod mrtr;
mod progress;
pub mod sessions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CompletionInfo,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, ResourceUpdatedNotificationParam,
    ServerCapabilities, ServerConfig, ServerNotification, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, ToolListChangedNotification,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::convert::resource_error;
pub use crate::convert::to_mcp_tool;
use crate::router::Router;
use crate::router::catalog::{Complete, CompletionTarget, PromptError, ResourceError};
use ensemble_actors::governance::policy::Kind;
pub(crate) use fast::{CallsInFlight, Era, FastLane, PlainCall};
pub(crate) use mrtr::client_result;
use progress::ProgressClock;

/// The rmcp handler. Cheap to clone: the HTTP transport makes one per session or request.
#[derive(Clone)]
pub struct McpService {
    router: Router,
    name: Arc<str>,
    /// The session's `logging/setLevel`, as a severity rank; `None` until the client sets one.
    log_level: Arc<Mutex<Option<u8>>>,
    /// Resources this session subscribed to (`resources/subscribe`), and who subscribed.
    subscriptions: Arc<Mutex<HashMap<String, crate::governance::Identity>>>,
    progress: ProgressClock,
    /// Tools offered as MCP tasks to clients that negotiated the tasks extension.
    task_tools: Arc<HashSet<String>>,
    /// Of those, the tools served only as tasks (SEP-2663 "required").
    required_task_tools: Arc<HashSet<String>>,
    /// Of those, the tools that gather their input first: for a 2026-07-28 client they run in
    /// input-required rounds and become a task once the input is in.
    input_first_tools: Arc<HashSet<String>>,
    /// Names this handler's session in logs (`local-N`) when the transport has no session id
    /// (stdio). A number, formatted only when a span is recorded: stateless HTTP makes a
    /// handler per request.
    session: u64,
    /// The tasks of every session (cloned handles share them: a stateless client polls on
    /// another request than the one that started its task).
    tasks: rmcp::task_manager::TaskManager,
    /// Calls waiting for a 2026-07-28 client's input (shared like the tasks).
    parking: mrtr::Parking,
    /// Who may use what (see `govern`).
    governance: crate::governance::Governance,
    /// The caller of a request that names none (the stdio client; nobody over HTTP).
    identity: crate::governance::Identity,
    /// Who started each MCP task (governed runtimes): only they may see, answer or cancel it.
    task_owners: govern::TaskOwners,
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
            subscriptions: Arc::new(Mutex::new(HashMap::new())),
            progress: ProgressClock::new(PROGRESS_EVERY),
            task_tools: Arc::new(HashSet::new()),
            required_task_tools: Arc::new(HashSet::new()),
            input_first_tools: Arc::new(HashSet::new()),
            tasks: rmcp::task_manager::TaskManager::new(),
            parking: mrtr::Parking::new(),
            session: next_session_name(),
            governance: crate::governance::Governance::ungoverned(),
            identity: crate::governance::Identity::owner(),
            task_owners: govern::TaskOwners::default(),
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
        let mut all: HashSet<String> = tools.into_iter().map(Into::into).collect();
        all.extend(self.required_task_tools.iter().cloned());
        self.task_tools = Arc::new(all);
        self
    }

    /// Serves these tools only as MCP tasks: a client that did not negotiate the tasks
    /// extension (at initialize or in the request's `_meta`) gets JSON-RPC error -32021.
    pub fn with_required_task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let required: HashSet<String> = tools.into_iter().map(Into::into).collect();
        let mut all: HashSet<String> = (*self.task_tools).clone();
        all.extend(required.iter().cloned());
        self.task_tools = Arc::new(all);
        self.required_task_tools = Arc::new(required);
        self
    }

    /// Serves these tools only as tasks, after their input is in: a 2026-07-28 client with the
    /// tasks extension gets input-required rounds for what the tool asks first (SEP-2322), then a
    /// task (SEP-2663) with the rest of the work; any other client gets the task at once (its
    /// questions wait in the task's `inputRequests`), or -32021 without the tasks extension.
    pub fn with_input_first_task_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let input_first: HashSet<String> = tools.into_iter().map(Into::into).collect();
        let mut required: HashSet<String> = (*self.required_task_tools).clone();
        required.extend(input_first.iter().cloned());
        self.input_first_tools = Arc::new(input_first);
        self.with_required_task_tools(required)
    }

    /// A copy for a new session: same router, its own logging level and subscriptions.
    pub fn for_new_session(&self) -> Self {
        Self {
            session: next_session_name(),
            log_level: Arc::new(Mutex::new(None)),
            subscriptions: Arc::new(Mutex::new(HashMap::new())),
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

    /// The client never set a logging level: a call sends it no log messages.
    pub(crate) fn logs_nothing(&self) -> bool {
        self.log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Whether an update of `uri` goes to this session: it subscribed, and whoever subscribed
    /// may still read it (a suspension, a lockdown or a policy change since stops the updates).
    fn subscribed(&self, uri: &str) -> bool {
        let who = self
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uri)
            .cloned();
        who.is_some_and(|who| self.may(&who, Kind::Resource, uri))
    }

    /// One listen stream: tool list changes and updates of its resources, tagged with the
    /// subscription id by rmcp's sink (which also drops what the filter did not ask for), until
    /// the client cancels it or the router closes.
    async fn listen_stream(&self, sub: SubscriptionContext) -> Result<(), ErrorData> {
        use tokio::sync::broadcast::error::RecvError;
        let mut tools = self.router.subscribe_changes();
        let mut updates = self.router.subscribe_resource_updates();
        let sink = sub.sink().clone();
        let wants_tools = sink.accepted().tools_list_changed == Some(true);
        // Updates go only to a listener who may read the resource when it changes (and who
        // can read it at all: a run someone else submitted is not there for it).
        let who = self.caller(&sub.request_context().extensions);
        let mut unreadable = HashSet::new();
        for uri in sink.accepted().resource_subscriptions.iter().flatten() {
            if !self.readable_by(&who, uri, &sub.request_context().ct).await {
                unreadable.insert(uri.clone());
            }
        }
        loop {
            let sent = tokio::select! {
                () = sub.cancelled() => return Ok(()),
                r = tools.recv() => match r {
                    Err(RecvError::Closed) => return Ok(()),
                    // A lagged receiver still knows something changed.
                    _ if wants_tools => sink
                        .send(ServerNotification::ToolListChangedNotification(
                            ToolListChangedNotification::default(),
                        ))
                        .await,
                    _ => Ok(()),
                },
                r = updates.recv() => match r {
                    Err(RecvError::Closed) => return Ok(()),
                    Err(RecvError::Lagged(_)) => Ok(()),
                    Ok(uri) if sink.accepted().resource_subscriptions.as_ref().is_some_and(|u| u.contains(&uri))
                        && !unreadable.contains(&uri)
                        && self.may(&who, Kind::Resource, &uri) => sink
                        .send(ServerNotification::ResourceUpdatedNotification(
                            rmcp::model::ResourceUpdatedNotification::new(
                                ResourceUpdatedNotificationParam::new(uri),
                            ),
                        ))
                        .await,
                    Ok(_) => Ok(()),
                },
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "a listen stream ended");
                return Ok(());
            }
        }
    }
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
        let who = self.caller(&ctx.extensions);
        // As its caller: resources of deferred work (runs) list only what it may see.
        let page = self
            .as_caller(
                &who,
                self.router
                    .list_resources(cursor.as_deref(), ctx.ct.clone()),
            )
            .await
            .map_err(|e| match e {
                ResourceError::NotFound(m) => ErrorData::invalid_params(m, None),
                ResourceError::Failed(m) => ErrorData::internal_error(m, None),
            })?;
        let resources = page
            .resources
            .into_iter()
            .filter(|r| self.may(&who, Kind::Resource, &r.uri))
            .map(Into::into)
            .collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _params: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let who = self.caller(&ctx.extensions);
        let mut templates = self.router.resource_templates();
        templates.retain(|t| self.may(&who, Kind::Resource, &t.uri_template));
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let who = self.caller(&ctx.extensions);
        self.admit_resource(&who, &req.uri)?;
        let contents = self
            .as_caller(&who, self.router.read_resource(&req.uri, ctx.ct.clone()))
            .await
            .map_err(|e| resource_error(e, &req.uri))?;
        Ok(ReadResourceResult::new(contents.into_iter().map(Into::into).collect()).into())
    }

    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let who = self.caller(&ctx.extensions);
        if !self.router.serves_resource(&req.uri)
            || !self.may(&who, Kind::Resource, &req.uri)
            || !self.readable_by(&who, &req.uri, &ctx.ct).await
        {
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
            .insert(req.uri, who);
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

    /// `subscriptions/listen` (2026-07-28): every category we advertise, and updates of the
    /// resources this server has (a URI it does not serve is dropped from the filter).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        if let Some(uris) = accepted.resource_subscriptions.take() {
            accepted.resource_subscriptions = Some(
                uris.into_iter()
                    .filter(|uri| self.router.serves_resource(uri))
                    .collect(),
            );
        }
        Some(accepted)
    }

    /// `subscriptions/listen`: see [`McpService::listen_stream`].
    async fn listen(&self, sub: SubscriptionContext) -> Result<(), ErrorData> {
        // Boxed: a stream's state would otherwise grow every request's future (see call_tool).
        Box::pin(self.listen_stream(sub)).await
    }

    async fn list_prompts(
        &self,
        _params: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let who = self.caller(&ctx.extensions);
        let mut prompts = self.router.prompts();
        prompts.retain(|p| self.may(&who, Kind::Prompt, &p.name));
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        req: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let who = self.caller(&ctx.extensions);
        if !self.may(&who, Kind::Prompt, &req.name) {
            return Err(ErrorData::invalid_params(
                PromptError::UnknownPrompt(req.name.to_string()).to_string(),
                Some(serde_json::json!({ "prompt": req.name })),
            ));
        }
        let args = req
            .arguments
            .unwrap_or_default()
            .into_iter()
            .collect::<serde_json::Map<_, _>>();
        // A 2026-07-28 client answers what the prompt asks in input-required rounds (SEP-2322).
        let mrtr = ctx
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let answer = if mrtr {
            let bound = format!("prompt:{}", req.name);
            let running = match req.request_state.as_deref() {
                Some(state) => {
                    let mut running = self.parking.resume(&bound, state)?;
                    mrtr::deliver(&mut running, req.input_responses.unwrap_or_default());
                    running
                }
                None => {
                    let cancel = tokio_util::sync::CancellationToken::new();
                    let (prompt_ctx, events) =
                        crate::context::ToolContext::attached(cancel.clone());
                    let router = self.router.clone();
                    let name = req.name.clone();
                    mrtr::Running {
                        tool: bound,
                        call: Box::pin(async move {
                            mrtr::Finished::Prompt(
                                router
                                    .get_prompt_with_context(&name, args, prompt_ctx)
                                    .await,
                            )
                        }),
                        events,
                        cancel,
                        pending: Default::default(),
                        asked: 0,
                        refused: None,
                    }
                }
            };
            // Boxed, like a tool call's state (see call_tool).
            match Box::pin(self.drive_rounds(&ctx, running)).await? {
                call::Driven::Input(r) => return Ok(GetPromptResponse::InputRequired(r)),
                call::Driven::Done(mrtr::Finished::Prompt(r)) => r,
                call::Driven::Done(mrtr::Finished::Tool(_)) => {
                    return Err(ErrorData::internal_error(
                        "a tool call's state was resumed as a prompt".to_string(),
                        None,
                    ));
                }
            }
        } else {
            self.router
                .get_prompt(&req.name, args, ctx.ct.clone())
                .await
        };
        answer
            .map(|r| rmcp::model::GetPromptResult::from(r).into())
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
        let who = self.caller(&ctx.extensions);
        let target = match req.r#ref {
            Reference::Prompt(p) if self.may(&who, Kind::Prompt, &p.name) => {
                CompletionTarget::Prompt(p.name)
            }
            Reference::Resource(r) if self.may(&who, Kind::Resource, &r.uri) => {
                CompletionTarget::ResourceTemplate(r.uri)
            }
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.router.mcp_tools();
        if self.governance.is_governed() {
            let who = self.caller(&ctx.extensions);
            tools.retain(|t| self.governance.shows_tool(&who, &t.name));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.mcp_tool(name)
    }

    async fn get_task(
        &self,
        req: rmcp::model::GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        self.own_task(&ctx.extensions, &req.task_id)?;
        Ok(rmcp::model::GetTaskResult::new(
            self.tasks.get_task(&req.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        req: rmcp::model::UpdateTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.own_task(&ctx.extensions, &req.task_id)?;
        self.tasks.update_task(&req.task_id, req.input_responses)
    }

    async fn cancel_task(
        &self,
        req: rmcp::model::CancelTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.own_task(&ctx.extensions, &req.task_id)?;
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
        if self.governance.is_governed() {
            return Box::pin(self.serve_governed_call(req, ctx)).await;
        }
        Box::pin(self.serve_call(req, ctx)).await
    }
}
