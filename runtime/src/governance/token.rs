//! Bearer-token (JWT) validation for the MCP resource server.
//!
//! The MCP authorization spec makes an HTTP server an OAuth 2.1 *resource server*: every request
//! carries `Authorization: Bearer <token>`, and the server accepts only tokens its authorization
//! server issued **for this server** (RFC 8707: `aud` is the canonical resource URI). This module
//! checks such a token and hands back its claims; the HTTP layer turns a [`TokenError`] into a
//! 401 with `WWW-Authenticate: Bearer error="invalid_token", error_description="…"` (use
//! [`TokenError::description`], which never echoes token contents).
//!
//! What [`TokenValidator::validate`] checks, in order:
//!
//! 1. Shape: a JWS compact token (three base64url parts, at most 16 KiB). JWE is not accepted.
//! 2. Algorithm: `none` and every HMAC algorithm (`HS*`) are refused outright, whatever key the
//!    token names (algorithm confusion: an HMAC "signed" with the public key). Supported:
//!    EdDSA (Ed25519), RS256/384/512, PS256/384/512, ES256, ES384.
//! 3. Key: looked up by `kid` in the cached JWKS. A token without `kid` is accepted only if the
//!    set holds exactly one key. An unknown `kid` triggers one refetch of the JWKS (at most one
//!    per [`TokenSettings::refetch_min_interval`], shared by concurrent requests), then the token
//!    is refused. The token's `alg` must be one the key allows: its own `alg` if the JWK names
//!    one, otherwise what its `kty`/`crv` imply.
//! 4. Signature, then the claims: `exp`, `iss`, `aud` and `sub` are required; `exp` and `nbf`
//!    are checked with [`TokenSettings::leeway`]; `iss` must equal the configured issuer exactly;
//!    `aud` (a string or an array) must name the configured audience. The audience comparison
//!    ignores the case of the scheme and host (the MCP spec's canonical-URI rule) and a lone
//!    trailing `/` after the host; anything else must match exactly.
//!
//! Keys are read from the JWKS once at start ([`TokenValidator::new`] fails if that is not
//! possible) and kept; a key set older than 15 minutes is reloaded in the background (so a key
//! the authorization server withdrew stops being accepted), and a failed reload keeps the old
//! keys. JWKS keys that cannot verify signatures (symmetric `oct` keys, `use: enc`, RSA moduli
//! under 2048 bits, unsupported curves, a `crv` or `alg` that contradicts the key) are skipped
//! with a warning; a set with no usable key is an error.
//!
//! Metrics: `ensemble_governance_token_validations_total{outcome}` (`ok` or
//! [`TokenError::reason_code`]) and `ensemble_governance_jwks_fetches_total{outcome}` (`ok`,
//! `error`, `invalid`, `throttled`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

/// The default clock-skew allowance for `exp` and `nbf` ([`TokenSettings::leeway`]).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The default minimum time between two JWKS refetches
/// ([`TokenSettings::refetch_min_interval`]).
pub const DEFAULT_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// A cached key set older than this is reloaded in the background at the next validation.
const MAX_KEY_SET_AGE: Duration = Duration::from_secs(15 * 60);
/// The whole JWKS HTTP exchange (connect, TLS, request, body) must finish within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A JWKS larger than this is refused (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// A token longer than this is refused before any decoding.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// RSA keys with a shorter modulus are not used.
const MIN_RSA_BITS: usize = 2048;
/// How much of a token-supplied string (issuer, audience, kid, alg) error texts show.
const MAX_SHOWN_CHARS: usize = 80;

const VALIDATIONS_METRIC: &str = "ensemble_governance_token_validations_total";
const FETCHES_METRIC: &str = "ensemble_governance_jwks_fetches_total";

const SUPPORTED_ALGS: &str = "EdDSA, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384";
const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// How to validate bearer tokens: whose tokens, for which resource, with which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The authorization server's issuer identifier; a token's `iss` must equal it exactly.
    pub issuer: String,
    /// This server's canonical resource URI (RFC 8707), e.g. `https://mcp.example.com/mcp`;
    /// a token's `aud` must name it.
    pub audience: String,
    /// Where the authorization server's public keys (a JWK set) come from.
    pub jwks: JwksSource,
    /// Clock-skew allowance for `exp` and `nbf` (default [`DEFAULT_LEEWAY`], 60 s).
    pub leeway: Duration,
    /// At most one JWKS refetch per this interval (default [`DEFAULT_REFETCH_MIN_INTERVAL`],
    /// 30 s): tokens with made-up key ids cannot make the server hammer its authorization
    /// server.
    pub refetch_min_interval: Duration,
}

impl TokenSettings {
    /// Settings with the default leeway and refetch interval.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        TokenSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            leeway: DEFAULT_LEEWAY,
            refetch_min_interval: DEFAULT_REFETCH_MIN_INTERVAL,
        }
    }
}

/// Where a JWK set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file holding `{"keys": [...]}`, re-read on refetch.
    File(PathBuf),
    /// The authorization server's `jwks_uri`. Must be `https://`; plain `http://` is accepted
    /// only for loopback hosts (`127.0.0.0/8`, `::1`, `localhost`), for tests and local setups.
    /// Redirects are not followed.
    Url(String),
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
        }
    }
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaims {
    /// `sub`: who the token speaks for.
    pub subject: String,
    /// `iss`: the authorization server that issued it (the configured issuer).
    pub issuer: String,
    /// The granted scopes: the space-separated `scope` claim and the `scp` claim (an array, or a
    /// space-separated string as Entra ID writes it), in order, without duplicates.
    pub scopes: Vec<String>,
    /// `iat`, in seconds since the Unix epoch, if present.
    pub issued_at: Option<i64>,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// The OAuth client the token was issued to: `client_id` (RFC 9068), else `azp`.
    pub client_id: Option<String>,
    /// Every claim of the token, for bindings on e.g. `groups` or `roles`.
    pub claims: Map<String, Value>,
}

impl TokenClaims {
    /// Whether the token grants `scope` (exact match; no hierarchy).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// The claim `name`: a top-level claim, or else a dotted path into nested objects
    /// (`realm_access.roles`, as Keycloak writes roles).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        if let Some(value) = self.claims.get(name) {
            return Some(value);
        }
        if !name.contains('.') {
            return None;
        }
        let mut parts = name.split('.');
        let mut value = self.claims.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// Whether the claim `name` (see [`claim`](Self::claim)) holds `value`: a string equal to it
    /// or containing it as a space-separated word (like `scope`), or an array with an element
    /// equal to it. Numbers and booleans compare by their JSON text.
    pub fn claim_contains(&self, name: &str, value: &str) -> bool {
        fn scalar_is(item: &Value, value: &str) -> bool {
            match item {
                Value::String(text) => text == value,
                Value::Number(number) => number.to_string() == value,
                Value::Bool(flag) => flag.to_string() == value,
                _ => false,
            }
        }
        match self.claim(name) {
            Some(Value::String(text)) => {
                text == value || text.split_whitespace().any(|word| word == value)
            }
            Some(Value::Array(items)) => items.iter().any(|item| scalar_is(item, value)),
            Some(other) => scalar_is(other, value),
            None => false,
        }
    }
}

