//! Service accounts for governance tests: their `[[governance.bindings]]` and
//! `[[governance.api_keys]]` tables, and an MCP session that presents a key.

use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use sha2::{Digest, Sha256};

use super::Client;

/// The configuration of service accounts `(name, key, roles)`: each bound to its roles, its
/// key stored as its SHA-256.
pub fn api_keys(accounts: &[(&str, &str, &[&str])]) -> String {
    let mut out = String::new();
    for (name, key, roles) in accounts {
        let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
        out.push_str(&format!(
            "\n[[governance.bindings]]\napi_key = {name:?}\nroles = [{}]\n\n\
             [[governance.api_keys]]\nname = {name:?}\nsha256 = \"{:x}\"\n",
            roles.join(", "),
            Sha256::digest(key.as_bytes())
        ));
    }
    out
}

/// An MCP session over Streamable HTTP that sends `key` as its bearer credential.
pub async fn connect_with_key(url: &str, key: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key),
    );
    ().serve(transport)
        .await
        .expect("an MCP session with a key")
}

/// [`connect_with_key`] with a client handler of the test's own (to see notifications).
pub async fn connect_with_key_as<H: rmcp::ClientHandler>(
    url: &str,
    key: &str,
    handler: H,
) -> rmcp::service::RunningService<rmcp::RoleClient, H> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key),
    );
    handler
        .serve(transport)
        .await
        .expect("an MCP session with a key")
}
