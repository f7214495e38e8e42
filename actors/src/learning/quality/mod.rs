//! The quality learner: which tests to run for a change.
//!
//! It learns a repository's history (which files change together with which tests, commit by
//! commit) and the outcomes of test runs (which tests failed when which files changed), and
//! ranks a change's candidate tests by that evidence and by their names and packages. The
//! weights and how they were chosen are in `rank.rs`; the evaluation on real Defects4J bugs
//! is `examples/learning_eval.rs quality`.

mod model;
pub mod paths;
mod rank;

pub use model::{QualityModel, QualityMsg, QualityObservation, QualityPattern, WIDE_COMMIT_FILES};

/// The quality learner's actor.
pub type QualityLearner = super::LearnerActor<QualityModel>;