/// Why a token was refused, or why the validator could not start.
///
/// `Display` is for operators and logs: it names what is wrong and may quote (shortened,
/// escaped) token fields such as `iss` or `kid`, never the token itself.
/// [`description`](Self::description) is the short fixed text for an RFC 6750
/// `error_description`; [`reason_code`](Self::reason_code) the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed signed JWT (or a registered claim has the wrong type).
    #[error("malformed bearer token: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `alg: none` or an HMAC algorithm: never accepted from an asymmetric issuer.
    #[error("token algorithm {alg} is forbidden: {why}")]
    ForbiddenAlgorithm {
        /// The token's `alg` (quoted, shortened).
        alg: String,
        /// Why it is forbidden.
        why: &'static str,
    },
    /// An algorithm this validator does not implement.
    #[error("token algorithm {alg} is not supported (supported: {SUPPORTED_ALGS})")]
    UnsupportedAlgorithm {
        /// The token's `alg` (quoted, shortened).
        alg: String,
    },
    /// The token's `alg` is not one its key allows.
    #[error("token algorithm {token_alg} does not fit key {kid}, which allows only {allowed}")]
    AlgorithmMismatch {
        /// The token's `alg`.
        token_alg: String,
        /// The key the token named.
        kid: String,
        /// The algorithms that key allows.
        allowed: String,
    },
    /// No key in the JWK set (even after a refetch) matches the token's `kid`, or the token has
    /// no `kid` and the set does not hold exactly one key.
    #[error("{}", unknown_key_text(kid.as_deref(), *keys))]
    UnknownKeyId {
        /// The token's `kid` (quoted, shortened), if it has one.
        kid: Option<String>,
        /// How many keys the set holds.
        keys: usize,
    },
    /// The JWK set's key cannot verify signatures (a key the crypto backend rejects).
    #[error("JWKS key {kid} cannot verify signatures: {reason}")]
    KeyRejected {
        /// The key.
        kid: String,
        /// What the crypto backend said.
        reason: String,
    },
    /// The signature does not verify: forged, altered, or signed by another key.
    #[error("token signature does not verify against JWKS key {kid}")]
    BadSignature {
        /// The key it was checked against.
        kid: String,
    },
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired (its exp is in the past, beyond the clock-skew leeway)")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not valid yet (its nbf is in the future, beyond the clock-skew leeway)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer {found} is not the configured issuer {expected:?}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss` (quoted, shortened).
        found: String,
    },
    /// `aud` does not name this server (RFC 8707): a token for another resource.
    #[error("token audience {found} does not name this resource {expected:?}")]
    WrongAudience {
        /// The configured audience.
        expected: String,
        /// The token's `aud` (quoted, shortened).
        found: String,
    },
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is absent.
    #[error("token lacks the required claim `{claim}`")]
    MissingClaim {
        /// Which claim.
        claim: String,
    },
    /// The JWK set could not be read or holds no usable key.
    #[error("JWKS unavailable from {origin}: {reason}")]
    JwksUnavailable {
        /// The file path or URL.
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// The settings cannot work (an empty issuer, a plain-http JWKS URL to a remote host, …).
    #[error("invalid token settings: {reason}")]
    InvalidSettings {
        /// What is wrong.
        reason: String,
    },
}

fn unknown_key_text(kid: Option<&str>, keys: usize) -> String {
    match kid {
        Some(kid) => format!("no JWKS key has the token's kid {kid} (the set holds {keys} key(s))"),
        None => format!(
            "the token has no kid and the JWKS holds {keys} key(s) (a kid-less token needs \
             exactly one)"
        ),
    }
}

impl TokenError {
    /// A short fixed text for an RFC 6750 `error_description`: says what kind of problem it is,
    /// without secrets or token contents.
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::Malformed { .. } => "the access token is malformed",
            TokenError::ForbiddenAlgorithm { .. } | TokenError::UnsupportedAlgorithm { .. } => {
                "the access token's signing algorithm is not accepted"
            }
            TokenError::AlgorithmMismatch { .. } => {
                "the access token's signing algorithm does not match its key"
            }
            TokenError::UnknownKeyId { .. } => "the access token's signing key is unknown",
            TokenError::KeyRejected { .. } => "the access token's signing key is unusable",
            TokenError::BadSignature { .. } => "the access token's signature is invalid",
            TokenError::Expired => "the access token has expired",
            TokenError::NotYetValid => "the access token is not valid yet",
            TokenError::WrongIssuer { .. } => "the access token was issued by an untrusted issuer",
            TokenError::WrongAudience { .. } => "the access token was not issued for this resource",
            TokenError::MissingClaim { .. } => "the access token lacks a required claim",
            TokenError::JwksUnavailable { .. } => "the authorization server's keys are unavailable",
            TokenError::InvalidSettings { .. } => "token validation is misconfigured",
        }
    }

    /// A short snake_case label for metrics and audit records.
    pub fn reason_code(&self) -> &'static str {
        match self {
            TokenError::Malformed { .. } => "malformed",
            TokenError::ForbiddenAlgorithm { .. } => "forbidden_alg",
            TokenError::UnsupportedAlgorithm { .. } => "unsupported_alg",
            TokenError::AlgorithmMismatch { .. } => "alg_mismatch",
            TokenError::UnknownKeyId { .. } => "unknown_kid",
            TokenError::KeyRejected { .. } => "key_rejected",
            TokenError::BadSignature { .. } => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer { .. } => "wrong_issuer",
            TokenError::WrongAudience { .. } => "wrong_audience",
            TokenError::MissingClaim { .. } => "missing_claim",
            TokenError::JwksUnavailable { .. } => "jwks_unavailable",
            TokenError::InvalidSettings { .. } => "invalid_settings",
        }
    }
}

/// Validates bearer tokens against one issuer's JWK set. Cheap to clone; all clones share the
/// cached keys, so build one at start and hand clones to every request.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    /// `audience` with its scheme and host lowercased (see [`canonical_resource`]).
    audience_canonical: String,
    refetch_min_interval: Duration,
    /// Claims and time checks; `algorithms` is set per token.
    base_validation: Validation,
    loader: Loader,
    keys: RwLock<Arc<KeySet>>,
    /// When the last refetch was attempted; held while one runs, so concurrent requests share it.
    refetch: Arc<Mutex<Option<Instant>>>,
    /// Tokens verified lately, by the SHA-256 of their text (see [`Verified`]).
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Verified>>,
    /// `exp` tolerance, in seconds (the cache applies it as validation does).
    leeway_s: i64,
}

/// A token verified lately: a client sends the same token with every request, and verifying
/// its signature again (tens of microseconds for EdDSA or RSA) would say the same thing. Reused
/// only for the exact same text, while it has not expired, for at most [`VERIFIED_TTL`], and
/// while the key set it was verified against is the current one (a reload or a refetch
/// verifies again, so a withdrawn key stops being accepted).
struct Verified {
    claims: Arc<TokenClaims>,
    generation: u64,
    at: Instant,
}

/// How long a verified token is reused before it is verified again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Verified tokens kept at most (the cache starts over past it).
const VERIFIED_MAX: usize = 4096;

/// One usable verification key.
struct VerifyKey {
    kid: Option<String>,
    /// The algorithms this key may verify (never HMAC).
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
    /// `kid` (quoted) or `#<index>` for messages.
    label: String,
}

struct KeySet {
    keys: Vec<VerifyKey>,
    /// Bumped on every successful reload; lets a waiter see that someone else refetched.
    generation: u64,
    loaded_at: Instant,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks", &self.inner.loader.origin())
            .field("keys", &self.key_count())
            .finish()
    }
}

impl TokenValidator {
    /// Checks the settings and loads the JWK set (reads the file, or GETs the URL).
    ///
    /// Fails with [`TokenError::InvalidSettings`] for an empty issuer or audience, or a JWKS URL
    /// that is neither `https://` nor loopback `http://`, and with
    /// [`TokenError::JwksUnavailable`] (naming the path or URL) if the set cannot be read or
    /// holds no usable key.
    pub async fn new(settings: TokenSettings) -> Result<Self, TokenError> {
        if settings.issuer.trim().is_empty() {
            return Err(TokenError::InvalidSettings {
                reason: "the issuer is empty".into(),
            });
        }
        if settings.audience.trim().is_empty() {
            return Err(TokenError::InvalidSettings {
                reason: "the audience (this server's canonical resource URI) is empty".into(),
            });
        }
        if !settings.audience.contains("://") || settings.audience.contains('#') {
            return Err(TokenError::InvalidSettings {
                reason: format!(
                    "the audience {:?} is not an absolute URI without a fragment \
                     (RFC 8707), e.g. https://mcp.example.com/mcp",
                    settings.audience
                ),
            });
        }
        let loader = Loader::from_source(&settings.jwks)?;
        let keys = loader
            .load()
            .await
            .map_err(|reason| TokenError::JwksUnavailable {
                origin: loader.origin(),
                reason,
            })?;
        tracing::info!(
            issuer = %settings.issuer,
            audience = %settings.audience,
            jwks = %loader.origin(),
            keys = keys.len(),
            "bearer-token validation ready"
        );

        let mut base_validation = Validation::new(Algorithm::EdDSA);
        // jsonwebtoken checks `aud` only if present unless it is required (MCP: audience MUST
        // be this server); `sub` is required because identity bindings hang on it (RFC 9068).
        base_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        base_validation.leeway = settings.leeway.as_secs();
        base_validation.validate_exp = true;
        base_validation.validate_nbf = true;
        // `iss` and `aud` are compared here (exact issuer, canonical audience), after the
        // signature: see `check_issuer` and `check_audience`.
        base_validation.validate_aud = false;

        Ok(TokenValidator {
            inner: Arc::new(Inner {
                audience_canonical: canonical_resource(&settings.audience),
                issuer: settings.issuer,
                audience: settings.audience,
                refetch_min_interval: settings.refetch_min_interval,
                base_validation,
                loader,
                keys: RwLock::new(Arc::new(KeySet {
                    keys,
                    generation: 0,
                    loaded_at: Instant::now(),
                })),
                refetch: Arc::new(Mutex::new(None)),
                verified: std::sync::Mutex::new(std::collections::HashMap::new()),
                leeway_s: settings.leeway.as_secs() as i64,
            }),
        })
    }

