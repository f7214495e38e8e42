//! The HTTP side of MCP authorization: this server as an OAuth 2.1 resource server.
//!
//! Every request to `/mcp` carries `Authorization: Bearer …`: a JWT from the configured issuer
//! (signature, `iss`, `aud` = this server's canonical URI, `exp`/`nbf`) or a service account's
//! API key. A missing or bad credential is 401 with `WWW-Authenticate: Bearer
//! resource_metadata="…"`; a token without the scope the request needs is 403
//! `insufficient_scope` naming every scope needed. Tokens in the query string are refused.
//! The Protected Resource Metadata (RFC 9728) is served at
//! `/.well-known/oauth-protected-resource/mcp` and `/.well-known/oauth-protected-resource`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::token::{JwksSource, TokenSettings, TokenValidator};
use super::{Governance, GovernanceError, Identity, Source};

/// Where the metadata lives, relative to the server's origin.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
/// The root form clients try last.
pub const METADATA_ROOT_PATH: &str = "/.well-known/oauth-protected-resource";

/// Authenticates HTTP requests for one listening address. Cheap to clone.
#[derive(Clone)]
pub struct HttpAuth(Arc<AuthInner>);

struct AuthInner {
    governance: Governance,
    tokens: Option<TokenValidator>,
    /// The canonical URI (`aud`, PRM `resource`).
    resource: String,
    /// The absolute URL of the PRM document.
    metadata_url: String,
    read_scope: String,
    call_scope: String,
    /// Without credentials configured: who HTTP callers are.
    anonymous: Option<Identity>,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuth")
            .field("resource", &self.0.resource)
            .finish()
    }
}

/// The server's canonical URI on `addr` unless configured: `http://ADDR/mcp`.
pub fn default_resource(addr: SocketAddr) -> String {
    format!("http://{addr}/mcp")
}

impl HttpAuth {
    /// The authentication of a server listening on `addr`; loads the issuer's keys.
    pub async fn new(governance: &Governance, addr: SocketAddr) -> Result<Self, GovernanceError> {
        let config = governance.config();
        let resource = config
            .resource
            .clone()
            .unwrap_or_else(|| default_resource(addr));
        let origin = origin_of(&resource);
        let tokens = match &config.oauth.issuer {
            Some(issuer) => {
                let jwks = match (&config.oauth.jwks_file, &config.oauth.jwks_url) {
                    (Some(path), _) => JwksSource::File(path.clone()),
                    (None, Some(url)) => JwksSource::Url(url.clone()),
                    (None, None) => {
                        return Err(GovernanceError::Config(
                            "`governance.oauth`: an issuer needs jwks_file or jwks_url".into(),
                        ));
                    }
                };
                Some(
                    TokenValidator::new(TokenSettings {
                        issuer: issuer.clone(),
                        audience: resource.clone(),
                        jwks,
                        leeway: Duration::from_secs(config.oauth.leeway_s),
                        refetch_min_interval: Duration::from_secs(30),
                    })
                    .await?,
                )
            }
            None => None,
        };
        let anonymous = (!config.authenticates()).then(|| governance.anonymous_identity());
        Ok(Self(Arc::new(AuthInner {
            governance: governance.clone(),
            tokens,
            metadata_url: format!("{origin}{METADATA_PATH}"),
            resource,
            read_scope: config.oauth.read_scope.clone(),
            call_scope: config.oauth.call_scope.clone(),
            anonymous,
        })))
    }

    /// Whether requests must carry credentials.
    pub fn requires_credentials(&self) -> bool {
        self.0.anonymous.is_none()
    }

    /// The canonical resource URI.
    pub fn resource(&self) -> &str {
        &self.0.resource
    }

