//! Ensemble's protocol types: typed engine messages, tool specs, errors and the storage codec.
//!
//! Free of tokio and ractor so that any crate can depend on it.

#![warn(missing_docs)]

pub mod codec;
pub mod debug;
pub mod development;
pub mod devops;
pub mod execution;
pub mod learning;
pub mod principal;
pub mod promotion;
pub mod quality;
pub mod registry;
pub mod retrieval;
pub mod run;
pub mod shell;
pub mod taxonomy;
pub mod template;
pub mod validation;
pub mod workflow;
