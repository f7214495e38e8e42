//! The development learner: how a codebase is written — which paths its names are imported
//! from, how it names things — learned from real code, to suggest the `use` lines a file needs
//! and flag what departs from the codebase's conventions.

pub mod language;
mod model;
mod std_api;
pub mod style;

pub use model::{DevModel, DevMsg, DevPattern, bytes_of, check_style, explain, learn, suggest};

/// The development learner's actor.
pub type DevLearner = super::LearnerActor<DevModel>;
