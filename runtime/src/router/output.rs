//! What a tool answers: structured JSON, or content blocks an actor built itself.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use super::content::ToolResult;
use super::spec::schema_of;

/// What a tool answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutput {
    /// JSON matching the tool's output schema: MCP `structuredContent`, plus the same JSON as a
    /// text block.
    Structured(Value),
    /// A complete tool result: any content blocks (text, images, audio, embedded
    /// resources), `isError` when the tool reports a failure in its own words.
    Content(ToolResult),
}

impl ToolOutput {
    /// The answer as JSON: the structured value, or the result object as MCP writes it.
    pub fn into_value(self) -> Value {
        match self {
            ToolOutput::Structured(v) => v,
            ToolOutput::Content(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        }
    }
}

/// A reply type a context-aware tool actor may answer with.
///
/// Implemented for [`Structured<T>`] (any serializable, schema-described value), for
/// [`ToolResult`] (content blocks) and, outside the router, for the MCP library's tool result.
/// Implement it for an actor's own reply type to decide how it reaches the client.
pub trait IntoToolOutput: Send + 'static {
    /// The JSON Schema of the structured result, if the tool has one.
    fn output_schema() -> Option<Map<String, Value>>;
    /// The answer, or why it could not be encoded.
    fn into_output(self) -> Result<ToolOutput, String>;
}

/// A structured tool answer: `T`'s JSON Schema is the tool's `outputSchema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structured<T>(pub T);

impl<T: Serialize + JsonSchema + Send + 'static> IntoToolOutput for Structured<T> {
    fn output_schema() -> Option<Map<String, Value>> {
        Some(schema_of::<T>())
    }
    fn into_output(self) -> Result<ToolOutput, String> {
        serde_json::to_value(self.0)
            .map(ToolOutput::Structured)
            .map_err(|e| format!("could not encode the answer: {e}"))
    }
}

impl IntoToolOutput for ToolResult {
    fn output_schema() -> Option<Map<String, Value>> {
        None
    }
    fn into_output(self) -> Result<ToolOutput, String> {
        Ok(ToolOutput::Content(self))
    }
}
