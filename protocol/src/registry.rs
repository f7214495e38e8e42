//! The artifact registry's requests, answers and errors.
//!
//! Artifacts are named, semver-versioned, immutable blobs (JSON or bytes) addressed by a
//! `sha256:` digest.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Stores one version of an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// Artifact name: 1–200 characters of letters, digits, `.`, `_`, `-` and `/`, not starting
    /// or ending with `/`.
    pub name: String,
    /// Semantic version, e.g. `1.2.0` or `2.0.0-rc.1`.
    pub version: String,
    /// The content as JSON (stored as its compact serialization). Give this or `content_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    /// The content as base64 bytes. Give this or `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// Media type; defaults to `application/json` for `content` and
    /// `application/octet-stream` for `content_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Free-form labels, e.g. `{"team": "core"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Where a stored version is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PutResponse {
    /// The artifact's name.
    pub name: String,
    /// The version stored.
    pub version: String,
    /// `sha256:` and the hex digest of the content.
    pub digest: String,
    /// Content size in bytes.
    pub size: u64,
    /// False when this exact content was already stored under this version (idempotent put).
    pub created: bool,
}

/// Reads one version of an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    /// Artifact name.
    pub name: String,
    /// Version; the latest (highest release, else highest pre-release) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One stored version with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Artifact {
    /// Artifact name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `sha256:` digest of the content, verified on this read.
    pub digest: String,
    /// Content size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The content as JSON, when it was stored as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    /// The content as base64, when it was stored as bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// Lists artifacts (one entry per name, with its latest version), paginated by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Only artifacts whose latest version has this label, as `key=value` (or `key` for any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–500; default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListResponse {
    /// The artifacts on this page, by name.
    pub items: Vec<ArtifactSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An artifact's latest version, without content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactSummary {
    /// Artifact name.
    pub name: String,
    /// Latest version.
    pub latest: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many versions exist.
    pub versions: u32,
}

/// Lists the versions of one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsRequest {
    /// Artifact name.
    pub name: String,
}

/// The versions of one artifact, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionsResponse {
    /// Artifact name.
    pub name: String,
    /// Versions in semver order.
    pub versions: Vec<String>,
}

/// Test-only: makes the registry actor panic mid-call (served only with test tools enabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrashRequest {
    /// Written into the panic message.
    #[serde(default)]
    pub reason: String,
}

/// Never produced: the call always fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CrashResponse {}

/// What the registry refuses, and why; each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistryError {
    /// The name breaks the naming rule.
    #[error(
        "`name` {name:?} is not a valid artifact name: use 1–200 characters of letters, digits, \
         '.', '_', '-' and '/', not starting or ending with '/'"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The version is not semver.
    #[error("`version` {version:?} is not a semantic version (like 1.2.0): {reason}")]
    InvalidVersion {
        /// The version given.
        version: String,
        /// The parser's reason.
        reason: String,
    },
    /// Neither or both content fields were given.
    #[error("give exactly one of `content` (JSON) or `content_base64` (bytes)")]
    ContentChoice,
    /// `content_base64` is not base64.
    #[error("`content_base64` is not valid base64: {reason}")]
    InvalidBase64 {
        /// The decoder's reason.
        reason: String,
    },
    /// The version exists with other content.
    #[error(
        "{name}@{version} already exists with digest {existing}; versions are immutable, so \
         publish the new content under a new version"
    )]
    Immutable {
        /// Artifact name.
        name: String,
        /// Version.
        version: String,
        /// The stored digest.
        existing: String,
    },
    /// No such artifact or version.
    #[error(
        "{what} not found; `registry_list` shows the artifacts and `registry_versions` their versions"
    )]
    NotFound {
        /// `name` or `name@version`.
        what: String,
    },
    /// Stored content no longer matches its digest.
    #[error(
        "{name}@{version} failed its integrity check (stored {expected}, content hashes to \
         {actual}); it is not served — republish it under a new version"
    )]
    DigestMismatch {
        /// Artifact name.
        name: String,
        /// Version.
        version: String,
        /// The digest recorded at put time.
        expected: String,
        /// The digest of the content read now.
        actual: String,
    },
    /// The cursor was not produced by `registry_list`.
    #[error("`cursor` is not one returned by registry_list; start again without a cursor")]
    InvalidCursor,
    /// `limit` is out of range.
    #[error("`limit` must be between 1 and 500, got {limit}")]
    InvalidLimit {
        /// The limit given.
        limit: u32,
    },
    /// The store failed.
    #[error("the registry's store failed: {0}")]
    Store(String),
}

/// Checks an artifact name against the naming rule.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName { name: name.into() })
    }
}

/// Parses a semantic version, with an error that says what is wrong.
pub fn parse_version(version: &str) -> Result<semver::Version, RegistryError> {
    semver::Version::parse(version).map_err(|e| RegistryError::InvalidVersion {
        version: version.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "schemas/order", "team.core/v-1_x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a b", "ä", &"x".repeat(201)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_reject_unknown_fields_by_name() {
        let err = serde_json::from_str::<GetRequest>(r#"{"name":"a","versoin":"1.0.0"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("versoin"), "{err}");
    }

    #[test]
    fn schemas_are_generated_from_the_types() {
        let schema = serde_json::to_value(schemars::schema_for!(PutRequest)).unwrap();
        assert_eq!(schema["type"], "object");
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&"name".into()) && required.contains(&"version".into()));
        assert!(schema["properties"]["labels"].is_object());
    }
}
