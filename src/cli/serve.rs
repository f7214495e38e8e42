//! `ensemble serve`: MCP over stdio or Streamable HTTP until the client leaves or a signal.

use std::path::PathBuf;

use ensemble::runtime::Runtime;
use ensemble::runtime::config::Config;

use super::Failure;

/// Builds the runtime from `config` and serves it.
pub async fn serve(config: &Config, test_tools: bool) -> Result<(), Failure> {
    super::init_logs(config.server.log_format, ensemble::DEFAULT_LOG_FILTER)?;
    let failed = |e: &dyn std::fmt::Display| Failure::Failed(e.to_string());
    // A governance configuration the runtime refuses is a configuration mistake (exit 2: a
    // service manager must not restart it in a loop).
    let refused = |e: ensemble::runtime::runtime::RuntimeError| match e {
        ensemble::runtime::runtime::RuntimeError::Governance(m) => Failure::Usage(m),
        e => Failure::Failed(e.to_string()),
    };
    let mut builder = Runtime::builder().config(config).test_tools(test_tools);
    if let Some(log) = std::env::var_os("ENSEMBLE_TEST_LOG") {
        builder = builder.test_log(PathBuf::from(log));
    }
    let runtime = builder.build().await.map_err(refused)?;
    match config.server.http {
        Some(addr) => ensemble::runtime::http::serve(
            &runtime,
            ensemble::runtime::http::HttpOptions {
                addr,
                allow_origins: config.server.allow_origins.clone(),
            },
            shutdown_signal(),
        )
        .await
        .map_err(refused)?,
        None => {
            tracing::info!("serving MCP on stdio");
            tokio::select! {
                r = runtime.serve_stdio() => r.map_err(|e| failed(&e))?,
                _ = shutdown_signal() => tracing::info!("shutting down"),
                _ = runtime.gone() => {}
            }
        }
    }
    let gone = runtime.is_gone();
    runtime.shutdown().await.map_err(|e| failed(&e))?;
    if gone {
        // Never a live process that serves nothing: exit non-zero so that systemd, Kubernetes
        // or the MCP client starts a fresh one.
        return Err(Failure::Failed(
            "the engines gave up for good (the top-level restart budget, [supervision] \
             max_restarts, is spent; the log above names the engine and its failures); exiting \
             so that a service manager restarts ensemble"
                .to_string(),
        ));
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
