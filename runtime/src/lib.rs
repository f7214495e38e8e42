//! Ensemble's runtime: the builder, the tool router, the MCP service (rmcp), HTTP (axum),
//! metrics and the dashboard.

#![warn(missing_docs)]

pub mod admin;
pub mod artifacts;
pub mod config;
pub mod context;
mod convert;
pub mod dashboard;
pub mod engines;
pub mod governance;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod promotion;
pub mod retrieval;
pub mod router;
pub mod runs;
pub mod runtime;
pub mod stdio;
pub mod surrogates;
pub mod tasks;
pub mod taxonomy;
pub mod telemetry;

pub use router::catalog;

pub use runtime::{Runtime, RuntimeBuilder, RuntimeError};
