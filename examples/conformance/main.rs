//! The fixture server of the official MCP conformance suite, built with the embedding API.
//!
//! Every fixture tool, resource and prompt is served by a supervised actor through the
//! runtime's router, the way a host serves its own: typed messages in, typed replies out. The
//! tools that log, report progress, sample or elicit do it through their call's
//! [`ToolContext`]; the MCP handler delivers it on the call's stream.
//!
//! ```sh
//! cargo run --example conformance -- 127.0.0.1:3999
//! npx @modelcontextprotocol/conformance@0.1.16 server --url http://127.0.0.1:3999/mcp
//! ```
//!
//! The address defaults to `127.0.0.1:0` (any free port); the server prints
//! `ensemble: listening on http://ADDR/mcp` on stderr once it accepts connections.

// The suite runs on protocol 2025-11-25, where MCP logging and sampling are current; rmcp marks
// them deprecated for 2026-07-28.
#![allow(deprecated)]

mod inputs;

use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::catalog::{
    ActorCompletion, ActorPrompt, ActorResource, Complete, CompletionTarget, ReadResource,
};
use ensemble::runtime::context::ToolContext;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::http::{HttpOptions, serve};
use ensemble::runtime::router::{ActorTool, Annotations, Router};
use ensemble::supervision::{
    ActorSlot, CancellationToken, ChildSpec, RoutePolicy, Supervisor, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, LoggingLevel,
    PromptMessage, ResourceContents, Role,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// An empty 8 kHz mono 16-bit WAV.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

// ---------------------------------------------------------------------------------------------
// Tools

/// No arguments.
#[derive(Clone, Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Clone, Deserialize, JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the client's model.
    prompt: String,
}

#[derive(Clone, Deserialize, JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

#[derive(Clone, Deserialize, JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

#[derive(Clone, Deserialize, JsonSchema)]
struct SlowArgs {
    /// How long to compute, in seconds (0 answers at once).
    seconds: f64,
    /// A label to quote in the result.
    label: Option<String>,
}

/// A region mirrored into the `Mcp-Param-Region` HTTP header (SEP-2243), so gateways can
/// route on it without parsing the body; rmcp's HTTP transport checks the header against it.
#[derive(Clone, Deserialize)]
struct WeatherArgs {
    region: String,
}

impl JsonSchema for WeatherArgs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WeatherArgs".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "properties": {
                "region": {
                    "type": "string",
                    "description": "The region to report on.",
                    "x-mcp-header": "Region"
                }
            },
            "required": ["region"]
        })
    }
}

/// A contact, described by a hand-written JSON Schema 2020-12 that uses `$defs` with an
/// `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false` (SEP-1613,
/// SEP-2106): clients must see these keywords as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ContactArgs {
    name: Option<String>,
    address: Option<Address>,
    contact_method: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Clone, Deserialize)]
struct Address {
    street: Option<String>,
    city: Option<String>,
}

impl JsonSchema for ContactArgs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ContactArgs".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "$anchor": "addressDef",
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                }
            },
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
                "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                "phone": {"type": "string"},
                "email": {"type": "string"}
            },
            "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
            "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
            "then": {"required": ["phone"]},
            "else": {"required": ["email"]},
            "additionalProperties": false
        })
    }
}

