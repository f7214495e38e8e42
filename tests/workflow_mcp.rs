//! Workflows over a real MCP session: per-step progress while waiting, runs as resources,
//! templates from registration to run.

use std::sync::{Arc, Mutex};

use ensemble::runtime::runtime::Runtime;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ProgressNotificationParam, ReadResourceRequestParams,
    ResourceContents, object,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};

/// (progress, total, message) of each notification.
type Progress = (f64, Option<f64>, Option<String>);

#[derive(Default, Clone)]
struct Seen {
    progress: Arc<Mutex<Vec<Progress>>>,
}

impl ClientHandler for Seen {
    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.progress
            .lock()
            .unwrap()
            .push((p.progress, p.total, p.message));
    }
}

/// An in-memory runtime with test tools, serving MCP on a pipe whose other end `client` takes.
async fn connect<C: rmcp::service::Service<RoleClient>>(
    client: C,
) -> (Runtime, RunningService<RoleClient, C>) {
    let runtime = Runtime::builder()
        .in_memory()
        .test_tools(true)
        .build()
        .await
        .unwrap();
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = client.serve(client_io).await.unwrap();
    (runtime, client)
}

async fn session() -> (Runtime, RunningService<RoleClient, Seen>, Seen) {
    let seen = Seen::default();
    let (runtime, client) = connect(seen.clone()).await;
    (runtime, client, seen)
}

