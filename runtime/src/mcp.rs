//! The MCP face of the runtime: an rmcp `ServerHandler` over the tool router.
//!
//! Unknown tools are JSON-RPC errors (-32602); bad arguments, engine errors, open breakers,
//! timeouts and crashes are tool results with `isError: true` and a message that says what to do.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
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
}

impl McpService {
    /// A handler serving `router`'s tools.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            name: "ensemble".into(),
        }
    }
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
