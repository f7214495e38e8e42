//! Actor-served tools that talk to the client during a call (progress, log messages, sampling,
//! elicitation through their `ToolContext`), and resources, prompts, completions and resource
//! subscriptions served by actors through the router, all over a real rmcp client session.

// MCP logging and sampling are deprecated in rmcp for 2026-07-28 clients; these sessions use
// 2025-11-25, where they are current.
#![allow(deprecated)]

mod common;

use common::eventually;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::catalog::{
    ActorCompletion, ActorPrompt, ActorResource, Complete, CompletionTarget, ReadResource,
};
use ensemble::runtime::context::ToolContext;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations, Router, Structured};
use ensemble::supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, ClientCapabilities, ClientConfig, CompleteRequestParams,
    ContentBlock, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ElicitationAction, GetPromptRequestParams, Implementation, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, PromptMessage,
    ReadResourceRequestParams, Reference, ResourceContents, ResourceUpdatedNotificationParam, Role,
    SamplingMessage, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
    object,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// A tool that asks the client's model and the user, reporting progress as it goes.

#[derive(Clone, Deserialize, JsonSchema)]
struct SurveyRequest {
    topic: String,
}

#[derive(Serialize, JsonSchema)]
struct SurveyResponse {
    model_said: String,
    action: String,
    user: Value,
}

type SurveyReply = RpcReplyPort<Result<Structured<SurveyResponse>, String>>;

enum SurveyMsg {
    Run(SurveyRequest, ToolContext, SurveyReply),
}

struct Surveyor;

impl Actor for Surveyor {
    type Msg = SurveyMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<SurveyMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<SurveyMsg>,
        msg: SurveyMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let SurveyMsg::Run(req, ctx, reply) = msg;
        // The client answers while the actor waits: run beside the mailbox.
        tokio::spawn(async move {
            let _ = reply.send(survey(&req.topic, &ctx).await.map(Structured));
        });
        Ok(())
    }
}

async fn survey(topic: &str, ctx: &ToolContext) -> Result<SurveyResponse, String> {
    ctx.log(LoggingLevel::Info, json!(format!("asking about {topic}")));
    ctx.log(LoggingLevel::Debug, json!("below the client's level"));
    ctx.progress(1.0, Some(3.0), Some("asking the model".into()));
    let sampled = ctx
        .create_message(CreateMessageRequestParams::new(
            vec![SamplingMessage::user_text(format!("What about {topic}?"))],
            50,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let model_said = sampled
        .message
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    ctx.progress(2.0, Some(3.0), Some("asking the user".into()));
    let params: ElicitRequestParams = serde_json::from_value(json!({
        "mode": "form",
        "message": format!("The model says {model_said:?}. Your name?"),
        "requestedSchema": {"type": "object",
            "properties": {"name": {"type": "string"}}, "required": ["name"]}
    }))
    .map_err(|e| e.to_string())?;
    let answer = ctx.elicit(params).await.map_err(|e| e.to_string())?;
    ctx.progress(3.0, Some(3.0), None);
    Ok(SurveyResponse {
        model_said,
        action: format!("{:?}", answer.action),
        user: answer.content.unwrap_or(Value::Null),
    })
}

/// A `notifications/message`: level, logger, data.
type LogLine = (LoggingLevel, Option<String>, Value);

/// A client with a model and a user: it records what reached it.
#[derive(Clone, Default)]
struct Client {
    progress: Arc<Mutex<Vec<f64>>>,
    logs: Arc<Mutex<Vec<LogLine>>>,
    asked: Arc<Mutex<Vec<String>>>,
    updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let caps: ClientCapabilities =
            serde_json::from_value(json!({"sampling": {}, "elicitation": {}})).unwrap();
        ClientConfig::new(caps, Implementation::new("mcp_context", "1"))
    }
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let asked = params.messages[0]
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        self.asked.lock().unwrap().push(asked);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("forty-two"),
            "test-model".into(),
        ))
    }
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&request).unwrap()["message"].to_string());
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"name": "Ada"})))
    }
    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(p.progress);
    }
    async fn on_logging_message(
        &self,
        m: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push((m.level, m.logger, m.data));
    }
    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(p.uri);
    }
}

async fn connect<H: ClientHandler>(runtime: &Runtime, handler: H) -> RunningService<RoleClient, H> {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    handler.serve(client_io).await.unwrap()
}

