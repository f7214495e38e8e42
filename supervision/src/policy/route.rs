//! One route's composed policy stack.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::deadline::{PRECISE_BELOW, Tracker};
use super::{BreakerConfig, Bulkhead, CircuitBreaker, RetryPolicy};
use crate::backoff::random_fraction;
use crate::fault::{ActorFault, CallError, PolicyError};

/// Per-call choices of the caller.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The call may be repeated without changing the outcome (read-only or idempotent tools):
    /// only such calls are retried.
    pub idempotent: bool,
    /// A deadline for this call in place of the route's default.
    pub timeout: Option<Duration>,
    /// The caller's own cancellation (a client's `notifications/cancelled`, a host's shutdown).
    /// The call's token is a child of it.
    pub cancel: Option<CancellationToken>,
}

impl CallOptions {
    /// Options for an idempotent call.
    pub fn idempotent() -> Self {
        Self {
            idempotent: true,
            ..Self::default()
        }
    }
}

/// What each attempt of a call gets: its number and the token to pass to the actor.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// 0 for the first attempt, 1 for the first retry, …
    pub attempt: u32,
    /// Cancelled when the call times out, the caller cancels, or the call's future is dropped.
    /// The actor checks it in long work and stops.
    pub cancel: CancellationToken,
    /// How far ahead a retry waits for its restarted actor: a restart due later than this
    /// fails the attempt at once, with the time to come back
    /// ([`RetryPolicy::max_restart_wait`](super::RetryPolicy::max_restart_wait)).
    pub restart_wait: Duration,
}

impl CallContext {
    /// True for retries: the slot then waits for the restarted actor instead of failing fast.
    pub fn is_retry(&self) -> bool {
        self.attempt > 0
    }
}

/// The policy stack of one route: bulkhead → circuit breaker → timeout → retry.
///
/// ```
/// # tokio_test_block_on(async {
/// use std::time::Duration;
/// use ensemble_supervision::{CallError, CallOptions, RoutePolicy};
///
/// let policy = RoutePolicy::builder("echo")
///     .bulkhead(64)
///     .timeout(Duration::from_secs(5))
///     .build();
/// let answer: Result<u32, _> = policy
///     .call(CallOptions::default(), |_ctx| async { Ok::<_, CallError<String>>(42) })
///     .await;
/// assert_eq!(answer, Ok(42));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    route: Arc<str>,
    bulkhead: Option<Bulkhead>,
    breaker: Option<CircuitBreaker>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    deadlines: Tracker,
    inflight: metrics::Gauge,
}

/// Builds a [`RoutePolicy`]; every layer is optional.
#[derive(Debug)]
pub struct RoutePolicyBuilder {
    route: Arc<str>,
    bulkhead: Option<Bulkhead>,
    breaker: Option<BreakerConfig>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl RoutePolicyBuilder {
    /// At most `max_in_flight` calls at once; excess calls fail fast.
    pub fn bulkhead(mut self, max_in_flight: usize) -> Self {
        self.bulkhead = Some(Bulkhead::new(max_in_flight));
        self
    }

    /// A bulkhead built by hand (for instance with a bounded wait).
    pub fn bulkhead_with(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// A circuit breaker with these settings.
    pub fn breaker(mut self, cfg: BreakerConfig) -> Self {
        self.breaker = Some(cfg);
        self
    }

    /// The default deadline of a call, retries included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries for idempotent calls.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The composed stack.
    pub fn build(self) -> RoutePolicy {
        let inflight =
            metrics::gauge!("ensemble_inflight_calls", "route" => self.route.to_string());
        let slow_after = self.breaker.map(|cfg| cfg.slow_call_duration);
        if self.retry.as_ref().is_some_and(|r| r.max_attempts > 1) {
            // At 0 from the start, so that a rate sees the first retry.
            metrics::counter!("ensemble_retries_total", "route" => self.route.to_string())
                .increment(0);
        }
        RoutePolicy {
            inner: Arc::new(Inner {
                deadlines: Tracker::new(slow_after),
                breaker: self
                    .breaker
                    .map(|cfg| CircuitBreaker::new(self.route.clone(), cfg)),
                route: self.route,
                bulkhead: self.bulkhead,
                timeout: self.timeout,
                retry: self.retry,
                inflight,
            }),
        }
    }
}

/// Cancels the token if the call's future is dropped before it finishes (a borrowed
/// `DropGuard`, without the clone).
struct CancelOnDrop<'a>(Option<&'a CancellationToken>);

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            t.cancel();
        }
    }
}

struct InflightGuard<'a>(&'a metrics::Gauge);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl RoutePolicy {
    /// Starts a stack for `route` with no layers.
    pub fn builder(route: impl Into<Arc<str>>) -> RoutePolicyBuilder {
        RoutePolicyBuilder {
            route: route.into(),
            bulkhead: None,
            breaker: None,
            timeout: None,
            retry: None,
        }
    }

