//! The MCP face of the runtime: an rmcp `ServerHandler` over the tool router.
//!
//! Unknown tools are JSON-RPC errors (-32602); bad arguments, engine errors, open breakers,
//! timeouts and crashes are tool results with `isError: true` and a message that says what to do.

use std::sync::Arc;

use ensemble_actors::registry::RegistryMsg;
use ensemble_protocol::registry::{GetRequest, ListRequest, RegistryError};
use ensemble_supervision::ActorSlot;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tracing::Instrument;

use crate::router::{Router, ToolError, ToolSpec};

/// The rmcp handler. Cheap to clone: the HTTP transport makes one per session or request.
#[derive(Clone, Debug)]
pub struct McpService {
    router: Router,
    name: Arc<str>,
    registry: Option<ActorSlot<RegistryMsg>>,
}

/// Artifacts are resources at `ensemble://registry/{name}/{version}`.
pub const ARTIFACT_URI_PREFIX: &str = "ensemble://registry/";

impl McpService {
    /// A handler serving `router`'s tools.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            name: "ensemble".into(),
            registry: None,
        }
    }

    /// Also serve the registry's artifacts as MCP resources.
    pub fn with_registry(mut self, registry: ActorSlot<RegistryMsg>) -> Self {
        self.registry = Some(registry);
        self
    }

    fn registry(&self) -> Result<&ActorSlot<RegistryMsg>, ErrorData> {
        self.registry
            .as_ref()
            .ok_or_else(|| ErrorData::resource_not_found("this server has no registry", None))
    }
}

fn artifact_uri(name: &str, version: &str) -> String {
    format!("{ARTIFACT_URI_PREFIX}{name}/{version}")
}

fn fault(e: ensemble_supervision::ActorFault) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

/// An rmcp `Tool` from a router spec.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let mut tool = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(spec.input_schema.clone()),
    );
    if let Some(out) = &spec.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(out.clone()));
    }
    let a = spec.annotations;
    tool.with_annotations(
        ToolAnnotations::new()
            .read_only(a.read_only)
            .destructive(a.destructive)
            .idempotent(a.idempotent),
    )
}

fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

impl ServerHandler for McpService {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
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
        // `notifications/tools/list_changed`, for as long as it is connected.
        let mut changes = self.router.subscribe_changes();
        let peer = ctx.peer;
        tokio::spawn(async move {
            // A lagged receiver still knows the list changed; only a closed router ends it.
            while !matches!(
                changes.recv().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed)
            ) {
                if peer.notify_tool_list_changed().await.is_err() {
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
        let registry = self.registry()?;
        let req = ListRequest {
            cursor: params.and_then(|p| p.cursor),
            limit: Some(100),
            ..ListRequest::default()
        };
        let page = registry
            .ask(|reply| RegistryMsg::List(req, ctx.ct.clone(), reply))
            .await
            .map_err(fault)?
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let resources = page
            .items
            .into_iter()
            .map(|a| {
                Resource::new(
                    artifact_uri(&a.name, &a.latest),
                    format!("{}@{}", a.name, a.latest),
                )
                .with_mime_type(a.media_type)
                .with_size(a.size)
                .with_description(format!(
                    "artifact {} version {} ({})",
                    a.name, a.latest, a.digest
                ))
            })
            .collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = if self.registry.is_some() {
            vec![
                ResourceTemplate::new(
                    format!("{ARTIFACT_URI_PREFIX}{{name}}/{{version}}"),
                    "registry artifact",
                )
                .with_description("One version of an artifact in the registry; content verified against its digest."),
            ]
        } else {
            Vec::new()
        };
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let registry = self.registry()?;
        let uri = req.uri;
        let Some((name, version)) = uri
            .strip_prefix(ARTIFACT_URI_PREFIX)
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource at {uri}; artifacts are at {ARTIFACT_URI_PREFIX}{{name}}/{{version}}"
                ),
                Some(serde_json::json!({ "uri": uri })),
            ));
        };
        let get = GetRequest {
            name: name.to_string(),
            version: Some(version.to_string()),
        };
        let artifact = registry
            .ask(|reply| RegistryMsg::Get(get, ctx.ct.clone(), reply))
            .await
            .map_err(fault)?
            .map_err(|e| match e {
                RegistryError::NotFound { .. } => ErrorData::resource_not_found(
                    e.to_string(),
                    Some(serde_json::json!({ "uri": uri })),
                ),
                e => ErrorData::internal_error(
                    e.to_string(),
                    Some(serde_json::json!({ "uri": uri })),
                ),
            })?;
        let contents = match (artifact.content, artifact.content_base64) {
            (Some(json), _) => ResourceContents::text(json.to_string(), uri.clone()),
            (None, Some(b64)) => ResourceContents::blob(b64, uri.clone()),
            (None, None) => ResourceContents::blob(String::new(), uri.clone()),
        }
        .with_mime_type(artifact.media_type);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn list_tools(
        &self,
        _params: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.router.list().iter().map(to_mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.spec(name).as_ref().map(to_mcp_tool)
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = req.name.to_string();
        let args = serde_json::Value::Object(req.arguments.unwrap_or_default());
        let span = tracing::info_span!("tool_call", tool = %name, request_id = %ctx.id);
        let outcome = self
            .router
            .call(&name, args, Some(ctx.ct.clone()))
            .instrument(span)
            .await;
        match outcome {
            Ok(value) => Ok(CallToolResult::structured(value).into()),
            Err(ToolError::UnknownTool(tool)) => Err(ErrorData::invalid_params(
                format!("unknown tool `{tool}`; tools/list shows the tools this server has"),
                Some(serde_json::json!({ "tool": tool })),
            )),
            Err(ToolError::Cancelled) => Err(ErrorData::internal_error(
                "the request was cancelled".to_string(),
                None,
            )),
            Err(e) => Ok(error_result(e.to_string()).into()),
        }
    }
}
