//! `[governance]`: who may call what. Absent, the runtime has one local owner with every right.
//!
//! ```toml
//! [governance]
//! resource = "https://mcp.example.com/mcp"   # the canonical URI tokens must name in `aud`
//!
//! [governance.oauth]
//! issuer = "https://auth.example.com"
//! jwks_url = "https://auth.example.com/.well-known/jwks.json"
//!
//! [governance.stdio]
//! subject = "local"
//! roles = ["operator"]
//!
//! [[governance.roles]]
//! name = "operator"
//! tools = ["*"]
//! deny_tools = ["registry_delete"]
//!
//! [[governance.bindings]]
//! subject = "alice"
//! roles = ["operator"]
//!
//! [[governance.api_keys]]
//! name = "ci-bot"
//! sha256 = "9f86d081884c7d659a2feb1…"   # printf %s "$KEY" | sha256sum
//! ```

use std::path::PathBuf;

use ensemble_actors::governance::policy::RoleSpec;
use serde::{Deserialize, Serialize};

/// `[governance]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// This server's canonical resource URI (RFC 8707): the `aud` a bearer token must carry,
    /// and `resource` in the Protected Resource Metadata. Default: `http://ADDR/mcp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Serve HTTP on a non-loopback address with no authentication configured (refused
    /// otherwise).
    pub insecure_no_auth: bool,
    /// `[governance.oauth]`: bearer tokens from an authorization server.
    pub oauth: OAuthConfig,
    /// `[governance.stdio]`: who a stdio client is.
    pub stdio: StdioConfig,
    /// `[[governance.roles]]`: what each role allows and denies.
    pub roles: Vec<RoleSpec>,
    /// `[[governance.bindings]]`: which identities hold which roles.
    pub bindings: Vec<Binding>,
    /// `[[governance.api_keys]]`: service accounts, their keys stored hashed.
    pub api_keys: Vec<ApiKey>,
    /// Subjects that may still call tools in lockdown.
    pub break_glass: Vec<String>,
    /// Roles whose holders see and act on every submitter's queued tasks and workflow runs;
    /// everyone else sees only their own.
    pub all_work_roles: Vec<String>,
    /// `[governance.audit]`: the audit log's node name and signed checkpoints.
    pub audit: AuditSettings,
    /// `[governance.sessions]`: how much session history is kept.
    pub sessions: SessionSettings,
}

/// `[governance.sessions]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Sessions kept at most (the least recently seen go first).
    pub max_sessions: u64,
    /// A session unseen this long (seconds) is dropped.
    pub max_age_s: u64,
    /// Recent calls kept per session.
    pub calls_kept: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            max_sessions: 1000,
            max_age_s: 86_400,
            calls_kept: 100,
        }
    }
}

impl SessionSettings {
    /// The session book's limits.
    pub fn retention(&self) -> crate::governance::sessions::Retention {
        crate::governance::sessions::Retention {
            max_sessions: self.max_sessions as usize,
            max_age: std::time::Duration::from_secs(self.max_age_s),
            calls_kept: self.calls_kept as usize,
        }
    }
}

/// `[governance.audit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// This node's name in the chain (`ensemble-audit/<node_id>`).
    pub node_id: String,
    /// A directory outside the data directory receiving each signed checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_dir: Option<PathBuf>,
    /// The Ed25519 signing key (created with its `.pub` when absent); unset: no checkpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// A checkpoint after this many entries.
    pub checkpoint_every_entries: u64,
    /// A checkpoint this long (ms) after the last one, if entries came since.
    pub checkpoint_every_ms: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            node_id: "local".into(),
            checkpoint_dir: None,
            key_file: None,
            checkpoint_every_entries: 1000,
            checkpoint_every_ms: 60_000,
        }
    }
}

impl AuditSettings {
    /// The audit log's checkpoint settings.
    pub fn checkpoints(&self) -> ensemble_actors::governance::checkpoint::CheckpointConfig {
        ensemble_actors::governance::checkpoint::CheckpointConfig {
            dir: self.checkpoint_dir.clone(),
            key_file: self.key_file.clone(),
            every_entries: self.checkpoint_every_entries,
            every: std::time::Duration::from_millis(self.checkpoint_every_ms),
        }
    }
}

impl GovernanceConfig {
    /// Whether anything is configured: with nothing, the local owner may do everything.
    pub fn is_configured(&self) -> bool {
        !self.roles.is_empty()
            || !self.bindings.is_empty()
            || !self.api_keys.is_empty()
            || self.oauth.issuer.is_some()
    }

    /// Whether HTTP requests are authenticated (tokens or API keys).
    pub fn authenticates(&self) -> bool {
        self.oauth.issuer.is_some() || !self.api_keys.is_empty()
    }
}

/// `[governance.oauth]`: the authorization server whose JWTs this server accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// The issuer (`iss`), also listed in `authorization_servers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The issuer's signing keys, from a JWKS file...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// ... or from a URL (`https://`; `http://` only on loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The scope that lets a token list and read.
    pub read_scope: String,
    /// The scope that lets a token call tools (it implies the read scope).
    pub call_scope: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_file: None,
            jwks_url: None,
            read_scope: "ensemble.tools.read".into(),
            call_scope: "ensemble.tools.call".into(),
            leeway_s: 60,
        }
    }
}

/// `[governance.stdio]`: the identity of a client on stdio (MCP authorization does not apply
/// to stdio: the environment that starts the process vouches for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdioConfig {
    /// Its subject, as audit entries name it.
    pub subject: String,
    /// Its roles (bindings by subject apply too).
    pub roles: Vec<String>,
}

impl Default for StdioConfig {
    fn default() -> Self {
        Self {
            subject: "local".into(),
            roles: Vec::new(),
        }
    }
}

