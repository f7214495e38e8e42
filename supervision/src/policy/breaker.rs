//! A circuit breaker with resilience4j semantics (count-based sliding window).
//!
//! [`BreakerCore`] is the pure state machine, driven with explicit instants so it can be tested
//! exhaustively; [`CircuitBreaker`] wraps it for concurrent use with the tokio clock, and turns
//! every transition into a metric and a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Circuit breaker settings (names follow resilience4j).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Number of most recent calls the closed breaker judges by.
    pub sliding_window_size: u32,
    /// Calls that must be recorded before any rate is judged. Capped at the window size.
    pub minimum_calls: u32,
    /// Failure percentage (0–100) at or above which the breaker opens.
    pub failure_rate_threshold: f32,
    /// Slow-call percentage (0–100) at or above which the breaker opens.
    pub slow_call_rate_threshold: f32,
    /// A call that takes at least this long is slow.
    pub slow_call_duration: Duration,
    /// How long the breaker stays open before it lets probe calls through.
    pub wait_in_open: Duration,
    /// Probe calls let through while half-open; their outcome closes or reopens the breaker.
    pub permitted_calls_in_half_open: u32,
    /// Crashes of the engine (calls that died with their actor, counted once per crash) within
    /// the window that open the breaker at once, before `minimum_calls` is reached; a crash
    /// while half-open reopens it at once. Each crash is a restart, and restarts are limited
    /// by the engine's restart intensity: this keeps one crash-looping tool from exhausting it.
    /// 0 turns the rule off. Not in resilience4j, which knows nothing of actors.
    pub crash_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            sliding_window_size: 50,
            minimum_calls: 10,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(10),
            wait_in_open: Duration::from_secs(10),
            permitted_calls_in_half_open: 5,
            crash_threshold: 3,
        }
    }
}

/// The three breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are recorded in the sliding window.
    Closed,
    /// A few probe calls are let through to test recovery.
    HalfOpen,
    /// Calls are rejected without reaching the actor.
    Open,
}

impl BreakerState {
    /// The value of the `ensemble_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    /// Lower-case name, as used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// Permission to make one call, issued by [`BreakerCore::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a permit must be given back through on_result or release"]
pub struct Permit {
    epoch: u64,
}

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Time until the breaker half-opens; `None` while half-open probes are all taken.
    pub retry_after: Option<Duration>,
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// A ring of the last `size` outcomes with running counts.
#[derive(Debug, Clone)]
struct Window {
    /// Bit 0: failed, bit 1: slow, bit 2: crashed.
    ring: Vec<u8>,
    next: usize,
    len: usize,
    failures: u32,
    slow: u32,
    crashes: u32,
}

impl Window {
    fn new(size: usize) -> Self {
        Self {
            ring: vec![0; size.max(1)],
            next: 0,
            len: 0,
            failures: 0,
            slow: 0,
            crashes: 0,
        }
    }

    fn push(&mut self, failed: bool, slow: bool, crashed: bool) {
        let cap = self.ring.len();
        if self.len == cap {
            let old = self.ring[self.next];
            self.failures -= u32::from(old & 1);
            self.slow -= u32::from((old >> 1) & 1);
            self.crashes -= u32::from(old >> 2);
        } else {
            self.len += 1;
        }
        self.ring[self.next] = u8::from(failed) | (u8::from(slow) << 1) | (u8::from(crashed) << 2);
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
        self.crashes += u32::from(crashed);
        self.next += 1;
        if self.next == cap {
            self.next = 0;
        }
    }

    fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.failures = 0;
        self.slow = 0;
        self.crashes = 0;
    }
}

/// The breaker's state machine. Not thread-safe on its own; see [`CircuitBreaker`].
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use ensemble_supervision::{BreakerConfig, BreakerCore, BreakerState};
///
/// let cfg = BreakerConfig { minimum_calls: 2, sliding_window_size: 2, ..Default::default() };
/// let mut b = BreakerCore::new(cfg);
/// let t = Instant::now();
/// for _ in 0..2 {
///     let p = b.try_acquire(t).0.unwrap();
///     b.on_result(p, true, Duration::ZERO, t);
/// }
/// assert_eq!(b.state(), BreakerState::Open);
/// assert!(b.try_acquire(t).0.is_err());
/// ```
#[derive(Debug, Clone)]
pub struct BreakerCore {
    cfg: BreakerConfig,
    state: BreakerState,
    /// Bumped at every transition: results of calls admitted in an earlier state are ignored.
    epoch: u64,
    window: Window,
    opened_at: Instant,
    half_open_issued: u32,
    half_open_done: u32,
    half_open_failures: u32,
    half_open_slow: u32,
    /// The generation of the last actor whose crash was recorded: the other calls that died
    /// with it are the same failure.
    last_crash: Option<u64>,
}

