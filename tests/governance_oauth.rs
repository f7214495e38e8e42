//! The MCP authorization spec against the real binary: `ensemble serve --http` as an OAuth 2.1
//! resource server, with real Ed25519-signed JWTs and a JWKS this test serves over HTTP on
//! loopback. Every bad token is a 401 naming the metadata; a token without the scope the request
//! needs is a 403 `insufficient_scope`; a good one gets an MCP session whose tools are those its
//! claims' bindings allow.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.test";
const RESOURCE: &str = "https://mcp.example.test/mcp";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A fixed Ed25519 key (PKCS#8 v1, RFC 8410) and its public JWK.
fn key(seed: u8, kid: &str) -> (EncodingKey, Value) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    (
        EncodingKey::from_ed_der(&der),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
    )
}

fn claims(changes: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "alice", "iat": now(), "exp": now() + 300,
        "scope": "ensemble.tools.read ensemble.tools.call", "groups": ["ops"],
    });
    for (k, v) in changes.as_object().into_iter().flatten() {
        match v {
            Value::Null => {
                c.as_object_mut().map(|o| o.remove(k));
            }
            v => c[k] = v.clone(),
        }
    }
    c
}

fn mint(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// Serves `{"keys": [jwk]}` at `http://127.0.0.1:PORT/jwks`, counting fetches.
async fn serve_jwks(jwk: Value) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let doc = json!({ "keys": [jwk.clone()] });
            async move { axum::Json(doc) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/jwks"), fetches)
}

fn config(jwks_url: &str) -> String {
    format!(
        r#"
[governance]
resource = "{RESOURCE}"

[governance.oauth]
issuer = "{ISSUER}"
jwks_url = "{jwks_url}"

[[governance.roles]]
name = "ops"
tools = ["registry_*", "queue_stats"]

[[governance.bindings]]
claim = "groups"
value = "ops"
roles = ["ops"]

[[governance.roles]]
name = "admin"
tools = ["governance_*"]

[[governance.bindings]]
api_key = "admin"
roles = ["admin"]

[[governance.api_keys]]
name = "admin"
sha256 = "{ADMIN_KEY_SHA256}"
"#
    )
}

/// `printf %s ens-oauth-admin | sha256sum`
const ADMIN_KEY: &str = "ens-oauth-admin";
const ADMIN_KEY_SHA256: &str = "e0d4d61db869e192a8f07ed951b1fd36cb1d22a741d166a50403826409c810e8";

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"queue_stats","arguments":{}}}"#;

/// POSTs `body` with `token` (if any) to `url`: `(status, WWW-Authenticate)`.
async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.body(body.to_string()).send().await.expect("HTTP");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_and_a_good_one_is_served() {
    let (signing, jwk) = key(7, "k1");
    let (jwks_url, fetches) = serve_jwks(jwk).await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(&jwks_url), &[]);
    let metadata = format!(
        "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        "https://mcp.example.test"
    );

    let (other, _) = key(9, "k1");
    let (unknown_kid_key, _) = key(11, "k2");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing token", None),
        (
            "bad signature",
            Some(mint(&other, "k1", &claims(json!({})))),
        ),
        (
            "unknown kid",
            Some(mint(&unknown_kid_key, "k2", &claims(json!({})))),
        ),
        (
            "wrong issuer",
            Some(mint(
                &signing,
                "k1",
                &claims(json!({"iss": "https://evil.test"})),
            )),
        ),
        (
            "wrong audience",
            Some(mint(
                &signing,
                "k1",
                &claims(json!({"aud": "https://other.test/mcp"})),
            )),
        ),
        (
            "missing audience",
            Some(mint(&signing, "k1", &claims(json!({"aud": null})))),
        ),
        (
            "expired",
            Some(mint(
                &signing,
                "k1",
                &claims(json!({"exp": now() - 3600, "iat": now() - 7200})),
            )),
        ),
        (
            "not yet valid",
            Some(mint(&signing, "k1", &claims(json!({"nbf": now() + 3600})))),
        ),
        ("alg none", Some(none)),
    ];
    for (case, token) in &cases {
        let (status, challenge) = post(&server.url, token.as_deref(), INIT).await;
        assert_eq!(status, 401, "{case}");
        assert!(challenge.contains(&metadata), "{case}: {challenge}");
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{case}: {challenge}"
            );
        }
    }
    // The unknown kid made the server look for a new key once (besides the first load).
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one refetch");

    let good = mint(&signing, "k1", &claims(json!({})));
    // A token in the query string is refused even when it is good.
    let (status, _) = post(&format!("{}?access_token={good}", server.url), None, INIT).await;
    assert_eq!(status, 401, "token in the query");

    // Read scope only: may initialize, may not call.
    let reader = mint(
        &signing,
        "k1",
        &claims(json!({"scope": "ensemble.tools.read"})),
    );
    assert_eq!(post(&server.url, Some(&reader), INIT).await.0, 200);
    let (status, challenge) = post(&server.url, Some(&reader), CALL).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"ensemble.tools.read ensemble.tools.call\"")
            && challenge.contains(&metadata),
        "{challenge}"
    );
    // A header claiming another method changes nothing: the body is what is authorized.
    let resp = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {reader}"))
        .header("mcp-method", "tools/list")
        .body(CALL)
        .send()
        .await
        .expect("HTTP");
    assert_eq!(
        resp.status().as_u16(),
        403,
        "the scope check trusted a header"
    );
    // No scope at all: not even initialize.
    let bare = mint(&signing, "k1", &claims(json!({"scope": null})));
    assert_eq!(post(&server.url, Some(&bare), INIT).await.0, 403);

    // A good token: an MCP session (rmcp's client) that sees what the `ops` group may use.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(good),
    );
    let client = ().serve(transport).await.expect("MCP session with a token");
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "queue_stats",
            "registry_get",
            "registry_list",
            "registry_put",
            "registry_versions"
        ]
    );
    let r = client
        .call_tool(CallToolRequestParams::new("queue_stats").with_arguments(object(json!({}))))
        .await
        .expect("queue_stats");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    // Someone outside the group has a valid token and no role: an empty list.
    let outsider = mint(
        &signing,
        "k1",
        &claims(json!({"sub": "mallory", "groups": ["guests"]})),
    );
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(outsider),
    );
    let guest = ().serve(transport).await.expect("MCP session");
    assert!(guest.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.ok();
    guest.cancel().await.ok();

    // Revoking alice's tokens: the one she holds is refused from the next request on; a token
    // issued afterwards is accepted.
    let admin = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(ADMIN_KEY),
    );
    let admin = ().serve(admin).await.expect("admin session");
    let issued_before = now() + 1;
    let revoked = admin
        .call_tool(
            CallToolRequestParams::new("governance_revoke_tokens").with_arguments(object(json!({
                "subject": "alice", "issued_before": issued_before, "reason": "laptop lost"
            }))),
        )
        .await
        .expect("governance_revoke_tokens");
    assert_ne!(revoked.is_error, Some(true), "{revoked:?}");
    let old = mint(&signing, "k1", &claims(json!({})));
    let (status, challenge) = post(&server.url, Some(&old), INIT).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("revoked"), "{challenge}");
    let fresh = mint(&signing, "k1", &claims(json!({"iat": issued_before + 1})));
    assert_eq!(post(&server.url, Some(&fresh), INIT).await.0, 200);
    admin.cancel().await.ok();

    // The metadata names the configured resource and issuer.
    let doc: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        server.base()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["resource"], json!(RESOURCE));
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["ensemble.tools.read", "ensemble.tools.call"])
    );
}
