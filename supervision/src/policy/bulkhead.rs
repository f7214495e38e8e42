//! A bulkhead: at most N calls in flight on a route.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Limits the calls in flight on one route. Excess calls fail fast, or wait at most `max_wait`.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    semaphore: Arc<Semaphore>,
    max_in_flight: usize,
    max_wait: Option<Duration>,
}

impl Bulkhead {
    /// At most `max_in_flight` calls at once; excess calls fail at once.
    pub fn new(max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_wait: None,
        }
    }

    /// Lets excess calls queue for at most `wait` before failing.
    pub fn with_max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    /// The limit.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.semaphore.available_permits()
    }

    /// Takes a place, or `None` when the route is full (after waiting, if allowed).
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        if let Ok(p) = self.semaphore.try_acquire() {
            return Some(p);
        }
        let wait = self.max_wait?;
        tokio::time::timeout(wait, self.semaphore.acquire())
            .await
            .ok()?
            .ok()
    }
}
