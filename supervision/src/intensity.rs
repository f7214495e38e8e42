//! Restart intensity: how many restarts a supervisor tolerates within a period.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// The OTP restart intensity: more than `max_restarts` restarts within `period` and the
/// supervisor gives up (stops its children and fails, so its own parent decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts tolerated within `period`.
    pub max_restarts: u32,
    /// The sliding period.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default is 1 restart in 5 s; a runtime serving many calls wants a little more slack.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            period: Duration::from_secs(10),
        }
    }
}

/// Remembers recent restarts and decides whether one more is within the intensity.
#[derive(Debug, Clone)]
pub struct RestartHistory {
    limit: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartHistory {
    /// An empty history under `limit`.
    pub fn new(limit: Intensity) -> Self {
        Self {
            limit,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; returns `false` when it makes more than `max_restarts`
    /// restarts within the last `period` (the supervisor must give up).
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.limit.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.limit.max_restarts as usize
    }

    /// Restarts counted in the current period.
    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The decision equals a brute-force count over the window ending at each restart.
        #[test]
        fn decision_matches_a_plain_count(max in 0u32..6, period_ms in 1u64..1000,
                                          gaps in proptest::collection::vec(0u64..400, 1..40)) {
            let start = Instant::now();
            let limit = Intensity { max_restarts: max, period: Duration::from_millis(period_ms) };
            let mut h = RestartHistory::new(limit);
            let mut times = Vec::new();
            let mut t = 0u64;
            for g in gaps {
                t += g;
                times.push(t);
                let in_window = times.iter().filter(|&&x| t - x < period_ms).count();
                let allowed = h.record(start + Duration::from_millis(t));
                prop_assert_eq!(allowed, in_window <= max as usize);
            }
        }
    }

    #[test]
    fn old_restarts_age_out() {
        let t0 = Instant::now();
        let mut h = RestartHistory::new(Intensity {
            max_restarts: 2,
            period: Duration::from_secs(1),
        });
        assert!(h.record(t0));
        assert!(h.record(t0));
        assert!(!h.record(t0));
        let mut h = RestartHistory::new(Intensity {
            max_restarts: 2,
            period: Duration::from_secs(1),
        });
        assert!(h.record(t0));
        assert!(h.record(t0 + Duration::from_millis(500)));
        assert!(h.record(t0 + Duration::from_millis(1000)));
        assert_eq!(h.recent(), 2);
    }
}
