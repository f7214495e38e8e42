//! The router's values as rmcp's: tools, prompts and resource templates as `*/list` shows
//! them, call outcomes as tool results, and the JSON-RPC errors of a call or a read. Used by
//! the MCP service and by MCP tasks alike.
//!
//! Also the conversions between the router's own result types ([`ToolResult`], [`Content`],
//! [`ResourceInfo`], [`ResourceContents`], [`PromptResult`]) and rmcp's, both ways: actors may
//! answer with rmcp's types (`.into()`, or directly where the router's reply traits are
//! implemented for them here), and the MCP service hands rmcp's to clients.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    self as mcp, CallToolResult, ContentBlock, Prompt, PromptArgument, ResourceTemplate, Tool,
    ToolAnnotations,
};
use serde_json::{Map, Value};

use crate::router::catalog::{IntoContents, IntoPrompt, ResourceError};
use crate::router::{
    Annotations, Content, IntoToolOutput, PromptMessage, PromptResult, ResourceContents,
    ResourceInfo, Role, Route, Router, ToolError, ToolOutput, ToolResult, ToolSpec,
};

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
        spec.input_schema.clone(),
    );
    annotated(tool, spec.output_schema.clone(), spec.annotations)
}

/// An rmcp `Tool` from a router spec.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let tool = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        spec.input_schema.clone(),
    );
    annotated(tool, spec.output_schema.clone(), spec.annotations)
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
        Ok(ToolOutput::Content(result)) => Ok(result.into()),
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

impl From<CallToolResult> for ToolResult {
    fn from(r: CallToolResult) -> Self {
        ToolResult {
            content: r.content.into_iter().map(Content::from).collect(),
            structured_content: r.structured_content,
            is_error: r.is_error,
        }
    }
}

impl From<ToolResult> for CallToolResult {
    fn from(r: ToolResult) -> Self {
        let mut result = CallToolResult::success(r.content.into_iter().map(Into::into).collect());
        result.structured_content = r.structured_content;
        result.is_error = r.is_error;
        result
    }
}

impl From<ContentBlock> for Content {
    fn from(block: ContentBlock) -> Self {
        match block {
            ContentBlock::Text(t) => Content::Text { text: t.text },
            ContentBlock::Image(i) => Content::Image {
                data: i.data,
                mime_type: i.mime_type,
            },
            ContentBlock::Audio(a) => Content::Audio {
                data: a.data,
                mime_type: a.mime_type,
            },
            ContentBlock::Resource(r) => Content::Resource {
                resource: r.resource.into(),
            },
            ContentBlock::ResourceLink(r) => Content::ResourceLink(r.into()),
            // A kind of block newer than this runtime: passed on as its JSON.
            other => Content::text(serde_json::to_string(&other).unwrap_or_default()),
        }
    }
}

impl From<Content> for ContentBlock {
    fn from(c: Content) -> Self {
        match c {
            Content::Text { text } => ContentBlock::text(text),
            Content::Image { data, mime_type } => ContentBlock::image(data, mime_type),
            Content::Audio { data, mime_type } => ContentBlock::audio(data, mime_type),
            Content::Resource { resource } => ContentBlock::resource(resource.into()),
            Content::ResourceLink(r) => ContentBlock::resource_link(r.into()),
        }
    }
}

impl From<mcp::Resource> for ResourceInfo {
    fn from(r: mcp::Resource) -> Self {
        ResourceInfo {
            uri: r.uri,
            name: r.name,
            title: r.title,
            description: r.description,
            mime_type: r.mime_type,
            size: r.size,
        }
    }
}

impl From<ResourceInfo> for mcp::Resource {
    fn from(r: ResourceInfo) -> Self {
        let mut res = mcp::Resource::new(r.uri, r.name);
        res.title = r.title;
        res.description = r.description;
        res.mime_type = r.mime_type;
        res.size = r.size;
        res
    }
}

impl From<mcp::ResourceContents> for ResourceContents {
    fn from(c: mcp::ResourceContents) -> Self {
        match c {
            mcp::ResourceContents::TextResourceContents {
                uri,
                mime_type,
                text,
                ..
            } => ResourceContents::Text {
                uri,
                mime_type,
                text,
            },
            mcp::ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => ResourceContents::Blob {
                uri,
                mime_type,
                blob,
            },
            // A kind of contents newer than this runtime: passed on as its JSON.
            other => ResourceContents::Text {
                uri: String::new(),
                mime_type: Some("application/json".into()),
                text: serde_json::to_string(&other).unwrap_or_default(),
            },
        }
    }
}

