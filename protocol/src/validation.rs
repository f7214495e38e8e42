//! The JSON-schema validation engine's requests, answers and errors (JSON Schema 2020-12).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Registers a named, versioned schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSchemaRequest {
    /// Schema name (same rule as artifact names).
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// The JSON Schema (2020-12) document.
    pub schema: serde_json::Value,
}

/// A registered schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterSchemaResponse {
    /// Schema name.
    pub name: String,
    /// Version.
    pub version: String,
    /// False when this exact schema was already registered under this version.
    pub created: bool,
}

/// Validates a document against a registered or inline schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// `"name"` (latest version), `"name@version"`, or an inline schema object.
    pub schema: serde_json::Value,
    /// The document to validate.
    pub document: serde_json::Value,
}

/// The outcome of a validation: every error, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidateResponse {
    /// True when the document is valid.
    pub valid: bool,
    /// Every violation found.
    pub errors: Vec<Violation>,
    /// The schema used, as `name@version`, or `inline`.
    pub schema: String,
}

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Violation {
    /// JSON pointer to the offending value in the document (`""` for the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// JSON pointer to the schema keyword that failed.
    pub schema_path: String,
}

/// Lists registered schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSchemasRequest {
    /// Only names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Registered schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListSchemasResponse {
    /// One entry per name.
    pub schemas: Vec<SchemaSummary>,
}

/// One schema name and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaSummary {
    /// Schema name.
    pub name: String,
    /// Versions, lowest first.
    pub versions: Vec<String>,
}

/// What the validation engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ValidationError {
    /// Bad name.
    #[error(
        "`name` {name:?} is not a valid schema name: use 1–200 characters of letters, digits, \
         '.', '_', '-' and '/', not starting or ending with '/'"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Bad version.
    #[error("`version` {version:?} is not a semantic version (like 1.2.0): {reason}")]
    InvalidVersion {
        /// The version given.
        version: String,
        /// The parser's reason.
        reason: String,
    },
    /// The schema is not a valid JSON Schema.
    #[error("`schema` is not a valid JSON Schema (2020-12): {reason} (at {path})")]
    InvalidSchema {
        /// What is wrong.
        reason: String,
        /// Where in the schema.
        path: String,
    },
    /// The version exists with another schema.
    #[error(
        "schema {name}@{version} is already registered with different content; register the \
         change under a new version"
    )]
    Immutable {
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
    /// No such schema.
    #[error("schema {what} not found; `validation_list_schemas` shows what is registered")]
    NotFound {
        /// `name` or `name@version`.
        what: String,
    },
    /// `schema` is neither a reference string nor a schema object.
    #[error("`schema` must be a string (\"name\" or \"name@version\") or a schema object")]
    SchemaChoice,
    /// The store failed.
    #[error("the validation engine's store failed: {0}")]
    Store(String),
}
