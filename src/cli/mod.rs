//! The command line: `serve`, `tools`, `call`, `backup`, `config`, `completions`, `version`.
//!
//! Every option also comes from the configuration file (`--config FILE` or `ENSEMBLE_CONFIG`)
//! and from an `ENSEMBLE_*` variable; flags win over variables, variables over the file, the
//! file over the defaults. Exit status: 0 done, 1 failed while running (or, for `call`, the
//! tool answered with an error), 2 bad usage or configuration.

mod admin;
mod audit;
mod backup;
mod call;
mod learn;
mod schema;
mod serve;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ensemble::runtime::config::{self, ConfigError, FlagValue, Loaded, Sources};

const EXAMPLES: &str = "\
Examples:
  ensemble serve --in-memory                    MCP on stdio, nothing kept
  ensemble serve --http 127.0.0.1:7300          Streamable HTTP at http://127.0.0.1:7300/mcp
  ensemble tools --format table                 the tool catalogue
  ensemble call registry_list                   one tool call on ./ensemble-data
  ensemble backup --to /backups/today --url http://127.0.0.1:7300
                                                a consistent copy, taken by a running server
  ensemble config show --config ensemble.toml   the effective configuration and its origins

Environment:
  ENSEMBLE_CONFIG     the configuration file (as --config)
  ENSEMBLE_LOG        log filter (tracing EnvFilter syntax; default info,rmcp=warn for serve)
  ENSEMBLE_<KEY>      any configuration key: `store.data_dir` is ENSEMBLE_STORE_DATA_DIR";

/// An actor-based MCP runtime: engines as supervised actors, tools over stdio or HTTP.
#[derive(Debug, Parser)]
#[command(
    name = "ensemble",
    version,
    arg_required_else_help = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// A TOML configuration file (also ENSEMBLE_CONFIG); see examples/ensemble.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdio (default) or Streamable HTTP.
    #[command(after_help = "\
Examples:
  ensemble serve                                  stdio, data in ./ensemble-data
  ensemble serve --in-memory                      stdio, nothing kept
  ensemble serve --http 127.0.0.1:7300 --data-dir /var/lib/ensemble
  ensemble serve --config ensemble.toml --log-format json

Over HTTP, MCP is at /mcp, with /metrics, /health and /ready beside it. Logs go to stderr.")]
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// List the tools, in one of several formats.
    #[command(after_help = "\
Examples:
  ensemble tools                                  an aligned table
  ensemble tools --format mcp                     exactly what MCP tools/list returns
  ensemble tools --format openai > tools.json     OpenAI function-calling `tools`
  ensemble tools --format markdown > docs/tools.md")]
    Tools {
        /// The output format.
        #[arg(long, value_enum, default_value_t = tools::Format::Table)]
        format: tools::Format,
    },
    /// Call one tool, in process on the data directory or on a running server (--url).
    #[command(after_help = "\
Examples:
  ensemble call registry_put name=web/cfg version=1.0.0 'content={\"port\":80}'
  ensemble call registry_get --args '{\"name\": \"web/cfg\"}'
  ensemble call workflow_run --args-file run.json --data-dir /var/lib/ensemble
  ensemble call queue_stats --url http://127.0.0.1:7300/mcp