impl ContactArgs {
    /// How to reach the contact, checked the way the schema says (the router decodes the
    /// arguments with serde; the conditional parts are checked here).
    fn describe(&self) -> Result<String, String> {
        // if contactMethod is phone then phone is required, else email is (which also
        // satisfies the anyOf of phone or email).
        let (how, value) = match self.contact_method.as_deref() {
            Some("phone") => ("phone", self.phone.as_deref()),
            None | Some("email") => ("email", self.email.as_deref()),
            Some(other) => {
                return Err(format!(
                    "contactMethod must be \"phone\" or \"email\", not {other:?}"
                ));
            }
        };
        let value = value.ok_or_else(|| match self.contact_method {
            Some(_) => format!("contactMethod is {how}, so `{how}` is required"),
            None => "`email` is required unless contactMethod is \"phone\"".to_string(),
        })?;
        let who = self.name.as_deref().unwrap_or("the contact");
        let city = self.address.as_ref().and_then(|a| a.city.as_deref());
        let street = self.address.as_ref().and_then(|a| a.street.as_deref());
        let place = match (street, city) {
            (Some(s), Some(c)) => format!(" at {s}, {c}"),
            (None, Some(c)) | (Some(c), None) => format!(" at {c}"),
            (None, None) => String::new(),
        };
        Ok(format!("Reach {who}{place} by {how}: {value}"))
    }
}

type Reply = RpcReplyPort<Result<CallToolResult, String>>;

/// The fixture tools, one message each.
enum ToolsMsg {
    SimpleText(NoArgs, ToolContext, Reply),
    Image(NoArgs, ToolContext, Reply),
    Audio(NoArgs, ToolContext, Reply),
    EmbeddedResource(NoArgs, ToolContext, Reply),
    Mixed(NoArgs, ToolContext, Reply),
    Logging(NoArgs, ToolContext, Reply),
    Error(NoArgs, ToolContext, Reply),
    Progress(NoArgs, ToolContext, Reply),
    Sampling(SamplingArgs, ToolContext, Reply),
    Elicitation(ElicitationArgs, ToolContext, Reply),
    ElicitDefaults(NoArgs, ToolContext, Reply),
    ElicitEnums(NoArgs, ToolContext, Reply),
    Contact(ContactArgs, ToolContext, Reply),
    Greet(GreetArgs, ToolContext, Reply),
    Weather(WeatherArgs, ToolContext, Reply),
    SlowCompute(SlowArgs, ToolContext, Reply),
    FailingJob(NoArgs, ToolContext, Reply),
    /// Panics: the runtime gets no answer, and the task fails.
    #[allow(dead_code)]
    // the context and the reply port are dropped unused: the crash is the point
    ProtocolErrorJob(NoArgs, ToolContext, Reply),
}

struct Tools;

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

impl Actor for Tools {
    type Msg = ToolsMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<ToolsMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ToolsMsg>,
        msg: ToolsMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let (ctx, reply, result) = match msg {
            ToolsMsg::SimpleText(_, ctx, reply) => (
                ctx,
                reply,
                text("This is a simple text response for testing."),
            ),
            ToolsMsg::Image(_, ctx, reply) => (
                ctx,
                reply,
                CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")]),
            ),
            ToolsMsg::Audio(_, ctx, reply) => (
                ctx,
                reply,
                CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")]),
            ),
            ToolsMsg::EmbeddedResource(_, ctx, reply) => (
                ctx,
                reply,
                CallToolResult::success(vec![ContentBlock::resource(
                    ResourceContents::text(
                        "This is an embedded resource content.",
                        "test://embedded-resource",
                    )
                    .with_mime_type("text/plain"),
                )]),
            ),
            ToolsMsg::Mixed(_, ctx, reply) => (
                ctx,
                reply,
                CallToolResult::success(vec![
                    ContentBlock::text("Multiple content types test:"),
                    ContentBlock::image(PNG, "image/png"),
                    ContentBlock::resource(
                        ResourceContents::text(
                            r#"{"test":"data","value":123}"#,
                            "test://mixed-content-resource",
                        )
                        .with_mime_type("application/json"),
                    ),
                ]),
            ),
            // A failure the tool reports in its own words: a result with `isError: true`.
            ToolsMsg::Error(_, ctx, reply) => (
                ctx,
                reply,
                CallToolResult::error(vec![ContentBlock::text(
                    "This tool intentionally returns an error for testing",
                )]),
            ),
            ToolsMsg::Greet(args, ctx, reply) => {
                (ctx, reply, text(format!("Hello, {}!", args.name)))
            }
            ToolsMsg::Weather(args, ctx, reply) => (
                ctx,
                reply,
                text(format!("The weather in {} is fixture-sunny.", args.region)),
            ),
            ToolsMsg::Contact(args, ctx, reply) => (
                ctx,
                reply,
                match args.describe() {
                    Ok(said) => text(said),
                    Err(why) => CallToolResult::error(vec![ContentBlock::text(why)]),
                },
            ),
            ToolsMsg::ProtocolErrorJob(..) => {
                // The actor crashes (and its supervisor restarts it); the caller's reply port
                // is dropped unanswered.
                panic!("protocol_error_job crashes on purpose");
            }
            slow => {
                run_slow(slow);
                return Ok(());
            }
        };
        if !ctx.is_cancelled() {
            let _ = reply.send(Ok(result));
        }
        Ok(())
    }
}

