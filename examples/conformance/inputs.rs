//! The fixture tools that ask the client for something while they run (elicitation, sampling,
//! roots), and the diagnostic tools of the 2026-07-28 suite.
//!
//! They ask through their [`ToolContext`] and never know the protocol era: a 2025-11-25 client
//! gets server→client requests on the call's stream, a 2026-07-28 client an input-required
//! result and a second round (SEP-2322), a task's client `tasks/update` (SEP-2663). The keys
//! they give their requests are the keys the suite expects in `inputRequests`.

use ensemble::runtime::catalog::ActorPrompt;
use ensemble::runtime::context::ToolContext;
use ensemble::runtime::router::{ActorTool, Annotations, Router};
use ensemble::supervision::{ActorSlot, RoutePolicy};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, LoggingLevel,
    PromptMessage, Role,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Clone, Deserialize, JsonSchema)]
pub struct FileArgs {
    /// The file to delete.
    filename: String,
}

type Reply = RpcReplyPort<Result<CallToolResult, String>>;

pub enum InputsMsg {
    Elicitation(NoArgs, ToolContext, Reply),
    Sampling(NoArgs, ToolContext, Reply),
    ListRoots(NoArgs, ToolContext, Reply),
    RequestState(NoArgs, ToolContext, Reply),
    Multiple(NoArgs, ToolContext, Reply),
    MultiRound(NoArgs, ToolContext, Reply),
    Tampered(NoArgs, ToolContext, Reply),
    Capabilities(NoArgs, ToolContext, Reply),
    MissingCapability(NoArgs, ToolContext, Reply),
    Logging(NoArgs, ToolContext, Reply),
    StreamingElicitation(NoArgs, ToolContext, Reply),
    ConfirmDelete(FileArgs, ToolContext, Reply),
    MultiInput(NoArgs, ToolContext, Reply),
    WithTask(NoArgs, ToolContext, Reply),
    /// A prompt that asks the user for its context first.
    Prompt(NoArgs, ToolContext, PromptReply),
}

type PromptReply = RpcReplyPort<Result<Vec<PromptMessage>, String>>;

/// Serves the tools that wait on their client; each call runs beside the mailbox.
pub struct Inputs;

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

fn form(message: &str, field: &str, kind: &str) -> Result<ElicitRequestParams, String> {
    serde_json::from_value(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {field: {"type": kind}},
            "required": [field]
        }
    }))
    .map_err(|e| format!("bad elicitation: {e}"))
}

fn question(prompt: &str, max_tokens: u32) -> Result<CreateMessageRequestParams, String> {
    serde_json::from_value(json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": max_tokens
    }))
    .map_err(|e| format!("bad sampling request: {e}"))
}

/// One field of what the user answered, as text.
async fn ask(ctx: &ToolContext, key: &str, message: &str, field: &str) -> Result<String, String> {
    let answer = ctx
        .elicit_as(key.to_string(), form(message, field, "string")?)
        .await
        .map_err(|e| e.to_string())?;
    Ok(field_of(answer.content.as_ref(), field))
}

fn field_of(content: Option<&Value>, field: &str) -> String {
    match content.and_then(|c| c.get(field)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(no answer)".to_string(),
    }
}

async fn sample(ctx: &ToolContext, key: &str, prompt: &str, max: u32) -> Result<String, String> {
    let answer = ctx
        .create_message_as(key.to_string(), question(prompt, max)?)
        .await
        .map_err(|e| e.to_string())?;
    let content = serde_json::to_value(&answer.message.content).map_err(|e| e.to_string())?;
    Ok(content
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| content.to_string()))
}

async fn roots(ctx: &ToolContext, key: &str) -> Result<Vec<String>, String> {
    let answer = ctx
        .list_roots_as(key.to_string())
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.roots.into_iter().map(|r| r.uri).collect())
}