impl From<ResourceContents> for mcp::ResourceContents {
    fn from(c: ResourceContents) -> Self {
        match c {
            ResourceContents::Text {
                uri,
                mime_type,
                text,
            } => mcp::ResourceContents::TextResourceContents {
                uri,
                mime_type,
                text,
                meta: None,
            },
            ResourceContents::Blob {
                uri,
                mime_type,
                blob,
            } => mcp::ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                meta: None,
            },
        }
    }
}

impl From<mcp::Role> for Role {
    fn from(r: mcp::Role) -> Self {
        match r {
            mcp::Role::User => Role::User,
            mcp::Role::Assistant => Role::Assistant,
        }
    }
}

impl From<Role> for mcp::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::User => mcp::Role::User,
            Role::Assistant => mcp::Role::Assistant,
        }
    }
}

impl From<mcp::PromptMessage> for PromptMessage {
    fn from(m: mcp::PromptMessage) -> Self {
        PromptMessage {
            role: m.role.into(),
            content: m.content.into(),
        }
    }
}

impl From<PromptMessage> for mcp::PromptMessage {
    fn from(m: PromptMessage) -> Self {
        mcp::PromptMessage::new(m.role.into(), m.content.into())
    }
}

impl From<mcp::GetPromptResult> for PromptResult {
    fn from(r: mcp::GetPromptResult) -> Self {
        PromptResult {
            description: r.description,
            messages: r.messages.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<PromptResult> for mcp::GetPromptResult {
    fn from(r: PromptResult) -> Self {
        let mut result =
            mcp::GetPromptResult::new(r.messages.into_iter().map(Into::into).collect());
        result.description = r.description;
        result
    }
}

/// An actor may answer a content tool with rmcp's result as it is.
impl IntoToolOutput for CallToolResult {
    fn output_schema() -> Option<Map<String, Value>> {
        None
    }
    fn into_output(self) -> Result<ToolOutput, String> {
        Ok(ToolOutput::Content(self.into()))
    }
}

impl IntoContents for mcp::ResourceContents {
    fn into_contents(self, _uri: &str) -> Vec<ResourceContents> {
        vec![self.into()]
    }
}

impl IntoContents for Vec<mcp::ResourceContents> {
    fn into_contents(self, _uri: &str) -> Vec<ResourceContents> {
        self.into_iter().map(Into::into).collect()
    }
}

impl IntoPrompt for mcp::GetPromptResult {
    fn into_prompt(self) -> PromptResult {
        self.into()
    }
}

impl IntoPrompt for Vec<mcp::PromptMessage> {
    fn into_prompt(self) -> PromptResult {
        PromptResult::new(self.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{
        self as mcp, CallToolResult, ContentBlock, GetPromptResult, PromptMessage, Role,
    };
    use serde_json::json;

    use super::*;

    fn without_result_type(mut v: Value) -> Value {
        v.as_object_mut().unwrap().remove("resultType");
        v
    }

    #[test]
    fn tool_results_survive_the_round_trip_and_write_the_same_json() {
        let link = mcp::Resource::new("a://link", "link")
            .with_description("d")
            .with_mime_type("text/plain")
            .with_size(3);
        let mut original = CallToolResult::success(vec![
            ContentBlock::text("hi"),
            ContentBlock::image("AA==", "image/png"),
            ContentBlock::audio("AA==", "audio/wav"),
            ContentBlock::resource(mcp::ResourceContents::text("t", "a://t")),
            ContentBlock::resource(
                mcp::ResourceContents::blob("AA==", "a://b").with_mime_type("x/y"),
            ),
            ContentBlock::resource_link(link),
        ]);
        original.structured_content = Some(json!({ "n": 1 }));
        let ours = crate::router::ToolResult::from(original.clone());
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            without_result_type(serde_json::to_value(&original).unwrap())
        );
        assert_eq!(CallToolResult::from(ours), original);

        let failed = CallToolResult::error(vec![ContentBlock::text("no")]);
        assert_eq!(
            CallToolResult::from(crate::router::ToolResult::from(failed.clone())),
            failed
        );
    }

    #[test]
    fn prompts_survive_the_round_trip() {
        let mut original = GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, "hello"),
            PromptMessage::new(
                Role::Assistant,
                ContentBlock::resource(mcp::ResourceContents::text("r", "a://r")),
            ),
        ]);
        original.description = Some("greets".into());
        let ours = PromptResult::from(original.clone());
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            without_result_type(serde_json::to_value(&original).unwrap())
        );
        assert_eq!(GetPromptResult::from(ours), original);
    }
}
