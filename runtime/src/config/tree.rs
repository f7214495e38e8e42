//! The shape of the engines' supervision tree (`[supervision]`, `[engines.<e>.restart]`).

use std::collections::BTreeMap;
use std::time::Duration;

use ensemble_supervision::{Backoff, Intensity};

/// The shape of the engines' supervision tree: each engine under a supervisor of its own, all
/// of them under the one-for-one `engines` supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeConfig {
    /// Restarts an engine's supervisor allows its actor within a period before it gives up.
    pub engine_intensity: Intensity,
    /// The same, for named engines.
    pub engine_overrides: BTreeMap<String, Intensity>,
    /// Delay between consecutive restarts of an engine's actor.
    pub engine_backoff: Backoff,
    /// The top-level budget: restarts of given-up engines that the `engines` supervisor allows
    /// within a period. Past it the runtime is gone for good ([`crate::runtime::Runtime::gone`]);
    /// `ensemble serve` then drains and exits non-zero, for a service manager to restart it.
    pub budget: Intensity,
    /// Delay before a given-up engine's subtree restarts; doubles with each give-up in a row.
    pub subtree_backoff: Backoff,
    /// A subtree that stayed up this long starts its backoff again from the base delay.
    pub subtree_backoff_reset_after: Duration,
}

impl Default for TreeConfig {
    fn default() -> Self {
        Self {
            engine_intensity: Intensity::default(),
            engine_overrides: BTreeMap::new(),
            engine_backoff: Backoff::new(Duration::from_millis(5), Duration::from_secs(5)),
            budget: Intensity {
                max_restarts: 10,
                period: Duration::from_secs(600),
            },
            subtree_backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            subtree_backoff_reset_after: Duration::from_secs(60),
        }
    }
}

impl TreeConfig {
    /// The restart intensity of engine `name`.
    pub fn intensity(&self, name: &str) -> Intensity {
        self.engine_overrides
            .get(name)
            .copied()
            .unwrap_or(self.engine_intensity)
    }
}
