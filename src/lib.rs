//! Ensemble: an actor-based orchestration runtime for the Model Context Protocol.
//!
//! This facade re-exports the workspace crates:
//!
//! - [`protocol`]: typed engine messages, tool specs, errors and the storage codec;
//! - [`supervision`]: supervisor trees, restart strategies, circuit breaking, retries, timeouts
//!   and bulkheads;
//! - [`actors`]: the engines and learning servers;
//! - [`runtime`]: the runtime builder, tool router, MCP service and HTTP server.

pub use ensemble_actors as actors;
pub use ensemble_protocol as protocol;
pub use ensemble_runtime as runtime;
pub use ensemble_supervision as supervision;