    /// The configured issuer (for the protected-resource metadata's `authorization_servers`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The configured audience: this server's canonical resource URI (the metadata's
    /// `resource`).
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// How many usable keys the cached JWK set holds.
    pub fn key_count(&self) -> usize {
        self.current_keys().keys.len()
    }

    /// Validates a bearer token (the text after `Bearer `) and returns its claims.
    pub async fn validate(&self, token: &str) -> Result<Arc<TokenClaims>, TokenError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let generation = self.current_keys().generation;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        {
            let verified = self
                .inner
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = verified.get(&digest)
                && v.generation == generation
                && v.at.elapsed() < VERIFIED_TTL
                && v.claims.expires_at + self.inner.leeway_s >= now_s
            {
                metrics::counter!(VALIDATIONS_METRIC, "outcome" => "ok").increment(1);
                return Ok(v.claims.clone());
            }
        }
        let result = self.validate_inner(token).await.map(Arc::new);
        if let Ok(claims) = &result {
            let mut verified = self
                .inner
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(
                digest,
                Verified {
                    claims: claims.clone(),
                    generation,
                    at: Instant::now(),
                },
            );
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.reason_code(),
        };
        metrics::counter!(VALIDATIONS_METRIC, "outcome" => outcome).increment(1);
        if let Err(error) = &result {
            tracing::debug!(%error, "bearer token refused");
        }
        result
    }

    async fn validate_inner(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let header = parse_header(token)?;
        let mut set = self.current_keys();
        self.refresh_if_stale(&set);
        let index = match find_key(&set, header.kid.as_deref(), header.alg)? {
            Some(index) => index,
            None => {
                set = self.refresh(set.generation).await;
                find_key(&set, header.kid.as_deref(), header.alg)?.ok_or_else(|| {
                    TokenError::UnknownKeyId {
                        kid: header.kid.as_deref().map(shown),
                        keys: set.keys.len(),
                    }
                })?
            }
        };
        let key = &set.keys[index];

        let mut validation = self.inner.base_validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|error| map_jwt_error(&error, key, header.alg))?;
        let claims = data.claims;

        let issuer = self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        let subject = match claims.get("sub") {
            Some(Value::String(subject)) => subject.clone(),
            _ => {
                return Err(TokenError::Malformed {
                    reason: "claim sub is not a string",
                });
            }
        };
        let expires_at = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(TokenError::Malformed {
                reason: "claim exp is not a number",
            })?;
        let issued_at = claims.get("iat").and_then(numeric_date);
        let client_id = ["client_id", "azp"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(TokenClaims {
            subject,
            issuer,
            scopes: scopes_of(&claims),
            issued_at,
            expires_at,
            client_id,
            claims,
        })
    }

    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<String, TokenError> {
        match claims.get("iss") {
            Some(Value::String(issuer)) if *issuer == self.inner.issuer => Ok(issuer.clone()),
            Some(Value::String(issuer)) => Err(TokenError::WrongIssuer {
                expected: self.inner.issuer.clone(),
                found: shown(issuer),
            }),
            Some(_) => Err(TokenError::Malformed {
                reason: "claim iss is not a string",
            }),
            None => Err(TokenError::MissingClaim {
                claim: "iss".into(),
            }),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let names_us = |aud: &str| canonical_resource(aud) == self.inner.audience_canonical;
        let wrong = |found: String| TokenError::WrongAudience {
            expected: self.inner.audience.clone(),
            found,
        };
        match claims.get("aud") {
            Some(Value::String(aud)) if names_us(aud) => Ok(()),
            Some(Value::String(aud)) => Err(wrong(shown(aud))),
            Some(Value::Array(items)) => {
                let mut found = Vec::with_capacity(items.len());
                for item in items {
                    let Some(aud) = item.as_str() else {
                        return Err(TokenError::Malformed {
                            reason: "claim aud is not a string or an array of strings",
                        });
                    };
                    if names_us(aud) {
                        return Ok(());
                    }
                    found.push(shown(aud));
                }
                if found.len() > 4 {
                    found.truncate(4);
                    found.push("…".into());
                }
                Err(wrong(format!("[{}]", found.join(", "))))
            }
            Some(_) => Err(TokenError::Malformed {
                reason: "claim aud is not a string or an array of strings",
            }),
            None => Err(TokenError::MissingClaim {
                claim: "aud".into(),
            }),
        }
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reloads the set once it is older than [`MAX_KEY_SET_AGE`], in the background: the
    /// request goes on with the keys it has.
    fn refresh_if_stale(&self, set: &KeySet) {
        if set.loaded_at.elapsed() < MAX_KEY_SET_AGE {
            return;
        }
        let Ok(guard) = self.inner.refetch.clone().try_lock_owned() else {
            return; // a refetch is running
        };
        if guard.is_some_and(|last| last.elapsed() < self.inner.refetch_min_interval) {
            return;
        }
        let this = self.clone();
        let generation = set.generation;
        tokio::spawn(async move {
            this.refresh_locked(guard, generation).await;
        });
    }

    /// Refetches the set after a miss on a key set of generation `seen`, unless another request
    /// did so meanwhile or the last attempt is more recent than the refetch interval. Concurrent
    /// callers queue on the lock and share the one fetch.
    async fn refresh(&self, seen: u64) -> Arc<KeySet> {
        let guard = self.inner.refetch.clone().lock_owned().await;
        self.refresh_locked(guard, seen).await
    }

    async fn refresh_locked(
        &self,
        mut last_attempt: OwnedMutexGuard<Option<Instant>>,
        seen: u64,
    ) -> Arc<KeySet> {
        let current = self.current_keys();
        if current.generation != seen {
            return current;
        }
        if last_attempt.is_some_and(|last| last.elapsed() < self.inner.refetch_min_interval) {
            metrics::counter!(FETCHES_METRIC, "outcome" => "throttled").increment(1);
            return current;
        }
        *last_attempt = Some(Instant::now());
        match self.inner.loader.load().await {
            Ok(keys) => {
                tracing::debug!(
                    jwks = %self.inner.loader.origin(),
                    keys = keys.len(),
                    "JWKS reloaded"
                );
                let set = Arc::new(KeySet {
                    keys,
                    generation: seen.wrapping_add(1),
                    loaded_at: Instant::now(),
                });
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = set.clone();
                set
            }
            Err(reason) => {
                tracing::warn!(
                    jwks = %self.inner.loader.origin(),
                    %reason,
                    "JWKS reload failed; keeping the cached keys"
                );
                current
            }
        }
    }
}

/// The parts of a JOSE header this module decides on, read before the library sees the token
/// (the library cannot even parse `alg: none`).
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

fn parse_header(token: &str) -> Result<TokenHeader, TokenError> {
    let malformed = |reason| TokenError::Malformed { reason };
    if token.is_empty() {
        return Err(malformed("the token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("the token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "expected three dot-separated parts (a signed JWT; JWE is not accepted)",
        ));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(malformed("the header or the payload is empty"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("the header is not base64url"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| malformed("the header is not JSON"))?;
    let Value::Object(fields) = value else {
        return Err(malformed("the header is not a JSON object"));
    };
    let Some(alg) = fields.get("alg").and_then(Value::as_str) else {
        return Err(malformed("the header has no alg"));
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::ForbiddenAlgorithm {
            alg: shown(alg),
            why: "unsigned tokens are never accepted",
        });
    }
    if alg.len() >= 2 && alg[..2].eq_ignore_ascii_case("HS") {
        return Err(TokenError::ForbiddenAlgorithm {
            alg: shown(alg),
            why: "HMAC (shared-secret) tokens are refused: the issuer signs with a public key \
                  (algorithm confusion)",
        });
    }
    let alg: Algorithm = alg
        .parse()
        .map_err(|_| TokenError::UnsupportedAlgorithm { alg: shown(alg) })?;
    if signature.is_empty() {
        return Err(malformed("the signature is empty"));
    }
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("the header's kid is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// The index of the key for `kid` (or the only key, for a kid-less token) that allows `alg`.
/// `Ok(None)`: no key has that kid (worth a refetch).
fn find_key(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Result<Option<usize>, TokenError> {
    let Some(kid) = kid else {
        return match set.keys.as_slice() {
            [only] if only.algorithms.contains(&alg) => Ok(Some(0)),
            [only] => Err(mismatch(alg, only)),
            keys => Err(TokenError::UnknownKeyId {
                kid: None,
                keys: keys.len(),
            }),
        };
    };
    let mut named = None;
    for (index, key) in set.keys.iter().enumerate() {
        if key.kid.as_deref() == Some(kid) {
            if key.algorithms.contains(&alg) {
                return Ok(Some(index));
            }
            named.get_or_insert(key);
        }
    }
    match named {
        Some(key) => Err(mismatch(alg, key)),
        None => Ok(None),
    }
}

fn mismatch(alg: Algorithm, key: &VerifyKey) -> TokenError {
    TokenError::AlgorithmMismatch {
        token_alg: format!("{alg:?}"),
        kid: key.label.clone(),
        allowed: key
            .algorithms
            .iter()
            .map(|alg| format!("{alg:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn map_jwt_error(
    error: &jsonwebtoken::errors::Error,
    key: &VerifyKey,
    alg: Algorithm,
) -> TokenError {
    let malformed = |reason| TokenError::Malformed { reason };
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature {
            kid: key.label.clone(),
        },
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim {
            claim: claim.clone(),
        },
        ErrorKind::InvalidClaimFormat(claim) => malformed(match claim.as_str() {
            "exp" => "claim exp is not a number",
            "nbf" => "claim nbf is not a number",
            "iss" => "claim iss is not a string",
            "aud" => "claim aud is not a string or an array of strings",
            "sub" => "claim sub is not a string",
            _ => "a registered claim has the wrong type",
        }),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => mismatch(alg, key),
        ErrorKind::UnsupportedAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::UnsupportedAlgorithm {
                alg: format!("{alg:?}"),
            }
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenError::KeyRejected {
            kid: key.label.clone(),
            reason: error.to_string(),
        },
        ErrorKind::Json(_) => malformed("the header or the payload is not valid JSON"),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            malformed("a part is not valid base64url-encoded UTF-8")
        }
        ErrorKind::InvalidToken => {
            malformed("not a valid signed JWT (unsupported crit or b64 header?)")
        }
        _ => malformed("the token could not be decoded"),
    }
}

/// A NumericDate claim as whole seconds.
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|seconds| seconds.is_finite() && seconds.abs() < 1e15)
            .map(|seconds| seconds.floor() as i64)
    })
}

fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scope.is_empty() && !scopes.iter().any(|known| known == scope) {
            scopes.push(scope.to_owned());
        }
    };
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(text)) => text.split_whitespace().for_each(&mut add),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut add),
            _ => {}
        }
    }
    scopes
}