/// Polls task `id` until it ends; returns it and each distinct status message seen on the way.
async fn until_terminal<C: rmcp::service::Service<RoleClient>>(
    client: &RunningService<RoleClient, C>,
    id: &str,
) -> (rmcp::model::DetailedTask, Vec<String>) {
    let mut messages = Vec::new();
    loop {
        let info = client
            .peer()
            .get_task(rmcp::model::GetTaskParams::new(id.to_string()))
            .await
            .unwrap();
        if let Some(m) = &info.task.task.status_message
            && messages.last() != Some(m)
        {
            messages.push(m.clone());
        }
        if info.task.status().is_terminal() {
            return (info.task, messages);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn call(c: &RunningService<RoleClient, Seen>, tool: &str, args: Value) -> CallToolResult {
    c.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .expect("a tool result")
}

#[tokio::test]
async fn a_waiting_run_reports_each_step_and_is_a_resource() {
    let (_rt, client, seen) = session().await;
    let def = json!({"steps": [
        {"id": "a", "tool": "debug_sleep", "arguments": {"ms": 5, "label": "a"}},
        {"id": "b", "tool": "debug_sleep", "depends_on": ["a"], "arguments": {"ms": 5, "label": "b"}},
        {"id": "c", "tool": "validation_validate", "depends_on": ["b"],
         "arguments": {"schema": {"type": "string"}, "document": "${steps.b.output.label}"}}
    ]});
    let r = call(
        &client,
        "workflow_run",
        json!({"definition": def, "wait": true}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    let run = r.structured_content.unwrap();
    assert_eq!(run["state"], "completed");
    assert_eq!(run["steps"][2]["output"]["valid"], true);
    let progress = seen.progress.lock().unwrap().clone();
    let counts: Vec<f64> = progress.iter().map(|p| p.0).collect();
    assert_eq!(counts, [1.0, 2.0, 3.0], "{progress:?}");
    assert!(progress.iter().all(|p| p.1 == Some(3.0)));
    assert!(
        progress[1]
            .2
            .as_deref()
            .unwrap()
            .contains("step `b` completed")
    );

    // The run is a resource, listed and readable.
    let run_id = run["run_id"].as_str().unwrap();
    let uri = format!("ensemble://workflows/runs/{run_id}");
    let listed = client.list_all_resources().await.unwrap();
    assert!(listed.iter().any(|r| r.uri == uri), "{listed:?}");
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "ensemble://workflows/runs/{id}")
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("text contents: {read:?}");
    };
    let body: Value = serde_json::from_str(text).unwrap();
    assert_eq!(body["run_id"], run_id);
    assert_eq!(body["state"], "completed");
    let missing = client
        .read_resource(ReadResourceRequestParams::new(
            "ensemble://workflows/runs/wf-nope".to_string(),
        ))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("workflow_list"), "{missing}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn templates_over_mcp_from_registration_to_a_run() {
    let (_rt, client, _) = session().await;
    let template = json!({
        "name": "nap", "version": "1.0.0",
        "parameters": [{"name": "ms", "type": "integer", "default": 1},
                       {"name": "tag", "type": "string", "pattern": "^[a-z]+$"}],
        "steps": [{"id": "sleep", "tool": "debug_sleep", "arguments": {"ms": "${ms}", "label": "${tag}"}}]
    });
    let r = call(&client, "template_register", json!({"template": template})).await;
    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    let bad = call(
        &client,
        "template_instantiate",
        json!({"name": "nap", "params": {"ms": "x", "tag": "UPPER"}}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    let text = format!("{:?}", bad.content);
    assert!(text.contains("`ms`") && text.contains("`tag`"), "{text}");
    let def = call(
        &client,
        "template_instantiate",
        json!({"name": "nap", "params": {"tag": "ok"}}),
    )
    .await
    .structured_content
    .unwrap();
    assert_eq!(
        def["definition"]["steps"][0]["arguments"],
        json!({"ms": 1, "label": "ok"})
    );
    let run = call(
        &client,
        "workflow_run",
        json!({"template": "nap", "params": {"tag": "ok", "ms": 2}, "wait": true}),
    )
    .await
    .structured_content
    .unwrap();
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["template"], "nap@1.0.0");
    let listed = call(&client, "template_list", json!({})).await;
    assert_eq!(
        listed.structured_content.unwrap()["templates"][0]["latest"],
        "1.0.0"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn long_calls_are_mcp_tasks_for_clients_that_negotiate_them() {
    use rmcp::model::{
        CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig, Implementation,
        TaskPayload, TaskStatus,
    };
    let (_runtime, client) = connect(ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::from_build_env(),
    ))
    .await;

    let def = json!({"steps": [
        {"id": "a", "tool": "debug_sleep", "arguments": {"ms": 80, "label": "a"}},
        {"id": "b", "tool": "debug_sleep", "depends_on": ["a"], "arguments": {"ms": 80, "label": "b"}},
        {"id": "c", "tool": "debug_sleep", "depends_on": ["b"], "arguments": {"ms": 80, "label": "c"}}
    ]});
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("workflow_run")
                .with_arguments(object(json!({"definition": def, "wait": true}))),
        )
        .await
        .unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!("a task: {response:?}");
    };
    let id = created.task.task_id.clone();
    let (done, messages) = until_terminal(&client, &id).await;
    let TaskPayload::Completed { result } = done.payload else {
        panic!("completed: {:?}", done.payload);
    };
    let result: rmcp::model::CallToolResult =
        serde_json::from_value(Value::Object(result)).unwrap();
    assert_eq!(
        result.structured_content.unwrap()["state"],
        "completed",
        "{messages:?}"
    );
    // The steps' progress became the task's status.
    assert!(
        messages.iter().any(|m| m.contains("step `a` completed")),
        "{messages:?}"
    );

    // tasks/cancel stops the work.
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("debug_sleep")
                .with_arguments(object(json!({"ms": 60000, "label": "long"}))),
        )
        .await
        .unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!("a task: {response:?}");
    };
    let id = created.task.task_id.clone();
    client
        .peer()
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .unwrap();
    let (cancelled, _) = until_terminal(&client, &id).await;
    assert_eq!(cancelled.status(), TaskStatus::Cancelled);
    // Short tools are not tasks.
    let r = client
        .call_tool(CallToolRequestParams::new("queue_stats").with_arguments(object(json!({}))))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_tool_served_only_as_a_task_refuses_clients_without_tasks_with_32021() {
    use rmcp::model::{
        CallToolResponse, ClientCapabilities, ClientConfig, Implementation, TaskStatus,
    };
    let runtime = Runtime::builder()
        .in_memory()
        .test_tools(true)
        .required_task_tools(["debug_sleep"])
        .build()
        .await
        .unwrap();
    let serve = |runtime: &Runtime| {
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        let service = runtime.mcp_service();
        tokio::spawn(async move {
            if let Ok(running) = service.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        client_io
    };
    let sleep = || {
        CallToolRequestParams::new("debug_sleep")
            .with_arguments(object(json!({"ms": 10, "label": "only-a-task"})))
    };

    let plain = ().serve(serve(&runtime)).await.unwrap();
    let refused = plain.call_tool_once(sleep()).await.unwrap_err();
    let rmcp::ServiceError::McpError(e) = refused else {
        panic!("a JSON-RPC error: {refused:?}");
    };
    assert_eq!(e.code.0, -32021, "{e:?}");
    assert!(
        e.data.unwrap()["requiredCapabilities"]["extensions"]
            .as_object()
            .is_some_and(|x| !x.is_empty())
    );
    // Tools that are not task-only answer as before.
    let r = plain
        .call_tool(CallToolRequestParams::new("queue_stats").with_arguments(object(json!({}))))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false));
    plain.cancel().await.unwrap();

    let tasks = ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::from_build_env(),
    )
    .serve(serve(&runtime))
    .await
    .unwrap();
    let CallToolResponse::Task(created) = tasks.call_tool_once(sleep()).await.unwrap() else {
        panic!("a task");
    };
    let (done, _) = until_terminal(&tasks, &created.task.task_id).await;
    assert_eq!(done.status(), TaskStatus::Completed);
    tasks.cancel().await.unwrap();
}

/// A user behind a 2026-07-28 client: asked for a form, answers `answer` (or declines when it
/// is `None`), and remembers each form's message and fields.
#[derive(Clone, Default)]
struct User {
    answer: Option<Value>,
    forms: Arc<Mutex<Vec<Value>>>,
}

impl ClientHandler for User {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let caps: rmcp::model::ClientCapabilities =
            serde_json::from_value(json!({"elicitation": {}})).unwrap();
        rmcp::model::ClientConfig::new(caps, rmcp::model::Implementation::new("user", "1"))
    }
    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        use rmcp::model::{ElicitResult, ElicitationAction};
        self.forms
            .lock()
            .unwrap()
            .push(serde_json::to_value(&request).unwrap());
        Ok(match &self.answer {
            Some(values) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(values.clone())
            }
            None => ElicitResult::new(ElicitationAction::Decline),
        })
    }
}

