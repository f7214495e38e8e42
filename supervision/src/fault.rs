//! What can go wrong when calling a supervised actor, and how it is reported to callers.

use std::fmt;
use std::time::Duration;

/// A fault in reaching or running the actor behind a slot.
///
/// Faults are the actor's problem, not the caller's: they count as failures for the circuit
/// breaker and an idempotent call may be retried once the actor is back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorFault {
    /// No actor is running behind the slot right now (it is restarting, or it was stopped).
    #[error("{}", unavailable_message(actor, *retry_after))]
    Unavailable {
        /// The supervised child's name.
        actor: String,
        /// When a restart is scheduled, how long until it is due.
        retry_after: Option<Duration>,
    },
    /// The actor died (panicked or returned an error) while it held the call.
    #[error("engine `{actor}` failed and is restarting: {reason}")]
    Failed {
        /// The supervised child's name.
        actor: String,
        /// What the failure said, as far as it is known.
        reason: String,
        /// The generation (start count) of the actor that died holding the call, when the call
        /// died with it. Every call that dies with one crash carries the same generation, so a
        /// circuit breaker counts the crash once, not once per call.
        crashed: Option<u64>,
    },
}

fn unavailable_message(actor: &str, retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(
            "engine `{actor}` is restarting; retry in {}",
            human_duration(d)
        ),
        None => format!("engine `{actor}` is not running; retry shortly"),
    }
}

impl ActorFault {
    /// How long the caller should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ActorFault::Unavailable { retry_after, .. } => *retry_after,
            ActorFault::Failed { .. } => None,
        }
    }
}

/// What the operation wrapped by a [`RoutePolicy`](crate::RoutePolicy) may fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The actor could not be reached or died mid-call. Counts as a breaker failure; retried
    /// for idempotent calls.
    Actor(ActorFault),
    /// The actor answered with an error of its own domain (bad input, not found, …). The actor
    /// is healthy: not a breaker failure and never retried.
    Engine(E),
}

impl<E> From<ActorFault> for CallError<E> {
    fn from(fault: ActorFault) -> Self {
        CallError::Actor(fault)
    }
}

/// Why a call through a [`RoutePolicy`](crate::RoutePolicy) did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError<E> {
    /// The route already has its maximum number of calls in flight.
    BulkheadFull {
        /// The route's name.
        route: String,
        /// The route's limit.
        max_in_flight: usize,
    },
    /// The route's circuit breaker is open (or half-open with all probe calls taken).
    CircuitOpen {
        /// The route's name.
        route: String,
        /// How long until the breaker lets a probe call through, when known.
        retry_after: Option<Duration>,
    },
    /// The call did not finish within its deadline; its cancellation token was cancelled.
    Timeout {
        /// The route's name.
        route: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The caller cancelled the call.
    Cancelled {
        /// The route's name.
        route: String,
    },
    /// The actor was unreachable or failed, after any retries.
    Actor(ActorFault),
    /// The actor answered with a domain error.
    Engine(E),
}

impl<E> PolicyError<E> {
    /// How long the caller should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PolicyError::CircuitOpen { retry_after, .. } => *retry_after,
            PolicyError::Actor(fault) => fault.retry_after(),
            _ => None,
        }
    }

    /// True when the failure is the runtime's (overload, breaker, timeout, crash), false when it
    /// is the engine's domain answer or the caller's own cancellation.
    pub fn is_fault(&self) -> bool {
        !matches!(self, PolicyError::Engine(_) | PolicyError::Cancelled { .. })
    }
}

impl<E: fmt::Display> fmt::Display for PolicyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BulkheadFull {
                route,
                max_in_flight,
            } => write!(
                f,
                "`{route}` is busy: its limit of {max_in_flight} calls in flight is reached; \
                 retry when earlier calls have finished"
            ),
            PolicyError::CircuitOpen { route, retry_after } => match retry_after {
                Some(d) => write!(
                    f,
                    "`{route}` is failing and its circuit breaker is open; retry in {}",
                    human_duration(*d)
                ),
                None => write!(
                    f,
                    "`{route}` is recovering and its circuit breaker is probing with a few calls; \
                     retry shortly"
                ),
            },
            PolicyError::Timeout { route, after } => write!(
                f,
                "`{route}` did not answer within {} and its work was cancelled; retry, or \
                 allow a longer timeout",
                human_duration(*after)
            ),
            PolicyError::Cancelled { route } => write!(f, "the call to `{route}` was cancelled"),
            PolicyError::Actor(fault) => fault.fmt(f),
            PolicyError::Engine(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for PolicyError<E> {}

/// Formats a duration the way a person reads it: `250ms`, `1.5s`, `2m 5s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{}s", s.round() as u64)
        } else {
            format!("{s:.1}s")
        }
    } else {
        let secs = d.as_secs();
        format!("{}m {}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 5s");
    }

    #[test]
    fn messages_say_what_to_do() {
        let e: PolicyError<String> = PolicyError::CircuitOpen {
            route: "registry".into(),
            retry_after: Some(Duration::from_secs(4)),
        };
        assert_eq!(
            e.to_string(),
            "`registry` is failing and its circuit breaker is open; retry in 4s"
        );
        let f = ActorFault::Unavailable {
            actor: "registry".into(),
            retry_after: Some(Duration::from_millis(20)),
        };
        assert_eq!(
            f.to_string(),
            "engine `registry` is restarting; retry in 20ms"
        );
        assert!(PolicyError::<String>::Actor(f).is_fault());
        assert!(!PolicyError::Engine("bad input".to_string()).is_fault());
    }
}
