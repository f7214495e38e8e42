//! Embedding Ensemble in a host application: the host registers its own supervised actor as an
//! MCP tool, calls a built-in engine with typed messages (no JSON), and serves MCP on stdio.
//!
//! Run: `cargo run --example embed -- --serve` (without `--serve` it runs the calls and exits).

use std::time::Duration;

use ensemble::protocol::registry::{GetRequest, PutRequest};
use ensemble::runtime::Runtime;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations};
use ensemble::supervision::{ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The host's own tool: greets someone, counting greetings.
#[derive(Clone, Deserialize, JsonSchema)]
struct GreetRequest {
    /// Who to greet.
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct GreetResponse {
    greeting: String,
    count: u64,
}

enum GreeterMsg {
    Greet(
        GreetRequest,
        CancellationToken,
        RpcReplyPort<Result<GreetResponse, String>>,
    ),
}

struct Greeter;

impl Actor for Greeter {
    type Msg = GreeterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<GreeterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<GreeterMsg>,
        msg: GreeterMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        let GreeterMsg::Greet(req, cancel, reply) = msg;
        if cancel.is_cancelled() {
            return Ok(());
        }
        let answer = if req.name.trim().is_empty() {
            Err("`name` is empty; give the name of who to greet".to_string())
        } else {
            *count += 1;
            Ok(GreetResponse {
                greeting: format!("hello, {}", req.name),
                count: *count,
            })
        };
        let _ = reply.send(answer);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().in_memory().build().await?;

    // The host's actor runs under the host's own supervisor and is routed like any engine.
    let slot = ActorSlot::new("greeter");
    let (host_sup, _) = Supervisor::start(
        SupervisorSpec::new("host").child(ChildSpec::actor(&slot, || (Greeter, ()))),
    )
    .await?;
    runtime.router().register_actor(
        ActorTool {
            name: "host_greet",
            description: "Greet someone by name.",
            annotations: Annotations::default(),
            slot,
            policy: default_policy("host_greet"),
        },
        GreeterMsg::Greet,
    )?;

    // A tool call as an MCP client would make it, through the router.
    let greeting = runtime
        .router()
        .call("host_greet", serde_json::json!({"name": "Ada"}), None)
        .await?;
    eprintln!("host_greet -> {greeting}");

    // A typed call to the registry engine: no JSON on the way.
    let registry = runtime.engines().registry.clone();
    let put = registry
        .ask(|reply| {
            ensemble::actors::registry::RegistryMsg::Put(
                PutRequest {
                    name: "greetings/ada".into(),
                    version: "1.0.0".into(),
                    content: Some(greeting.clone()),
                    content_base64: None,
                    media_type: None,
                    labels: Default::default(),
                },
                CancellationToken::new(),
                reply,
            )
        })
        .await??;
    eprintln!("registry put -> {}", put.digest);
    let got = registry
        .ask(|reply| {
            ensemble::actors::registry::RegistryMsg::Get(
                GetRequest {
                    name: "greetings/ada".into(),
                    version: None,
                },
                CancellationToken::new(),
                reply,
            )
        })
        .await??;
    eprintln!("registry get -> {} {}", got.version, got.digest);

    if std::env::args().any(|a| a == "--serve") {
        eprintln!("serving MCP on stdio (host_greet and the engines' tools)");
        runtime.serve_stdio().await?;
    }
    host_sup
        .stop_and_wait(None, Some(Duration::from_secs(5)))
        .await?;
    runtime.shutdown().await?;
    Ok(())
}
