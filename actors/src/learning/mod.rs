//! The learning core shared by every learning server, and the learners built on it.
//!
//! A learner is a [`Model`] inside a [`LearnerActor`]: the model says what to learn from an
//! observation and how to answer; the actor keeps its [`Patterns`] in memory and in the
//! learner's sled tree, within a memory budget, and shares them with other instances.
//!
//! - **Durability.** Observations are acknowledged once learned in memory and written to disk
//!   every [`LearnerConfig::flush_interval`] (1 s by default) as one atomic batch: a kill -9
//!   loses at most that interval's observations (plus the time a write takes) and never leaves
//!   a half-written pattern. The batch is encoded on the actor at the tick and committed and
//!   synced on a blocking thread, one write at a time, so queries go on while a bulk-imported
//!   history goes to disk; a tick that finds the last write still going leaves its changes for
//!   the next one. A restarted learner loads its patterns and answers exactly as before.
//! - **Memory budget.** Every pattern's size is accounted; past
//!   [`LearnerConfig::memory_budget_bytes`] the patterns worth least per byte they take
//!   ([`Pattern::worth`] over their size; ties: seen longest ago) are evicted down to 90% of the
//!   budget, on disk too.
//! - **Sharing.** An export writes every pattern to the registry as a digest-verified snapshot;
//!   an import merges another instance's snapshot. Counts are kept per instance
//!   ([`GCounter`]), so merging is commutative and idempotent.

mod actor;
mod counter;
pub mod development;
pub mod devops;
mod patterns;
pub mod quality;
pub mod shell;
pub mod time;

use std::time::Duration;

pub use actor::{
    Cx, LearnerActor, LearnerArgs, LearnerMsg, LearnerState, Model, Reply, SNAPSHOT_MEDIA_TYPE,
};
pub use counter::{CountMap, GCounter, InstanceId};
pub use patterns::{Pattern, Patterns};

use crate::store::StoreError;

/// How a learner keeps what it learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerConfig {
    /// Observations reach the disk at least this often; a kill -9 loses at most this much.
    pub flush_interval: Duration,
    /// Memory the patterns may take, in bytes.
    pub memory_budget_bytes: usize,
}

impl Default for LearnerConfig {
    /// One second, 64 MiB: a laptop runs four learners next to everything else.
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(1),
            memory_budget_bytes: 64 << 20,
        }
    }
}

/// Why a learner refused a request.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The request named another learner.
    #[error("unknown learner `{given}`: this one is `{known}`")]
    UnknownLearner {
        /// The name given.
        given: String,
        /// This learner's name.
        known: &'static str,
    },
    /// The input cannot be learned from or answered.
    #[error("{0}")]
    BadInput(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry refused an export or an import.
    #[error("registry: {0}")]
    Registry(String),
    /// A snapshot could not be written or read.
    #[error("{0}")]
    Snapshot(String),
}
