//! One `tools/call`: as a task for clients that negotiated tasks, else through the router with
//! the actor's context events (progress, log messages, client requests) delivered on the way.

use std::task::Poll;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientResult, LoggingLevel, ProgressNotificationParam,
    ServerRequest,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer};
use tracing::Instrument;

use crate::context::{ContextError, ContextEvent, ToolContext};
use crate::convert::{into_call_result, unknown_tool};
use crate::router::{BoxFuture, ToolError, ToolOutput};

use super::{McpService, mrtr};

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

impl McpService {
    /// `tools/call`: a task for task-capable clients, else the call through the router with
    /// the actor's context events delivered on the way.
    pub(super) async fn serve_call(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = req.name.to_string();
        // A tool the caller may not use does not exist for it.
        self.admit_call(&ctx.extensions, &name)?;
        // Protocol 2026-07-28 takes no server→client requests: a tool's requests become an
        // input-required result and the call waits parked for the client's next round.
        let mrtr = ctx
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let client_has_tasks = || {
            ctx.client_capabilities()
                .is_some_and(|c| c.supports_tasks())
        };
        if mrtr && let Some(state) = req.request_state.as_deref() {
            let mut running = self.parking.resume(&name, state)?;
            mrtr::deliver(&mut running, req.input_responses.unwrap_or_default());
            // The input is in: the rest of the work runs as a task.
            if self.input_first_tools.contains(&name)
                && running.pending.is_empty()
                && client_has_tasks()
            {
                let (call, events, cancel) = running.into_task_parts();
                let task = crate::tasks::spawn_running(&self.tasks, &name, call, events, cancel);
                self.owns_task(&ctx.extensions, &task.task_id);
                return Ok(CallToolResponse::Task(rmcp::model::CreateTaskResult::new(
                    task,
                )));
            }
            return finish_tool(self.drive_rounds(&ctx, running).await?);
        }
        let args = serde_json::Value::Object(req.arguments.unwrap_or_default());
        if self.required_task_tools.contains(&name)
            && self.router.annotations(&name).is_some()
            && !client_has_tasks()
        {
            return Err(ErrorData::missing_required_client_capability(
                rmcp::model::ClientCapabilities::builder()
                    .enable_tasks()
                    .build(),
            ));
        }
        // A tool that gathers its input first starts synchronously for a 2026-07-28 client.
        let input_first = mrtr && self.input_first_tools.contains(&name);
        if self.task_tools.contains(&name)
            && !input_first
            && client_has_tasks()
            && self.router.annotations(&name).is_some()
        {
            let task = crate::tasks::spawn(&self.tasks, self.router.clone(), name, args);
            self.owns_task(&ctx.extensions, &task.task_id);
            return Ok(CallToolResponse::Task(rmcp::model::CreateTaskResult::new(
                task,
            )));
        }
        // A debug span: at the default level a call creates none (formatting its fields costs
        // more than the rest of the runtime's own work on a call); failures below carry the
        // same correlation ids as fields of their own.
        let span = tracing::debug_span!(
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
        if mrtr && with_context {
            let cancel = tokio_util::sync::CancellationToken::new();
            let (tool_ctx, events) = ToolContext::attached(cancel.clone());
            let router = self.router.clone();
            let attempt = cancel.clone();
            let call: BoxFuture<mrtr::Finished> = Box::pin(
                async move {
                    mrtr::Finished::Tool(
                        router
                            .call_route(&route, args, Some(attempt), tool_ctx)
                            .await,
                    )
                }
                .instrument(span),
            );
            let running = mrtr::Running {
                tool: name,
                call,
                events,
                cancel,
                pending: Default::default(),
                asked: 0,
                refused: None,
            };
            return finish_tool(self.drive_rounds(&ctx, running).await?);
        }
        let mut ticks = (token.is_some() && !with_context).then(|| self.progress.subscribe());
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
                    if let Some(token) = &token
                        && let Some(beat) = self.progress.heartbeat(&name, token, started)
                    {
                        let _ = ctx.peer.notify_progress(beat).await;
                    }
                }
            }
        };
        // What the actor sent before it answered goes out before the answer.
        while let Some(event) = events.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.deliver(&ctx, &name, token.as_ref(), event, &mut requests)
                .await;
        }
        record_outcome(
            &span,
            &name,
            &ctx.id,
            &SessionOf(&ctx, self.session),
            started,
            &outcome,
        );
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
        call_answer(outcome).map(Into::into)
    }

    /// Drives a call for a 2026-07-28 client to its answer, or to the point where it waits for
    /// the client: then the call is parked and the client gets an input-required result.
    pub(super) async fn drive_rounds(
        &self,
        ctx: &RequestContext<RoleServer>,
        mut running: mrtr::Running,
    ) -> Result<Driven, ErrorData> {
        let caps = ctx.client_capabilities();
        let token = ctx.meta.get_progress_token();
        // Answers that did not cover every request: ask again for the rest at once.
        let mut gather = (!running.pending.is_empty()).then(tokio::time::Instant::now);
        let outcome = loop {
            tokio::select! {
                biased;
                () = ctx.ct.cancelled() => {
                    // Dropping the call stops the actor's work.
                    return Err(ErrorData::internal_error(
                        "the request was cancelled".to_string(),
                        None,
                    ));
                }
                Some(event) = running.events.recv() => match event {
                    ContextEvent::Request { key, request, answer } => {
                        match mrtr::input_request(*request, caps.as_ref()) {
                            Ok(input) => {
                                running.asked += 1;
                                let key = key.unwrap_or_else(|| format!("input-{}", running.asked));
                                match running.pending.entry(key) {
                                    std::collections::btree_map::Entry::Occupied(e) => {
                                        let _ = answer.send(Err(ContextError::Client(format!(
                                            "the input request `{}` is already waiting",
                                            e.key()
                                        ))));
                                    }
                                    std::collections::btree_map::Entry::Vacant(e) => {
                                        e.insert((input, answer));
                                        gather.get_or_insert_with(|| {
                                            tokio::time::Instant::now() + mrtr::GATHER
                                        });
                                    }
                                }
                            }
                            Err(Some(capability)) => {
                                running.refused = Some(capability);
                                let _ = answer.send(Err(ContextError::Unsupported(capability)));
                            }
                            Err(None) => {
                                let _ = answer.send(Err(ContextError::Unsupported(
                                    "server requests other than sampling, elicitation and roots",
                                )));
                            }
                        }
                    }
                    ContextEvent::Progress { progress, total, message } => {
                        if let Some(token) = &token {
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
                    ContextEvent::Log { level, logger, data } => {
                        let logger = logger.unwrap_or_else(|| running.tool.clone());
                        self.log(&ctx.peer, level, &logger, data).await
                    }
                },
                r = &mut running.call => break r,
                () = async {
                    match gather {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let requests: rmcp::model::InputRequests = running
                        .pending
                        .iter()
                        .map(|(key, (request, _))| (key.clone(), request.clone()))
                        .collect();
                    let state = self.parking.park(running);
                    return Ok(Driven::Input(rmcp::model::InputRequiredResult::new(
                        Some(requests),
                        Some(state),
                    )));
                }
            }
        };
        // A request that failed after asking for a capability the client never declared: the
        // client is told which (SEP-2575), not handed the tool's own words.
        if let Some(capability) = running.refused.filter(|_| outcome.failed()) {
            return Err(ErrorData::missing_required_client_capability(
                mrtr::required(capability),
            ));
        }
        Ok(Driven::Done(outcome))
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
            ContextEvent::Request {
                request, answer, ..
            } => {
                requests.push(Box::pin(serve_request(ctx.peer.clone(), *request, answer)));
            }
        }
    }
}

/// Where a round left a request of a 2026-07-28 client.
pub(super) enum Driven {
    /// It has its answer.
    Done(mrtr::Finished),
    /// It waits for the client's input.
    Input(rmcp::model::InputRequiredResult),
}

/// Logs how a call ended: a failure at `warn`, a refusal at `info`, an answer inside the
/// call's debug span.
pub(super) fn record_outcome(
    span: &tracing::Span,
    name: &str,
    request_id: &dyn std::fmt::Display,
    session_id: &dyn std::fmt::Display,
    started: std::time::Instant,
    outcome: &Result<ToolOutput, ToolError>,
) {
    let ms = || started.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok(_) => span.in_scope(|| tracing::debug!(ms = ms(), "tool call answered")),
        Err(ToolError::Runtime(e)) => tracing::warn!(
            tool = %name,
            request_id = %request_id,
            session_id = %session_id,
            ms = ms(),
            error = %e,
            "tool call failed"
        ),
        Err(e) => tracing::info!(
            tool = %name,
            request_id = %request_id,
            session_id = %session_id,
            ms = ms(),
            error = %e,
            "tool call refused"
        ),
    }
}

/// A call's outcome as MCP sees it: a result (a tool's error is a result with `isError`), or
/// a JSON-RPC error for an unknown tool or a cancelled call.
pub(super) fn call_answer(
    outcome: Result<ToolOutput, ToolError>,
) -> Result<rmcp::model::CallToolResult, ErrorData> {
    match into_call_result(outcome) {
        Ok(result) => Ok(result),
        Err(ToolError::UnknownTool(tool)) => Err(unknown_tool(&tool)),
        Err(_) => Err(ErrorData::internal_error(
            "the request was cancelled".to_string(),
            None,
        )),
    }
}

fn finish_tool(driven: Driven) -> Result<CallToolResponse, ErrorData> {
    let outcome = match driven {
        Driven::Input(r) => return Ok(CallToolResponse::InputRequired(r)),
        Driven::Done(mrtr::Finished::Tool(outcome)) => outcome,
        Driven::Done(mrtr::Finished::Prompt(_)) => {
            return Err(ErrorData::internal_error(
                "a prompt's state was resumed as a tool call".to_string(),
                None,
            ));
        }
    };
    call_answer(outcome).map(Into::into)
}