/// The tools that wait on timers or on the client run beside the actor's mailbox, so one slow
/// client does not hold up the other tools.
fn run_slow(msg: ToolsMsg) {
    match msg {
        ToolsMsg::Logging(_, ctx, reply) => {
            tokio::spawn(async move {
                ctx.log(LoggingLevel::Info, json!("Tool execution started"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                ctx.log(LoggingLevel::Info, json!("Tool processing data"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                ctx.log(LoggingLevel::Info, json!("Tool execution completed"));
                let _ = reply.send(Ok(text("Logging test completed")));
            });
        }
        ToolsMsg::Progress(_, ctx, reply) => {
            tokio::spawn(async move {
                for (i, step) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if ctx.is_cancelled() {
                        return;
                    }
                    ctx.progress(step, Some(100.0), Some(format!("step {}", i + 1)));
                }
                let _ = reply.send(Ok(text("Progress test completed")));
            });
        }
        ToolsMsg::Sampling(args, ctx, reply) => {
            tokio::spawn(async move {
                let _ = reply.send(sample(&ctx, &args.prompt).await);
            });
        }
        ToolsMsg::Elicitation(args, ctx, reply) => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}
                },
                "required": ["username", "email"]
            });
            tokio::spawn(async move {
                let answer = elicit(&ctx, &args.message, schema)
                    .await
                    .map(|(action, content)| {
                        text(format!(
                            "User response: action: {action}, content: {content}"
                        ))
                    });
                let _ = reply.send(answer);
            });
        }
        ToolsMsg::ElicitDefaults(_, ctx, reply) => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Your name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "Your age", "default": 30},
                    "score": {"type": "number", "description": "Your score", "default": 95.5},
                    "status": {"type": "string", "description": "Your status",
                        "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verified?", "default": true}
                }
            });
            tokio::spawn(async move {
                let answer = elicit(&ctx, "Please review the defaults", schema)
                    .await
                    .map(|(action, content)| {
                        text(format!(
                            "Elicitation completed: action={action}, content={content}"
                        ))
                    });
                let _ = reply.send(answer);
            });
        }
        ToolsMsg::ElicitEnums(_, ctx, reply) => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "description": "Pick one",
                        "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "description": "Pick one",
                        "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"}
                        ]},
                    "legacyEnum": {"type": "string", "description": "Pick one",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "description": "Pick some",
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "description": "Pick some",
                        "items": {"anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"}
                        ]}}
                }
            });
            tokio::spawn(async move {
                let answer =
                    elicit(&ctx, "Please choose", schema)
                        .await
                        .map(|(action, content)| {
                            text(format!(
                                "Elicitation completed: action={action}, content={content}"
                            ))
                        });
                let _ = reply.send(answer);
            });
        }
        ToolsMsg::SlowCompute(args, ctx, reply) => {
            tokio::spawn(async move {
                let wait = Duration::from_secs_f64(args.seconds.clamp(0.0, 3600.0));
                tokio::select! {
                    // Cancelled (tasks/cancel, or the client gave up): no answer.
                    () = ctx.cancellation().cancelled() => {}
                    () = tokio::time::sleep(wait) => {
                        let label = args.label.as_deref().unwrap_or("slow_compute");
                        let _ = reply.send(Ok(CallToolResult::structured(json!({
                            "label": label,
                            "seconds": args.seconds,
                            "result": format!("{label} computed in {}s", args.seconds),
                        }))));
                    }
                }
            });
        }
        ToolsMsg::FailingJob(_, ctx, reply) => {
            tokio::spawn(async move {
                tokio::select! {
                    () = ctx.cancellation().cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        let _ = reply.send(Ok(CallToolResult::error(vec![ContentBlock::text(
                            "failing_job failed, as it always does",
                        )])));
                    }
                }
            });
        }
        // Answered in `handle`.
        ToolsMsg::SimpleText(..)
        | ToolsMsg::Image(..)
        | ToolsMsg::Audio(..)
        | ToolsMsg::EmbeddedResource(..)
        | ToolsMsg::Mixed(..)
        | ToolsMsg::Error(..)
        | ToolsMsg::Contact(..)
        | ToolsMsg::Greet(..)
        | ToolsMsg::Weather(..)
        | ToolsMsg::ProtocolErrorJob(..) => {}
    }
}