/// An in-memory runtime with the `nap` template (`tag` required, `ms` defaulted) and a
/// 2026-07-28 client (no session: the server asks through input-required results).
async fn nap_2026(user: User) -> (Runtime, RunningService<RoleClient, User>) {
    let runtime = Runtime::builder()
        .in_memory()
        .test_tools(true)
        .build()
        .await
        .unwrap();
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = rmcp::ClientServiceExt::serve_with_lifecycle(
        user,
        client_io,
        rmcp::ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    let template = json!({
        "name": "nap", "version": "1.0.0",
        "parameters": [{"name": "ms", "type": "integer", "default": 1},
                       {"name": "tag", "type": "string", "pattern": "^[a-z]+$",
                        "description": "What the nap is for."}],
        "steps": [{"id": "sleep", "tool": "debug_sleep", "arguments": {"ms": "${ms}", "label": "${tag}"}}]
    });
    let r = client
        .call_tool(
            CallToolRequestParams::new("template_register")
                .with_arguments(object(json!({"template": template}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    (runtime, client)
}

fn nap_run() -> CallToolRequestParams {
    CallToolRequestParams::new("workflow_run")
        .with_arguments(object(json!({"template": "nap", "wait": true})))
}

#[tokio::test]
async fn a_template_run_missing_a_parameter_asks_the_user_in_input_required_rounds() {
    use rmcp::model::{CallToolResponse, ElicitResult, ElicitationAction, InputRequest};
    let user = User {
        answer: Some(json!({"tag": "nightly"})),
        ..User::default()
    };
    let (_rt, client) = nap_2026(user.clone()).await;

    // rmcp's client drives the round through its handler: the user is asked for `tag` only.
    let r = client.call_tool(nap_run()).await.unwrap();
    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
    let run = r.structured_content.unwrap();
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["steps"][0]["output"]["label"], "nightly", "{run}");
    let forms = user.forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    let schema = &forms[0]["requestedSchema"];
    assert_eq!(schema["required"], json!(["tag"]), "{schema}");
    assert_eq!(schema["properties"]["tag"]["type"], "string");
    assert!(
        schema["properties"]["tag"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("What the nap is for.") && d.contains("^[a-z]+$")),
        "{schema}"
    );
    assert!(forms[0]["message"].as_str().unwrap().contains("nap@1.0.0"));
    // Parameters given are not asked for.
    let given = client
        .call_tool(
            CallToolRequestParams::new("workflow_run").with_arguments(object(
                json!({"template": "nap", "wait": true, "params": {"tag": "given"}}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        given.structured_content.unwrap()["steps"][0]["output"]["label"],
        "given"
    );
    assert_eq!(user.forms.lock().unwrap().len(), 1);

    // By hand: one round with the form and a sealed requestState.
    let CallToolResponse::InputRequired(round) = client.call_tool_once(nap_run()).await.unwrap()
    else {
        panic!("an input-required result");
    };
    let (key, request) = round
        .input_requests
        .clone()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert!(
        matches!(request, InputRequest::Elicitation(_)),
        "{request:?}"
    );
    let state = round.request_state.clone().unwrap();
    let answer = |tag: &str| -> rmcp::model::InputResponses {
        [(
            key.clone(),
            serde_json::to_value(
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"tag": tag})),
            )
            .unwrap(),
        )]
        .into_iter()
        .collect()
    };
    // An edited state is refused (-32602) and leaves the waiting run's question open.
    let mut tampered = state.clone().into_bytes();
    let at = tampered.len() / 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let refused = client
        .call_tool_once(
            nap_run()
                .with_input_responses(answer("forged"))
                .with_request_state(String::from_utf8(tampered).unwrap()),
        )
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(e) = refused else {
        panic!("a JSON-RPC error: {refused:?}");
    };
    assert_eq!(e.code.0, -32602, "{e:?}");
    // The real state resumes the run with the answer.
    let CallToolResponse::Complete(done) = client
        .call_tool_once(
            nap_run()
                .with_input_responses(answer("manual"))
                .with_request_state(state.clone()),
        )
        .await
        .unwrap()
    else {
        panic!("the run's result");
    };
    let run = done.structured_content.unwrap();
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["steps"][0]["output"]["label"], "manual");
    // A state is used once.
    assert!(
        client
            .call_tool_once(
                nap_run()
                    .with_input_responses(answer("again"))
                    .with_request_state(state)
            )
            .await
            .is_err()
    );

    // An answer that breaks the parameter's pattern is refused with what to fix; no run starts.
    let CallToolResponse::InputRequired(round) = client.call_tool_once(nap_run()).await.unwrap()
    else {
        panic!("an input-required result");
    };
    let (key, _) = round.input_requests.unwrap().into_iter().next().unwrap();
    let CallToolResponse::Complete(bad) = client
        .call_tool_once(
            nap_run()
                .with_input_responses(
                    [(
                        key,
                        serde_json::to_value(
                            ElicitResult::new(ElicitationAction::Accept)
                                .with_content(json!({"tag": "NOT LOWER"})),
                        )
                        .unwrap(),
                    )]
                    .into_iter()
                    .collect(),
                )
                .with_request_state(round.request_state.unwrap()),
        )
        .await
        .unwrap()
    else {
        panic!("an error result");
    };
    assert_eq!(bad.is_error, Some(true));
    assert!(
        format!("{:?}", bad.content).contains("`tag`"),
        "{:?}",
        bad.content
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_declined_question_or_a_client_that_cannot_be_asked_gets_the_missing_parameters() {
    // Declined: the error names the parameter and says the user declined.
    let (rt, client) = nap_2026(User::default()).await;
    let r = client.call_tool(nap_run()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(
        text.contains("`tag`") && text.contains("declined"),
        "{text}"
    );
    client.cancel().await.unwrap();

    // A 2025-11-25 client without elicitation: nobody is asked, the error lists what is missing.
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = rt.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let plain = ().serve(client_io).await.unwrap();
    let r = plain.call_tool(nap_run()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("`tag`") && !text.contains("asked"), "{text}");
    plain.cancel().await.unwrap();
}