/// One binding: an identity, chosen by subject, API key name or claim, and the roles it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Binding {
    /// The roles granted.
    pub roles: Vec<String>,
    /// A token's `sub` (or the stdio subject).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A service account: the `name` of an `[[governance.api_keys]]` entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// A token claim (`groups`, `roles`, `scope`, …) that must hold `value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The value the claim must equal or contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A service account's key, stored as the hex SHA-256 of the key (never the key itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKey {
    /// The account's name (bindings and audit entries use it).
    pub name: String,
    /// `printf %s "$KEY" | sha256sum`: 64 hex digits.
    pub sha256: String,
}

/// The checks that need the whole section: bindings against roles and keys, the OAuth
/// settings as a whole. Every problem at once, each with its key.
pub fn problems(config: &GovernanceConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let roles: Vec<&str> = config.roles.iter().map(|r| r.name.as_str()).collect();
    let keys: Vec<&str> = config.api_keys.iter().map(|k| k.name.as_str()).collect();
    let unknown_role = |role: &str| {
        format!(
            "there is no role `{role}`{}; roles: {}",
            super::load::did_you_mean(role, roles.iter().copied()),
            if roles.is_empty() {
                "none defined (add [[governance.roles]])".to_string()
            } else {
                roles.join(", ")
            }
        )
    };
    for role in &config.stdio.roles {
        if !roles.contains(&role.as_str()) {
            out.push(("governance.stdio.roles".into(), unknown_role(role)));
        }
    }
    for role in &config.all_work_roles {
        if !roles.contains(&role.as_str()) {
            out.push(("governance.all_work_roles".into(), unknown_role(role)));
        }
    }
    for (i, b) in config.bindings.iter().enumerate() {
        let at = |f: &str| format!("governance.bindings[{i}].{f}");
        let chosen = [b.subject.is_some(), b.api_key.is_some(), b.claim.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if chosen != 1 {
            out.push((
                format!("governance.bindings[{i}]"),
                "a binding names exactly one of subject, api_key or claim (with value)".into(),
            ));
        }
        if b.claim.is_some() != b.value.is_some() {
            out.push((
                at("value"),
                "claim and value go together: the claim must hold the value".into(),
            ));
        }
        if b.roles.is_empty() {
            out.push((
                at("roles"),
                "a binding to no role grants nothing; list its roles".into(),
            ));
        }
        for role in &b.roles {
            if !roles.contains(&role.as_str()) {
                out.push((at("roles"), unknown_role(role)));
            }
        }
        if let Some(key) = &b.api_key
            && !keys.contains(&key.as_str())
        {
            out.push((
                at("api_key"),
                format!(
                    "there is no API key `{key}`{}; define it in [[governance.api_keys]]",
                    super::load::did_you_mean(key, keys.iter().copied())
                ),
            ));
        }
    }
    for (i, k) in config.api_keys.iter().enumerate() {
        if k.name.trim().is_empty() {
            out.push((
                format!("governance.api_keys[{i}].name"),
                "an API key needs a name".into(),
            ));
        }
        if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push((
                format!("governance.api_keys[{i}].sha256"),
                "expected the key's SHA-256 as 64 hex digits (printf %s \"$KEY\" | sha256sum), \
                 never the key itself"
                    .into(),
            ));
        }
        if config.api_keys[..i].iter().any(|o| o.name == k.name) {
            out.push((
                format!("governance.api_keys[{i}].name"),
                format!("API key `{}` is defined twice", k.name),
            ));
        }
    }
    let oauth = &config.oauth;
    match (&oauth.issuer, &oauth.jwks_file, &oauth.jwks_url) {
        (Some(_), None, None) => out.push((
            "governance.oauth".into(),
            "an issuer needs its keys: set jwks_file or jwks_url".into(),
        )),
        (_, Some(_), Some(_)) => out.push((
            "governance.oauth.jwks_url".into(),
            "set jwks_file or jwks_url, not both".into(),
        )),
        (None, Some(_), _) | (None, _, Some(_)) => out.push((
            "governance.oauth.issuer".into(),
            "keys without an issuer: set issuer (the `iss` tokens carry)".into(),
        )),
        _ => {}
    }
    if config.is_configured() && config.roles.is_empty() {
        out.push((
            "governance.roles".into(),
            "governance is configured but defines no role, so nobody may do anything; add \
             [[governance.roles]]"
                .into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_the_section_at_once() {
        let config: GovernanceConfig = toml::from_str(
            r#"
            [oauth]
            issuer = "https://as.example"
            [stdio]
            roles = ["operater"]
            [[roles]]
            name = "operator"
            tools = ["*"]
            [[bindings]]
            subject = "alice"
            api_key = "bot"
            roles = []
            [[bindings]]
            claim = "groups"
            roles = ["operator"]
            [[api_keys]]
            name = "bot"
            sha256 = "abc"
            "#,
        )
        .unwrap();
        let got: Vec<String> = problems(&config)
            .into_iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect();
        assert_eq!(
            got,
            [
                "governance.stdio.roles: there is no role `operater` (did you mean `operator`?); roles: operator",
                "governance.bindings[0]: a binding names exactly one of subject, api_key or claim (with value)",
                "governance.bindings[0].roles: a binding to no role grants nothing; list its roles",
                "governance.bindings[1].value: claim and value go together: the claim must hold the value",
                "governance.api_keys[0].sha256: expected the key's SHA-256 as 64 hex digits (printf %s \"$KEY\" | sha256sum), never the key itself",
                "governance.oauth: an issuer needs its keys: set jwks_file or jwks_url",
            ]
        );
    }

    #[test]
    fn nothing_configured_is_the_owner_mode() {
        let c = GovernanceConfig::default();
        assert!(!c.is_configured());
        assert!(problems(&c).is_empty());
    }
}