    /// The route's name.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// The route's breaker, when it has one.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.inner.breaker.as_ref()
    }

    /// The route's bulkhead, when it has one.
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.inner.bulkhead.as_ref()
    }

    /// Runs `op` through the stack. `op` is called once per attempt with the attempt's context.
    pub async fn call<T, E, F, Fut>(&self, opts: CallOptions, op: F) -> Result<T, PolicyError<E>>
    where
        F: FnMut(CallContext) -> Fut,
        Fut: Future<Output = Result<T, CallError<E>>>,
    {
        let inner = &*self.inner;
        let _place = match &inner.bulkhead {
            Some(b) => match b.acquire().await {
                Some(p) => Some(p),
                None => {
                    return Err(PolicyError::BulkheadFull {
                        route: inner.route.to_string(),
                        max_in_flight: b.max_in_flight(),
                    });
                }
            },
            None => None,
        };
        inner.inflight.increment(1.0);
        let _inflight = InflightGuard(&inner.inflight);

        let permit = match &inner.breaker {
            Some(b) => match b.try_acquire_untimed() {
                Ok(p) => Some(p),
                Err(rejected) => {
                    return Err(PolicyError::CircuitOpen {
                        route: inner.route.to_string(),
                        retry_after: rejected.retry_after,
                    });
                }
            },
            None => None,
        };

        let token = match &opts.cancel {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        // Dropping this future (the client went away) cancels the actor's work too.
        let cancel_on_drop = CancelOnDrop(Some(&token));
        let deadline = opts.timeout.or(inner.timeout);
        // Long deadlines and slow-call marks come from the route's shared tracker; a short
        // deadline gets a precise timer of its own.
        let precise = deadline.filter(|d| *d < PRECISE_BELOW);
        let ticket = (deadline.is_some() || permit.is_some()).then(|| {
            inner
                .deadlines
                .register(deadline.filter(|d| *d >= PRECISE_BELOW))
        });
        // Only short deadlines pay for a timer of their own.
        let mut timer = precise.map(|after| Box::pin(tokio::time::sleep(after)));
        let retry = inner.retry.as_ref().filter(|_| opts.idempotent);
        let restart_wait = retry.map_or(Duration::MAX, |r| r.max_restart_wait);
        if let Some(r) = retry {
            r.budget.deposit();
        }
        // Attempts, retry backoffs, the caller's cancellation and the deadline are driven by one
        // poll function: no nested state machines on the hot path.
        let mut op = op;
        let mut attempt = 0u32;
        let mut current = pin!(Some(op(CallContext {
            attempt,
            cancel: token.clone(),
            restart_wait,
        })));
        let mut backoff: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut caller_cancel = pin!(opts.cancel.as_ref().map(|_| token.cancelled()));
        let outcome = std::future::poll_fn(|cx| {
            loop {
                if let Some(sleep) = backoff.as_mut() {
                    if sleep.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    backoff = None;
                    current.set(Some(op(CallContext {
                        attempt,
                        cancel: token.clone(),
                        restart_wait,
                    })));
                }
                let Some(fut) = current.as_mut().as_pin_mut() else {
                    break;
                };
                let fault = match fut.poll(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Ok(v)) => return Poll::Ready(Some(Ok(v))),
                    Poll::Ready(Err(CallError::Engine(e))) => {
                        return Poll::Ready(Some(Err(PolicyError::Engine(e))));
                    }
                    Poll::Ready(Err(CallError::Actor(fault))) => fault,
                };
                current.set(None);
                match retry {
                    Some(r)
                        if attempt + 1 < r.max_attempts
                            && fault.retry_after().is_none_or(|d| d <= r.max_restart_wait)
                            && r.budget.try_withdraw() =>
                    {
                        let delay = r.backoff.full_jitter(attempt, random_fraction());
                        tracing::debug!(route = &*inner.route, attempt, ?delay, %fault, "retrying");
                        metrics::counter!("ensemble_retries_total", "route" => inner.route.to_string())
                            .increment(1);
                        attempt += 1;
                        backoff = Some(Box::pin(tokio::time::sleep(delay)));
                    }
                    _ => return Poll::Ready(Some(Err(PolicyError::Actor(fault)))),
                }
            }
            if let Some(c) = caller_cancel.as_mut().as_pin_mut()
                && c.poll(cx).is_ready()
            {
                return Poll::Ready(Some(Err(self.cancelled())));
            }
            if let Some(t) = timer.as_mut()
                && t.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(None);
            }
            match &ticket {
                Some(t) if t.poll_expired(cx).is_ready() => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await;
        let result = match (outcome, deadline) {
            (Some(r), _) => r,
            (None, after) => {
                token.cancel();
                Err(PolicyError::Timeout {
                    route: inner.route.to_string(),
                    after: after.unwrap_or_default(),
                })
            }
        };
        cancel_on_drop.disarm();
        let slow = ticket.is_some_and(|t| t.finish());

        if let Some(permit) = permit {
            match &result {
                Ok(_) | Err(PolicyError::Engine(_)) => permit.record_outcome(false, slow),
                Err(PolicyError::Cancelled { .. }) => drop(permit),
                Err(PolicyError::Actor(ActorFault::Failed {
                    crashed: Some(generation),
                    ..
                })) => permit.record_crash(*generation, slow),
                Err(_) => permit.record_outcome(true, slow),
            }
        }
        result
    }

    fn cancelled<E>(&self) -> PolicyError<E> {
        PolicyError::Cancelled {
            route: self.inner.route.to_string(),
        }
    }
}
