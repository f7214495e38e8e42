//! What the router knows of a tool: its spec and hints, and why a call or a registration fails.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Hints a client may use (MCP tool annotations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Annotations {
    /// The tool changes nothing.
    pub read_only: bool,
    /// The tool may delete or overwrite data.
    pub destructive: bool,
    /// Calling it twice with the same arguments has the effect of calling it once.
    pub idempotent: bool,
}

impl Annotations {
    /// A read-only (hence idempotent) tool.
    pub const READ_ONLY: Annotations = Annotations {
        read_only: true,
        destructive: false,
        idempotent: true,
    };
    /// A tool that adds data and is safe to repeat.
    pub const IDEMPOTENT_WRITE: Annotations = Annotations {
        read_only: false,
        destructive: false,
        idempotent: true,
    };

    /// Whether the policy stack may retry the call.
    pub fn retryable(&self) -> bool {
        self.read_only || self.idempotent
    }
}

/// A tool as clients see it. The schemas are shared (`Arc`): the router holds one copy of each,
/// and describing a tool (`tools/list`, every HTTP `tools/call` checking its `Mcp-Param-*`
/// headers, [`Router::list`](crate::router::Router::list)) copies no JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// `<engine>_<verb>`, matching `^[a-zA-Z0-9_-]{1,64}$`.
    pub name: String,
    /// What it does, for people and models.
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: Arc<Map<String, Value>>,
    /// JSON Schema of the structured result.
    pub output_schema: Option<Arc<Map<String, Value>>>,
    /// Behaviour hints.
    pub annotations: Annotations,
}

/// Why a tool call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool by that name (a protocol error: JSON-RPC -32602).
    #[error("unknown tool `{0}`; tools/list shows the tools this server has")]
    UnknownTool(String),
    /// The arguments do not fit the tool's input schema.
    #[error("invalid arguments for `{tool}`: {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What to fix.
        message: String,
    },
    /// The engine answered with an error of its domain.
    #[error("{0}")]
    Engine(String),
    /// The runtime could not get an answer (overload, breaker, timeout, crash, cancel).
    #[error("{0}")]
    Runtime(String),
    /// The caller cancelled: MCP sends no response.
    #[error("cancelled")]
    Cancelled,
}

/// Why a tool could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name breaks the rule clients enforce.
    #[error("tool name {0:?} must match ^[a-zA-Z0-9_-]{{1,64}}$")]
    InvalidName(String),
    /// A tool, prompt or resource with that name or URI exists.
    #[error("`{0}` is already registered")]
    Duplicate(String),
    /// A resource URI or URI template is malformed.
    #[error(
        "resource URI {0:?} is malformed: use `{{name}}` for a template variable, with a literal between two variables"
    )]
    InvalidUri(String),
}

/// The JSON Schema of `T` as an object map, as MCP wants it.
///
/// The generator adds no `$schema` (2020-12 is MCP's default dialect, so it is noise to
/// clients); a `$schema` that `T`'s own schema declares is kept, as SEP-1613 asks.
pub fn schema_of<T: JsonSchema>() -> Map<String, Value> {
    let generator = schemars::generate::SchemaSettings::default()
        .with(|s| s.meta_schema = None)
        .into_generator();
    match serde_json::to_value(generator.into_root_schema_for::<T>()) {
        Ok(Value::Object(mut m)) => {
            // MCP clients want an object schema at the top.
            m.entry("type")
                .or_insert_with(|| Value::String("object".into()));
            m
        }
        _ => {
            let mut m = Map::new();
            m.insert("type".into(), Value::String("object".into()));
            m
        }
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