/// A resource URI for comparison: scheme and authority lowercased (the MCP spec says servers
/// SHOULD accept an uppercase scheme or host), and a lone `/` path dropped
/// (`https://h/` is `https://h`). The path, query and everything else stay exact.
fn canonical_resource(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = if tail == "/" { "" } else { tail };
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase(),
        tail
    )
}

/// A token-supplied string for error texts: quoted, escaped, shortened.
fn shown(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN_CHARS {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{cut:?}…")
    }
}

// ---------------------------------------------------------------------------------------------
// Loading the JWK set.

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

enum Loader {
    File(PathBuf),
    Http {
        url: String,
        uri: Uri,
        /// Boxed: the client is large, and built once.
        client: Box<HttpClient>,
    },
}

impl Loader {
    fn from_source(source: &JwksSource) -> Result<Loader, TokenError> {
        let url = match source {
            JwksSource::File(path) => return Ok(Loader::File(path.clone())),
            JwksSource::Url(url) => url,
        };
        let refuse = |why: &str| TokenError::InvalidSettings {
            reason: format!("JWKS URL {url:?} {why}"),
        };
        let uri: Uri = url
            .parse()
            .map_err(|error| refuse(&format!("is not a valid URL: {error}")))?;
        let Some(authority) = uri.authority() else {
            return Err(refuse("has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(refuse("must not carry credentials"));
        }
        let host = authority.host();
        let scheme = uri.scheme_str().unwrap_or("");
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            if !is_loopback(host) {
                return Err(refuse(
                    "uses plain http to a remote host: the authorization server's keys must \
                     come over https (plain http is allowed only for 127.0.0.1, ::1 and \
                     localhost)",
                ));
            }
            false
        } else {
            return Err(refuse("must use https"));
        };

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TokenError::JwksUnavailable {
                origin: url.clone(),
                reason: format!("cannot set up TLS: {error}"),
            })?;
        let tls = if https {
            use hyper_rustls::ConfigBuilderExt as _;
            builder
                .with_native_roots()
                .map_err(|error| TokenError::JwksUnavailable {
                    origin: url.clone(),
                    reason: format!("cannot load the system's root certificates: {error}"),
                })?
                .with_no_client_auth()
        } else {
            // Never used: plain http to loopback. The connector type wants a TLS config anyway.
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if https {
            connector.https_only()
        } else {
            connector.https_or_http()
        };
        let client =
            Box::new(Client::builder(TokioExecutor::new()).build(connector.enable_http1().build()));
        Ok(Loader::Http {
            url: url.clone(),
            uri,
            client,
        })
    }

    fn origin(&self) -> String {
        match self {
            Loader::File(path) => path.display().to_string(),
            Loader::Http { url, .. } => url.clone(),
        }
    }

    /// Reads and parses the set; counts the attempt in the fetch metric.
    async fn load(&self) -> Result<Vec<VerifyKey>, String> {
        let bytes = match self {
            Loader::File(path) => read_file(path),
            Loader::Http { uri, client, .. } => fetch(client, uri).await,
        };
        let result = match bytes {
            Ok(bytes) => parse_jwks(&bytes).map_err(|reason| ("invalid", reason)),
            Err(reason) => Err(("error", reason)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err((outcome, _)) => outcome,
        };
        metrics::counter!(FETCHES_METRIC, "outcome" => outcome).increment(1);
        result.map_err(|(_, reason)| reason)
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read the file: {error}"))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("the file is larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(bytes)
}

async fn fetch(client: &HttpClient, uri: &Uri) -> Result<Vec<u8>, String> {
    let request = Request::get(uri.clone())
        .header(header::ACCEPT, "application/jwk-set+json, application/json")
        .header(
            header::USER_AGENT,
            concat!("ensemble/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|error| format!("cannot build the request: {error}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| format!("request failed: {}", error_chain(&error)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "the server answered HTTP {status} (redirects are not followed)"
            ));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|error| {
                format!(
                    "reading the body failed: {} (limit {MAX_JWKS_BYTES} bytes)",
                    error_chain(error.as_ref())
                )
            })?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Parses `{"keys": [...]}`, keeping the keys that can verify signatures.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|error| format!("not JSON: {error}"))?;
    let Some(raw_keys) = document.get("keys").and_then(Value::as_array) else {
        return Err("not a JWK set: no \"keys\" array".into());
    };
    let mut keys = Vec::with_capacity(raw_keys.len());
    let mut skipped = Vec::new();
    for (index, raw) in raw_keys.iter().enumerate() {
        let label = match raw.get("kid").and_then(Value::as_str) {
            Some(kid) => shown(kid),
            None => format!("#{index}"),
        };
        match prepare_key(raw, label.clone()) {
            Ok(key) => keys.push(key),
            Err(why) => {
                tracing::warn!(key = %label, %why, "JWKS key skipped");
                skipped.push(format!("{label}: {why}"));
            }
        }
    }
    if keys.is_empty() {
        return Err(if raw_keys.is_empty() {
            "the JWK set is empty".into()
        } else {
            format!(
                "no usable signing key among {} ({})",
                raw_keys.len(),
                skipped.join("; ")
            )
        });
    }
    Ok(keys)
}

/// One JWK → a verification key, or why it cannot be one.
fn prepare_key(raw: &Value, label: String) -> Result<VerifyKey, String> {
    let jwk: Jwk =
        serde_json::from_value(raw.clone()).map_err(|error| format!("not a JWK: {error}"))?;
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err("its use is not \"sig\"".into());
    }
    if let Some(operations) = &jwk.common.key_operations
        && !operations.contains(&KeyOperations::Verify)
    {
        return Err("its key_ops lack \"verify\"".into());
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params) => {
            if params.curve != EllipticCurve::Ed25519 {
                return Err(format!(
                    "OKP curve {:?} is not supported (only Ed25519)",
                    params.curve
                ));
            }
            expect_len(&params.x, 32, "x")?;
            &[Algorithm::EdDSA]
        }
        AlgorithmParameters::EllipticCurve(params) => {
            let (algs, len): (&[Algorithm], usize) = match params.curve {
                EllipticCurve::P256 => (&[Algorithm::ES256], 32),
                EllipticCurve::P384 => (&[Algorithm::ES384], 48),
                ref other => {
                    return Err(format!(
                        "EC curve {other:?} is not supported (P-256 and P-384 are)"
                    ));
                }
            };
            expect_len(&params.x, len, "x")?;
            expect_len(&params.y, len, "y")?;
            algs
        }
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(&params.n)
                .map_err(|_| "its n is not base64url".to_string())?;
            let exponent = URL_SAFE_NO_PAD
                .decode(&params.e)
                .map_err(|_| "its e is not base64url".to_string())?;
            if exponent.iter().all(|byte| *byte == 0) {
                return Err("its exponent is zero".into());
            }
            let bits = rsa_bits(&modulus);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "its RSA modulus has {bits} bits (at least {MIN_RSA_BITS} are required)"
                ));
            }
            RSA_ALGS
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are never used: HMAC tokens are refused".into());
        }
        _ => return Err("unsupported key type (kty)".into()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(named) => {
            let alg = Algorithm::try_from(named)
                .map_err(|_| format!("its alg {named} is not a supported signature algorithm"))?;
            if !family.contains(&alg) {
                return Err(format!("its alg {named} does not fit its key type"));
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|error| format!("unusable: {error}"))?;
    probe(&key, algorithms[0])?;
    Ok(VerifyKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
        label,
    })
}