KEY=VALUE: VALUE is read as JSON when it is JSON (42, true, {\"a\":1}), else as a string.
The structured result is printed as JSON on stdout.
Exit status: 0 the tool answered; 1 it answered with an error (isError); 2 no answer (bad
usage or configuration, unknown tool, server unreachable, runtime not started).")]
    Call(call::CallArgs),
    /// Copy the data directory, consistently, into a new directory (a running server takes it
    /// with --url).
    #[command(after_help = "\
Examples:
  ensemble backup --to /backups/2026-11-30 --url http://127.0.0.1:7300
      a server running with --http 127.0.0.1:7300 copies its store (writes wait, reads go on)
  ensemble backup --to /backups/2026-11-30 --data-dir /var/lib/ensemble
      a data directory no process holds (sled locks it while a server runs)

DIR must be new or empty. The copy is one point in time and a data directory of its own:
restore by serving it, `ensemble serve --data-dir DIR`. With --url the server writes DIR (give a
path on its machine, writable by its user); it answers loopback callers only.
Exit status: 0 done; 1 the copy failed or the directory is in use; 2 bad usage (a non-empty
DIR, no server at --url).")]
    Backup(backup::BackupArgs),
    /// Teach a learner from a directory (the development learner: every `.rs` file).
    #[command(after_help = "\
Examples:
  ensemble learn development .                    this crate or workspace, into ./ensemble-data
  ensemble learn development ~/src --data-dir /var/lib/ensemble
  ensemble learn development ../vendor --url http://127.0.0.1:7300/mcp

Each file goes with the crate of the nearest Cargo.toml above it (its [package] name and its
dependencies); target/ and hidden directories are skipped. Files that do not parse are listed
on stderr; the rest are learned.
Exit status: 0 learned; 1 the learner failed; 2 bad usage (not a directory, no .rs files).")]
    Learn(learn::LearnArgs),
    /// Check the tamper-evident audit log of a data directory.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The operator's actions on a governed runtime (lifting lockdown, …).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Check the configuration, or show the effective one.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  ensemble completions bash > /etc/bash_completion.d/ensemble
  ensemble completions zsh > \"${fpath[1]}/_ensemble\"
  ensemble completions fish > ~/.config/fish/completions/ensemble.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the version, rmcp's version and the MCP protocol versions served.
    #[command(after_help = "Example:\n  ensemble version")]
    Version,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (with the ENSEMBLE_* variables); every problem is listed.
    #[command(after_help = "\
Examples:
  ensemble config check ensemble.toml
  ENSEMBLE_CONFIG=/etc/ensemble.toml ensemble config check

Exit status: 0 valid, 2 not (each problem with its file and line, or its variable).")]
    Check {
        /// The file (default: --config, then ENSEMBLE_CONFIG).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML, each value with where it came from.
    #[command(after_help = "\
Examples:
  ensemble config show
  ensemble config show --config ensemble.toml --max-concurrent 4
  ENSEMBLE_STORE_DATA_DIR=/tmp/d ensemble config show")]
    Show {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

/// Transport and log flags (`[server]`).
#[derive(Debug, Clone, Default, Args)]
struct ServerArgs {
    /// Serve Streamable HTTP at http://ADDR/mcp (with /metrics, /health, /ready).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    http: Option<SocketAddr>,
    /// Accept browser requests from this Origin (repeatable).
    #[arg(long = "allow-origin", value_name = "URL")]
    allow_origins: Vec<String>,
    /// Log lines as text or JSON (always on stderr).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Serve HTTP on a non-loopback address without authentication (something in front of
    /// it must authenticate; refused otherwise).
    #[arg(long)]
    insecure_no_auth: bool,
}

/// Store and execution flags (`[store]`, `[execution]`).
#[derive(Debug, Clone, Default, Args)]
struct RuntimeArgs {
    /// Where the store lives (default ./ensemble-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep everything in a temporary store.
    #[arg(long)]
    in_memory: bool,
    /// The order tasks run in.
    #[arg(long, value_enum, ignore_case = true, value_name = "POLICY")]
    scheduling_policy: Option<SchedulingPolicy>,
    /// Tasks running at once (default 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent: Option<u32>,
    /// Tasks waiting at most; more are refused (default 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    queue_capacity: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum SchedulingPolicy {
    Fifo,
    Priority,
    Deadline,
    PriorityDeadline,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:7300"))
}

impl ServerArgs {
    fn flags(&self, out: &mut Vec<FlagValue>) {
        if let Some(addr) = self.http {
            out.push(flag("server.http", "--http", addr.to_string()));
        }
        if !self.allow_origins.is_empty() {
            let list: Vec<toml::Value> = self
                .allow_origins
                .iter()
                .map(|o| toml::Value::String(o.clone()))
                .collect();
            out.push(flag("server.allow_origins", "--allow-origin", list));
        }
        if let Some(f) = self.log_format {
            let word = match f {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            out.push(flag("server.log_format", "--log-format", word));
        }
        if self.insecure_no_auth {
            out.push(flag(
                "governance.insecure_no_auth",
                "--insecure-no-auth",
                true,
            ));
        }
    }
}

impl RuntimeArgs {
    fn flags(&self, out: &mut Vec<FlagValue>) {
        if let Some(dir) = &self.data_dir {
            out.push(flag(
                "store.data_dir",
                "--data-dir",
                dir.to_string_lossy().into_owned(),
            ));
        }
        if self.in_memory {
            out.push(flag("store.in_memory", "--in-memory", true));
        }
        if let Some(p) = self.scheduling_policy {
            let word = p
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            out.push(flag(
                "execution.scheduling_policy",
                "--scheduling-policy",
                word,
            ));
        }
        if let Some(n) = self.max_concurrent {
            out.push(flag(
                "execution.max_concurrent",
                "--max-concurrent",
                i64::from(n),
            ));
        }
        if let Some(n) = self.queue_capacity {
            out.push(flag(
                "execution.queue_capacity",
                "--queue-capacity",
                i64::from(n),
            ));
        }
    }

    fn is_empty(&self) -> bool {
        let mut v = Vec::new();
        self.flags(&mut v);
        v.is_empty()
    }
}

fn flag(key: &'static str, flag: &'static str, value: impl Into<toml::Value>) -> FlagValue {
    FlagValue {
        key,
        flag,
        value: value.into(),
    }
}

/// Why a command failed, and so its exit status.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration, or no answer (exit 2).
    Usage(String),
    /// The configuration was refused (exit 2).
    Config(ConfigError),
    /// Failed while running (exit 1).
    Failed(String),
    /// Already reported; exit with this status.
    Exit(u8),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Config(_) => 2,
            Failure::Failed(_) => 1,
            Failure::Exit(code) => *code,
        }
    }
}

/// Whether the test-only tools are served (`ENSEMBLE_TEST_TOOLS=1`, for the end-to-end tests).
fn test_tools() -> bool {
    std::env::var_os("ENSEMBLE_TEST_TOOLS").is_some_and(|v| v == "1")
}

/// The configuration of this invocation: the file (`--config`, else `ENSEMBLE_CONFIG`), the
/// process's `ENSEMBLE_*` variables, then `flags`.
fn load_config(file: Option<PathBuf>, flags: Vec<FlagValue>) -> Result<Loaded, Failure> {
    let file = file.or_else(|| {
        std::env::var_os("ENSEMBLE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let sources = Sources {
        flags,
        known_tools: Some(ensemble::runtime::engines::builtin_tool_names(test_tools())),
        ..Sources::with_process_env(file)
    };
    config::load(&sources).map_err(Failure::Config)
}

/// The default log filter of `tools` and `call`: their output is the answer, so only
/// warnings; rmcp's own warning about an unknown tool repeats what the command reports.
const ONE_SHOT_LOG_FILTER: &str = "warn,rmcp=error";

/// Logs on stderr (stdout is the protocol channel in stdio mode, and the answer for `call`).
fn init_logs(format: config::LogFormat, default_filter: &str) -> Result<(), Failure> {
    let filter = ensemble::try_log_filter_or(default_filter).map_err(Failure::Usage)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn version() -> String {
    use rmcp::handler::server::ServerHandler;
    let service = ensemble::runtime::mcp::McpService::new(ensemble::runtime::router::Router::new());
    let versions: Vec<String> = service
        .supported_protocol_versions()
        .iter()
        .map(|v| v.to_string())
        .collect();
    format!(
        "ensemble {}\nrmcp {}\nMCP protocol versions: {}\n",
        env!("CARGO_PKG_VERSION"),
        rmcp::model::Implementation::from_build_env().version,
        versions.join(", ")
    )
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve { server, runtime } => {
            let mut flags = Vec::new();
            server.flags(&mut flags);
            runtime.flags(&mut flags);
            let loaded = load_config(cli.config, flags)?;
            serve::serve(&loaded.config, test_tools()).await
        }
        Command::Tools { format } => {
            let loaded = load_config(cli.config, Vec::new())?;
            init_logs(loaded.config.server.log_format, ONE_SHOT_LOG_FILTER)?;
            tools::print(&loaded.config, format, test_tools()).await
        }
        Command::Call(args) => {
            if args.url.is_some() && !args.runtime.is_empty() {
                return Err(Failure::Usage(
                    "--data-dir, --in-memory and the execution flags apply to an in-process \
                     call; with --url the server runs on its own configuration"
                        .into(),
                ));
            }
            let mut flags = Vec::new();
            args.runtime.flags(&mut flags);
            let loaded = load_config(cli.config, flags)?;
            init_logs(loaded.config.server.log_format, ONE_SHOT_LOG_FILTER)?;
            call::call(&loaded.config, args, test_tools()).await
        }
        Command::Audit(command) => audit::run(command).await,
        Command::Admin(command) => {
            let flags = match &command {
                admin::AdminCommand::Mode(a) => a
                    .data_dir
                    .iter()
                    .map(|d| {
                        flag(
                            "store.data_dir",
                            "--data-dir",
                            d.to_string_lossy().into_owned(),
                        )
                    })
                    .collect(),
            };
            let loaded = load_config(cli.config, flags)?;
            init_logs(loaded.config.server.log_format, ONE_SHOT_LOG_FILTER)?;
            admin::run(&loaded.config, command).await
        }
        Command::Learn(args) => {
            if args.url.is_some() && !args.runtime.is_empty() {
                return Err(Failure::Usage(
                    "--data-dir, --in-memory and the execution flags apply to learning in \
                     process; with --url the server runs on its own configuration"
                        .into(),
                ));
            }
            let mut flags = Vec::new();
            args.runtime.flags(&mut flags);
            let loaded = load_config(cli.config, flags)?;
            init_logs(loaded.config.server.log_format, ONE_SHOT_LOG_FILTER)?;
            learn::learn(&loaded.config, args).await
        }
        Command::Backup(args) => {
            let mut flags = Vec::new();
            if let Some(dir) = &args.data_dir {
                flags.push(flag(
                    "store.data_dir",
                    "--data-dir",
                    dir.to_string_lossy().into_owned(),
                ));
            }
            let loaded = load_config(cli.config, flags)?;
            init_logs(loaded.config.server.log_format, ONE_SHOT_LOG_FILTER)?;
            backup::backup(&loaded.config, args).await
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let loaded = load_config(file.or(cli.config), Vec::new())?;
            match &loaded.file {
                Some(path) => println!("{}: valid", path.display()),
                None => println!(
                    "no configuration file given: the defaults and the ENSEMBLE_* variables are valid"
                ),
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Show { server, runtime }) => {
            let mut flags = Vec::new();
            server.flags(&mut flags);
            runtime.flags(&mut flags);
            let loaded = load_config(cli.config, flags)?;
            print!("{}", loaded.show());
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ensemble",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Version => {
            print!("{}", version());
            Ok(())
        }
    }
}

/// Parses the command line, runs the command and reports how it ended.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version exit 0 on stdout; usage errors exit 2 on stderr.
        Err(e) => e.exit(),
    };
    let name = match &cli.command {
        Command::Serve { .. } => "ensemble serve",
        Command::Tools { .. } => "ensemble tools",
        Command::Call(_) => "ensemble call",
        Command::Backup(_) => "ensemble backup",
        Command::Learn(_) => "ensemble learn",
        Command::Audit(_) => "ensemble audit",
        Command::Admin(_) => "ensemble admin",
        Command::Config(_) => "ensemble config",
        Command::Completions { .. } => "ensemble completions",
        Command::Version => "ensemble version",
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match &failure {
                Failure::Usage(m) | Failure::Failed(m) => eprintln!("{name}: {m}"),
                Failure::Config(e) => eprint!("{name}: {e}"),
                Failure::Exit(_) => {}
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
