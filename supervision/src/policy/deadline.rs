//! Coarse deadlines and slow-call marks for the calls in flight on one route.
//!
//! A tokio timer per call costs more than the rest of the policy stack together (registering in
//! and removing from the timer wheel, and a clock read on each side). Calls on a route have long
//! deadlines that are rarely reached, so a shared reaper that looks at the calls in flight every
//! [`TICK`] does the same job for a table insert and remove per call, and marks calls that ran
//! past the breaker's slow-call duration on the way. A call's clock starts at the first look after
//! it began, and its deadline fires at a look, so it fires at most two ticks late; deadlines
//! shorter than [`PRECISE_BELOW`] (where that would be more than 5%) use a tokio timer of their
//! own instead.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// How often the reaper looks at the calls in flight (only while there are any).
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Deadlines shorter than this get a precise timer: two ticks late would be more than 5%.
pub(crate) const PRECISE_BELOW: Duration = Duration::from_millis(400);

#[derive(Debug)]
pub(crate) struct Tracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: Mutex<Table>,
    slow_after: Option<Duration>,
}

#[derive(Debug, Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    live: usize,
    reaper_running: bool,
}

#[derive(Debug)]
struct Entry {
    timeout: Option<Duration>,
    /// When the reaper first saw the call: its clock starts there, within a tick of the start.
    seen_at: Option<Instant>,
    fired: bool,
    slow: bool,
    waker: Option<Waker>,
}

impl Tracker {
    /// A tracker that marks calls slow after `slow_after`, when given.
    pub(crate) fn new(slow_after: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::default()),
                slow_after,
            }),
        }
    }

    /// Tracks one call with an optional deadline.
    pub(crate) fn register(&self, timeout: Option<Duration>) -> Ticket<'_> {
        let mut t = self.inner.lock();
        let entry = Entry {
            timeout,
            seen_at: None,
            fired: false,
            slow: false,
            waker: None,
        };
        let key = match t.free.pop() {
            Some(k) => {
                t.entries[k] = Some(entry);
                k
            }
            None => {
                t.entries.push(Some(entry));
                t.entries.len() - 1
            }
        };
        t.live += 1;
        if !t.reaper_running {
            t.reaper_running = true;
            tokio::spawn(reap(self.inner.clone()));
        }
        Ticket {
            inner: &self.inner,
            key,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One tracked call; dropping it stops the tracking.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    inner: &'a Inner,
    key: usize,
}

impl Ticket<'_> {
    /// Ready once the deadline has passed.
    pub(crate) fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut t = self.inner.lock();
        let Some(e) = t.entries[self.key].as_mut() else {
            return Poll::Pending;
        };
        if e.fired {
            return Poll::Ready(());
        }
        match &e.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Stops tracking the call; returns whether it ran past the slow-call duration.
    pub(crate) fn finish(self) -> bool {
        let slow = self.remove().is_some_and(|e| e.slow);
        std::mem::forget(self);
        slow
    }

    fn remove(&self) -> Option<Entry> {
        let mut t = self.inner.lock();
        let e = t.entries[self.key].take();
        if e.is_some() {
            t.free.push(self.key);
            t.live -= 1;
        }
        e
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Clears `reaper_running` if the reaper task is dropped (its runtime shut down), so that the
/// next call on another runtime starts a new one.
struct ReaperFlag<'a>(&'a Inner);

impl Drop for ReaperFlag<'_> {
    fn drop(&mut self) {
        self.0.lock().reaper_running = false;
    }
}

async fn reap(inner: Arc<Inner>) {
    let flag = ReaperFlag(&inner);
    let mut due = Vec::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        {
            let mut t = inner.lock();
            if t.live == 0 {
                t.reaper_running = false;
                std::mem::forget(flag);
                return;
            }
            for e in t.entries.iter_mut().flatten() {
                let Some(seen) = e.seen_at else {
                    e.seen_at = Some(now);
                    continue;
                };
                let age = now.saturating_duration_since(seen);
                if inner.slow_after.is_some_and(|s| age >= s) {
                    e.slow = true;
                }
                if !e.fired && e.timeout.is_some_and(|d| age >= d) {
                    e.fired = true;
                    if let Some(w) = e.waker.take() {
                        due.push(w);
                    }
                }
            }
        }
        for w in due.drain(..) {
            w.wake();
        }
    }
}
