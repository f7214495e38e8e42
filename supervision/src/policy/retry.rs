//! Retries with exponential backoff, full jitter and a retry budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// Retry settings for a route. Retries apply only to calls the caller marks idempotent, and only
/// to actor faults (never to an engine's own error answer or to a timeout).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before retry `n` is uniformly in `[0, min(max, base * 2^(n-1))]` (full jitter).
    pub backoff: Backoff,
    /// Shared limit on how many retries the route may add.
    pub budget: Arc<RetryBudget>,
    /// A fault whose engine restarts later than this is not retried: the caller is told at
    /// once when to come back, instead of holding the call through a long restart backoff.
    pub max_restart_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(1)),
            budget: Arc::new(RetryBudget::default()),
            max_restart_wait: Duration::from_secs(2),
        }
    }
}

/// A token bucket that keeps retries from multiplying load during an outage.
///
/// Every first attempt deposits `ratio` tokens; every retry withdraws one; the bucket also
/// refills by `min_per_second` so that a quiet route can still retry. With `ratio = 0.2` retries
/// add at most 20% to the load (plus the small floor), however many calls fail.
///
/// ```
/// use ensemble_supervision::RetryBudget;
///
/// let budget = RetryBudget::new(0.5, 0);
/// assert!(!budget.try_withdraw(), "nothing deposited yet");
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths of a token deposited per first attempt.
    ratio_milli: u64,
    /// Thousandths of a token refilled per millisecond (= tokens per second).
    min_per_second: u64,
    max_milli: u64,
    /// Thousandths of a token: integers keep the arithmetic exact. An atomic, so that a deposit
    /// (every idempotent call) takes no lock, and costs one load once the bucket is full.
    balance_milli: AtomicU64,
    /// When the floor last refilled the bucket; only retries look at it.
    refilled_at: Mutex<Instant>,
}

const TOKEN: u64 = 1000;

impl Default for RetryBudget {
    /// 20% extra load, and at least 10 retries a second.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per call plus `min_per_second` retries a second.
    /// The bucket holds at most ten seconds of the floor or a hundred calls' worth of ratio.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        let ratio_milli = (ratio.clamp(0.0, 1000.0) * TOKEN as f64).round() as u64;
        let min_per_second = u64::from(min_per_second);
        let max_milli = (min_per_second * 10 * TOKEN)
            .max(100 * ratio_milli)
            .max(TOKEN);
        Self {
            ratio_milli,
            min_per_second,
            max_milli,
            balance_milli: AtomicU64::new(min_per_second * TOKEN),
            refilled_at: Mutex::new(Instant::now()),
        }
    }

    /// Credits one first attempt.
    pub fn deposit(&self) {
        if self.ratio_milli == 0 {
            return;
        }
        self.credit(self.ratio_milli);
    }

    /// Adds `milli` to the balance, up to the cap.
    fn credit(&self, milli: u64) {
        let mut balance = self.balance_milli.load(Ordering::Relaxed);
        while balance < self.max_milli {
            let next = balance.saturating_add(milli).min(self.max_milli);
            match self.balance_milli.compare_exchange_weak(
                balance,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => balance = now,
            }
        }
    }

    /// Takes one retry from the budget; `false` when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        if self.min_per_second > 0 {
            let now = Instant::now();
            let mut refilled_at = self.refilled_at.lock().unwrap_or_else(|p| p.into_inner());
            let elapsed_ms = now.saturating_duration_since(*refilled_at).as_millis() as u64;
            if elapsed_ms > 0 {
                *refilled_at = now;
                self.credit(elapsed_ms.saturating_mul(self.min_per_second));
            }
        }
        self.balance_milli
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |b| {
                b.checked_sub(TOKEN)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_caps_retries_at_the_ratio_during_an_outage() {
        let budget = RetryBudget::new(0.1, 0);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.try_withdraw() {
                retries += 1;
            }
        }
        assert_eq!(retries, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_stop_at_the_cap() {
        // Ratio 1: the bucket holds a hundred calls' worth.
        let budget = RetryBudget::new(1.0, 0);
        for _ in 0..500 {
            budget.deposit();
        }
        let retries = (0..500).filter(|_| budget.try_withdraw()).count();
        assert_eq!(retries, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn floor_refills_with_time() {
        let budget = RetryBudget::new(0.0, 2);
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }
}