    /// Who sent this request, or the 401/403 response to send instead. `method` is the
    /// JSON-RPC method when known (a POST), for the scope check.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        method: Option<&str>,
    ) -> Result<Identity, Response> {
        let me = &self.0;
        if query.is_some_and(carries_token) {
            return Err(self.unauthorized(
                Some("invalid_request"),
                "access tokens are accepted only in the Authorization header, never in the URL",
            ));
        }
        if let Some(anonymous) = &me.anonymous {
            return Ok(anonymous.clone());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(self.unauthorized(None, "this server requires a bearer token"));
        };
        let credential = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(credential) = credential else {
            return Err(self.unauthorized(
                Some("invalid_request"),
                "expected `Authorization: Bearer <token>`",
            ));
        };
        if let Some(who) = me.governance.api_key_identity(credential) {
            if let Some(why) = me.governance.refuses_credential(&who, None) {
                return Err(self.unauthorized(Some("invalid_token"), why));
            }
            return Ok(who);
        }
        let Some(tokens) = &me.tokens else {
            metrics::counter!("ensemble_governance_auth_failures_total", "reason" => "unknown_api_key")
                .increment(1);
            return Err(self.unauthorized(Some("invalid_token"), "unknown API key"));
        };
        let claims = match tokens.validate(credential).await {
            Ok(c) => c,
            Err(e) => {
                return Err(self.unauthorized(Some("invalid_token"), e.description()));
            }
        };
        if claims.subject.starts_with("apikey:") {
            return Err(self.unauthorized(
                Some("invalid_token"),
                "the token's subject uses the prefix reserved for API keys",
            ));
        }
        let who = me.governance.token_identity(&claims);
        if let Some(why) = me.governance.refuses_credential(&who, claims.issued_at) {
            return Err(self.unauthorized(Some("invalid_token"), why));
        }
        if let Some(needed) = self.missing_scopes(&who, method) {
            return Err(self.insufficient_scope(&needed, method.unwrap_or("this request")));
        }
        Ok(who)
    }

    /// The scopes a token lacks for `method` (`None`: it has what it needs). The call scope
    /// implies the read scope.
    fn missing_scopes(&self, who: &Identity, method: Option<&str>) -> Option<Vec<String>> {
        if !matches!(who.source(), Source::Token { .. }) {
            return None;
        }
        let me = &self.0;
        let has = |s: &str| who.scopes().iter().any(|x| x == s);
        let calls = method == Some("tools/call");
        let ok = if calls {
            has(&me.call_scope)
        } else {
            has(&me.read_scope) || has(&me.call_scope)
        };
        if ok {
            return None;
        }
        // Every scope the operation needs, in one challenge (2026-07-28).
        let mut needed = vec![me.read_scope.clone()];
        if calls {
            needed.push(me.call_scope.clone());
        }
        Some(needed)
    }

    fn challenge(&self, error: Option<&str>, description: &str, scope: &str) -> HeaderValue {
        // Without an authorization server (API keys only) there is no metadata to point to.
        let mut v = if self.0.tokens.is_some() {
            format!(
                "Bearer resource_metadata=\"{}\", scope=\"{}\"",
                self.0.metadata_url, scope
            )
        } else {
            "Bearer realm=\"ensemble\"".to_string()
        };
        if let Some(error) = error {
            v.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                description.replace(['"', '\\'], "'")
            ));
        }
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    fn unauthorized(&self, error: Option<&str>, description: &str) -> Response {
        metrics::counter!("ensemble_governance_auth_failures_total", "reason" => error.unwrap_or("missing_token").to_string())
            .increment(1);
        let scope = self.0.read_scope.clone();
        let mut r = (
            StatusCode::UNAUTHORIZED,
            format!("unauthorized: {description}\n"),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            self.challenge(error, description, &scope),
        );
        r
    }

    fn insufficient_scope(&self, needed: &[String], method: &str) -> Response {
        metrics::counter!("ensemble_governance_auth_failures_total", "reason" => "insufficient_scope")
            .increment(1);
        let scope = needed.join(" ");
        let description = format!("{method} requires the scopes {scope}");
        let mut r = (StatusCode::FORBIDDEN, format!("forbidden: {description}\n")).into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            self.challenge(Some("insufficient_scope"), &description, &scope),
        );
        r
    }

    /// The Protected Resource Metadata document.
    pub fn metadata(&self) -> serde_json::Value {
        let me = &self.0;
        let config = me.governance.config();
        let servers: Vec<&str> = config.oauth.issuer.iter().map(String::as_str).collect();
        serde_json::json!({
            "resource": me.resource,
            "authorization_servers": servers,
            "scopes_supported": [me.read_scope, me.call_scope],
            "bearer_methods_supported": ["header"],
            "resource_name": "Ensemble",
        })
    }

    /// The metadata routes (both well-known paths); none without an authorization server
    /// (MCP requires the metadata to name at least one).
    pub fn routes(&self) -> axum::Router {
        if self.0.tokens.is_none() {
            return axum::Router::new();
        }
        let doc = self.metadata();
        let serve = move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        };
        axum::Router::new()
            .route(METADATA_PATH, axum::routing::get(serve.clone()))
            .route(METADATA_ROOT_PATH, axum::routing::get(serve))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Whether a query string carries an access token (RFC 6750 §2.3, which MCP forbids).
