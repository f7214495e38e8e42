//! The runtime embedded in a host: host tools, list_changed, typed calls, two runtimes at once.

use std::time::Duration;

use ensemble::actors::registry::RegistryMsg;
use ensemble::protocol::registry::{GetRequest, PutRequest};
use ensemble::runtime::Runtime;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations};
use ensemble::supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::{ClientHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
