//! A bulkhead: at most N calls in flight on a route.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Limits the calls in flight on one route. Excess calls fail fast, or wait at most `max_wait`.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    max_in_flight: usize,
    gate: Gate,
}

#[derive(Debug, Clone)]
enum Gate {
    /// Fail fast: a counter is all it takes (a semaphore would lock its waiter list on every
    /// release, which costs more than the rest of the check).
    Counter(Arc<AtomicUsize>),
    /// Bounded wait: a fair semaphore.
    Queue(Arc<Semaphore>, Duration),
}

/// A place in the bulkhead, given back on drop.
#[derive(Debug)]
pub struct BulkheadPermit<'a>(PermitInner<'a>);

#[derive(Debug)]
enum PermitInner<'a> {
    Counter(&'a AtomicUsize),
    // Held for its Drop.
    Queue(#[allow(dead_code)] SemaphorePermit<'a>),
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        if let PermitInner::Counter(c) = self.0 {
            c.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Bulkhead {
    /// At most `max_in_flight` calls at once; excess calls fail at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            gate: Gate::Counter(Arc::new(AtomicUsize::new(0))),
        }
    }

    /// Lets excess calls queue (first come, first served) for at most `wait` before failing.
    pub fn with_max_wait(self, wait: Duration) -> Self {
        Self {
            gate: Gate::Queue(Arc::new(Semaphore::new(self.max_in_flight)), wait),
            ..self
        }
    }

    /// The limit.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        match &self.gate {
            Gate::Counter(c) => c.load(Ordering::Acquire),
            Gate::Queue(s, _) => self.max_in_flight - s.available_permits(),
        }
    }

    /// Takes a place, or `None` when the route is full (after waiting, if allowed).
    pub async fn acquire(&self) -> Option<BulkheadPermit<'_>> {
        match &self.gate {
            Gate::Counter(c) => {
                let before = c.fetch_add(1, Ordering::AcqRel);
                if before < self.max_in_flight {
                    Some(BulkheadPermit(PermitInner::Counter(c)))
                } else {
                    c.fetch_sub(1, Ordering::AcqRel);
                    None
                }
            }
            Gate::Queue(s, wait) => {
                if let Ok(p) = s.try_acquire() {
                    return Some(BulkheadPermit(PermitInner::Queue(p)));
                }
                let p = tokio::time::timeout(*wait, s.acquire()).await.ok()?.ok()?;
                Some(BulkheadPermit(PermitInner::Queue(p)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_places_and_gives_them_back() {
        let b = Bulkhead::new(2);
        let p1 = b.acquire().await.unwrap();
        let _p2 = b.acquire().await.unwrap();
        assert!(b.acquire().await.is_none());
        assert_eq!(b.in_flight(), 2);
        drop(p1);
        assert_eq!(b.in_flight(), 1);
        assert!(b.acquire().await.is_some());
    }
}
