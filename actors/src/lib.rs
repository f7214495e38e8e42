//! Ensemble's engines and learning servers, each a supervised ractor actor, and the sled store
//! they persist to.

#![warn(missing_docs)]

mod clock;
pub mod debug;
pub mod engine;
pub mod execution;
pub mod governance;
pub mod invoke;
pub mod learning;
pub mod promotion;
pub mod registry;
pub mod retrieval;
pub mod store;
pub mod taxonomy;
pub mod validation;
pub mod versioned;
pub mod workflow;

// The execution engine's queue and result cache, at the paths they had before the engine
// had a folder.
pub use execution::{cache, scheduler};
