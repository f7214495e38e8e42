//! `ensemble backup --to DIR`: a consistent copy of the data directory.
//!
//! sled locks its data directory: while a server runs, no other process can open it. So a
//! running server is asked to take the backup itself (`--url`, its loopback-only `POST
//! /admin/backup`), and without `--url` the data directory is opened here, which works only
//! when no process holds it. Either way the copy is one point in time and is a data directory of
//! its own: `ensemble serve --data-dir DIR` restores it.

use std::path::{Path, PathBuf};

use clap::Args;
use ensemble::actors::store::{Store, StoreError, StoreOptions};
use ensemble::runtime::config::Config;
use serde_json::Value;

use super::Failure;

/// `ensemble backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write the copy into: new, or empty.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Ask the server running at this address to take the backup (it must run with --http and
    /// be reached on loopback), e.g. http://127.0.0.1:7300
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The data directory to back up when no server holds it (default ./ensemble-data).
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
}

/// The page cache for an offline backup: the source is read once.
const OFFLINE_CACHE_BYTES: u64 = 8 << 20;

/// Takes the backup and prints what was copied.
pub async fn backup(config: &Config, args: BackupArgs) -> Result<(), Failure> {
    let to = std::path::absolute(&args.to)
        .map_err(|e| Failure::Usage(format!("--to {}: {e}", args.to.display())))?;
    let report = match &args.url {
        Some(url) => remote(url, &to).await?,
        None => offline(config, &to).await?,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    eprintln!(
        "backup written to {}; restore with: ensemble serve --data-dir {}",
        to.display(),
        to.display()
    );
    Ok(())
}

async fn offline(config: &Config, to: &Path) -> Result<Value, Failure> {
    if config.store.in_memory {
        return Err(Failure::Usage(
            "the configuration says in_memory: there is no data directory to back up".into(),
        ));
    }
    let dir = config.store.data_dir.clone();
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        return Err(Failure::Usage(format!(
            "{} holds no ensemble store; pass the data directory with --data-dir",
            dir.display()
        )));
    }
    let target = to.to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        let options = StoreOptions {
            cache_capacity_bytes: OFFLINE_CACHE_BYTES,
        };
        let store = Store::open_with(&dir, &options)?;
        store.backup_to(&target)
    })
    .await
    .map_err(|e| Failure::Failed(format!("the backup task failed: {e}")))?;
    match done {
        Ok(report) => Ok(serde_json::json!({
            "target": report.target,
            "trees": report.trees,
            "records": report.records,
            "bytes": report.bytes,
            "files": report.files,
            "elapsed_ms": report.elapsed.as_millis() as u64,
        })),
        Err(StoreError::Locked { path }) => Err(Failure::Failed(format!(
            "{} is in use by a running ensemble; ask that server for the backup with \
             `ensemble backup --to {} --url http://127.0.0.1:PORT` (it must serve --http), \
             or stop it first",
            path.display(),
            to.display()
        ))),
        Err(e @ StoreError::Backup { .. }) => Err(Failure::Usage(e.to_string())),
        Err(e) => Err(Failure::Failed(e.to_string())),
    }
}

/// The server's base URL from what the user gave (`http://HOST:PORT`, with or without `/mcp`).
pub(super) fn base_url(url: &str) -> Result<String, Failure> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Failure::Usage(format!(
            "--url {url:?}: give the server's plain HTTP address on this machine, like \
             http://127.0.0.1:7300"
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Failure::Usage(format!(
            "--url {url:?}: no host; give e.g. http://127.0.0.1:7300"
        )));
    }
    Ok(format!("http://{authority}"))
}

async fn remote(url: &str, to: &Path) -> Result<Value, Failure> {
    let endpoint = format!("{}/admin/backup", base_url(url)?);
    let body = serde_json::json!({ "to": to });
    let response = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            Failure::Usage(format!(
                "could not reach {endpoint}: {e}; is `ensemble serve --http` running there?"
            ))
        })?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| Failure::Failed(format!("{endpoint}: unreadable answer: {e}")))?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(answer);
    }
    let why = answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| answer.to_string());
    let message = format!("the server refused the backup ({status}): {why}");
    Err(if status.is_server_error() {
        Failure::Failed(message)
    } else {
        Failure::Usage(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_address_may_be_given_with_or_without_mcp() {
        assert_eq!(
            base_url("http://127.0.0.1:7300").ok(),
            Some("http://127.0.0.1:7300".into())
        );
        assert_eq!(
            base_url("http://127.0.0.1:7300/mcp").ok(),
            Some("http://127.0.0.1:7300".into())
        );
        assert!(base_url("https://127.0.0.1:7300").is_err());
        assert!(base_url("127.0.0.1:7300").is_err());
        assert!(base_url("http:///mcp").is_err());
    }
}
