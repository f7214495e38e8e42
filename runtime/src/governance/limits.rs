//! Rate limits: keyed GCRA limiters (`governor`), one per role's limit, keyed by the caller's
//! subject. A call counts against every limit of the caller's roles whose pattern matches the
//! tool; it is refused when one of them is spent, with the time after which it would pass.
//!
//! Refused and denied calls are not counted (a 401, a 403 or a hidden tool never reaches a
//! limiter). Memory is bounded: keys idle for a whole window are dropped by
//! [`Limits::retain_recent`], which the runtime calls on a timer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ensemble_actors::governance::policy::{LimitId, Policy};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// A refused call: which limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// The limit's name (`ROLE/INDEX`).
    pub policy: String,
    /// Calls per window.
    pub quota: u32,
    /// The window, in seconds.
    pub window_s: u64,
    /// How long until a call would pass.
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds (rounded up, at least 1).
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// The JSON-RPC error for a refused call (the same code over every transport).
    pub fn to_error(&self, tool: &str) -> rmcp::ErrorData {
        rmcp::ErrorData::new(
            rmcp::model::ErrorCode(RATE_LIMITED),
            format!(
                "rate limited: {tool} is limited to {} calls per {} s for you (limit {}); retry \
                 in {} ms",
                self.quota,
                self.window_s,
                self.policy,
                self.retry_after.as_millis()
            ),
            Some(serde_json::json!({
                "retry_after_ms": self.retry_after.as_millis() as u64,
                "policy": self.policy,
                "limit": self.quota,
                "window_s": self.window_s,
            })),
        )
    }
}

/// The JSON-RPC error code of a rate-limited call: 429, outside the ranges JSON-RPC and MCP
/// reserve (`-32768..=-32000`), as ToolHive answers (see docs; SEP-3304 may standardise one).
pub const RATE_LIMITED: i32 = 429;

type Limiter<C> = RateLimiter<
    Arc<str>,
    DashMapStateStore<Arc<str>>,
    C,
    governor::middleware::NoOpMiddleware<<C as Clock>::Instant>,
>;

/// Every rate limit of a policy. Cheap to share (`Arc`).
pub struct Limits<C: Clock = DefaultClock> {
    limiters: HashMap<LimitId, (Limiter<C>, String, u32, u64)>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for Limits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("limits", &self.limiters.len())
            .finish()
    }
}

impl Limits<DefaultClock> {
    /// The limits of `policy` on the real clock.
    pub fn new(policy: &Policy) -> Self {
        Self::with_clock(policy, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// The limits of `policy` on `clock` (a fake clock in tests).
    pub fn with_clock(policy: &Policy, clock: C) -> Self {
        let mut limiters = HashMap::new();
        for (id, spec) in policy.rate_limits() {
            let Some((count, window)) = spec.quota() else {
                continue;
            };
            let Some(count_nz) = NonZeroU32::new(count) else {
                continue;
            };
            let period = Duration::from_secs(window) / count;
            let Some(quota) = Quota::with_period(period) else {
                continue;
            };
            let burst = spec.burst.and_then(NonZeroU32::new).unwrap_or(count_nz);
            let limiter = RateLimiter::dashmap_with_clock(quota.allow_burst(burst), clock.clone());
            limiters.insert(*id, (limiter, policy.limit_name(*id), count, window));
        }
        Self { limiters, clock }
    }

    /// Whether there is any limit at all.
    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }

    /// Counts one call of `subject` against `limits`; `Err` names the first that is spent.
    pub fn check(&self, subject: &Arc<str>, limits: &[LimitId]) -> Result<(), Limited> {
        for id in limits {
            let Some((limiter, name, quota, window)) = self.limiters.get(id) else {
                continue;
            };
            if let Err(not_until) = limiter.check_key(subject) {
                metrics::counter!("ensemble_governance_rate_limited_total",
                    "identity" => subject.to_string())
                .increment(1);
                return Err(Limited {
                    policy: name.clone(),
                    quota: *quota,
                    window_s: *window,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }

    /// Drops the state of keys that have been idle long enough to be back at full burst.
    pub fn retain_recent(&self) {
        for (limiter, ..) in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held, over all limits (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.limiters.values().map(|(l, ..)| l.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensemble_actors::governance::policy::{Kind, Known, RateSpec, RoleSpec};
    use governor::clock::FakeRelativeClock;

    fn policy() -> Policy {
        let roles = vec![RoleSpec {
            name: "r".into(),
            tools: vec!["*".into()],
            rate_limits: vec![
                RateSpec {
                    tools: "registry_*".into(),
                    per_second: Some(2),
                    ..RateSpec::default()
                },
                RateSpec {
                    tools: "registry_put".into(),
                    per_minute: Some(3),
                    burst: Some(1),
                    ..RateSpec::default()
                },
            ],
            ..RoleSpec::default()
        }];
        Policy::compile(&roles, &Known::tools(["registry_get", "registry_put"])).unwrap()
    }

    #[test]
    fn limits_count_per_subject_and_refill_with_time() {
        let policy = policy();
        let clock = FakeRelativeClock::default();
        let limits = Limits::with_clock(&policy, clock.clone());
        let roles = policy.role_set(["r"]).unwrap();
        let get = policy.decide(&roles, Kind::Tool, "registry_get").limits;
        let alice: Arc<str> = "alice".into();
        let bob: Arc<str> = "bob".into();
        assert!(limits.check(&alice, &get).is_ok());
        assert!(limits.check(&alice, &get).is_ok());
        let refused = limits.check(&alice, &get).unwrap_err();
        assert_eq!(refused.policy, "r/0");
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert_eq!(refused.retry_after_s(), 1);
        // Bob has his own allowance.
        assert!(limits.check(&bob, &get).is_ok());
        clock.advance(Duration::from_millis(500));
        assert!(limits.check(&alice, &get).is_ok());
        assert!(limits.check(&alice, &get).is_err());

        // registry_put counts against both limits; the per-minute one, burst 1, refuses next.
        let put = policy.decide(&roles, Kind::Tool, "registry_put").limits;
        assert_eq!(put.len(), 2);
        let carol: Arc<str> = "carol".into();
        assert!(limits.check(&carol, &put).is_ok());
        let refused = limits.check(&carol, &put).unwrap_err();
        assert_eq!(refused.policy, "r/1");
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        let e = refused.to_error("registry_put");
        assert_eq!(e.code.0, RATE_LIMITED);
        assert_eq!(e.data.unwrap()["retry_after_ms"], 20_000);
    }

    #[test]
    fn idle_keys_are_dropped() {
        let policy = policy();
        let clock = FakeRelativeClock::default();
        let limits = Limits::with_clock(&policy, clock.clone());
        let roles = policy.role_set(["r"]).unwrap();
        let get = policy.decide(&roles, Kind::Tool, "registry_get").limits;
        for i in 0..100 {
            let who: Arc<str> = format!("user{i}").into();
            limits.check(&who, &get).unwrap();
        }
        assert_eq!(limits.keys(), 100);
        clock.advance(Duration::from_secs(5));
        limits.retain_recent();
        assert_eq!(limits.keys(), 0);
    }
}
