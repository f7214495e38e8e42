//! The devops learner: how likely a change is to fail, why, and what to do with it.
//!
//! Changes are observed with named numeric features (size, spread, history, author
//! experience) and their outcomes reported later; the learner fits a logistic regression per
//! project, pulled toward one over every project's outcomes, and never uses an outcome before
//! the time a prediction is asked for. See `model.rs` for the choices and
//! `examples/learning_eval.rs devops` for the evaluation.

mod fit;
mod model;

pub use model::{
    DevopsModel, DevopsMsg, DevopsObservation, DevopsPattern, FULL_PROJECT_OUTCOMES,
    HALF_LIFE_DAYS, PROJECT_WEIGHT,
};

/// The devops learner's actor.
pub type DevopsLearner = super::LearnerActor<DevopsModel>;