/// Asks the client's model and quotes its answer.
async fn sample(ctx: &ToolContext, prompt: &str) -> Result<CallToolResult, String> {
    let params: CreateMessageRequestParams = serde_json::from_value(json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": 100
    }))
    .map_err(|e| e.to_string())?;
    let answer = ctx
        .create_message(params)
        .await
        .map_err(|e| e.to_string())?;
    let content = serde_json::to_value(&answer.message.content).map_err(|e| e.to_string())?;
    let said = content
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| content.to_string());
    Ok(text(format!("LLM response: {said}")))
}

/// Asks the user through the client; the action and the content they gave.
async fn elicit(
    ctx: &ToolContext,
    message: &str,
    schema: Value,
) -> Result<(String, Value), String> {
    let params: ElicitRequestParams = serde_json::from_value(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": schema
    }))
    .map_err(|e| format!("bad elicitation schema: {e}"))?;
    let answer = ctx.elicit(params).await.map_err(|e| e.to_string())?;
    let action = serde_json::to_value(&answer.action)
        .ok()
        .and_then(|a| a.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok((action, answer.content.unwrap_or(Value::Null)))
}

fn register_tools(
    router: &Router,
    slot: &ActorSlot<ToolsMsg>,
) -> Result<(), Box<dyn std::error::Error>> {
    let tool = |name: &'static str, description: &'static str| ActorTool {
        name,
        description,
        annotations: Annotations::READ_ONLY,
        slot: slot.clone(),
        policy: default_policy(name),
    };
    // Tools that wait on the client get no deadline of the runtime's: the client has its own.
    let interactive = |name: &'static str, description: &'static str| ActorTool {
        policy: RoutePolicy::builder(name).bulkhead(64).build(),
        annotations: Annotations::default(),
        ..tool(name, description)
    };
    router.register_actor_with_context(
        tool("test_simple_text", "Returns a simple text response."),
        ToolsMsg::SimpleText,
    )?;
    router.register_actor_with_context(
        tool("test_image_content", "Returns a 1x1 PNG image."),
        ToolsMsg::Image,
    )?;
    router.register_actor_with_context(
        tool("test_audio_content", "Returns a short WAV clip."),
        ToolsMsg::Audio,
    )?;
    router.register_actor_with_context(
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource.",
        ),
        ToolsMsg::EmbeddedResource,
    )?;
    router.register_actor_with_context(
        tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource.",
        ),
        ToolsMsg::Mixed,
    )?;
    router.register_actor_with_context(
        tool(
            "test_tool_with_logging",
            "Sends three log messages while it runs.",
        ),
        ToolsMsg::Logging,
    )?;
    router.register_actor_with_context(
        tool("test_error_handling", "Always answers with a tool error."),
        ToolsMsg::Error,
    )?;
    router.register_actor_with_context(
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100.",
        ),
        ToolsMsg::Progress,
    )?;
    router.register_actor_with_context(
        interactive(
            "test_sampling",
            "Asks the client's model to answer a prompt (sampling/createMessage).",
        ),
        ToolsMsg::Sampling,
    )?;
    router.register_actor_with_context(
        interactive(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create).",
        ),
        ToolsMsg::Elicitation,
    )?;
    router.register_actor_with_context(
        interactive(
            "test_elicitation_sep1034_defaults",
            "Elicits fields that carry default values (SEP-1034).",
        ),
        ToolsMsg::ElicitDefaults,
    )?;
    router.register_actor_with_context(
        interactive(
            "test_elicitation_sep1330_enums",
            "Elicits every enum shape: titled, untitled, legacy, single and multi (SEP-1330).",
        ),
        ToolsMsg::ElicitEnums,
    )?;
    router.register_actor_with_context(
        tool(
            "json_schema_2020_12_tool",
            "Says how to reach a contact; its input schema uses JSON Schema 2020-12 keywords.",
        ),
        ToolsMsg::Contact,
    )?;
    router.register_actor_with_context(tool("greet", "Says hello to `name`."), ToolsMsg::Greet)?;
    router.register_actor_with_context(
        tool(
            "test_custom_header",
            "Reports the weather of `region`, which clients also send as the Mcp-Param-Region header.",
        ),
        ToolsMsg::Weather,
    )?;
    // The tasks fixtures (SEP-2663); `main` offers them as tasks.
    let long = |name: &'static str, description: &'static str| ActorTool {
        policy: RoutePolicy::builder(name).bulkhead(64).build(),
        ..tool(name, description)
    };
    router.register_actor_with_context(
        long(
            "slow_compute",
            "Computes for `seconds` seconds, then answers; a task for clients with the tasks extension.",
        ),
        ToolsMsg::SlowCompute,
    )?;
    router.register_actor_with_context(
        long(
            "failing_job",
            "Fails with a tool error after a second; runs only as a task.",
        ),
        ToolsMsg::FailingJob,
    )?;
    router.register_actor_with_context(
        long(
            "protocol_error_job",
            "Crashes its actor; as a task it ends failed with the runtime's error.",
        ),
        ToolsMsg::ProtocolErrorJob,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Resources

type ContentsReply = RpcReplyPort<Result<ResourceContents, String>>;

enum ResourcesMsg {
    Read(ReadResource, CancellationToken, ContentsReply),
    /// The watched resource changes (a timer sends this).
    Touch,
}

/// The fixture resources; the watched one changes every few seconds and tells subscribers.
struct Resources;

const WATCHED: &str = "test://watched-resource";

impl Actor for Resources {
    type Msg = ResourcesMsg;
    /// How often the watched resource changed, and where to announce it.
    type State = (u64, Router);
    type Arguments = Router;

    async fn pre_start(
        &self,
        me: ActorRef<ResourcesMsg>,
        router: Router,
    ) -> Result<(u64, Router), ActorProcessingErr> {
        me.send_interval(Duration::from_secs(3), || ResourcesMsg::Touch);
        Ok((0, router))
    }

    async fn handle(
        &self,
        _: ActorRef<ResourcesMsg>,
        msg: ResourcesMsg,
        (changes, router): &mut (u64, Router),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ResourcesMsg::Touch => {
                *changes += 1;
                router.resource_updated(WATCHED);
            }
            // A read the caller gave up on gets no answer.
            ResourcesMsg::Read(_, cancel, _) if cancel.is_cancelled() => {}
            ResourcesMsg::Read(read, _, reply) => {
                let uri = read.uri.as_str();
                let contents = match uri {
                    "test://static-text" => Ok(ResourceContents::text(
                        "This is the content of the static text resource.",
                        uri,
                    )
                    .with_mime_type("text/plain")),
                    "test://static-binary" => {
                        Ok(ResourceContents::blob(PNG, uri).with_mime_type("image/png"))
                    }
                    WATCHED => Ok(ResourceContents::text(
                        format!("Watched resource content, changed {changes} times."),
                        uri,
                    )
                    .with_mime_type("text/plain")),
                    _ => match read.variables.get("id") {
                        Some(id) => Ok(ResourceContents::text(
                            json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                                .to_string(),
                            uri,
                        )
                        .with_mime_type("application/json")),
                        None => Err(format!("no fixture resource at {uri}")),
                    },
                };
                let _ = reply.send(contents);
            }
        }
        Ok(())
    }
}