fn text_of(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test]
async fn a_tool_actor_reports_progress_logs_and_asks_the_client_through_its_context() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let slot = ActorSlot::new("surveyor");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host").child(ChildSpec::actor(&slot, || (Surveyor, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_actor_with_context(
            ActorTool {
                name: "host_survey",
                description: "Ask the model, then the user.",
                annotations: Annotations::default(),
                slot,
                policy: default_policy("host_survey"),
            },
            SurveyMsg::Run,
        )
        .unwrap();

    let seen = Client::default();
    let client = connect(&runtime, seen.clone()).await;
    let tool = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "host_survey")
        .unwrap();
    assert_eq!(tool.input_schema["required"], json!(["topic"]));
    assert!(
        tool.output_schema.is_some(),
        "Structured<T> gives T's schema"
    );

    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Info))
        .await
        .unwrap();
    let r = client
        .call_tool(
            CallToolRequestParams::new("host_survey")
                .with_arguments(object(json!({"topic": "towels"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));
    assert_eq!(
        r.structured_content,
        Some(json!({"model_said": "forty-two", "action": "Accept", "user": {"name": "Ada"}}))
    );
    let asked = seen.asked.lock().unwrap().clone();
    assert_eq!(asked[0], "What about towels?");
    assert!(asked[1].contains("forty-two"), "{asked:?}");

    // The actor's own progress, and no heartbeat besides: the tool reports for itself.
    eventually("three progress notifications", || {
        seen.progress.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(*seen.progress.lock().unwrap(), [1.0, 2.0, 3.0]);
    // Its log line under the tool's name; the debug line stays below the client's level.
    eventually("the tool's log message", || {
        !seen.logs.lock().unwrap().is_empty()
    })
    .await;
    let logs = seen.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|(level, logger, data)| *level == LoggingLevel::Info
                && logger.as_deref() == Some("host_survey")
                && data == &json!("asking about towels")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .all(|(_, _, d)| d != &json!("below the client's level")),
        "{logs:?}"
    );

    // A client without the sampling capability: the actor hears why, and says so.
    let plain = connect(&runtime, ()).await;
    let r = plain
        .call_tool(
            CallToolRequestParams::new("host_survey")
                .with_arguments(object(json!({"topic": "tea"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("the client does not support sampling"),
        "{}",
        text_of(&r)
    );

    // Without an MCP client (a host's own call) the context is detached.
    let err = runtime
        .router()
        .call("host_survey", json!({"topic": "tea"}), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no MCP client is attached"),
        "{err}"
    );

    client.cancel().await.unwrap();
    plain.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Resources, prompts and completions from one actor.

#[derive(Clone, Deserialize, JsonSchema)]
struct SummarizeArgs {
    /// The page to summarize.
    page: String,
    /// How many words at most.
    words: Option<String>,
}

enum DocsMsg {
    Read(
        ReadResource,
        CancellationToken,
        RpcReplyPort<Result<ResourceContents, String>>,
    ),
    Summarize(
        SummarizeArgs,
        CancellationToken,
        RpcReplyPort<Result<Vec<PromptMessage>, String>>,
    ),
    Complete(
        Complete,
        CancellationToken,
        RpcReplyPort<Result<Vec<String>, String>>,
    ),
    /// Rewrites the readme and announces it.
    Edit(String),
}

/// Serves `doc://readme` and `doc://pages/{page}`.
struct Docs;

const PAGES: [&str; 3] = ["intro", "install", "internals"];

impl Actor for Docs {
    type Msg = DocsMsg;
    type State = (String, Router);
    type Arguments = Router;
    async fn pre_start(
        &self,
        _: ActorRef<DocsMsg>,
        router: Router,
    ) -> Result<(String, Router), ActorProcessingErr> {
        Ok(("first draft".to_string(), router))
    }
    async fn handle(
        &self,
        _: ActorRef<DocsMsg>,
        msg: DocsMsg,
        (readme, router): &mut (String, Router),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // A caller that gave up gets no answer.
            DocsMsg::Read(_, cancel, _)
            | DocsMsg::Summarize(_, cancel, _)
            | DocsMsg::Complete(_, cancel, _)
                if cancel.is_cancelled() => {}
            DocsMsg::Read(read, _, reply) => {
                let answer = match read.variables.get("page") {
                    None => Ok(ResourceContents::text(readme.clone(), read.uri)),
                    Some(page) if PAGES.contains(&page.as_str()) => {
                        Ok(ResourceContents::text(format!("the {page} page"), read.uri))
                    }
                    Some(page) => Err(format!("no page {page:?}")),
                };
                let _ = reply.send(answer);
            }
            DocsMsg::Summarize(args, _, reply) => {
                let words = args.words.unwrap_or_else(|| "50".into());
                let _ = reply.send(Ok(vec![
                    PromptMessage::new(
                        Role::User,
                        ContentBlock::resource(ResourceContents::text(
                            format!("the {} page", args.page),
                            format!("doc://pages/{}", args.page),
                        )),
                    ),
                    PromptMessage::new_text(
                        Role::User,
                        format!("Summarize the page above in {words} words."),
                    ),
                ]));
            }
            DocsMsg::Complete(c, _, reply) => {
                let _ = reply.send(Ok(PAGES
                    .iter()
                    .filter(|p| p.starts_with(&c.value))
                    .map(|p| p.to_string())
                    .collect()));
            }
            DocsMsg::Edit(text) => {
                *readme = text;
                router.resource_updated("doc://readme");
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn resources_prompts_completions_and_subscriptions_are_served_by_an_actor() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let router = runtime.router().clone();
    let slot = ActorSlot::new("docs");
    let announce = router.clone();
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host")
            .child(ChildSpec::actor(&slot, move || (Docs, announce.clone()))),
    )
    .await
    .unwrap();
    let resource = |uri, name| ActorResource {
        uri,
        name,
        description: "docs",
        mime_type: Some("text/plain"),
        slot: slot.clone(),
        policy: default_policy("docs"),
    };
    router
        .register_resource(resource("doc://readme", "readme"), DocsMsg::Read)
        .unwrap();
    router
        .register_resource(resource("doc://pages/{page}", "page"), DocsMsg::Read)
        .unwrap();
    assert!(
        router
            .register_resource(resource("doc://readme", "again"), DocsMsg::Read)
            .is_err(),
        "one route per URI"
    );
    assert!(
        router
            .register_resource(resource("doc://{a}{b}", "ambiguous"), DocsMsg::Read)
            .is_err()
    );
    router
        .register_prompt(
            ActorPrompt {
                name: "summarize",
                description: "Summarize a page.",
                slot: slot.clone(),
                policy: default_policy("summarize"),
            },
            DocsMsg::Summarize,
        )
        .unwrap();
    router
        .register_completion(
            ActorCompletion {
                target: CompletionTarget::Prompt("summarize".into()),
                slot: slot.clone(),
                policy: default_policy("summarize_complete"),
            },
            DocsMsg::Complete,
        )
        .unwrap();

    let seen = Client::default();
    let client = connect(&runtime, seen.clone()).await;

    let resources = client.list_all_resources().await.unwrap();
    assert_eq!(
        resources.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>(),
        ["doc://readme"]
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(templates.contains(&"doc://pages/{page}"), "{templates:?}");
    let read = |uri: &'static str| {
        let client = &client;
        async move {
            client
                .read_resource(ReadResourceRequestParams::new(uri))
                .await
        }
    };
    let text = |contents: &ResourceContents| match contents {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("expected text, got {other:?}"),
    };
    assert_eq!(
        text(&read("doc://pages/install").await.unwrap().contents[0]),
        "the install page"
    );
    let err = read("doc://pages/missing").await.unwrap_err();
    assert!(err.to_string().contains("no page \"missing\""), "{err}");
    let err = read("doc://nowhere").await.unwrap_err();
    assert!(err.to_string().contains("-32002"), "{err}");

    // Prompts: the request type's fields are the arguments.
    let prompts = client.list_all_prompts().await.unwrap();
    let args = prompts[0].arguments.clone().unwrap();
    assert_eq!(
        args.iter()
            .map(|a| (a.name.as_str(), a.required))
            .collect::<Vec<_>>(),
        [("page", Some(true)), ("words", Some(false))]
    );
    assert_eq!(
        args[0].description.as_deref(),
        Some("The page to summarize.")
    );
    let got = client
        .get_prompt(
            GetPromptRequestParams::new("summarize")
                .with_arguments(object(json!({"page": "intro"}))),
        )
        .await
        .unwrap();
    assert_eq!(got.messages.len(), 2);
    assert!(matches!(
        &got.messages[0].content,
        ContentBlock::Resource(_)
    ));
    let err = client
        .get_prompt(GetPromptRequestParams::new("summarize"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing field `page`"), "{err}");

    let done = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("summarize"),
            ArgumentInfo::new("page", "in"),
        ))
        .await
        .unwrap();
    assert_eq!(done.completion.values, ["intro", "install", "internals"]);
    assert_eq!(done.completion.has_more, Some(false));

    // Subscriptions: the actor's edit reaches the subscribed session, then stops reaching it.
    client
        .subscribe(SubscribeRequestParams::new("doc://readme"))
        .await
        .unwrap();
    let err = client
        .subscribe(SubscribeRequestParams::new("doc://nowhere"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("-32002"), "{err}");
    let docs = slot.get().unwrap();
    docs.cast(DocsMsg::Edit("second draft".into())).unwrap();
    eventually("notifications/resources/updated", || {
        !seen.updated.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*seen.updated.lock().unwrap(), ["doc://readme"]);
    assert_eq!(
        text(&read("doc://readme").await.unwrap().contents[0]),
        "second draft"
    );
    client
        .unsubscribe(UnsubscribeRequestParams::new("doc://readme"))
        .await
        .unwrap();
    client
        .subscribe(SubscribeRequestParams::new("doc://pages/intro"))
        .await
        .unwrap();
    docs.cast(DocsMsg::Edit("third draft".into())).unwrap();
    // The read queues behind the edit: once it answers, the edit was announced.
    assert_eq!(
        text(&read("doc://readme").await.unwrap().contents[0]),
        "third draft"
    );
    router.resource_updated("doc://pages/intro");
    // Updates go out in order: once the page's arrives, the readme's would have come first.
    eventually("the page's update", || {
        seen.updated.lock().unwrap().len() >= 2
    })
    .await;
    assert_eq!(
        *seen.updated.lock().unwrap(),
        ["doc://readme", "doc://pages/intro"]
    );

    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

/// A 2026-07-28 client (no session, no server→client requests) of `runtime`.
async fn connect_2026<H: ClientHandler>(
    runtime: &Runtime,
    handler: H,
) -> RunningService<RoleClient, H> {
    use rmcp::ClientServiceExt;
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    handler
        .serve_with_lifecycle(
            client_io,
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_2026_client_answers_a_tools_requests_in_input_required_rounds_and_a_tampered_state_is_refused()
 {
    use rmcp::model::{CallToolResponse, InputRequest};
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let slot = ActorSlot::new("surveyor-2026");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host-2026").child(ChildSpec::actor(&slot, || (Surveyor, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_actor_with_context(
            ActorTool {
                name: "host_survey",
                description: "Ask the model, then the user.",
                annotations: Annotations::default(),
                slot,
                policy: default_policy("host_survey"),
            },
            SurveyMsg::Run,
        )
        .unwrap();
    let seen = Client::default();
    let client = connect_2026(&runtime, seen.clone()).await;
    let call = || {
        CallToolRequestParams::new("host_survey").with_arguments(object(json!({"topic": "towels"})))
    };

    // rmcp's client drives the rounds through its handler: the same actor code as for a
    // 2025-11-25 client, one round for the model and one for the user.
    let r = client.call_tool(call()).await.unwrap();
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));
    let out = r.structured_content.unwrap();
    assert_eq!(out["model_said"], "forty-two");
    assert_eq!(out["user"], json!({"name": "Ada"}));
    assert_eq!(seen.asked.lock().unwrap().len(), 2);

    // By hand: the first round asks the model, with a sealed requestState.
    let CallToolResponse::InputRequired(round) = client.call_tool_once(call()).await.unwrap()
    else {
        panic!("an input-required result");
    };
    let requests = round.input_requests.clone().unwrap();
    assert_eq!(requests.len(), 1);
    let (key, request) = requests.into_iter().next().unwrap();
    assert!(matches!(request, InputRequest::CreateMessage(_)));
    let state = round.request_state.clone().unwrap();
    let answer = serde_json::to_value(CreateMessageResult::new(
        SamplingMessage::assistant_text("seven"),
        "test-model".into(),
    ))
    .unwrap();
    let responses: rmcp::model::InputResponses = [(key.clone(), answer)].into_iter().collect();

    // An edited state is refused (-32602) and does not consume the waiting call.
    let mut tampered = state.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let refused = client
        .call_tool_once(
            call()
                .with_input_responses(responses.clone())
                .with_request_state(String::from_utf8(tampered).unwrap()),
        )
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(e) = refused else {
        panic!("a JSON-RPC error: {refused:?}");
    };
    assert_eq!(e.code.0, -32602, "{e:?}");
    // A state is bound to its tool.
    let elsewhere = client
        .call_tool_once(
            CallToolRequestParams::new("queue_stats")
                .with_arguments(object(json!({})))
                .with_request_state(state.clone()),
        )
        .await;
    assert!(elsewhere.is_err(), "{elsewhere:?}");

    // The real state resumes the call: the next round asks the user.
    let CallToolResponse::InputRequired(second) = client
        .call_tool_once(
            call()
                .with_input_responses(responses.clone())
                .with_request_state(state.clone()),
        )
        .await
        .unwrap()
    else {
        panic!("a second round");
    };
    let (key2, request2) = second
        .input_requests
        .clone()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert!(matches!(request2, InputRequest::Elicitation(_)));
    assert_ne!(second.request_state, Some(state.clone()));
    // A round is answered once.
    assert!(
        client
            .call_tool_once(
                call()
                    .with_input_responses(responses)
                    .with_request_state(state)
            )
            .await
            .is_err()
    );
    let done = client
        .call_tool_once(
            call()
                .with_input_responses(
                    [(
                        key2,
                        serde_json::to_value(
                            ElicitResult::new(ElicitationAction::Accept)
                                .with_content(json!({"name": "Grace"})),
                        )
                        .unwrap(),
                    )]
                    .into_iter()
                    .collect(),
                )
                .with_request_state(second.request_state.unwrap()),
        )
        .await
        .unwrap();
    let CallToolResponse::Complete(done) = done else {
        panic!("the result");
    };
    let out = done.structured_content.unwrap();
    assert_eq!(out["model_said"], "seven");
    assert_eq!(out["user"], json!({"name": "Grace"}));
    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

/// A 2026-07-28 client with the tasks extension that answers by hand.
#[derive(Clone)]
struct TasksClient;

impl ClientHandler for TasksClient {
    fn get_info(&self) -> ClientConfig {
        let caps = ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .enable_tasks()
            .build();
        ClientConfig::new(caps, Implementation::new("mcp_context_tasks", "1"))
    }
}

#[tokio::test]
async fn an_input_first_task_tool_asks_in_rounds_then_runs_as_a_task_that_asks_through_tasks_update()
 {
    use rmcp::model::{
        CallToolResponse, GetTaskParams, InputRequest, TaskPayload, TaskStatus, UpdateTaskParams,
    };
    let runtime = Runtime::builder()
        .in_memory()
        .input_first_task_tools(["host_survey"])
        .build()
        .await
        .unwrap();
    let slot = ActorSlot::new("surveyor-task");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host-task").child(ChildSpec::actor(&slot, || (Surveyor, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_actor_with_context(
            ActorTool {
                name: "host_survey",
                description: "Ask the model, then the user.",
                annotations: Annotations::default(),
                slot,
                policy: default_policy("host_survey"),
            },
            SurveyMsg::Run,
        )
        .unwrap();
    let client = connect_2026(&runtime, TasksClient).await;
    let call = || {
        CallToolRequestParams::new("host_survey").with_arguments(object(json!({"topic": "tea"})))
    };

    // Round 1 is synchronous: the tool's first question, no task yet.
    let CallToolResponse::InputRequired(round) = client.call_tool_once(call()).await.unwrap()
    else {
        panic!("an input-required result first");
    };
    let (key, _) = round.input_requests.unwrap().into_iter().next().unwrap();
    let answer = serde_json::to_value(CreateMessageResult::new(
        SamplingMessage::assistant_text("oolong"),
        "test-model".into(),
    ))
    .unwrap();
    // With the answer in, the rest is a task.
    let CallToolResponse::Task(created) = client
        .call_tool_once(
            call()
                .with_input_responses([(key, answer)].into_iter().collect())
                .with_request_state(round.request_state.unwrap()),
        )
        .await
        .unwrap()
    else {
        panic!("a task once the input is in");
    };
    let id = created.task.task_id.clone();

    // Its next question waits in the task for tasks/update.
    let get = || client.peer().get_task(GetTaskParams::new(id.clone()));
    let (key, request) = loop {
        let info = get().await.unwrap().task;
        if let TaskPayload::InputRequired { input_requests } = info.payload {
            break input_requests.into_iter().next().unwrap();
        }
        assert!(!info.status().is_terminal(), "{:?}", info.payload);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(matches!(request, InputRequest::Elicitation(_)));
    client
        .peer()
        .update_task(UpdateTaskParams::new(
            id.clone(),
            [(
                key,
                serde_json::to_value(
                    ElicitResult::new(ElicitationAction::Accept)
                        .with_content(json!({"name": "Lu"})),
                )
                .unwrap(),
            )]
            .into_iter()
            .collect(),
        ))
        .await
        .unwrap();
    let done = loop {
        let info = get().await.unwrap().task;
        if info.status().is_terminal() {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(done.status(), TaskStatus::Completed);
    let TaskPayload::Completed { result } = done.payload else {
        panic!("completed");
    };
    let result: rmcp::model::CallToolResult =
        serde_json::from_value(Value::Object(result)).unwrap();
    let out = result.structured_content.unwrap();
    assert_eq!(out["model_said"], "oolong");
    assert_eq!(out["user"], json!({"name": "Lu"}));

    // A 2026 client without the tasks extension is refused (-32021).
    let plain = connect_2026(&runtime, Client::default()).await;
    let refused = plain.call_tool_once(call()).await.unwrap_err();
    let rmcp::ServiceError::McpError(e) = refused else {
        panic!("a JSON-RPC error: {refused:?}");
    };
    assert_eq!(e.code.0, -32021);
    plain.cancel().await.unwrap();
    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// A prompt that asks the user before it answers.

#[derive(Clone, Deserialize, JsonSchema)]
struct GreetingArgs {
    /// How formal to be.
    tone: String,
}

type MessagesReply = RpcReplyPort<Result<Vec<PromptMessage>, String>>;

enum GreeterMsg {
    Greet(GreetingArgs, ToolContext, MessagesReply),
}

struct Greeter;

impl Actor for Greeter {
    type Msg = GreeterMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<GreeterMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<GreeterMsg>,
        msg: GreeterMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let GreeterMsg::Greet(args, ctx, reply) = msg;
        tokio::spawn(async move {
            let answer = async {
                let params: ElicitRequestParams = serde_json::from_value(json!({
                    "mode": "form",
                    "message": "Who is it for?",
                    "requestedSchema": {"type": "object",
                        "properties": {"name": {"type": "string"}}, "required": ["name"]}
                }))
                .map_err(|e| e.to_string())?;
                let who = ctx
                    .elicit_as("who".to_string(), params)
                    .await
                    .map_err(|e| e.to_string())?;
                let name = who.content.unwrap_or(Value::Null)["name"].clone();
                Ok(vec![PromptMessage::new(
                    Role::User,
                    ContentBlock::text(format!("Greet {name} in a {} tone.", args.tone)),
                )])
            }
            .await;
            let _ = reply.send(answer);
        });
        Ok(())
    }
}

#[tokio::test]
async fn a_prompt_asks_a_2026_client_in_input_required_rounds_and_an_older_client_is_told_it_cannot()
 {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let slot = ActorSlot::new("greeter");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host-greeter").child(ChildSpec::actor(&slot, || (Greeter, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_prompt_with_context(
            ActorPrompt {
                name: "greeting",
                description: "A greeting for someone the user names.",
                slot,
                policy: default_policy("greeting"),
            },
            GreeterMsg::Greet,
        )
        .unwrap();
    let get = || {
        GetPromptRequestParams::new("greeting")
            .with_arguments(json!({"tone": "warm"}).as_object().cloned().unwrap())
    };

    // rmcp's 2026 client answers the round through its handler.
    let seen = Client::default();
    let modern = connect_2026(&runtime, seen.clone()).await;
    let prompt = modern.get_prompt(get()).await.unwrap();
    let said = serde_json::to_value(&prompt.messages[0].content).unwrap();
    assert_eq!(said["text"], "Greet \"Ada\" in a warm tone.");
    assert_eq!(seen.asked.lock().unwrap().len(), 1);
    modern.cancel().await.unwrap();

    // An older client has no rounds: the prompt's request fails, and says why.
    let older = connect(&runtime, Client::default()).await;
    let refused = older.get_prompt(get()).await.unwrap_err();
    assert!(refused.to_string().contains("no MCP client"), "{refused}");
    older.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}
