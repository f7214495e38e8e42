//! Coarse deadlines and slow-call marks for the calls in flight on one route.
//!
//! A tokio timer per call costs more than the rest of the policy stack together (registering in
//! and removing from the timer wheel, and a clock read on each side). Calls on a route have long
//! deadlines that are rarely reached, so a shared reaper that looks at the calls in flight every
//! [`TICK`] does the same job, and marks calls that ran past the breaker's slow-call duration on
//! the way. A call's clock starts at the first look after it began, and its deadline fires at a
//! look, so it fires at most two ticks late; deadlines shorter than [`PRECISE_BELOW`] (where that
//! would be more than 5%) use a tokio timer of their own instead.
//!
//! The calls in flight live in fixed slots (64 to a segment, more segments chained on demand and
//! kept) claimed through a bitmap, so a call costs a few atomic operations and no lock on its
//! own path, except one uncontended lock to leave its waker on its first wait. Each slot's state
//! is one word — a generation, bumped at every claim, and the live, fired and slow flags — that
//! the reaper changes only by compare-and-swap, so a mark meant for an earlier call in the same
//! slot can never land on a later one. The reaper keeps the time it first saw each generation to
//! itself.
//!
//! A slot keeps the last waker left in it after its call ends: the next call from the same task
//! (the common case, one task driving calls one after another) then finds it already there and
//! clones nothing. The reaper drops the leftovers when it stops.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// How often the reaper looks at the calls in flight (only while there are any).
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Deadlines shorter than this get a precise timer: two ticks late would be more than 5%.
pub(crate) const PRECISE_BELOW: Duration = Duration::from_millis(400);

/// Slots per segment: one bitmap word.
const SLOTS: usize = 64;

/// A call holds the slot.
const LIVE: u64 = 1;
/// The call's deadline has passed.
const FIRED: u64 = 2;
/// The call ran past the slow-call duration.
const SLOW: u64 = 4;
/// The unit of the generation counter in the upper bits.
const GENERATION: u64 = 8;
const FLAGS: u64 = GENERATION - 1;

/// `timeout_nanos` of a call without a deadline of its own.
const NO_TIMEOUT: u64 = u64::MAX;

pub(crate) struct Tracker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("slow_after", &self.inner.slow_after)
            .field("reaper_running", &self.inner.reaper_running)
            .finish_non_exhaustive()
    }
}

struct Inner {
    first: Segment,
    slow_after: Option<Duration>,
    reaper_running: AtomicBool,
}

struct Segment {
    /// Bit `i` set: slot `i` is claimed.
    used: AtomicU64,
    slots: [Slot; SLOTS],
    next: OnceLock<Box<Segment>>,
}

#[derive(Default)]
struct Slot {
    /// Generation (upper bits) and the LIVE, FIRED and SLOW flags.
    state: AtomicU64,
    /// The call's deadline in nanoseconds, or [`NO_TIMEOUT`]. Written before LIVE is set.
    timeout_nanos: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Segment {
    fn new() -> Self {
        Self {
            used: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot::default()),
            next: OnceLock::new(),
        }
    }
}

impl Slot {
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        std::iter::successors(Some(&self.first), |s| s.next.get().map(|b| &**b))
    }

    fn any_in_flight(&self) -> bool {
        self.segments().any(|s| s.used.load(Ordering::SeqCst) != 0)
    }
}

impl Tracker {
    /// A tracker that marks calls slow after `slow_after`, when given.
    pub(crate) fn new(slow_after: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Inner {
                first: Segment::new(),
                slow_after,
                reaper_running: AtomicBool::new(false),
            }),
        }
    }

    /// Tracks one call with an optional deadline.
    pub(crate) fn register(&self, timeout: Option<Duration>) -> Ticket<'_> {
        let inner = &*self.inner;
        let mut segment = &inner.first;
        let (segment, index) = loop {
            let used = segment.used.load(Ordering::Relaxed);
            if used == u64::MAX {
                segment = segment.next.get_or_init(|| Box::new(Segment::new()));
                continue;
            }
            let index = (!used).trailing_zeros() as usize;
            let bit = 1u64 << index;
            // SeqCst pairs with the reaper's last look before it stops (see `reap`).
            if segment.used.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
                break (segment, index);
            }
        };
        let slot = &segment.slots[index];
        let nanos = timeout.map_or(NO_TIMEOUT, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        slot.timeout_nanos.store(nanos, Ordering::Relaxed);
        let generation = slot.state.load(Ordering::Relaxed) & !FLAGS;
        slot.state.store(
            generation.wrapping_add(GENERATION) | LIVE,
            Ordering::Release,
        );
        if !inner.reaper_running.load(Ordering::SeqCst)
            && !inner.reaper_running.swap(true, Ordering::SeqCst)
        {
            tokio::spawn(reap(self.inner.clone()));
        }
        Ticket {
            segment,
            index: index as u32,
        }
    }
}

/// One tracked call; dropping it stops the tracking.
pub(crate) struct Ticket<'a> {
    segment: &'a Segment,
    index: u32,
}

impl std::fmt::Debug for Ticket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("index", &self.index)
            .finish()
    }
}