fn register_resources(
    router: &Router,
    slot: &ActorSlot<ResourcesMsg>,
) -> Result<(), Box<dyn std::error::Error>> {
    let resource = |uri: &'static str,
                    name: &'static str,
                    description: &'static str,
                    mime: &'static str| ActorResource {
        uri,
        name,
        description,
        mime_type: Some(mime),
        slot: slot.clone(),
        policy: default_policy(name),
    };
    for r in [
        resource(
            "test://static-text",
            "static-text",
            "A fixed text resource.",
            "text/plain",
        ),
        resource(
            "test://static-binary",
            "static-binary",
            "A fixed binary resource (a PNG).",
            "image/png",
        ),
        resource(
            WATCHED,
            "watched-resource",
            "A resource that changes every 3 s; subscribe to hear of it.",
            "text/plain",
        ),
        resource(
            "test://template/{id}/data",
            "template-data",
            "Data for any id.",
            "application/json",
        ),
    ] {
        router.register_resource(r, ResourcesMsg::Read)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Prompts and completion

#[derive(Clone, Deserialize, JsonSchema)]
struct PromptArgs {
    /// First argument.
    arg1: String,
    /// Second argument.
    arg2: String,
}

#[derive(Clone, Deserialize, JsonSchema)]
struct EmbeddedArgs {
    /// The URI of the resource to embed.
    #[serde(rename = "resourceUri")]
    resource_uri: String,
}

type PromptReply = RpcReplyPort<Result<Vec<PromptMessage>, String>>;

enum PromptsMsg {
    Simple(NoArgs, CancellationToken, PromptReply),
    WithArgs(PromptArgs, CancellationToken, PromptReply),
    Embedded(EmbeddedArgs, CancellationToken, PromptReply),
    Image(NoArgs, CancellationToken, PromptReply),
    Complete(
        Complete,
        CancellationToken,
        RpcReplyPort<Result<Vec<String>, String>>,
    ),
}

struct Prompts;

impl Actor for Prompts {
    type Msg = PromptsMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PromptsMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<PromptsMsg>,
        msg: PromptsMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let user = |content| PromptMessage::new(Role::User, content);
        let (cancel, reply, messages) = match msg {
            PromptsMsg::Simple(_, cancel, reply) => (
                cancel,
                reply,
                vec![user(ContentBlock::text(
                    "This is a simple prompt for testing.",
                ))],
            ),
            PromptsMsg::WithArgs(a, cancel, reply) => (
                cancel,
                reply,
                vec![user(ContentBlock::text(format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    a.arg1, a.arg2
                )))],
            ),
            PromptsMsg::Embedded(a, cancel, reply) => (
                cancel,
                reply,
                vec![
                    user(ContentBlock::resource(
                        ResourceContents::text(
                            "Embedded resource content for testing.",
                            a.resource_uri,
                        )
                        .with_mime_type("text/plain"),
                    )),
                    user(ContentBlock::text(
                        "Please process the embedded resource above.",
                    )),
                ],
            ),
            PromptsMsg::Image(_, cancel, reply) => (
                cancel,
                reply,
                vec![
                    user(ContentBlock::image(PNG, "image/png")),
                    user(ContentBlock::text("Please analyze the image above.")),
                ],
            ),
            PromptsMsg::Complete(_, cancel, _) if cancel.is_cancelled() => return Ok(()),
            PromptsMsg::Complete(c, _, reply) => {
                let candidates: &[&str] = match c.argument.as_str() {
                    "arg1" => &["paris", "park", "party", "test", "testValue1"],
                    "arg2" => &["testValue2", "value"],
                    _ => &[],
                };
                let value = c.value.to_lowercase();
                let _ = reply.send(Ok(candidates
                    .iter()
                    .filter(|v| v.to_lowercase().starts_with(&value))
                    .map(|v| v.to_string())
                    .collect()));
                return Ok(());
            }
        };
        if !cancel.is_cancelled() {
            let _ = reply.send(Ok(messages));
        }
        Ok(())
    }
}

