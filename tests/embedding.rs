//! The runtime embedded in a host: host tools, list_changed, typed calls, two runtimes at once.

// MCP logging is deprecated in rmcp for 2026-07-28 clients; this test exercises it for older ones.
#![allow(deprecated)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble::actors::registry::RegistryMsg;
use ensemble::protocol::registry::{GetRequest, PutRequest};
use ensemble::runtime::Runtime;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations};
use ensemble::supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::model::{
    CallToolRequestParams, ClientRequest, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, Request, SetLevelRequestParams, object,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient};
use rmcp::{ClientHandler, ClientServiceExt, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Deserialize, JsonSchema)]
struct AddRequest {
    a: i64,
    b: i64,
}

#[derive(Serialize, JsonSchema)]
struct AddResponse {
    sum: i64,
}

enum AdderMsg {
    Add(
        AddRequest,
        CancellationToken,
        RpcReplyPort<Result<AddResponse, String>>,
    ),
}

struct Adder;

impl Actor for Adder {
    type Msg = AdderMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<AdderMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<AdderMsg>,
        msg: AdderMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let AdderMsg::Add(req, cancel, reply) = msg;
        if !cancel.is_cancelled() {
            let _ = reply.send(
                req.a
                    .checked_add(req.b)
                    .map(|sum| AddResponse { sum })
                    .ok_or_else(|| "the sum overflows i64".to_string()),
            );
        }
        Ok(())
    }
}

#[derive(Default, Clone)]
struct Seen {
    progress: Arc<Mutex<Vec<f64>>>,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl ClientHandler for Seen {
    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(p.progress);
    }
    async fn on_logging_message(
        &self,
        m: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(m.data);
    }
}

#[tokio::test]
async fn long_calls_report_progress_set_level_is_honoured_and_cancel_reaches_the_actor() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let (host, saw_cancel) = common::nap::host_nap(&runtime, Annotations::default()).await;
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime
        .mcp_service()
        .with_progress_every(Duration::from_millis(50));
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let seen = Seen::default();
    let client = seen.clone().serve(client_io).await.unwrap();

    // Progress: the client's request carries a progress token; a 300 ms call reports a few times.
    let r = client
        .call_tool(
            CallToolRequestParams::new("host_nap").with_arguments(object(json!({"ms": 300}))),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content, Some(json!({"slept_ms": 300})));
    let progress = seen.progress.lock().unwrap().clone();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress only grows: {progress:?}"
    );

    // Logging: nothing before setLevel; warnings and above after setLevel(warning).
    let _ = client
        .call_tool(
            CallToolRequestParams::new("registry_get")
                .with_arguments(object(json!({"name": "missing"}))),
        )
        .await
        .unwrap();
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await
        .unwrap();
    let _ = client
        .call_tool(
            CallToolRequestParams::new("registry_get")
                .with_arguments(object(json!({"name": "missing"}))),
        )
        .await
        .unwrap();
    let _ = client
        .call_tool(CallToolRequestParams::new("registry_list").with_arguments(object(json!({}))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = seen.logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 1, "one warning, no debug line: {logs:?}");
    assert!(
        logs[0]["error"].as_str().unwrap().contains("not found"),
        "{logs:?}"
    );

    // Cancellation: notifications/cancelled reaches the actor, which stops the work.
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(
                CallToolRequestParams::new("host_nap")
                    .with_arguments(object(json!({"ms": 60_000}))),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    for _ in 0..100 {
        if saw_cancel.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        saw_cancel.load(Ordering::SeqCst),
        "the actor stopped the work"
    );
    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

struct Watcher(tokio::sync::mpsc::UnboundedSender<()>);

impl ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send(());
    }
}

#[tokio::test]
async fn a_host_tool_registered_at_runtime_is_announced_and_served() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let client = Watcher(tx).serve(client_io).await.unwrap();
    let before = client.list_all_tools().await.unwrap().len();

    let slot = ActorSlot::new("adder");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host").child(ChildSpec::actor(&slot, || (Adder, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_actor(
            ActorTool {
                name: "host_add",
                description: "Add two integers.",
                annotations: Annotations::READ_ONLY,
                slot,
                policy: default_policy("host_add"),
            },
            AdderMsg::Add,
        )
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), changed.recv())
        .await
        .expect("notifications/tools/list_changed within 5 s")
        .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), before + 1);
    let add = tools.iter().find(|t| t.name == "host_add").unwrap();
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    let r = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("host_add")
                .with_arguments(rmcp::model::object(json!({"a": 2, "b": 40}))),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content, Some(json!({"sum": 42})));
    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_2026_listen_stream_hears_of_a_host_tool_and_only_what_its_filter_asked_for() {
    use rmcp::model::{GetMeta, ProtocolVersion, ServerNotification, SubscriptionFilter};
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    // A 2026-07-28 client: no initialize, no session; notifications come on a listen stream.
    let client = ()
        .serve_with_lifecycle(
            client_io,
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let mut tools_only = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .expect("subscriptions/listen is acknowledged");
    assert_eq!(
        tools_only.acknowledged(),
        &SubscriptionFilter::builder().tools_list_changed().build()
    );
    // A resource this server does not have is dropped from the acknowledged filter.
    let mut resources = client
        .listen(
            SubscriptionFilter::builder()
                .resource_subscription("nowhere://at-all")
                .build(),
        )
        .await
        .unwrap();
    assert!(
        resources
            .acknowledged()
            .resource_subscriptions
            .as_ref()
            .is_none_or(|uris| uris.is_empty())
    );

    let slot = ActorSlot::new("adder-listen");
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host-listen").child(ChildSpec::actor(&slot, || (Adder, ()))),
    )
    .await
    .unwrap();
    runtime
        .router()
        .register_actor(
            ActorTool {
                name: "host_add",
                description: "Add two integers.",
                annotations: Annotations::READ_ONLY,
                slot,
                policy: default_policy("host_add"),
            },
            AdderMsg::Add,
        )
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), tools_only.next())
        .await
        .expect("notifications/tools/list_changed within 5 s")
        .unwrap()
        .expect("the stream is open");
    assert!(matches!(
        heard,
        ServerNotification::ToolListChangedNotification(_)
    ));
    assert_eq!(
        heard.get_meta().subscription_id().as_ref(),
        Some(tools_only.id())
    );
    // The resource-only stream did not ask for tool changes.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), resources.next())
            .await
            .is_err()
    );
    client.cancel().await.unwrap();
    host.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn engines_take_typed_messages_and_two_runtimes_do_not_collide() {
    let one = Runtime::builder().in_memory().build().await.unwrap();
    let two = Runtime::builder().in_memory().build().await.unwrap();
    let put = one
        .engines()
        .registry
        .ask(|reply| {
            RegistryMsg::Put(
                PutRequest {
                    name: "only/in/one".into(),
                    version: "1.0.0".into(),
                    content: Some(json!(1)),
                    content_base64: None,
                    media_type: None,
                    labels: Default::default(),
                },
                CancellationToken::new(),
                reply,
            )
        })
        .await
        .unwrap()
        .unwrap();
    assert!(put.created);
    let get = |rt: &Runtime| {
        let slot = rt.engines().registry.clone();
        async move {
            slot.ask(|reply| {
                RegistryMsg::Get(
                    GetRequest {
                        name: "only/in/one".into(),
                        version: None,
                    },
                    CancellationToken::new(),
                    reply,
                )
            })
            .await
            .unwrap()
        }
    };
    assert!(get(&one).await.is_ok());
    assert!(
        get(&two).await.is_err(),
        "the second runtime has its own store"
    );
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();
}
