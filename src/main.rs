//! The `ensemble` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ensemble::runtime::Runtime;

/// The binary's allocator (mimalloc): under concurrent load glibc's malloc serialises threads on
/// its arena locks, and a server allocates on every request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: ensemble <command> [options]

commands:
  serve      serve MCP over stdio (default) or Streamable HTTP
  version    print the version

serve options:
  --http ADDR          serve Streamable HTTP at http://ADDR/mcp (with /metrics, /health, /ready)
  --data-dir DIR       where the store lives (default ./ensemble-data)
  --in-memory          keep everything in a temporary store
  --allow-origin URL   accept browser requests from this Origin (repeatable)
  --log-format FORMAT  text (default) or json; logs go to stderr
  --scheduling-policy P  FIFO, PRIORITY, DEADLINE or PRIORITY_DEADLINE (default) for tasks
  --max-concurrent N   tasks running at once (default 16)
  --queue-capacity N   tasks waiting at most; more are refused (default 10000)

environment:
  ENSEMBLE_LOG         log filter (tracing EnvFilter syntax; default info,rmcp=warn)
";

/// `ensemble serve` options.
#[derive(Debug, Default)]
struct Serve {
    http: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    in_memory: bool,
    allow_origins: Vec<String>,
    json_logs: bool,
    execution: ensemble::actors::execution::ExecConfig,
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> anyhow::Result<Serve> {
    let mut s = Serve::default();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .with_context(|| format!("{flag} needs a value; see `ensemble help`"))
        };
        match arg.as_str() {
            "--http" => {
                let v = value("--http")?;
                s.http = Some(v.parse().with_context(|| {
                    format!("--http {v:?} is not an address like 127.0.0.1:7300")
                })?);
            }
            "--data-dir" => s.data_dir = Some(value("--data-dir")?.into()),
            "--in-memory" => s.in_memory = true,
            "--allow-origin" => s.allow_origins.push(value("--allow-origin")?),
            "--log-format" => match value("--log-format")?.as_str() {
                "json" => s.json_logs = true,
                "text" => s.json_logs = false,
                other => bail!("--log-format {other:?}: use text or json"),
            },
            "--scheduling-policy" => {
                let v = value("--scheduling-policy")?;
                use ensemble::protocol::execution::SchedulingPolicy as P;
                s.execution.policy = match v.to_ascii_uppercase().as_str() {
                    "FIFO" => P::Fifo,
                    "PRIORITY" => P::Priority,
                    "DEADLINE" => P::Deadline,
                    "PRIORITY_DEADLINE" => P::PriorityDeadline,
                    _ => bail!(
                        "--scheduling-policy {v:?}: use FIFO, PRIORITY, DEADLINE or PRIORITY_DEADLINE"
                    ),
                };
            }
            "--max-concurrent" => {
                let v = value("--max-concurrent")?;
                s.execution.max_concurrent = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--max-concurrent {v:?}: give a number from 1"))?;
            }
            "--queue-capacity" => {
                let v = value("--queue-capacity")?;
                s.execution.capacity = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--queue-capacity {v:?}: give a number from 1"))?;
            }
            other => bail!("unknown option {other:?} for serve; see `ensemble help`"),
        }
    }
    Ok(s)
}

fn init_logs(json: bool) {
    let filter = ensemble::log_filter();
    // stdout is the protocol channel in stdio mode: logs always go to stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(opts: Serve) -> anyhow::Result<()> {
    init_logs(opts.json_logs);
    // Tools that only exist to exercise failure handling, for the end-to-end tests.
    let test_tools = std::env::var_os("ENSEMBLE_TEST_TOOLS").is_some_and(|v| v == "1");
    let mut builder = Runtime::builder()
        .test_tools(test_tools)
        .execution(opts.execution);
    if let Some(log) = std::env::var_os("ENSEMBLE_TEST_LOG") {
        builder = builder.test_log(PathBuf::from(log));
    }
    if opts.in_memory {
        builder = builder.in_memory();
    } else if let Some(dir) = opts.data_dir {
        builder = builder.data_dir(dir);
    }
    let runtime = builder.build().await?;
    match opts.http {
        Some(addr) => {
            ensemble::runtime::http::serve(
                &runtime,
                ensemble::runtime::http::HttpOptions {
                    addr,
                    allow_origins: opts.allow_origins,
                },
                shutdown_signal(),
            )
            .await?
        }
        None => {
            tracing::info!("serving MCP on stdio");
            tokio::select! {
                r = runtime.serve_stdio() => r?,
                _ = shutdown_signal() => tracing::info!("shutting down"),
                _ = runtime.gone() => {}
            }
        }
    }
    let gone = runtime.is_gone();
    runtime.shutdown().await?;
    if gone {
        // Never a live process that serves nothing: exit non-zero so that systemd, Kubernetes
        // or the MCP client starts a fresh one.
        bail!(
            "the engines gave up for good (the top-level restart budget is spent; see the log \
             above for the engine and its failures); exiting so that a service manager restarts \
             ensemble"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("version" | "--version" | "-V") => {
            println!("ensemble {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("serve") => {
            let opts = match parse_serve(args) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ensemble serve: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ensemble: could not start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ensemble serve: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("help" | "--help" | "-h") | None => {
            eprint!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ensemble: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
