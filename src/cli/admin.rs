//! `ensemble admin`: the operator's actions on a governed runtime that no MCP tool may take.
//!
//! Lifting read-only or lockdown is one: a stolen administrator token can lock the runtime
//! through `governance_set_mode`, never unlock it. On a running server the change goes through
//! its loopback-only `POST /admin/governance/mode` (`--url`); without `--url` the data directory
//! is changed directly, which works only when no server holds it (sled locks it).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use ensemble::actors::store::{Store, StoreError};
use ensemble::runtime::config::Config;
use ensemble::runtime::governance::controls::Mode;
use serde_json::json;

use super::Failure;
use super::backup::base_url;

/// `ensemble admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the runtime's mode: normal, read-only or lockdown.
    #[command(after_help = "\
Examples:
  ensemble admin mode normal --url http://127.0.0.1:7300 --reason \"incident 42 closed\"
  ensemble admin mode normal --data-dir /var/lib/ensemble/data     (the server stopped)
  ensemble admin mode lockdown --url http://127.0.0.1:7300 --reason \"token leak\"

The mode holds across restarts and is in the audit log with the reason, set by `operator`.
Exit status: 0 set; 1 the change failed; 2 bad usage (no server at --url, data dir in use).")]
    Mode(ModeArgs),
}

/// The modes, as the command line spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Everything the policy allows.
    Normal,
    /// Only read-only tools run.
    ReadOnly,
    /// Only break-glass identities call tools.
    Lockdown,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Normal => Mode::Normal,
            ModeArg::ReadOnly => Mode::ReadOnly,
            ModeArg::Lockdown => Mode::Lockdown,
        }
    }
}

/// `ensemble admin mode` arguments.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// The mode to set.
    #[arg(value_enum)]
    pub mode: ModeArg,
    /// Why (kept with the change and in the audit log).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The running server to change (on this machine), e.g. http://127.0.0.1:7300
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The data directory to change when no server holds it (default ./ensemble-data).
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
}

/// Runs an admin command.
pub async fn run(config: &Config, command: AdminCommand) -> Result<(), Failure> {
    match command {
        AdminCommand::Mode(args) => mode(config, args).await,
    }
}

async fn mode(config: &Config, args: ModeArgs) -> Result<(), Failure> {
    let mode: Mode = args.mode.into();
    match &args.url {
        Some(url) => {
            let endpoint = format!("{}/admin/governance/mode", base_url(url)?);
            let response = reqwest::Client::new()
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(json!({ "mode": mode, "reason": args.reason }).to_string())
                .send()
                .await
                .map_err(|e| {
                    Failure::Usage(format!(
                        "could not reach {endpoint}: {e}; is `ensemble serve --http` running there?"
                    ))
                })?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                println!("{text}");
                Ok(())
            } else if status == reqwest::StatusCode::NOT_FOUND {
                Err(Failure::Usage(format!(
                    "{endpoint}: not found; the server at {url} is not governed (no [governance] \
                     in its configuration)"
                )))
            } else {
                Err(Failure::Failed(format!("{endpoint}: {status}: {text}")))
            }
        }
        None => {
            if config.store.in_memory {
                return Err(Failure::Usage(
                    "the configuration says in_memory: there is no data directory to change".into(),
                ));
            }
            let dir = args
                .data_dir
                .unwrap_or_else(|| config.store.data_dir.clone());
            let store = Store::open(&dir).map_err(|e| match e {
                StoreError::Locked { path } => Failure::Usage(format!(
                    "{} is in use by a running ensemble; change its mode with --url \
                     http://127.0.0.1:PORT, or stop it first",
                    path.display()
                )),
                e => Failure::Failed(e.to_string()),
            })?;
            let now =
                ensemble::runtime::governance::set_mode_offline(&store, config, mode, &args.reason)
                    .await
                    .map_err(Failure::Failed)?;
            println!(
                "{}",
                serde_json::to_string(&json!({ "mode": now.mode })).unwrap_or_default()
            );
            Ok(())
        }
    }
}
