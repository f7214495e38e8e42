//! Ensemble's engines and learning servers, each a supervised ractor actor, and the sled store
//! they persist to.

#![warn(missing_docs)]

pub mod cache;
mod clock;
pub mod debug;
pub mod execution;
pub mod invoke;
pub mod learning;
pub mod registry;
pub mod scheduler;
pub mod store;
pub mod validation;
pub mod versioned;
pub mod workflow;
