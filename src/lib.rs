//! Ensemble: an actor-based orchestration runtime for the Model Context Protocol.
//!
//! This facade re-exports the workspace crates:
//!
//! - [`protocol`]: typed engine messages, tool specs, errors and the storage codec;
//! - [`supervision`]: supervisor trees, restart strategies, circuit breaking, retries, timeouts
//!   and bulkheads;
//! - [`actors`]: the engines and learning servers;
//! - [`runtime`]: the runtime builder, configuration, tool router, MCP service and HTTP server.

pub mod ir_eval;
pub mod manifest;

pub use ensemble_actors as actors;
pub use ensemble_protocol as protocol;
pub use ensemble_runtime as runtime;
pub use ensemble_supervision as supervision;

/// The log filter `ensemble serve` uses when `ENSEMBLE_LOG` is not set: `info`, except rmcp's
/// own lifecycle events. rmcp logs "Service initialized" (with the client's whole initialize
/// parameters), "input stream terminated" and "serve finished" at `info` each time it serves a
/// session, and a stateless HTTP client is served afresh on every request: three lines per
/// tool call, formatted and written on the call's path. rmcp's warnings and errors still show;
/// `ENSEMBLE_LOG=info,rmcp=info` brings the lifecycle events back.
pub const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// The log filter of `ensemble serve`: `ENSEMBLE_LOG` (tracing's `EnvFilter` syntax) when set,
/// else [`DEFAULT_LOG_FILTER`].
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    log_filter_or(DEFAULT_LOG_FILTER)
}

/// `ENSEMBLE_LOG` when set, else `default` (the one-shot commands, `ensemble tools` and
/// `ensemble call`, log only warnings by default: their output is the answer).
pub fn log_filter_or(default: &str) -> tracing_subscriber::EnvFilter {
    try_log_filter_or(default).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

/// Like [`log_filter_or`], but an `ENSEMBLE_LOG` that does not parse is an error that names it
/// and says what is accepted, instead of being ignored.
pub fn try_log_filter_or(default: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    match std::env::var("ENSEMBLE_LOG") {
        Ok(value) if !value.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&value)
            .map_err(|e| {
                format!(
                    "ENSEMBLE_LOG={value:?} is not a log filter ({e}); use levels and targets \
                     like `debug` or `info,rmcp=warn,ensemble_runtime=debug`"
                )
            }),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            Ok(tracing_subscriber::EnvFilter::new(default))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("ENSEMBLE_LOG is not valid UTF-8; use levels and targets like `debug`".into())
        }
    }
}
