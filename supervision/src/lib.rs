//! Ensemble's supervision: supervisor trees on [ractor], and the call policies a caller wraps
//! around a call to a supervised actor.
//!
//! - [`Supervisor`] restarts children with Erlang/OTP semantics: [`Strategy`] (`OneForOne`,
//!   `OneForAll`, `RestForOne`), [`RestartType`] (`Permanent`, `Transient`, `Temporary`), restart
//!   [`Intensity`] with escalation to the parent, exponential [`Backoff`] with jitter, ordered
//!   start and reverse-order graceful stop.
//! - [`ActorSlot`] always holds the *current* `ActorRef` of a child, so callers never hold a
//!   stale one; [`EventBus`] streams starts, failures, restarts and give-ups.
//! - [`RoutePolicy`] composes bulkhead → [`CircuitBreaker`] → timeout → retry for one route.
//!
//! ```
//! use std::time::Duration;
//! use ensemble_supervision::*;
//! use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
//!
//! struct Doubler;
//! enum Msg { Double(u64, RpcReplyPort<u64>) }
//!
//! impl Actor for Doubler {
//!     type Msg = Msg;
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<Msg>, msg: Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         let Msg::Double(x, reply) = msg;
//!         let _ = reply.send(x * 2);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let slot = ActorSlot::new("doubler");
//! let spec = SupervisorSpec::new("engines").child(ChildSpec::actor(&slot, || (Doubler, ())));
//! let (supervisor, _) = Supervisor::start(spec).await.unwrap();
//!
//! let policy = RoutePolicy::builder("doubler")
//!     .bulkhead(16)
//!     .breaker(BreakerConfig::default())
//!     .timeout(Duration::from_secs(1))
//!     .build();
//! let four: Result<u64, PolicyError<String>> = policy
//!     .call(CallOptions::idempotent(), |ctx| {
//!         let slot = slot.clone();
//!         async move { Ok(slot.call(&ctx, |reply| Msg::Double(2, reply)).await?) }
//!     })
//!     .await;
//! assert_eq!(four, Ok(4));
//! supervisor.stop_and_wait(None, None).await.unwrap();
//! # });
//! ```

#![warn(missing_docs)]

mod backoff;
mod event;
mod fault;
mod intensity;
mod policy;
mod slot;
mod strategy;
mod supervisor;

pub use backoff::{Backoff, random_fraction};
pub use event::{EventBus, EventKind, SupervisorEvent};
pub use fault::{ActorFault, CallError, PolicyError, human_duration};
pub use intensity::{Intensity, RestartHistory};
pub use policy::{
    BreakerConfig, BreakerCore, BreakerPermit, BreakerState, Bulkhead, BulkheadPermit, CallContext,
    CallOptions, CircuitBreaker, Permit, Rejected, RetryBudget, RetryPolicy, RoutePolicy,
    RoutePolicyBuilder, Transition,
};
pub use slot::{ActorSlot, SlotState};
pub use strategy::{ExitKind, RestartPlan, RestartType, Strategy, plan};
pub use supervisor::{
    ChildInfo, ChildSpec, ChildStatus, StartFuture, Supervisor, SupervisorError, SupervisorMsg,
    SupervisorSpec, SupervisorState,
};
pub use tokio_util::sync::CancellationToken;