impl BreakerCore {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            window: Window::new(cfg.sliding_window_size as usize),
            cfg,
            state: BreakerState::Closed,
            epoch: 0,
            opened_at: Instant::now(),
            half_open_issued: 0,
            half_open_done: 0,
            half_open_failures: 0,
            half_open_slow: 0,
            last_crash: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// The current state (an open breaker whose wait has passed still reads `Open` until the
    /// next call attempt moves it to half-open).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to make a call at `now`. The second element reports a transition the request
    /// caused (an open breaker whose wait is over moves to half-open).
    pub fn try_acquire(&mut self, now: Instant) -> (Result<Permit, Rejected>, Option<Transition>) {
        self.try_acquire_at(|| now)
    }

    /// Like [`try_acquire`](Self::try_acquire), reading the clock only if the state needs it
    /// (a closed breaker does not).
    pub fn try_acquire_at(
        &mut self,
        now: impl FnOnce() -> Instant,
    ) -> (Result<Permit, Rejected>, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Ok(Permit { epoch: self.epoch }), None),
            BreakerState::Open => {
                let now = now();
                let until = self.opened_at + self.cfg.wait_in_open;
                if now < until {
                    let rejected = Rejected {
                        retry_after: Some(until - now),
                    };
                    return (Err(rejected), None);
                }
                let t = self.transition(BreakerState::HalfOpen, now);
                (self.acquire_half_open(), Some(t))
            }
            BreakerState::HalfOpen => (self.acquire_half_open(), None),
        }
    }

    fn acquire_half_open(&mut self) -> Result<Permit, Rejected> {
        if self.half_open_issued < self.cfg.permitted_calls_in_half_open.max(1) {
            self.half_open_issued += 1;
            Ok(Permit { epoch: self.epoch })
        } else {
            Err(Rejected { retry_after: None })
        }
    }

    /// Records the outcome of a permitted call that took `elapsed`. Returns the transition it
    /// caused, if any.
    pub fn on_result(
        &mut self,
        permit: Permit,
        failed: bool,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let slow = elapsed >= self.cfg.slow_call_duration;
        self.on_outcome(permit, failed, slow, || now)
    }

    /// Records an outcome whose slowness the caller judged; reads the clock only if the breaker
    /// opens.
    pub fn on_outcome(
        &mut self,
        permit: Permit,
        failed: bool,
        slow: bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<Transition> {
        self.record(permit, failed, slow, false, now)
    }

    /// Records a call that died with its actor, the actor of `generation`. The first call to
    /// report a given crash records a failure that counts toward
    /// [`crash_threshold`](BreakerConfig::crash_threshold); the others that died with the same
    /// actor record nothing (their permit is given back).
    pub fn on_crash(
        &mut self,
        permit: Permit,
        generation: u64,
        slow: bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<Transition> {
        if self.last_crash == Some(generation) {
            self.release(permit);
            return None;
        }
        self.last_crash = Some(generation);
        self.record(permit, true, slow, true, now)
    }

    fn record(
        &mut self,
        permit: Permit,
        failed: bool,
        slow: bool,
        crashed: bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<Transition> {
        if permit.epoch != self.epoch {
            return None;
        }
        let crash_limit = self.cfg.crash_threshold;
        match self.state {
            BreakerState::Closed => {
                self.window.push(failed, slow, crashed);
                if crashed && crash_limit > 0 && self.window.crashes >= crash_limit {
                    return Some(self.transition(BreakerState::Open, now()));
                }
                let needed = self
                    .cfg
                    .minimum_calls
                    .min(self.cfg.sliding_window_size)
                    .max(1) as usize;
                if self.window.len >= needed
                    && self.exceeds(self.window.failures, self.window.slow, self.window.len)
                {
                    return Some(self.transition(BreakerState::Open, now()));
                }
                None
            }
            BreakerState::HalfOpen => {
                if crashed && crash_limit > 0 {
                    // A probe that crashes the engine proves it is still sick.
                    return Some(self.transition(BreakerState::Open, now()));
                }
                self.half_open_done += 1;
                self.half_open_failures += u32::from(failed);
                self.half_open_slow += u32::from(slow);
                if self.half_open_done >= self.cfg.permitted_calls_in_half_open.max(1) {
                    let to = if self.exceeds(
                        self.half_open_failures,
                        self.half_open_slow,
                        self.half_open_done as usize,
                    ) {
                        BreakerState::Open
                    } else {
                        BreakerState::Closed
                    };
                    return Some(self.transition(to, now()));
                }
                None
            }
            BreakerState::Open => None,
        }
    }

    /// Gives back a permit whose call ended without an outcome (the caller cancelled), so that a
    /// half-open breaker can issue it again.
    pub fn release(&mut self, permit: Permit) {
        if permit.epoch == self.epoch
            && self.state == BreakerState::HalfOpen
            && self.half_open_issued > self.half_open_done
        {
            self.half_open_issued -= 1;
        }
    }

    fn exceeds(&self, failures: u32, slow: u32, total: usize) -> bool {
        // rate% >= threshold, without a division on the hot path.
        let total = total as f32;
        (failures as f32) * 100.0 >= self.cfg.failure_rate_threshold * total
            || (slow as f32) * 100.0 >= self.cfg.slow_call_rate_threshold * total
    }

    fn transition(&mut self, to: BreakerState, now: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        self.epoch += 1;
        self.window.clear();
        self.half_open_issued = 0;
        self.half_open_done = 0;
        self.half_open_failures = 0;
        self.half_open_slow = 0;
        if to == BreakerState::Open {
            self.opened_at = now;
        }
        Transition { from, to }
    }
}

/// A thread-safe circuit breaker for one route. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    route: Arc<str>,
    core: Mutex<BreakerCore>,
    /// The core's epoch while it is closed, [`NOT_CLOSED`] otherwise; written under the lock at
    /// every transition, so a closed breaker admits a call without taking the lock.
    closed_epoch: AtomicU64,
    /// The core's epoch while it is closed with a full window of calls that all succeeded in
    /// time, [`NOT_CLOSED`] otherwise; written under the lock after every change. Another
    /// success changes nothing in such a window, so it is recorded without taking the lock.
    clean_epoch: AtomicU64,
    state_tx: watch::Sender<BreakerState>,
    gauge: metrics::Gauge,
}

const NOT_CLOSED: u64 = u64::MAX;

impl CircuitBreaker {
    /// A closed breaker for `route`.
    pub fn new(route: impl Into<Arc<str>>, cfg: BreakerConfig) -> Self {
        let route = route.into();
        let gauge = metrics::gauge!("ensemble_circuit_state", "route" => route.to_string());
        gauge.set(BreakerState::Closed.gauge_value());
        Self {
            inner: Arc::new(Shared {
                route,
                core: Mutex::new(BreakerCore::new(cfg)),
                closed_epoch: AtomicU64::new(0),
                clean_epoch: AtomicU64::new(NOT_CLOSED),
                state_tx: watch::Sender::new(BreakerState::Closed),
                gauge,
            }),
        }
    }

    /// The route this breaker guards.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// A receiver that sees every state change (the latest state, not a log of them).
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.inner.state_tx.subscribe()
    }

    /// Asks to make a call now. The permit measures the call's duration for the slow-call rate.
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, Rejected> {
        let now = Instant::now();
        self.acquire(|| now, Some(now))
    }

    /// Asks to make a call whose slowness the caller will judge itself (see
    /// [`BreakerPermit::record_outcome`]); a closed breaker reads no clock.
    pub fn try_acquire_untimed(&self) -> Result<BreakerPermit<'_>, Rejected> {
        self.acquire(Instant::now, None)
    }

    fn acquire(
        &self,
        now: impl FnOnce() -> Instant,
        started: Option<Instant>,
    ) -> Result<BreakerPermit<'_>, Rejected> {
        let epoch = self.inner.closed_epoch.load(Ordering::Acquire);
        if epoch != NOT_CLOSED {
            return Ok(BreakerPermit {
                breaker: self,
                permit: Some(Permit { epoch }),
                started,
            });
        }
        let (result, transition) = {
            let mut core = self.lock();
            let r = core.try_acquire_at(now);
            self.publish(&core);
            r
        };
        if let Some(t) = transition {
            self.announce(t);
        }
        result.map(|permit| BreakerPermit {
            breaker: self,
            permit: Some(permit),
            started,
        })
    }

    /// Mirrors the core's state into the lock-free admission check (call with the lock held).
    fn publish(&self, core: &BreakerCore) {
        let epoch = match core.state() {
            BreakerState::Closed => core.epoch,
            _ => NOT_CLOSED,
        };
        self.inner.closed_epoch.store(epoch, Ordering::Release);
        self.publish_clean(core);
    }

    /// Mirrors whether a success would leave the window as it is (call with the lock held).
    fn publish_clean(&self, core: &BreakerCore) {
        let w = &core.window;
        let clean = core.state() == BreakerState::Closed
            && w.len == w.ring.len()
            && w.failures == 0
            && w.slow == 0;
        let epoch = if clean { core.epoch } else { NOT_CLOSED };
        if self.inner.clean_epoch.load(Ordering::Relaxed) != epoch {
            self.inner.clean_epoch.store(epoch, Ordering::Release);
        }
    }

    /// Records an outcome under the lock, mirrors the new state into the lock-free checks, and
    /// announces the transition it caused (after the lock is released).
    fn settle(&self, record: impl FnOnce(&mut BreakerCore) -> Option<Transition>) {
        let t = {
            let mut core = self.lock();
            let t = record(&mut core);
            if t.is_some() {
                self.publish(&core);
            } else {
                self.publish_clean(&core);
            }
            t
        };
        if let Some(t) = t {
            self.announce(t);
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerCore> {
        // A poisoned lock means a panic while the state was being updated by plain arithmetic;
        // the state is still coherent enough to keep serving.
        self.inner.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn announce(&self, t: Transition) {
        let route = &*self.inner.route;
        self.inner.gauge.set(t.to.gauge_value());
        metrics::counter!("ensemble_circuit_transitions_total",
            "route" => route.to_string(), "from" => t.from.as_str(), "to" => t.to.as_str())
        .increment(1);
        match t.to {
            BreakerState::Open => {
                tracing::warn!(route, from = t.from.as_str(), "circuit breaker opened")
            }
            _ => tracing::info!(
                route,
                from = t.from.as_str(),
                to = t.to.as_str(),
                "circuit breaker state changed"
            ),
        }
        self.inner.state_tx.send_replace(t.to);
    }
}

/// An admitted call. Report its outcome with [`BreakerPermit::record`]; dropping it unrecorded
/// (the call was cancelled) gives the permit back.
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    permit: Option<Permit>,
    started: Option<Instant>,
}

impl BreakerPermit<'_> {
    /// Records whether the call failed; its duration is measured from the permit's issue (a
    /// permit from [`CircuitBreaker::try_acquire_untimed`] counts as not slow).
    pub fn record(self, failed: bool) {
        let slow = self
            .started
            .is_some_and(|s| s.elapsed() >= self.breaker.lock().config().slow_call_duration);
        self.record_outcome(failed, slow);
    }

    /// Records whether the call failed and whether it was slow.
    pub fn record_outcome(mut self, failed: bool, slow: bool) {
        if let Some(permit) = self.permit.take() {
            // A success pushed into a closed window of successes leaves it as it was. A failure
            // recorded concurrently clears `clean_epoch` under the lock; this success then counts
            // as recorded just before it.
            if !failed
                && !slow
                && self.breaker.inner.clean_epoch.load(Ordering::Acquire) == permit.epoch
            {
                return;
            }
            self.breaker
                .settle(|core| core.on_outcome(permit, failed, slow, Instant::now));
        }
    }

    /// Records a call that died with its actor, the actor of `generation`; see
    /// [`BreakerCore::on_crash`].
    pub fn record_crash(mut self, generation: u64, slow: bool) {
        if let Some(permit) = self.permit.take() {
            self.breaker
                .settle(|core| core.on_crash(permit, generation, slow, Instant::now));
        }
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.lock().release(permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            sliding_window_size: 4,
            minimum_calls: 4,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(1),
            wait_in_open: Duration::from_secs(5),
            permitted_calls_in_half_open: 2,
            crash_threshold: 2,
        }
    }

    fn call(b: &mut BreakerCore, now: Instant, failed: bool) -> Option<Transition> {
        let p = b.try_acquire(now).0.expect("permitted");
        b.on_result(p, failed, Duration::ZERO, now)
    }

    #[test]
    fn opens_only_after_minimum_calls() {
        let t = Instant::now();
        let mut b = BreakerCore::new(cfg());
        for _ in 0..3 {
            assert_eq!(call(&mut b, t, true), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let tr = call(&mut b, t, true).expect("transition");
        assert_eq!(tr.to, BreakerState::Open);
    }

    #[test]
    fn full_cycle_open_half_open_closed() {
        let t = Instant::now();
        let mut b = BreakerCore::new(cfg());
        for _ in 0..2 {
            call(&mut b, t, false);
        }
        for _ in 0..2 {
            call(&mut b, t, true);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let rej = b.try_acquire(t + Duration::from_secs(2)).0.unwrap_err();
        assert_eq!(rej.retry_after, Some(Duration::from_secs(3)));
        let later = t + Duration::from_secs(5);
        let p1 = b.try_acquire(later).0.expect("probe 1");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p2 = b.try_acquire(later).0.expect("probe 2");
        assert!(b.try_acquire(later).0.is_err(), "only two probes");
        assert_eq!(b.on_result(p1, false, Duration::ZERO, later), None);
        let tr = b
            .on_result(p2, false, Duration::ZERO, later)
            .expect("closes");
        assert_eq!(tr.to, BreakerState::Closed);
    }

    #[test]
    fn failed_probes_reopen_and_restart_the_wait() {
        let t = Instant::now();
        let mut b = BreakerCore::new(cfg());
        for _ in 0..4 {
            call(&mut b, t, true);
        }
        let t2 = t + Duration::from_secs(6);
        call(&mut b, t2, true);
        let tr = call(&mut b, t2, false).expect("decides");
        assert_eq!(tr.to, BreakerState::Open);
        let rej = b.try_acquire(t2 + Duration::from_secs(1)).0.unwrap_err();
        assert_eq!(rej.retry_after, Some(Duration::from_secs(4)));
    }

    #[test]
    fn slow_calls_open_the_breaker() {
        let t = Instant::now();
        let mut b = BreakerCore::new(BreakerConfig {
            slow_call_rate_threshold: 50.0,
            ..cfg()
        });
        for i in 0..4 {
            let p = b.try_acquire(t).0.unwrap();
            b.on_result(
                p,
                false,
                Duration::from_secs(if i % 2 == 0 { 2 } else { 0 }),
                t,
            );
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn released_half_open_permits_can_be_reissued() {
        let t = Instant::now();
        let mut b = BreakerCore::new(cfg());
        for _ in 0..4 {
            call(&mut b, t, true);
        }
        let later = t + Duration::from_secs(5);
        let p1 = b.try_acquire(later).0.unwrap();
        let _p2 = b.try_acquire(later).0.unwrap();
        assert!(b.try_acquire(later).0.is_err());
        b.release(p1);
        assert!(b.try_acquire(later).0.is_ok());
    }

    fn crash(b: &mut BreakerCore, now: Instant, generation: u64) -> Option<Transition> {
        let p = b.try_acquire(now).0.expect("permitted");
        b.on_crash(p, generation, false, || now)
    }

    #[test]
    fn crashes_open_before_the_minimum_calls() {
        let t = Instant::now();
        let mut b = BreakerCore::new(BreakerConfig {
            minimum_calls: 10,
            sliding_window_size: 10,
            ..cfg()
        });
        assert_eq!(crash(&mut b, t, 1), None);
        let tr = crash(&mut b, t, 2).expect("the second crash opens");
        assert_eq!(tr.to, BreakerState::Open);
    }

    #[test]
    fn calls_that_die_with_one_crash_count_once() {
        let t = Instant::now();
        let mut b = BreakerCore::new(BreakerConfig {
            minimum_calls: 10,
            sliding_window_size: 10,
            ..cfg()
        });
        // Eight calls die with the actor of generation 1: one crash.
        let permits: Vec<Permit> = (0..8).map(|_| b.try_acquire(t).0.unwrap()).collect();
        for p in permits {
            assert_eq!(b.on_crash(p, 1, false, || t), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.window.len, 1);
        assert_eq!(b.window.crashes, 1);
        // The next actor's crash is the second.
        assert!(crash(&mut b, t, 2).is_some());
    }

    #[test]
    fn a_probe_that_crashes_reopens_at_once() {
        let t = Instant::now();
        let mut b = BreakerCore::new(cfg());
        crash(&mut b, t, 1);
        crash(&mut b, t, 2);
        let later = t + Duration::from_secs(5);
        let p1 = b.try_acquire(later).0.expect("probe");
        let _p2 = b.try_acquire(later).0.expect("probe");
        let tr = b.on_crash(p1, 3, false, || later).expect("reopens");
        assert_eq!(tr.to, BreakerState::Open);
    }

    #[test]
    fn a_zero_crash_threshold_counts_crashes_as_plain_failures() {
        let t = Instant::now();
        let mut b = BreakerCore::new(BreakerConfig {
            crash_threshold: 0,
            ..cfg()
        });
        for g in 0..3 {
            assert_eq!(crash(&mut b, t, g), None);
        }
        assert!(crash(&mut b, t, 3).is_some(), "4 failures of 4");
    }

    #[tokio::test]
    async fn successes_recorded_without_the_lock_still_dilute_failures() {
        let b = CircuitBreaker::new("dilute", cfg());
        let record = |failed: bool| {
            b.try_acquire_untimed()
                .unwrap()
                .record_outcome(failed, false)
        };
        // A full window of successes: further successes take the lock-free path.
        for _ in 0..10 {
            record(false);
        }
        assert_eq!(b.inner.clean_epoch.load(Ordering::Relaxed), 0);
        record(true);
        assert_eq!(b.inner.clean_epoch.load(Ordering::Relaxed), NOT_CLOSED);
        assert_eq!(b.state(), BreakerState::Closed, "1 failure in 4");
        // Three successes push the failure out of the window of four.
        for _ in 0..3 {
            record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        record(false);
        assert_eq!(b.inner.clean_epoch.load(Ordering::Relaxed), 0);
        record(true);
        assert_eq!(b.state(), BreakerState::Closed, "1 failure in 4");
        record(true);
        assert_eq!(b.state(), BreakerState::Open, "2 failures in 4");
        assert_eq!(b.inner.clean_epoch.load(Ordering::Relaxed), NOT_CLOSED);
        // A slow success is not clean either.
        let b = CircuitBreaker::new("slow", cfg());
        for _ in 0..4 {
            b.try_acquire_untimed()
                .unwrap()
                .record_outcome(false, false);
        }
        b.try_acquire_untimed().unwrap().record_outcome(false, true);
        assert_eq!(b.inner.clean_epoch.load(Ordering::Relaxed), NOT_CLOSED);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Start,
        Finish {
            which: usize,
            failed: bool,
            slow: bool,
        },
        Crash {
            which: usize,
            generation: u64,
        },
        Cancel {
            which: usize,
        },
        Wait {
            ms: u64,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Start),
            3 => (any::<usize>(), any::<bool>(), any::<bool>())
                .prop_map(|(which, failed, slow)| Op::Finish { which, failed, slow }),
            2 => (any::<usize>(), 0u64..4).prop_map(|(which, generation)| Op::Crash { which, generation }),
            1 => any::<usize>().prop_map(|which| Op::Cancel { which }),
            1 => (0u64..8_000).prop_map(|ms| Op::Wait { ms }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Invariants that hold for any interleaving of calls, outcomes, cancellations and time.
        #[test]
        fn breaker_invariants(ops in proptest::collection::vec(op(), 1..200),
                              window in 1u32..10, min in 1u32..10, half in 1u32..4,
                              threshold in 1u32..=100, crash_limit in 0u32..4) {
            let cfg = BreakerConfig {
                sliding_window_size: window,
                minimum_calls: min,
                failure_rate_threshold: threshold as f32,
                slow_call_rate_threshold: 100.0,
                slow_call_duration: Duration::from_millis(100),
                wait_in_open: Duration::from_secs(5),
                permitted_calls_in_half_open: half,
                crash_threshold: crash_limit,
            };
            let t0 = Instant::now();
            let mut now = t0;
            let mut b = BreakerCore::new(cfg);
            let mut in_flight: Vec<Permit> = Vec::new();
            let mut opened_at: Option<Instant> = None;
            // Reference model of the closed state's window: (failed, slow, crashed) of counted
            // calls, and the last crash recorded.
            let mut model: std::collections::VecDeque<(bool, bool, bool)> = Default::default();
            let mut last_crash: Option<u64> = None;
            let needed = min.min(window) as usize;
            for op in ops {
                let before = b.state();
                match op {
                    Op::Start => match b.try_acquire(now).0 {
                        Ok(p) => {
                            // Open never admits a call before its wait is over.
                            if let Some(at) = opened_at { prop_assert!(now >= at + cfg.wait_in_open); }
                            in_flight.push(p);
                        }
                        Err(rej) => {
                            prop_assert_ne!(b.state(), BreakerState::Closed);
                            if let Some(d) = rej.retry_after {
                                prop_assert!(d <= cfg.wait_in_open);
                            }
                        }
                    },
                    Op::Finish { which, failed, slow } if !in_flight.is_empty() => {
                        let p = in_flight.swap_remove(which % in_flight.len());
                        let elapsed = if slow { Duration::from_millis(150) } else { Duration::ZERO };
                        let counted = b.state() == BreakerState::Closed && p.epoch == b.epoch;
                        let t = b.on_result(p, failed, elapsed, now);
                        if counted {
                            model.push_back((failed, slow, false));
                            if model.len() > window as usize { model.pop_front(); }
                            let fails = model.iter().filter(|m| m.0).count() as f32;
                            let slows = model.iter().filter(|m| m.1).count() as f32;
                            let n = model.len() as f32;
                            let should_open = model.len() >= needed
                                && (fails * 100.0 / n >= threshold as f32 || slows * 100.0 / n >= 100.0);
                            prop_assert_eq!(t.map(|t| t.to), should_open.then_some(BreakerState::Open));
                        }
                    }
                    Op::Crash { which, generation } if !in_flight.is_empty() => {
                        let p = in_flight.swap_remove(which % in_flight.len());
                        let duplicate = last_crash == Some(generation);
                        let current = p.epoch == b.epoch;
                        let state = b.state();
                        let t = b.on_crash(p, generation, false, || now);
                        last_crash = Some(generation);
                        if duplicate || !current {
                            // The same crash again, or a call from an earlier state: no change.
                            prop_assert_eq!(t, None);
                        } else if state == BreakerState::Closed {
                            model.push_back((true, false, true));
                            if model.len() > window as usize { model.pop_front(); }
                            let fails = model.iter().filter(|m| m.0).count() as f32;
                            let crashes = model.iter().filter(|m| m.2).count() as u32;
                            let n = model.len() as f32;
                            let should_open = (crash_limit > 0 && crashes >= crash_limit)
                                || (model.len() >= needed && fails * 100.0 / n >= threshold as f32);
                            prop_assert_eq!(t.map(|t| t.to), should_open.then_some(BreakerState::Open));
                        } else if state == BreakerState::HalfOpen && crash_limit > 0 {
                            prop_assert_eq!(t.map(|t| t.to), Some(BreakerState::Open));
                        }
                    }
                    Op::Cancel { which } if !in_flight.is_empty() => {
                        let p = in_flight.swap_remove(which % in_flight.len());
                        b.release(p);
                    }
                    Op::Wait { ms } => now += Duration::from_millis(ms),
                    _ => {}
                }
                let after = b.state();
                if after == BreakerState::Open && before != BreakerState::Open {
                    opened_at = Some(now);
                }
                if after != BreakerState::Open { opened_at = None; }
                if after != BreakerState::Closed { model.clear(); }
                // Half-open never has more probes out than permitted.
                if after == BreakerState::HalfOpen {
                    prop_assert!(b.half_open_issued <= half);
                    prop_assert!(b.half_open_done <= b.half_open_issued);
                }
                // Only half-open decides to close.
                if after == BreakerState::Closed && before != BreakerState::Closed {
                    prop_assert_eq!(before, BreakerState::HalfOpen);
                }
            }
        }
    }
}