async fn run(msg: InputsMsg) {
    let (reply, result): (Reply, Result<CallToolResult, String>) = match msg {
        InputsMsg::Prompt(_, ctx, reply) => {
            let context = ask(
                &ctx,
                "user_context",
                "What context should the prompt use?",
                "context",
            )
            .await;
            let _ = reply.send(context.map(|c| {
                vec![PromptMessage::new(
                    Role::User,
                    ContentBlock::text(format!("Answer with this context in mind: {c}")),
                )]
            }));
            return;
        }
        InputsMsg::Elicitation(_, ctx, reply) => {
            let name = ask(&ctx, "user_name", "What is your name?", "name").await;
            (reply, name.map(|n| text(format!("Hello, {n}!"))))
        }
        InputsMsg::Sampling(_, ctx, reply) => {
            let said = sample(
                &ctx,
                "capital_question",
                "What is the capital of France?",
                100,
            )
            .await;
            (reply, said.map(|s| text(format!("The model said: {s}"))))
        }
        InputsMsg::ListRoots(_, ctx, reply) => {
            let r = roots(&ctx, "client_roots").await;
            (
                reply,
                r.map(|r| text(format!("The client's roots: {}", r.join(", ")))),
            )
        }
        // The runtime opened and checked the sealed requestState before this answer arrived.
        InputsMsg::RequestState(_, ctx, reply) | InputsMsg::Tampered(_, ctx, reply) => {
            let ok = match form("Please confirm", "ok", "boolean") {
                Ok(params) => ctx
                    .elicit_as("confirm".to_string(), params)
                    .await
                    .map_err(|e| e.to_string())
                    .map(|a| field_of(a.content.as_ref(), "ok")),
                Err(e) => Err(e),
            };
            (
                reply,
                ok.map(|ok| text(format!("state-ok: confirmed, ok={ok}"))),
            )
        }
        InputsMsg::Multiple(_, ctx, reply) => {
            // All three at once: they reach the client in one round.
            let (name, greeting, r) = tokio::join!(
                ask(&ctx, "user_name", "What is your name?", "name"),
                sample(&ctx, "greeting", "Generate a greeting", 50),
                roots(&ctx, "client_roots"),
            );
            let result = (|| {
                Ok(text(format!(
                    "{} {}! Your roots: {}",
                    greeting?,
                    name?,
                    r?.join(", ")
                )))
            })();
            (reply, result)
        }
        InputsMsg::MultiRound(_, ctx, reply) => {
            let result = async {
                let name = ask(&ctx, "step1", "Step 1: What is your name?", "name").await?;
                let color = ask(
                    &ctx,
                    "step2",
                    "Step 2: What is your favorite color?",
                    "color",
                )
                .await?;
                Ok(text(format!(
                    "Hello, {name}! Your favorite color is {color}."
                )))
            }
            .await;
            (reply, result)
        }
        InputsMsg::Capabilities(_, ctx, reply) => {
            // Asks for both; a request the client cannot take fails at once and is left out.
            let (name, said) = tokio::join!(
                ask(&ctx, "user_name", "What is your name?", "name"),
                sample(
                    &ctx,
                    "capital_question",
                    "What is the capital of France?",
                    100
                ),
            );
            let mut parts = Vec::new();
            for (what, got) in [("elicitation", name), ("sampling", said)] {
                parts.push(match got {
                    Ok(v) => format!("{what}: {v}"),
                    Err(e) => format!("{what}: skipped ({e})"),
                });
            }
            (reply, Ok(text(parts.join("; "))))
        }
        // Needs the client's model: without `sampling` the runtime answers -32021.
        InputsMsg::MissingCapability(_, ctx, reply) => {
            let said = sample(&ctx, "needs_sampling", "Say hello", 20).await;
            (reply, said.map(|s| text(format!("The model said: {s}"))))
        }
        // Logs go only to a client that asked for a level.
        InputsMsg::Logging(_, ctx, reply) => {
            ctx.log(LoggingLevel::Info, json!("test_logging_tool ran"));
            (
                reply,
                Ok(text(
                    "Logged at info (sent only to clients that set a level).",
                )),
            )
        }
        InputsMsg::StreamingElicitation(_, ctx, reply) => {
            ctx.progress(0.0, Some(1.0), Some("asking the user".into()));
            let name = ask(&ctx, "user_name", "What is your name?", "name").await;
            (reply, name.map(|n| text(format!("Hello, {n}!"))))
        }
        InputsMsg::ConfirmDelete(args, ctx, reply) => {
            let message = format!("Delete {}?", args.filename);
            let result = match form(&message, "confirm", "boolean") {
                Ok(params) => ctx
                    .elicit_as("confirm_delete".to_string(), params)
                    .await
                    .map_err(|e| e.to_string())
                    .map(|a| {
                        let yes = a.content.as_ref().and_then(|c| c.get("confirm"))
                            == Some(&Value::Bool(true));
                        let accepted =
                            serde_json::to_value(&a.action).is_ok_and(|v| v == json!("accept"));
                        if yes && accepted {
                            text(format!("Deleted {}", args.filename))
                        } else {
                            text(format!("Kept {}", args.filename))
                        }
                    }),
                Err(e) => Err(e),
            };
            (reply, result)
        }
        InputsMsg::MultiInput(_, ctx, reply) => {
            let (name, color) = tokio::join!(
                ask(&ctx, "name", "What is your name?", "name"),
                ask(&ctx, "color", "What is your favorite color?", "color"),
            );
            let result = (|| Ok(text(format!("{} likes {}", name?, color?))))();
            (reply, result)
        }
        // Asks first, then works: for a 2026-07-28 client the question is an input-required
        // round and the work a task (the runtime's input-first task tools).
        InputsMsg::WithTask(_, ctx, reply) => {
            let result = async {
                let name = ask(&ctx, "user_name", "What is your name?", "name").await?;
                tokio::select! {
                    () = ctx.cancellation().cancelled() => Err("cancelled".to_string()),
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                        Ok(text(format!("Hello, {name}! The task finished its work.")))
                    }
                }
            }
            .await;
            (reply, result)
        }
    };
    let _ = reply.send(result);
}

