//! The router's values as rmcp's: tools, prompts and resource templates as `*/list` shows
//! them, call outcomes as tool results, and the JSON-RPC errors of a call or a read. Used by
//! the MCP service and by MCP tasks alike.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResult, ContentBlock, Prompt, PromptArgument, ResourceTemplate, Tool, ToolAnnotations,
};
use serde_json::{Map, Value};

use crate::router::catalog::ResourceError;
use crate::router::{Annotations, Route, Router, ToolError, ToolOutput, ToolSpec};

impl Router {
    /// One tool as rmcp describes it (schemas shared, not copied).
    pub fn mcp_tool(&self, name: &str) -> Option<Tool> {
        self.route(name).map(|r| route_tool(&r))
    }

    /// Every tool as rmcp describes it, ordered by name.
    pub fn mcp_tools(&self) -> Vec<Tool> {
        self.each_route(route_tool)
    }

    /// The resource templates, in registration order.
    pub fn resource_templates(&self) -> Vec<ResourceTemplate> {
        self.catalog()
            .resources
            .iter()
            .filter(|r| r.is_template())
            .map(|r| {
                let mut t = ResourceTemplate::new(r.uri.clone(), r.name.clone())
                    .with_description(&r.description);
                if let Some(m) = &r.mime_type {
                    t = t.with_mime_type(m);
                }
                t
            })
            .collect()
    }

    /// Every prompt, ordered by name.
    pub fn prompts(&self) -> Vec<Prompt> {
        self.catalog()
            .prompts
            .values()
            .map(|p| {
                let arguments: Vec<PromptArgument> = p
                    .arguments
                    .iter()
                    .map(|a| {
                        let arg = PromptArgument::new(a.name.clone()).with_required(a.required);
                        match &a.description {
                            Some(d) => arg.with_description(d),
                            None => arg,
                        }
                    })
                    .collect();
                let mut listed = Prompt::new(p.name.clone(), Some(p.description.clone()), None);
                if !arguments.is_empty() {
                    listed.arguments = Some(arguments);
                }
                listed
            })
            .collect()
    }
}

/// A route's tool, its schemas shared with the route.
fn route_tool(route: &Route) -> Tool {
    let spec = &route.spec;
    let tool = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        route.input_schema.clone(),
    );
    annotated(tool, route.output_schema.clone(), spec.annotations)
}

/// An rmcp `Tool` from a router spec.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let tool = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(spec.input_schema.clone()),
    );
    annotated(
        tool,
        spec.output_schema.clone().map(Arc::new),
        spec.annotations,
    )
}

fn annotated(mut tool: Tool, output: Option<Arc<Map<String, Value>>>, a: Annotations) -> Tool {
    if let Some(out) = output {
        tool = tool.with_raw_output_schema(out);
    }
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

/// The JSON-RPC error for a tool this server does not have (-32602).
pub(crate) fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(
        ToolError::UnknownTool(name.to_string()).to_string(),
        Some(serde_json::json!({ "tool": name })),
    )
}

/// A call's outcome as a tool result: the answer, or a failure of the tool or the runtime
/// (`isError: true` with what to do). An unknown tool and a cancelled call are not results;
/// they come back as they are for the caller to answer in its own way.
pub(crate) fn into_call_result(
    outcome: Result<ToolOutput, ToolError>,
) -> Result<CallToolResult, ToolError> {
    match outcome {
        Ok(ToolOutput::Structured(value)) => Ok(CallToolResult::structured(value)),
        Ok(ToolOutput::Content(result)) => Ok(result),
        Err(e @ (ToolError::UnknownTool(_) | ToolError::Cancelled)) => Err(e),
        Err(e) => Ok(error_result(e.to_string())),
    }
}

pub(crate) fn resource_error(e: ResourceError, uri: &str) -> ErrorData {
    let data = Some(serde_json::json!({ "uri": uri }));
    match e {
        ResourceError::NotFound(m) => ErrorData::resource_not_found(m, data),
        ResourceError::Failed(m) => ErrorData::internal_error(m, data),
    }
}