fn expect_len(encoded: &str, len: usize, name: &str) -> Result<(), String> {
    match URL_SAFE_NO_PAD.decode(encoded) {
        Ok(bytes) if bytes.len() == len => Ok(()),
        Ok(bytes) => Err(format!(
            "its {name} has {} bytes, expected {len}",
            bytes.len()
        )),
        Err(_) => Err(format!("its {name} is not base64url")),
    }
}

fn rsa_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|byte| *byte != 0) {
        Some(first) => {
            (modulus.len() - first - 1) * 8 + (8 - modulus[first].leading_zeros() as usize)
        }
        None => 0,
    }
}

/// Makes the crypto backend build a verifier from the key once, on a dummy token, so a key it
/// cannot use is skipped at load rather than failing every request. A usable key gets as far as
/// the (wrong) signature.
fn probe(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    let header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"{alg:?}\"}}"));
    let dummy = format!("{header}.e30.AAAA");
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Value>(&dummy, key, &validation) {
        Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => Ok(()),
        Err(error) => Err(format!("the crypto backend refuses it: {error}")),
        Ok(_) => Err("it verified a dummy signature".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://auth.example.com";
    const AUDIENCE: &str = "https://mcp.example.com/mcp";

    /// A P-256 key (PKCS#8 DER), made with `openssl genpkey` for these tests only.
    const EC_P256_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv3PprlK08JObv/5LlTd4gwbQFcEoMeU4660bTcr8xcyhRANCAASMvxTYm9um1S7jRSsfkqhcBK2ZOOEyxi6rikBeZ75TwTek4Ud/P2r3Vs2oG0bsBT3esN9k70rSHRIQPNbQdBCq";

    /// A 2048-bit RSA key (PKCS#1 DER), made with `openssl genpkey` for these tests only.
    const RSA_2048_PKCS1: &[&str] = &[
        "MIIEpQIBAAKCAQEAqatONGQ7rxR5L0bELFPv/7SDhf1gs3myhLHpFgdmq0oi0PmTW9g+J+G9F19eUaSS6dWVreHwvLTLmushIfda",
        "QP9Oa98sSEllSo2QZ1oS1hfXChccEu+oFEjpwdCv3rNieeoZofEdUKALGJUiFmKl2RvsYOl8ShVRXrqbXYfCclPIgYSobP+feDLB",
        "kpnMK4Seo7RQDbZlkDbR4166/eBBJOf6AJfT2N9kam4uXG6+shqdP54t6rPlA8UyF5Qs1+5D3qohCey9XXtpN4/mrCWeEfV2Pz8s",
        "n32j6mOdh/0pA+X5oB1L51FstkgtnO+QdCyXFiwUn5RjsnJX4F05ekQtSQIDAQABAoIBABQ3U9pkvgLKsPTL3Qh+GNjSKKCws9K2",
        "s6lhbGkiSR6sNvFI54C4R5GncUklZR7bueCQQSUmiHFnpmHnVbuPFisr8GtkfEmBq0bCjtvtrNRjI01xuvfbo96E4ItmIuppW9i0",
        "Zsj3qntGkoPjkxvxNZskm1nhwBwwpZEgsW3nxOirtsrdH1SonN2dXGJ0RfKyZmQHG5s2Jn6UuUGtvBUyensOzN5zDoHiHBgH975z",
        "tP27qu8wyjWphDwz2nt76P7A+0DHibOZL3tTrTIavZs5Hogw8MrQOYgK4jtMKaLTdmRGkX0It/3EZy/WoaK4FaJhpdVe4CkR+CsE",
        "IaPTsLj/GoECgYEA03+4nyJflvIqqD2cp3x5K0VOy4JQ9LMiMflHRpb08O+uvqdq73AkrJsdMs60GgLsO747egq7FGBIFSqyncTC",
        "wscEtg1dVmcCFBRCLI4rsvZ+GFt7x7dEUlt4Lbi3ytK090DnYM0uNISBuARW+xEu/qpRK2K5OWHHu5ch3fII2YkCgYEAzV5yV4EY",
        "35PRZjlfHuX+yPpGawDzR/mFgSAgsO5lXplJZYhnG/7y5MjU0lSpkrI5kBZpvwf4CBOyRAiP8cgFrgfC14mIr+XjbZ4+pdVWI4z7",
        "Gb2JcAdH9Kr2IF3o5wgn3LVPcI6Upxoiy6y30Jp53QEYojap9yotPYjDnQL0hcECgYEAzQdHxpzf5cilKatwrbyxCg2KMScHq+/r",
        "+l4ZhojYsqjn0dMiizM/mkRUrehMF9s1f0UPC2RTr5EWz84wkVkpJQEhxAp4rUX2cdihveek3TyvSJWHDTjQdrZNbqVfJrPU0syM",
        "gP7nB+pchjNOztz9ncsmHNT7knED2wrLvgjgI2ECgYEAvBiqD11NY9FmdANODOXIs1kPUAghyqVOUtMTPhpLPBaXc+g30Bt1anhK",
        "/I3QdmzIbiEpH290DCnGF6vj8yYplZjEK1drmveqkwbiCE9aQttoTM4daD8y93PyU/jPTXNZ1zs1FDlzC43TmsqJ3QTvYq0TW9dH",
        "WvsFTpvJ1jATt8ECgYEAnj5HLHtHD9hNyRUxhR33w04XhY9FKboEEuL3AlO2EZAdTVik+MYd8fqorj3m0wv6edXQwHgT/8/ZuBIU",
        "ENmKt5N6QDgMkyJNXqTKu04ZQUCH+sHfVPoU+YoZtuPJEjFTflF5zTde4BXuhSJqB0WSjXOkUmDIMJ40ez3v4JQlRl8=",
    ];

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An Ed25519 signing key from fixed bytes, and its public JWK.
    fn ed_key(seed: u8, kid: &str) -> (EncodingKey, Value) {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        // PKCS#8 v1 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed. What
        // `to_pkcs8_der` writes; that method needs ed25519-dalek's `alloc` feature, off here.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[seed; 32]);
        let public = signing.verifying_key().to_bytes();
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public), "kid": kid, "alg": "EdDSA"});
        (EncodingKey::from_ed_der(&der), jwk)
    }

    fn jwk_of(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(key, alg).expect("jwk")).expect("json");
        jwk["kid"] = json!(kid);
        jwk
    }

    fn claims(changes: Value) -> Value {
        let mut claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now(),
            "exp": now() + 300,
            "scope": "ensemble.tools.read ensemble.tools.call",
            "client_id": "cli-1",
            "groups": ["ops", "dev"],
        });
        for (name, value) in changes.as_object().expect("object") {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn mint(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("encode")
    }

    fn write_jwks(dir: &tempfile::TempDir, keys: &[Value]) -> PathBuf {
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": keys }).to_string()).expect("write jwks");
        path
    }

    async fn file_validator(keys: &[Value]) -> (TokenValidator, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_jwks(&dir, keys);
        let validator =
            TokenValidator::new(TokenSettings::new(ISSUER, AUDIENCE, JwksSource::File(path)))
                .await
                .expect("validator");
        (validator, dir)
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_claims() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let token = mint(&key, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        let got = validator.validate(&token).await.expect("valid");
        assert_eq!(got.subject, "alice");
        assert_eq!(got.issuer, ISSUER);
        assert_eq!(got.scopes, ["ensemble.tools.read", "ensemble.tools.call"]);
        assert!(got.has_scope("ensemble.tools.call"));
        assert!(!got.has_scope("ensemble.tools"));
        assert_eq!(got.client_id.as_deref(), Some("cli-1"));
        assert!(got.issued_at.is_some_and(|iat| (iat - now()).abs() < 60));
        assert!(got.expires_at > now());
        assert!(got.claim_contains("groups", "ops"));
        assert!(!got.claim_contains("groups", "admin"));
        assert!(got.claim_contains("scope", "ensemble.tools.read"));
        assert!(got.claim_contains("sub", "alice"));
        assert!(!got.claim_contains("missing", "x"));
        assert_eq!(validator.key_count(), 1);
        assert_eq!(validator.issuer(), ISSUER);
        assert_eq!(validator.audience(), AUDIENCE);
    }

    #[tokio::test]
    async fn scp_azp_and_nested_claims() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let token = mint(
            &key,
            Algorithm::EdDSA,
            Some("test-1"),
            &claims(json!({
                "scope": null,
                "client_id": null,
                "scp": ["read", "call", "read"],
                "azp": "spa-2",
                "realm_access": {"roles": ["operator"]},
                "level": 3,
            })),
        );
        let got = validator.validate(&token).await.expect("valid");
        assert_eq!(got.scopes, ["read", "call"]);
        assert_eq!(got.client_id.as_deref(), Some("spa-2"));
        assert!(got.claim_contains("realm_access.roles", "operator"));
        assert!(got.claim_contains("level", "3"));
        assert!(got.claim_contains("scp", "call"));

        // Entra ID writes `scp` as a space-separated string.
        let token = mint(
            &key,
            Algorithm::EdDSA,
            Some("test-1"),
            &claims(json!({"scope": null, "scp": "User.Read Files.Read"})),
        );
        let got = validator.validate(&token).await.expect("valid");
        assert_eq!(got.scopes, ["User.Read", "Files.Read"]);
    }

    #[tokio::test]
    async fn a_signature_by_another_key_with_the_same_kid_is_refused() {
        let (_, jwk) = ed_key(7, "test-1");
        let (other, _) = ed_key(9, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let token = mint(&other, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        let error = validator.validate(&token).await.unwrap_err();
        assert!(matches!(error, TokenError::BadSignature { .. }), "{error}");
        assert_eq!(
            error.description(),
            "the access token's signature is invalid"
        );

        // An altered payload under a genuine signature.
        let (key, _) = ed_key(7, "test-1");
        let token = mint(&key, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(claims(json!({"sub": "mallory"})).to_string());
        parts[1] = &forged;
        let error = validator.validate(&parts.join(".")).await.unwrap_err();
        assert!(matches!(error, TokenError::BadSignature { .. }), "{error}");
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused_after_a_refetch() {
        let (_, jwk) = ed_key(7, "test-1");
        let (other, _) = ed_key(9, "test-9");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let token = mint(&other, Algorithm::EdDSA, Some("test-9"), &claims(json!({})));
        let error = validator.validate(&token).await.unwrap_err();
        assert_eq!(
            error,
            TokenError::UnknownKeyId {
                kid: Some("\"test-9\"".into()),
                keys: 1
            }
        );
        assert!(error.to_string().contains("test-9"), "{error}");
        assert!(!error.description().contains("test-9"));
    }

    #[tokio::test]
    async fn a_key_added_to_the_file_is_picked_up_on_an_unknown_kid() {
        let (_, jwk1) = ed_key(7, "test-1");
        let (key2, jwk2) = ed_key(9, "test-2");
        let (validator, dir) = file_validator(std::slice::from_ref(&jwk1)).await;
        write_jwks(&dir, &[jwk1, jwk2]);
        let token = mint(&key2, Algorithm::EdDSA, Some("test-2"), &claims(json!({})));
        assert_eq!(
            validator.validate(&token).await.expect("rotated").subject,
            "alice"
        );
        assert_eq!(validator.key_count(), 2);
    }

    #[tokio::test]
    async fn issuer_and_audience_must_match() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let check = |changes: Value| {
            let token = mint(&key, Algorithm::EdDSA, Some("test-1"), &claims(changes));
            let validator = validator.clone();
            async move { validator.validate(&token).await }
        };

        let error = check(json!({"iss": "https://evil.example.com"}))
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::WrongIssuer { .. }), "{error}");
        assert!(error.to_string().contains("evil.example.com"), "{error}");
        // The issuer is compared exactly.
        let error = check(json!({"iss": "https://auth.example.com/"}))
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::WrongIssuer { .. }), "{error}");

        let error = check(json!({"aud": "https://other.example.com/mcp"}))
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::WrongAudience { .. }), "{error}");
        assert_eq!(
            error.description(),
            "the access token was not issued for this resource"
        );
        let error = check(json!({"aud": "https://mcp.example.com/mcp/admin"}))
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::WrongAudience { .. }), "{error}");
        let error = check(json!({"aud": "https://mcp.example.com/MCP"}))
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::WrongAudience { .. }), "{error}");
        let error = check(json!({"aud": ["a", "b"]})).await.unwrap_err();
        assert!(matches!(error, TokenError::WrongAudience { .. }), "{error}");
        let error = check(json!({"aud": []})).await.unwrap_err();
        assert!(matches!(error, TokenError::WrongAudience { .. }), "{error}");

        // An array naming us, and an uppercase scheme or host, are accepted.
        check(json!({"aud": ["https://other.example.com", AUDIENCE]}))
            .await
            .expect("array aud");
        check(json!({"aud": "HTTPS://MCP.Example.COM/mcp"}))
            .await
            .expect("uppercase host");
    }

    #[tokio::test]
    async fn required_claims_are_required() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        for claim in ["aud", "iss", "exp", "sub"] {
            let token = mint(
                &key,
                Algorithm::EdDSA,
                Some("test-1"),
                &claims(json!({ claim: null })),
            );
            let error = validator.validate(&token).await.unwrap_err();
            assert_eq!(
                error,
                TokenError::MissingClaim {
                    claim: claim.into()
                },
                "{claim}"
            );
        }
        let token = mint(
            &key,
            Algorithm::EdDSA,
            Some("test-1"),
            &claims(json!({"aud": 42})),
        );
        let error = validator.validate(&token).await.unwrap_err();
        assert!(
            matches!(
                error,
                TokenError::MissingClaim { .. } | TokenError::Malformed { .. }
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn expiry_and_not_before_are_checked_with_leeway() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let check = |changes: Value| {
            let token = mint(&key, Algorithm::EdDSA, Some("test-1"), &claims(changes));
            let validator = validator.clone();
            async move { validator.validate(&token).await }
        };
        assert_eq!(
            check(json!({"exp": now() - 3600})).await.unwrap_err(),
            TokenError::Expired
        );
        check(json!({"exp": now() - 10}))
            .await
            .expect("within the 60 s leeway");
        assert_eq!(
            check(json!({"nbf": now() + 3600})).await.unwrap_err(),
            TokenError::NotYetValid
        );
        check(json!({"nbf": now() + 10}))
            .await
            .expect("within the 60 s leeway");
        check(json!({"nbf": now() - 10})).await.expect("nbf past");
        assert!(matches!(
            check(json!({"exp": "tomorrow"})).await.unwrap_err(),
            TokenError::Malformed { .. } | TokenError::MissingClaim { .. }
        ));
    }

    #[tokio::test]
    async fn alg_none_is_forbidden() {
        let (_, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let body = b64(claims(json!({})).to_string());
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "none", "kid": "test-1"}),
            json!({"alg": "NONE", "typ": "JWT"}),
        ] {
            let token = format!("{}.{body}.", b64(header.to_string()));
            let error = validator.validate(&token).await.unwrap_err();
            assert!(
                matches!(error, TokenError::ForbiddenAlgorithm { .. }),
                "{header}: {error}"
            );
            assert_eq!(
                error.description(),
                "the access token's signing algorithm is not accepted"
            );
        }
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_is_forbidden() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = signing.verifying_key().to_bytes();
        let (_, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        for (secret, kid) in [
            (public.to_vec(), Some("test-1")),
            (b64(public).into_bytes(), Some("test-1")),
            (public.to_vec(), None),
        ] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let token = mint(
                    &EncodingKey::from_secret(&secret).expect("secret"),
                    alg,
                    kid,
                    &claims(json!({})),
                );
                let error = validator.validate(&token).await.unwrap_err();
                assert!(
                    matches!(error, TokenError::ForbiddenAlgorithm { .. }),
                    "{alg:?}: {error}"
                );
            }
        }
    }

    #[tokio::test]
    async fn an_alg_the_key_does_not_allow_is_refused() {
        let (_, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let body = b64(claims(json!({})).to_string());
        for alg in ["RS256", "PS256", "ES256"] {
            let header = b64(json!({"alg": alg, "kid": "test-1"}).to_string());
            let token = format!("{header}.{body}.{}", b64([1u8; 64]));
            let error = validator.validate(&token).await.unwrap_err();
            assert!(
                matches!(error, TokenError::AlgorithmMismatch { .. }),
                "{alg}: {error}"
            );
        }
        let header = b64(json!({"alg": "ES512", "kid": "test-1"}).to_string());
        let error = validator
            .validate(&format!("{header}.{body}.{}", b64([1u8; 64])))
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::UnsupportedAlgorithm { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_kid_less_token_needs_a_single_key_set() {
        let (key, jwk1) = ed_key(7, "test-1");
        let (_, jwk2) = ed_key(9, "test-2");
        let token = mint(&key, Algorithm::EdDSA, None, &claims(json!({})));
        let (validator, _dir) = file_validator(std::slice::from_ref(&jwk1)).await;
        assert_eq!(
            validator.validate(&token).await.expect("one key").subject,
            "alice"
        );
        let (validator, _dir) = file_validator(&[jwk1, jwk2]).await;
        let error = validator.validate(&token).await.unwrap_err();
        assert_eq!(error, TokenError::UnknownKeyId { kid: None, keys: 2 });
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_panicking() {
        let (key, jwk) = ed_key(7, "test-1");
        let (validator, _dir) = file_validator(&[jwk]).await;
        let good = mint(&key, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        let body = b64(claims(json!({})).to_string());
        let sig = b64([1u8; 64]);
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let cases: Vec<String> = vec![
            String::new(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d.e".into(),
            "..".into(),
            "!!!.@@@.###".into(),
            format!("{}.{body}.{sig}", b64("not json")),
            format!("{}.{body}.{sig}", b64("[1,2]")),
            format!("{}.{body}.{sig}", b64("{}")),
            format!("{}.{body}.{sig}", b64(r#"{"alg":7}"#)),
            format!("{}.{body}.{sig}", b64(r#"{"alg":"EdDSA","kid":7}"#)),
            format!("{}.{body}.", b64(r#"{"alg":"EdDSA","kid":"test-1"}"#)),
            format!(
                "{}.{}.{sig}",
                b64(r#"{"alg":"EdDSA","kid":"test-1"}"#),
                b64("nope")
            ),
            format!("{}.%%%.{sig}", b64(r#"{"alg":"EdDSA","kid":"test-1"}"#)),
            format!("{good}x"),
            format!("{good}."),
            good.replacen('.', ".=", 1),
            good.chars().rev().collect(),
            long,
            "\u{0}\u{1}.\u{fffd}.é".into(),
        ];
        for case in cases {
            let error = validator.validate(&case).await.unwrap_err();
            assert!(
                matches!(
                    error,
                    TokenError::Malformed { .. }
                        | TokenError::BadSignature { .. }
                        | TokenError::UnsupportedAlgorithm { .. }
                ),
                "{case:.60}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn es256_keys_are_used_with_their_curve() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(EC_P256_PKCS8)
            .expect("fixture");
        let key = EncodingKey::from_ec_der(&der);
        let jwk = jwk_of(&key, Algorithm::ES256, "ec-1");
        let (validator, _dir) = file_validator(std::slice::from_ref(&jwk)).await;
        let token = mint(&key, Algorithm::ES256, Some("ec-1"), &claims(json!({})));
        assert_eq!(
            validator.validate(&token).await.expect("es256").subject,
            "alice"
        );

        // A P-256 key labelled P-384, or with alg ES384, is skipped: no usable key is left.
        for (field, value) in [("crv", "P-384"), ("alg", "ES384"), ("alg", "RS256")] {
            let mut bad = jwk.clone();
            bad[field] = json!(value);
            let dir = tempfile::tempdir().expect("tempdir");
            let path = write_jwks(&dir, &[bad]);
            let error =
                TokenValidator::new(TokenSettings::new(ISSUER, AUDIENCE, JwksSource::File(path)))
                    .await
                    .unwrap_err();
            assert!(
                matches!(error, TokenError::JwksUnavailable { .. }),
                "{field}={value}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn rsa_keys_allow_the_rsa_family_or_their_named_alg() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(RSA_2048_PKCS1.concat())
            .expect("fixture");
        let key = EncodingKey::from_rsa_der(&der);
        let mut open = jwk_of(&key, Algorithm::RS256, "rsa-open");
        open.as_object_mut().expect("object").remove("alg");
        let pinned = jwk_of(&key, Algorithm::RS256, "rsa-pinned");
        let (validator, _dir) = file_validator(&[open, pinned]).await;
        let claims = claims(json!({}));

        let rs = mint(&key, Algorithm::RS256, Some("rsa-open"), &claims);
        validator
            .validate(&rs)
            .await
            .expect("RS256 on an alg-less RSA key");
        let ps = mint(&key, Algorithm::PS256, Some("rsa-open"), &claims);
        validator
            .validate(&ps)
            .await
            .expect("PS256 on an alg-less RSA key");
        let rs = mint(&key, Algorithm::RS256, Some("rsa-pinned"), &claims);
        validator
            .validate(&rs)
            .await
            .expect("RS256 on an RS256 key");
        let ps = mint(&key, Algorithm::PS256, Some("rsa-pinned"), &claims);
        let error = validator.validate(&ps).await.unwrap_err();
        assert!(
            matches!(error, TokenError::AlgorithmMismatch { .. }),
            "{error}"
        );
        let header = b64(json!({"alg": "EdDSA", "kid": "rsa-open"}).to_string());
        let body = b64(claims.to_string());
        let error = validator
            .validate(&format!("{header}.{body}.{}", b64([0u8; 64])))
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::AlgorithmMismatch { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn unusable_jwks_keys_are_skipped_and_an_unusable_set_fails() {
        let (key, good) = ed_key(7, "good");
        let bad_keys = [
            json!({"kty": "oct", "k": b64(b"secret-secret-secret"), "kid": "hmac", "alg": "HS256"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64([1u8; 8]), "kid": "short"}),
            json!({"kty": "OKP", "crv": "Ed448", "x": b64([1u8; 57]), "kid": "ed448"}),
            json!({"kty": "RSA", "n": b64([0xffu8; 128]), "e": "AQAB", "kid": "rsa-1024"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": good["x"], "kid": "enc", "use": "enc"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": good["x"], "kid": "ops", "key_ops": ["sign"]}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": good["x"], "kid": "es", "alg": "ES256"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": good["x"], "kid": "ml", "alg": "ML-DSA-44"}),
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k1"}),
            json!({"kty": "weird", "kid": "weird"}),
            json!("not an object"),
        ];
        let mut keys = bad_keys.to_vec();
        keys.push(good);
        let (validator, _dir) = file_validator(&keys).await;
        assert_eq!(validator.key_count(), 1);
        let token = mint(&key, Algorithm::EdDSA, Some("good"), &claims(json!({})));
        validator.validate(&token).await.expect("the good key");
        let hmac = mint(
            &EncodingKey::from_secret(b"secret-secret-secret").expect("secret"),
            Algorithm::HS256,
            Some("hmac"),
            &claims(json!({})),
        );
        assert!(matches!(
            validator.validate(&hmac).await.unwrap_err(),
            TokenError::ForbiddenAlgorithm { .. }
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        for document in [
            json!({"keys": bad_keys}),
            json!({"keys": []}),
            json!({"nokeys": 1}),
            json!([1, 2]),
        ] {
            let path = dir.path().join("jwks.json");
            std::fs::write(&path, document.to_string()).expect("write");
            let error = TokenValidator::new(TokenSettings::new(
                ISSUER,
                AUDIENCE,
                JwksSource::File(path.clone()),
            ))
            .await
            .unwrap_err();
            let TokenError::JwksUnavailable { origin, .. } = &error else {
                panic!("{error}");
            };
            assert_eq!(*origin, path.display().to_string());
        }
        let missing = dir.path().join("missing.json");
        let error = TokenValidator::new(TokenSettings::new(
            ISSUER,
            AUDIENCE,
            JwksSource::File(missing.clone()),
        ))
        .await
        .unwrap_err();
        assert!(error.to_string().contains("missing.json"), "{error}");
    }

    #[tokio::test]
    async fn settings_and_jwks_urls_are_checked() {
        let new = |issuer: &str, audience: &str, url: &str| {
            TokenValidator::new(TokenSettings::new(
                issuer,
                audience,
                JwksSource::Url(url.into()),
            ))
        };
        for url in [
            "http://auth.example.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/jwks",
            "file:///etc/jwks.json",
            "https://user:pw@auth.example.com/jwks",
            "not a url",
            "/relative/jwks",
        ] {
            let error = new(ISSUER, AUDIENCE, url).await.unwrap_err();
            assert!(
                matches!(error, TokenError::InvalidSettings { .. }),
                "{url}: {error}"
            );
        }
        let error = new(ISSUER, AUDIENCE, "http://example.com/jwks")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("https"), "{error}");
        assert!(matches!(
            new("", AUDIENCE, "https://x").await.unwrap_err(),
            TokenError::InvalidSettings { .. }
        ));
        assert!(matches!(
            new(ISSUER, "mcp", "https://x").await.unwrap_err(),
            TokenError::InvalidSettings { .. }
        ));

        // Allowed schemes that cannot be reached name the URL.
        for url in [
            "http://127.0.0.1:1/jwks",
            "http://[::1]:1/jwks",
            "http://localhost:1/jwks",
            "https://127.0.0.1:1/jwks",
        ] {
            let error = new(ISSUER, AUDIENCE, url).await.unwrap_err();
            let TokenError::JwksUnavailable { origin, .. } = &error else {
                panic!("{url}: {error}");
            };
            assert_eq!(origin, url);
            assert!(error.to_string().contains(url), "{error}");
        }

        // https really speaks TLS: against a plain-http server the handshake fails.
        let server = serve_jwks(vec![ed_key(7, "test-1").1]).await;
        let url = server.url.replace("http://", "https://");
        let error = new(ISSUER, AUDIENCE, &url).await.unwrap_err();
        assert!(
            matches!(&error, TokenError::JwksUnavailable { origin, .. } if *origin == url),
            "{error}"
        );
        assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    }

    /// A JWKS served by the test, counting requests.
    struct JwksServer {
        url: String,
        keys: Arc<std::sync::Mutex<Vec<Value>>>,
        hits: Arc<AtomicUsize>,
    }

    async fn serve_jwks(keys: Vec<Value>) -> JwksServer {
        let keys = Arc::new(std::sync::Mutex::new(keys));
        let hits = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get({
                let keys = keys.clone();
                let hits = hits.clone();
                move || {
                    let keys = keys.clone();
                    let hits = hits.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        // Slow enough that concurrent misses overlap with the fetch.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let keys = keys.lock().expect("keys").clone();
                        axum::Json(json!({ "keys": keys }))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        JwksServer {
            url: format!("http://{address}/jwks.json"),
            keys,
            hits,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_jwks_refetches_once_per_miss_and_accepts_a_rotated_key() {
        let (key1, jwk1) = ed_key(7, "test-1");
        let (key2, jwk2) = ed_key(9, "test-2");
        let server = serve_jwks(vec![jwk1.clone()]).await;
        let mut settings =
            TokenSettings::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()));
        settings.refetch_min_interval = Duration::from_secs(1);
        let validator = TokenValidator::new(settings).await.expect("validator");
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);

        // A known kid costs no fetch.
        let token1 = mint(&key1, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        validator.validate(&token1).await.expect("valid");
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);

        // Concurrent misses share exactly one refetch, then are refused.
        let unknown = mint(&key2, Algorithm::EdDSA, Some("nope"), &claims(json!({})));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let validator = validator.clone();
                let token = unknown.clone();
                tokio::spawn(async move { validator.validate(&token).await })
            })
            .collect();
        for task in tasks {
            let error = task.await.expect("join").unwrap_err();
            assert!(matches!(error, TokenError::UnknownKeyId { .. }), "{error}");
        }
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);

        // Within the refetch interval, another miss does not fetch.
        validator.validate(&unknown).await.unwrap_err();
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);

        // The authorization server rotates: test-2 is added, test-1 withdrawn.
        *server.keys.lock().expect("keys") = vec![jwk2];
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let token2 = mint(&key2, Algorithm::EdDSA, Some("test-2"), &claims(json!({})));
        assert_eq!(
            validator.validate(&token2).await.expect("rotated").subject,
            "alice"
        );
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
        validator.validate(&token2).await.expect("cached");
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
        assert_eq!(validator.key_count(), 1);
        // The withdrawn key is gone with the reload.
        let error = validator.validate(&token1).await.unwrap_err();
        assert!(matches!(error, TokenError::UnknownKeyId { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_failed_refetch_keeps_the_cached_keys() {
        let (key1, jwk1) = ed_key(7, "test-1");
        let server = serve_jwks(vec![jwk1]).await;
        let mut settings =
            TokenSettings::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()));
        settings.refetch_min_interval = Duration::ZERO;
        let validator = TokenValidator::new(settings).await.expect("validator");
        *server.keys.lock().expect("keys") = vec![json!({"kty": "oct", "k": "c2VjcmV0"})];
        let (key9, _) = ed_key(9, "test-9");
        let unknown = mint(&key9, Algorithm::EdDSA, Some("test-9"), &claims(json!({})));
        validator.validate(&unknown).await.unwrap_err();
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        let token1 = mint(&key1, Algorithm::EdDSA, Some("test-1"), &claims(json!({})));
        validator
            .validate(&token1)
            .await
            .expect("cached key still works");
    }

    #[test]
    fn helpers() {
        assert_eq!(
            canonical_resource("HTTPS://H.Example:8443/Mcp"),
            "https://h.example:8443/Mcp"
        );
        assert_eq!(canonical_resource("https://h/"), "https://h");
        assert_eq!(canonical_resource("https://h/?"), "https://h/?");
        assert_eq!(canonical_resource("urn:x"), "urn:x");
        assert!(is_loopback("127.0.0.1") && is_loopback("127.9.9.9") && is_loopback("[::1]"));
        assert!(is_loopback("LOCALHOST") && !is_loopback("localhost.evil.com"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("[::2]"));
        assert_eq!(rsa_bits(&[0, 0x01, 0]), 9);
        assert_eq!(rsa_bits(&[0xff; 256]), 2048);
        assert_eq!(shown("a\"b\n"), r#""a\"b\n""#);
        assert!(shown(&"x".repeat(500)).len() < 100);
        assert_eq!(numeric_date(&json!(12.9)), Some(12));
        assert_eq!(numeric_date(&json!("12")), None);
        let codes = [
            TokenError::Expired.reason_code(),
            TokenError::NotYetValid.reason_code(),
            TokenError::Malformed { reason: "x" }.reason_code(),
        ];
        assert!(
            codes
                .iter()
                .all(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
