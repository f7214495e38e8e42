//! What actors answer besides structured JSON, in the router's own terms: tool results made of
//! content blocks, resource descriptions and contents, prompt messages.
//!
//! The router carries these values from an actor to whoever called it and never looks inside.
//! They serialize as MCP does on the wire (`camelCase` fields, `type`-tagged content blocks), so
//! a tool result read as JSON is an MCP tool result. `crate::convert` turns them into the MCP
//! library's types for the MCP service, and lets a host build them from those with `.into()`.
//!
//! They hold what MCP clients act on; optional MCP decorations (content annotations, `_meta`,
//! icons) are not carried.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool's complete answer: content blocks, optionally structured content, and whether the
/// tool reports a failure in its own words (MCP `CallToolResult`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// What the tool answered, for a model or a person to read.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The same answer as JSON matching the tool's output schema, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// `Some(true)` when the tool failed (MCP `isError`); `None` when unsaid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

impl ToolResult {
    /// A successful answer made of `content`.
    pub fn success(content: Vec<Content>) -> Self {
        Self {
            content,
            structured_content: None,
            is_error: Some(false),
        }
    }

    /// A failure the tool reports in its own words.
    pub fn error(content: Vec<Content>) -> Self {
        Self {
            content,
            structured_content: None,
            is_error: Some(true),
        }
    }
}

/// One content block of a tool result or a prompt message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Content {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// The image, base64-encoded.
        data: String,
        /// Its media type (`image/png`).
        mime_type: String,
    },
    /// A sound.
    Audio {
        /// The sound, base64-encoded.
        data: String,
        /// Its media type (`audio/wav`).
        mime_type: String,
    },
    /// A resource's contents, embedded.
    Resource {
        /// The contents.
        resource: ResourceContents,
    },
    /// A link to a resource the client may read.
    ResourceLink(ResourceInfo),
}

impl Content {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Content::Text { text: text.into() }
    }
}

/// A resource as `resources/list` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// Where it is.
    pub uri: String,
    /// A short name.
    pub name: String,
    /// A name for people, if other than `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl ResourceInfo {
    /// The resource at `uri`, called `name`.
    pub fn new(uri: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: None,
            size: None,
        }
    }

    /// With a name for people.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// With a description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// With a media type.
    pub fn with_mime_type(mut self, mime_type: impl Into<String>) -> Self {
        self.mime_type = Some(mime_type.into());
        self
    }

    /// With a size in bytes.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
}

/// The contents of a resource (or of one part of it): text or binary, with its URI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum ResourceContents {
    /// Text.
    Text {
        /// The resource's URI.
        uri: String,
        /// Its media type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// The text.
        text: String,
    },
    /// Binary data.
    Blob {
        /// The resource's URI.
        uri: String,
        /// Its media type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// The data, base64-encoded.
        blob: String,
    },
}

impl ResourceContents {
    /// Plain text (`text/plain`) at `uri`.
    pub fn text(text: impl Into<String>, uri: impl Into<String>) -> Self {
        ResourceContents::Text {
            uri: uri.into(),
            mime_type: Some("text/plain".into()),
            text: text.into(),
        }
    }

    /// Base64-encoded binary data at `uri`, of no stated media type.
    pub fn blob(blob: impl Into<String>, uri: impl Into<String>) -> Self {
        ResourceContents::Blob {
            uri: uri.into(),
            mime_type: None,
            blob: blob.into(),
        }
    }

    /// With media type `mime_type`.
    pub fn with_mime_type(mut self, mime_type: impl Into<String>) -> Self {
        match &mut self {
            ResourceContents::Text { mime_type: m, .. }
            | ResourceContents::Blob { mime_type: m, .. } => {
                *m = Some(mime_type.into());
            }
        }
        self
    }
}

/// Who speaks a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: Content,
}

/// A prompt's messages, as `prompts/get` answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptResult {
    /// What the prompt is for, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The messages.
    pub messages: Vec<PromptMessage>,
}

impl PromptResult {
    /// A prompt of these messages.
    pub fn new(messages: Vec<PromptMessage>) -> Self {
        Self {
            description: None,
            messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_results_serialize_as_mcp_does() {
        let r = ToolResult::success(vec![
            Content::text("hi"),
            Content::Image {
                data: "AA==".into(),
                mime_type: "image/png".into(),
            },
            Content::Resource {
                resource: ResourceContents::blob("AA==", "a://b").with_mime_type("x/y"),
            },
        ]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({
                "content": [
                    { "type": "text", "text": "hi" },
                    { "type": "image", "data": "AA==", "mimeType": "image/png" },
                    { "type": "resource",
                      "resource": { "uri": "a://b", "mimeType": "x/y", "blob": "AA==" } },
                ],
                "isError": false,
            })
        );
        assert_eq!(serde_json::from_value::<ToolResult>(v).unwrap(), r);
    }
}
