//! Call policies: what a caller wraps around a call to a supervised actor.
//!
//! [`RoutePolicy`] composes them in one fixed order, outermost first:
//! bulkhead → circuit breaker → timeout → retry. The bulkhead bounds the work in flight before
//! anything else is spent; the breaker judges whole calls (retries included) and rejects fast
//! while the actor is sick; the timeout is the caller's total deadline, retries included; retries
//! are innermost so that each one is still bounded by everything outside it.

mod breaker;
mod bulkhead;
mod deadline;
mod retry;
mod route;

pub use breaker::{
    BreakerConfig, BreakerCore, BreakerPermit, BreakerState, CircuitBreaker, Permit, Rejected,
    Transition,
};
pub use bulkhead::{Bulkhead, BulkheadPermit};
pub use retry::{RetryBudget, RetryPolicy};
pub use route::{CallContext, CallOptions, RoutePolicy, RoutePolicyBuilder};