fn register_prompts(
    router: &Router,
    slot: &ActorSlot<PromptsMsg>,
) -> Result<(), Box<dyn std::error::Error>> {
    let prompt = |name: &'static str, description: &'static str| ActorPrompt {
        name,
        description,
        slot: slot.clone(),
        policy: default_policy(name),
    };
    router.register_prompt(
        prompt("test_simple_prompt", "A prompt without arguments."),
        PromptsMsg::Simple,
    )?;
    router.register_prompt(
        prompt(
            "test_prompt_with_arguments",
            "A prompt with two required arguments.",
        ),
        PromptsMsg::WithArgs,
    )?;
    router.register_prompt(
        prompt(
            "test_prompt_with_embedded_resource",
            "A prompt that embeds the resource it is given.",
        ),
        PromptsMsg::Embedded,
    )?;
    router.register_prompt(
        prompt("test_prompt_with_image", "A prompt with an image."),
        PromptsMsg::Image,
    )?;
    router.register_completion(
        ActorCompletion {
            target: CompletionTarget::Prompt("test_prompt_with_arguments".into()),
            slot: slot.clone(),
            policy: default_policy("test_prompt_with_arguments_complete"),
        },
        PromptsMsg::Complete,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()
        .map_err(|e| format!("usage: conformance [ADDR]; the address: {e}"))?;
    let runtime = Runtime::builder()
        .in_memory()
        .task_tools(["slow_compute", "confirm_delete", "multi_input"])
        .required_task_tools(["failing_job", "protocol_error_job"])
        .input_first_task_tools(["test_tool_with_task"])
        .build()
        .await?;
    let router = runtime.router().clone();

    // The fixture actors run under the host's supervisor, restarted like the engines.
    let tools = ActorSlot::new("fixture-tools");
    let resources = ActorSlot::new("fixture-resources");
    let prompts = ActorSlot::new("fixture-prompts");
    let asking = ActorSlot::new("fixture-inputs");
    let announce = router.clone();
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("fixtures")
            .child(ChildSpec::actor(&tools, || (Tools, ())))
            .child(ChildSpec::actor(&resources, move || {
                (Resources, announce.clone())
            }))
            .child(ChildSpec::actor(&prompts, || (Prompts, ())))
            .child(ChildSpec::actor(&asking, || (inputs::Inputs, ()))),
    )
    .await?;
    register_tools(&router, &tools)?;
    register_resources(&router, &resources)?;
    register_prompts(&router, &prompts)?;
    inputs::register(&router, &asking)?;

    let opts = HttpOptions {
        addr,
        allow_origins: Vec::new(),
    };
    serve(&runtime, opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    host.stop_and_wait(None, Some(Duration::from_secs(5)))
        .await?;
    runtime.shutdown().await?;
    Ok(())
}