impl Ticket<'_> {
    fn slot(&self) -> &Slot {
        &self.segment.slots[self.index as usize]
    }

    /// Ready once the deadline has passed.
    pub(crate) fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let slot = self.slot();
        // The reaper sets FIRED before it takes this lock to wake: checked under the lock, either
        // the flag is seen here or the waker left here is seen there.
        let mut waker = slot.waker();
        if slot.state.load(Ordering::Acquire) & FIRED != 0 {
            return Poll::Ready(());
        }
        match &*waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Stops tracking the call; returns whether it ran past the slow-call duration.
    pub(crate) fn finish(self) -> bool {
        let state = self.release();
        std::mem::forget(self);
        state & SLOW != 0
    }

    /// Frees the slot and returns its last state.
    fn release(&self) -> u64 {
        // Clearing LIVE makes any compare-and-swap of the reaper on this call fail.
        let state = self.slot().state.fetch_and(!FLAGS, Ordering::AcqRel);
        self.segment
            .used
            .fetch_and(!(1u64 << self.index), Ordering::Release);
        state
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Clears `reaper_running` if the reaper task is dropped (its runtime shut down), so that the
/// next call on another runtime starts a new one.
struct ReaperFlag<'a>(&'a Inner);

impl Drop for ReaperFlag<'_> {
    fn drop(&mut self) {
        self.0.reaper_running.store(false, Ordering::SeqCst);
    }
}

async fn reap(inner: Arc<Inner>) {
    let flag = ReaperFlag(&inner);
    // Per slot: the generation last seen in it and when it was first seen.
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let mut any = false;
        for (n, segment) in inner.segments().enumerate() {
            let mut used = segment.used.load(Ordering::SeqCst);
            any |= used != 0;
            while used != 0 {
                let index = used.trailing_zeros() as usize;
                used &= used - 1;
                let slot = &segment.slots[index];
                let state = slot.state.load(Ordering::Acquire);
                if state & LIVE == 0 {
                    continue;
                }
                let key = n * SLOTS + index;
                if seen.len() <= key {
                    seen.resize(key + 1, (0, now));
                }
                let generation = state & !FLAGS;
                if seen[key].0 != generation {
                    seen[key] = (generation, now);
                    continue;
                }
                let age = now.saturating_duration_since(seen[key].1);
                let mut mark = 0;
                if state & SLOW == 0 && inner.slow_after.is_some_and(|s| age >= s) {
                    mark |= SLOW;
                }
                if state & FIRED == 0 {
                    let timeout = slot.timeout_nanos.load(Ordering::Relaxed);
                    if timeout != NO_TIMEOUT && age >= Duration::from_nanos(timeout) {
                        mark |= FIRED;
                    }
                }
                if mark != 0
                    && slot
                        .state
                        .compare_exchange(state, state | mark, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    && mark & FIRED != 0
                    && let Some(w) = &*slot.waker()
                {
                    w.wake_by_ref();
                }
            }
        }
        if !any {
            inner.reaper_running.store(false, Ordering::SeqCst);
            // A call that claimed a slot after the look above saw the flag still set and counts
            // on this reaper: look again after clearing it (SeqCst on both sides), and go on
            // unless another reaper has been started meanwhile.
            if !inner.any_in_flight() || inner.reaper_running.swap(true, Ordering::SeqCst) {
                drop_leftover_wakers(&inner);
                std::mem::forget(flag);
                return;
            }
        }
    }
}

/// Drops the wakers that ended calls left behind, so that idle routes hold no tasks alive.
fn drop_leftover_wakers(inner: &Inner) {
    for segment in inner.segments() {
        for slot in &segment.slots {
            let mut waker = slot.waker();
            // A call leaves its waker only after setting LIVE, under this lock.
            if slot.state.load(Ordering::Acquire) & LIVE == 0 {
                *waker = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_reused_and_grow_past_a_segment() {
        let tracker = Tracker::new(None);
        let tickets: Vec<_> = (0..150).map(|_| tracker.register(None)).collect();
        assert_eq!(tracker.inner.segments().count(), 3);
        drop(tickets);
        assert!(!tracker.inner.any_in_flight());
        let t = tracker.register(None);
        assert_eq!(t.index, 0);
        assert!(!t.finish());
    }

    #[tokio::test(start_paused = true)]
    async fn marks_do_not_carry_over_to_the_next_call_in_a_slot() {
        let tracker = Tracker::new(Some(Duration::from_millis(50)));
        let slow = tracker.register(None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(slow.finish(), "ran 100 ms, slow after 50 ms");
        let fast = tracker.register(None);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!fast.finish());
    }

    /// Calls churning through the slots on several threads never disturb a waiting call's
    /// deadline, and no mark lands on the wrong call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_keep_their_own_deadlines_and_marks() {
        let tracker = Arc::new(Tracker::new(Some(Duration::from_secs(60))));
        let churn: Vec<_> = (0..4)
            .map(|_| {
                let tracker = tracker.clone();
                tokio::spawn(async move {
                    for i in 0..20_000u32 {
                        let t = tracker.register(Some(Duration::from_secs(60)));
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                        assert!(!t.finish(), "no call here runs a minute");
                    }
                })
            })
            .collect();
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let tracker = tracker.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let t = tracker.register(Some(Duration::from_millis(400)));
                    std::future::poll_fn(|cx| t.poll_expired(cx)).await;
                    drop(t);
                    started.elapsed()
                })
            })
            .collect();
        for c in churn {
            c.await.unwrap();
        }
        for w in waiting {
            let took = w.await.unwrap();
            assert!(took >= Duration::from_millis(400), "{took:?}");
        }
        assert!(!tracker.inner.any_in_flight());
    }

    #[tokio::test(start_paused = true)]
    async fn the_reaper_stops_when_idle_and_restarts_on_demand() {
        let tracker = Tracker::new(None);
        tracker.register(None).finish();
        tokio::time::sleep(TICK * 3).await;
        assert!(!tracker.inner.reaper_running.load(Ordering::SeqCst));
        let t = tracker.register(Some(Duration::from_millis(500)));
        assert!(tracker.inner.reaper_running.load(Ordering::SeqCst));
        let started = Instant::now();
        std::future::poll_fn(|cx| t.poll_expired(cx)).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took <= Duration::from_millis(520),
            "{took:?}"
        );
        drop(t);
    }
}