impl Actor for Inputs {
    type Msg = InputsMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<InputsMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<InputsMsg>,
        msg: InputsMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        tokio::spawn(run(msg));
        Ok(())
    }
}

pub fn register(
    router: &Router,
    slot: &ActorSlot<InputsMsg>,
) -> Result<(), Box<dyn std::error::Error>> {
    // They wait on the client: no deadline of the runtime's (the client has its own).
    let tool = |name: &'static str, description: &'static str| ActorTool {
        name,
        description,
        annotations: Annotations::default(),
        slot: slot.clone(),
        policy: RoutePolicy::builder(name).bulkhead(64).build(),
    };
    router.register_actor_with_context(
        tool(
            "test_input_required_result_elicitation",
            "Asks the user's name, then greets them.",
        ),
        InputsMsg::Elicitation,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_sampling",
            "Asks the client's model for the capital of France.",
        ),
        InputsMsg::Sampling,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_list_roots",
            "Asks the client for its roots and lists them.",
        ),
        InputsMsg::ListRoots,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_request_state",
            "Asks for a confirmation; its requestState is sealed.",
        ),
        InputsMsg::RequestState,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_multiple_inputs",
            "Asks for a name, a greeting and the roots at once.",
        ),
        InputsMsg::Multiple,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_multi_round",
            "Asks a name, then a favourite colour.",
        ),
        InputsMsg::MultiRound,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_tampered_state",
            "Asks for a confirmation; a tampered requestState is refused.",
        ),
        InputsMsg::Tampered,
    )?;
    router.register_actor_with_context(
        tool(
            "test_input_required_result_capabilities",
            "Asks for elicitation and sampling; leaves out what the client cannot do.",
        ),
        InputsMsg::Capabilities,
    )?;
    router.register_actor_with_context(
        tool(
            "test_missing_capability",
            "Needs the client's model (sampling).",
        ),
        InputsMsg::MissingCapability,
    )?;
    router.register_actor_with_context(
        tool("test_logging_tool", "Logs one line at info."),
        InputsMsg::Logging,
    )?;
    router.register_actor_with_context(
        tool(
            "test_streaming_elicitation",
            "Reports progress, then asks the user's name.",
        ),
        InputsMsg::StreamingElicitation,
    )?;
    router.register_actor_with_context(
        tool(
            "confirm_delete",
            "Asks before it deletes `filename`; runs as a task.",
        ),
        InputsMsg::ConfirmDelete,
    )?;
    router.register_actor_with_context(
        tool(
            "multi_input",
            "Asks a name and a colour at once; runs as a task.",
        ),
        InputsMsg::MultiInput,
    )?;
    router.register_actor_with_context(
        tool(
            "test_tool_with_task",
            "Asks your name, then works on as a task; its result greets you.",
        ),
        InputsMsg::WithTask,
    )?;
    router.register_prompt_with_context(
        ActorPrompt {
            name: "test_input_required_result_prompt",
            description: "Asks the user for the context to use, then gives the prompt.",
            slot: slot.clone(),
            policy: RoutePolicy::builder("test_input_required_result_prompt")
                .bulkhead(64)
                .build(),
        },
        InputsMsg::Prompt,
    )?;
    Ok(())
}
