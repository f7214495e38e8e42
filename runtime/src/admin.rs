//! Administrative HTTP endpoints beside `/mcp`: `POST /admin/backup`, and for a governed
//! runtime `POST /admin/governance/mode` (lifting read-only or lockdown is an operator's
//! action on the server's machine, never an MCP tool call).
//!
//! They are not MCP tools on purpose: a tool is offered to every MCP client (and to the model
//! behind it), and a backup writes a directory on the server's disk. These endpoints answer only
//! a caller on the same machine, talking to the server directly:
//!
//! - the peer address is a loopback address;
//! - no `Origin` header (a browser always sends one on a POST, so no web page can trigger it);
//! - the `Host` is a loopback name (no DNS rebinding);
//! - no `Forwarded`, `X-Forwarded-For` or `X-Real-IP` header (a reverse proxy on the same
//!   machine connects from loopback, but forwards someone else's request).
//!
//! `ensemble backup --to DIR --url http://127.0.0.1:7300` is the client.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ensemble_actors::store::{Store, StoreError};
use serde::Deserialize;
use serde_json::json;

/// The body of `POST /admin/backup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// An absolute path on the server's machine: a new or empty directory.
    pub to: PathBuf,
}

/// The admin routes over `store`.
pub fn routes(store: Store) -> axum::Router {
    axum::Router::new()
        .route("/admin/backup", post(backup))
        .with_state(store)
}

/// The body of `POST /admin/governance/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `normal`, `read_only` or `lockdown`.
    pub mode: crate::governance::controls::Mode,
    /// Why (kept with the change and in the audit log).
    #[serde(default)]
    pub reason: String,
}

/// The governance admin route (only for a governed runtime).
pub fn governance_routes(governance: crate::governance::Governance) -> axum::Router {
    axum::Router::new()
        .route("/admin/governance/mode", post(set_mode))
        .with_state(governance)
}

/// Sets the mode as the operator: what `ensemble admin mode --url` calls.
async fn set_mode(
    State(governance): State<crate::governance::Governance>,
    request: Request,
) -> Response {
    let request: ModeRequest = match local_body(
        request,
        "{\"mode\": \"normal\" | \"read_only\" | \"lockdown\", \"reason\": \"...\"}",
    )
    .await
    {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    match crate::governance::set_mode_as_operator(&governance, request.mode, &request.reason).await
    {
        Ok(controls) => Json(json!({ "mode": controls.mode })).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

/// Why a request may not use the admin endpoints, if it may not.
fn local_only(peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), String> {
    match peer {
        Some(peer) if peer.ip().is_loopback() => {}
        Some(peer) => {
            return Err(format!(
                "the admin endpoints answer callers on the server's own machine only (loopback); \
                 {} is not",
                peer.ip()
            ));
        }
        None => return Err("the admin endpoints need the caller's address".into()),
    }
    if headers.contains_key(header::ORIGIN) {
        return Err("the admin endpoints refuse browser requests (an Origin header)".into());
    }
    for forwarded in ["forwarded", "x-forwarded-for", "x-real-ip"] {
        if headers.contains_key(forwarded) {
            return Err(format!(
                "the admin endpoints refuse forwarded requests (a {forwarded} header): call the \
                 server directly on loopback, not through a proxy"
            ));
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    if !matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
        return Err(format!(
            "the admin endpoints answer only a loopback Host (localhost, 127.0.0.1 or [::1]), not \
             {host:?}"
        ));
    }
    Ok(())
}

/// The JSON body of an admin request from a caller on this machine ([`local_only`]), or the
/// refusal to answer: 403 for anyone else, 400 naming `shape` for a body that is not one.
async fn local_body<T: serde::de::DeserializeOwned>(
    request: Request,
    shape: &str,
) -> Result<T, Response> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    local_only(peer, request.headers()).map_err(|why| refuse(StatusCode::FORBIDDEN, why))?;
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("unreadable body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("the body must be {shape}: {e}"),
        )
    })
}

async fn backup(State(store): State<Store>, request: Request) -> Response {
    let request: BackupRequest = match local_body(request, "{\"to\": \"/absolute/dir\"}").await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    if !request.to.is_absolute() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "{} is relative; give an absolute path (the server's working directory is not \
                 the caller's)",
                request.to.display()
            ),
        );
    }
    let target = request.to;
    tracing::info!(target = %target.display(), "backup requested");
    let done = tokio::task::spawn_blocking(move || store.backup_to(&target)).await;
    match done {
        Ok(Ok(report)) => {
            tracing::info!(
                target = %report.target.display(),
                records = report.records,
                files = report.files,
                elapsed_ms = report.elapsed.as_millis() as u64,
                "backup done"
            );
            Json(json!({
                "target": report.target,
                "trees": report.trees,
                "records": report.records,
                "bytes": report.bytes,
                "files": report.files,
                "elapsed_ms": report.elapsed.as_millis() as u64,
            }))
            .into_response()
        }
        Ok(Err(e @ StoreError::Backup { .. })) => refuse(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the backup task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_direct_local_caller_may_use_the_admin_endpoints() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let host = headers(&[("host", "127.0.0.1:7300")]);
        assert!(local_only(Some(local), &host).is_ok());
        assert!(local_only(Some(local), &headers(&[("host", "localhost")])).is_ok());
        assert!(local_only(Some(local), &headers(&[("host", "[::1]:7300")])).is_ok());
        assert!(
            local_only(Some(remote), &host)
                .unwrap_err()
                .contains("loopback")
        );
        assert!(local_only(None, &host).is_err());
        let browser = headers(&[
            ("host", "127.0.0.1:7300"),
            ("origin", "http://evil.example"),
        ]);
        assert!(
            local_only(Some(local), &browser)
                .unwrap_err()
                .contains("Origin")
        );
        let proxied = headers(&[("host", "127.0.0.1:7300"), ("x-forwarded-for", "192.0.2.7")]);
        assert!(
            local_only(Some(local), &proxied)
                .unwrap_err()
                .contains("proxy")
        );
        let rebound = headers(&[("host", "evil.example:7300")]);
        assert!(
            local_only(Some(local), &rebound)
                .unwrap_err()
                .contains("Host")
        );
    }
}