fn carries_token(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        key.eq_ignore_ascii_case("access_token")
    })
}

/// Marks a request whose `tools/call` the HTTP edge admitted (allowed, and counted against
/// its rate limits): the handler does not count it again.
#[derive(Debug, Clone, Copy)]
pub struct EdgeAdmitted;

/// What the edge reads of a request body: its method, id and tool name (cheap: nothing else
/// is parsed).
#[derive(Debug, Default)]
pub struct Probe {
    /// The JSON-RPC method.
    pub method: Option<String>,
    /// The request id.
    pub id: Option<serde_json::Value>,
    /// `params.name` (a tool or prompt).
    pub name: Option<String>,
}

/// Reads [`Probe`] out of a single JSON-RPC request.
pub fn probe(body: &[u8]) -> Probe {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        id: Option<serde_json::Value>,
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(e) => Probe {
            method: e.method.map(|m| m.into_owned()),
            id: e.id,
            name: e.params.and_then(|p| p.name).map(|n| n.into_owned()),
        },
        Err(_) => Probe::default(),
    }
}

/// The JSON-RPC method of a request body, if it is one request.
pub fn method_of(body: &[u8]) -> Option<String> {
    probe(body).method
}

/// A JSON-RPC `error` answering request `id` (null when it could not be read), as `status`:
/// the answer of a request the HTTP edge refuses before the MCP handler sees it.
pub(crate) fn error_answer(
    status: StatusCode,
    id: Option<serde_json::Value>,
    error: serde_json::Value,
) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(serde_json::Value::Null),
        "error": error,
    });
    (status, axum::Json(body)).into_response()
}

/// A rate-limited request: 429 with `Retry-After` and the IETF `RateLimit-Policy` /
/// `RateLimit` fields, and the JSON-RPC error as the body.
pub fn rate_limited(
    limited: &super::limits::Limited,
    id: Option<serde_json::Value>,
    tool: &str,
) -> Response {
    let mut r = error_answer(
        StatusCode::TOO_MANY_REQUESTS,
        id,
        serde_json::json!(limited.to_error(tool)),
    );
    let name = limited.policy.replace('"', "'");
    let headers = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("retry-after", limited.retry_after_s().to_string());
    set(
        "ratelimit-policy",
        format!("\"{name}\";q={};w={}", limited.quota, limited.window_s),
    );
    set(
        "ratelimit",
        format!("\"{name}\";r=0;t={}", limited.retry_after_s()),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_query_tokens() {
        assert_eq!(origin_of("https://h:8443/mcp"), "https://h:8443");
        assert_eq!(origin_of("https://h"), "https://h");
        assert!(carries_token("a=1&access_token=x"));
        assert!(!carries_token("token=x&b"));
        assert_eq!(
            method_of(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#).as_deref(),
            Some("tools/call")
        );
        assert_eq!(method_of(b"[1,2]"), None);
    }
}
