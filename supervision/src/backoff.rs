//! Exponential backoff with jitter, shared by restarts and retries.

use std::cell::Cell;
use std::time::Duration;

/// Exponential backoff: `base * 2^attempt`, capped at `max`, with jitter.
///
/// ```
/// use std::time::Duration;
/// use ensemble_supervision::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
/// assert_eq!(b.ceiling(0), Duration::from_millis(10));
/// assert_eq!(b.ceiling(3), Duration::from_millis(80));
/// assert_eq!(b.ceiling(30), Duration::from_secs(1));
/// // With "equal jitter" the delay is between half the ceiling and the ceiling.
/// let d = b.equal_jitter(3, 0.0);
/// assert_eq!(d, Duration::from_millis(40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry or restart (attempt 0), before jitter.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// No delay at all.
    pub const ZERO: Backoff = Backoff::new(Duration::ZERO, Duration::ZERO);

    /// The delay bound for `attempt` (0-based) before jitter: `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// "Equal jitter": a delay uniformly in `[ceiling/2, ceiling]`, picked by `fraction` in `[0, 1)`.
    /// Used between restarts, where some wait is always wanted.
    pub fn equal_jitter(&self, attempt: u32, fraction: f64) -> Duration {
        let c = self.ceiling(attempt);
        let half = c / 2;
        half + (c - half).mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// "Full jitter": a delay uniformly in `[0, ceiling]`, picked by `fraction` in `[0, 1)`.
    /// Used between retries, where spreading clients out matters most.
    pub fn full_jitter(&self, attempt: u32, fraction: f64) -> Duration {
        self.ceiling(attempt).mul_f64(fraction.clamp(0.0, 1.0))
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // Different per thread and per process without a dependency on an RNG crate: the address of a
    // thread-local and the clock are enough to decorrelate jitter between threads.
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitmix(addr ^ nanos.rotate_left(17))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniformly distributed number in `[0, 1)` for jitter (not for anything security related).
pub fn random_fraction() -> f64 {
    RNG.with(|state| {
        let next = splitmix(state.get());
        state.set(next);
        (next >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_stay_within_their_bounds(base_ms in 0u64..10_000, max_ms in 0u64..100_000,
                                           attempt in 0u32..100, f in 0.0f64..1.0) {
            let b = Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(max_ms));
            let c = b.ceiling(attempt);
            prop_assert!(c <= b.max);
            prop_assert!(c <= b.ceiling(attempt + 1));
            let e = b.equal_jitter(attempt, f);
            prop_assert!(e >= c / 2 && e <= c);
            prop_assert!(b.full_jitter(attempt, f) <= c);
        }
    }

    #[test]
    fn fractions_are_in_range_and_vary() {
        let xs: Vec<f64> = (0..1000).map(|_| random_fraction()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
