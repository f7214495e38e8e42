//! Slots: the always-current address of a supervised actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, ActorStatus, Message, MessagingErr, RpcReplyPort};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fault::ActorFault;
use crate::policy::CallContext;

/// Where a slot's actor is in its life.
pub enum SlotState<M: Message> {
    /// Not started yet.
    Starting,
    /// Serving; `generation` counts the starts (1 for the first).
    Running {
        /// The live actor.
        actor: ActorRef<M>,
        /// 1 for the first start, 2 after the first restart, …
        generation: u64,
    },
    /// Down; a restart is scheduled at `at` (or is due now).
    Restarting {
        /// When the restart is due.
        at: Instant,
    },
    /// Down for good unless a parent supervisor restarts the whole subtree.
    Stopped,
    /// Its supervision tree has stopped (shut down, or its root gave up): nothing will start
    /// it again. Calls fail at once instead of waiting for a restart.
    Gone,
}

impl<M: Message> std::fmt::Debug for SlotState<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotState::Starting => f.write_str("Starting"),
            SlotState::Running { actor, generation } => f
                .debug_struct("Running")
                .field("actor", &actor.get_id())
                .field("generation", generation)
                .finish(),
            SlotState::Restarting { at } => f.debug_struct("Restarting").field("at", at).finish(),
            SlotState::Stopped => f.write_str("Stopped"),
            SlotState::Gone => f.write_str("Gone"),
        }
    }
}

impl<M: Message> Clone for SlotState<M> {
    fn clone(&self) -> Self {
        match self {
            SlotState::Starting => SlotState::Starting,
            SlotState::Running { actor, generation } => SlotState::Running {
                actor: actor.clone(),
                generation: *generation,
            },
            SlotState::Restarting { at } => SlotState::Restarting { at: *at },
            SlotState::Stopped => SlotState::Stopped,
            SlotState::Gone => SlotState::Gone,
        }
    }
}

/// The current [`ActorRef`] of a supervised child. The supervisor swaps it on every restart, so
/// a caller that goes through the slot never holds a stale reference.
///
/// Cloning a slot is cheap and every clone sees the same actor.
pub struct ActorSlot<M: Message> {
    inner: Arc<SlotInner<M>>,
}

struct SlotInner<M: Message> {
    name: Arc<str>,
    state: watch::Sender<SlotState<M>>,
    starts: AtomicU64,
}

impl<M: Message> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Message> std::fmt::Debug for ActorSlot<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSlot")
            .field("name", &self.inner.name)
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

impl<M: Message> ActorSlot<M> {
    /// An empty slot for the child called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            inner: Arc::new(SlotInner {
                name: name.into(),
                state: watch::Sender::new(SlotState::Starting),
                starts: AtomicU64::new(0),
            }),
        }
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A snapshot of the state.
    pub fn state(&self) -> SlotState<M> {
        self.inner.state.borrow().clone()
    }

    /// The start count of the actor now serving, if one is.
    pub fn generation(&self) -> Option<u64> {
        match &*self.inner.state.borrow() {
            SlotState::Running { generation, .. } => Some(*generation),
            _ => None,
        }
    }

    /// The live actor, or why there is none.
    pub fn get(&self) -> Result<ActorRef<M>, ActorFault> {
        match &*self.inner.state.borrow() {
            SlotState::Running { actor, .. } if is_alive(actor) => Ok(actor.clone()),
            // Dead, and its supervisor has not heard yet: a restart is on its way.
            SlotState::Running { .. } => Err(ActorFault::Unavailable {
                actor: self.name().to_string(),
                retry_after: Some(Duration::ZERO),
            }),
            SlotState::Restarting { at } => Err(ActorFault::Unavailable {
                actor: self.name().to_string(),
                retry_after: Some(at.saturating_duration_since(Instant::now())),
            }),
            SlotState::Starting | SlotState::Stopped | SlotState::Gone => {
                Err(ActorFault::Unavailable {
                    actor: self.name().to_string(),
                    retry_after: None,
                })
            }
        }
    }

    /// Waits until an actor serves the slot and returns it. Bound it with a timeout: a child
    /// that is stopped for good never comes back.
    pub async fn ready(&self) -> ActorRef<M> {
        let mut rx = self.inner.state.subscribe();
        loop {
            if let SlotState::Running { actor, .. } = &*rx.borrow_and_update()
                && is_alive(actor)
            {
                return actor.clone();
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as this slot: unreachable, but never spin.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Like [`ready`](Self::ready) for a retry: the live actor and its generation, or an error
    /// at once when the slot is [`SlotState::Gone`] (nothing will restart it) or its restart is
    /// due later than `limit` from now.
    async fn ready_for_retry(&self, limit: Duration) -> Result<(ActorRef<M>, u64), ActorFault> {
        let mut rx = self.inner.state.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                SlotState::Running { actor, generation } if is_alive(actor) => {
                    return Ok((actor.clone(), *generation));
                }
                SlotState::Gone => {
                    return Err(ActorFault::Unavailable {
                        actor: self.name().to_string(),
                        retry_after: None,
                    });
                }
                SlotState::Restarting { at } => {
                    let wait = at.saturating_duration_since(Instant::now());
                    if wait > limit {
                        return Err(ActorFault::Unavailable {
                            actor: self.name().to_string(),
                            retry_after: Some(wait),
                        });
                    }
                }
                _ => {}
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the slot is served by an actor of a generation other than `seen`.
    pub async fn next_generation(&self, seen: u64) -> ActorRef<M> {
        let mut rx = self.inner.state.subscribe();
        loop {
            if let SlotState::Running { actor, generation } = &*rx.borrow_and_update()
                && *generation != seen
                && is_alive(actor)
            {
                return actor.clone();
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A receiver of every state change.
    pub fn subscribe(&self) -> watch::Receiver<SlotState<M>> {
        self.inner.state.subscribe()
    }

    /// Sends a request to the current actor and awaits its reply.
    ///
    /// A first attempt fails fast when no actor is running; a retry ([`CallContext::is_retry`])
    /// waits for the restarted actor (the policy's timeout bounds the wait). If the actor dies
    /// while holding the call, the reply port is dropped and the call fails with
    /// [`ActorFault::Failed`].
    ///
    /// [`call_with_cancel`](Self::call_with_cancel) does the same and hands the context's
    /// token to the message without cloning it.
    pub async fn call<T, F>(&self, ctx: &CallContext, build: F) -> Result<T, ActorFault>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        if ctx.is_retry() {
            let (actor, generation) = self.ready_for_retry(ctx.restart_wait).await?;
            return self.call_actor(&actor, generation, build).await;
        }
        let answer = self.send_now(build)?;
        self.await_answer(answer).await
    }

    /// Like [`call`](Self::call), moving the context's cancellation token into the message:
    /// `build` gets the token and the reply port.
    ///
    /// ```
    /// # use ensemble_supervision::{ActorFault, ActorSlot, CallContext, CancellationToken};
    /// # use ractor::RpcReplyPort;
    /// enum Msg { Work(u64, CancellationToken, RpcReplyPort<u64>) }
    /// async fn work(slot: &ActorSlot<Msg>, ctx: CallContext) -> Result<u64, ActorFault> {
    ///     slot.call_with_cancel(ctx, |cancel, reply| Msg::Work(1, cancel, reply)).await
    /// }
    /// ```
    pub async fn call_with_cancel<T, F>(&self, ctx: CallContext, build: F) -> Result<T, ActorFault>
    where
        T: Send + 'static,
        F: FnOnce(CancellationToken, RpcReplyPort<T>) -> M,
    {
        let CallContext {
            attempt,
            cancel,
            restart_wait,
        } = ctx;
        if attempt > 0 {
            let (actor, generation) = self.ready_for_retry(restart_wait).await?;
            return self
                .call_actor(&actor, generation, |reply| build(cancel, reply))
                .await;
        }
        let answer = self.send_now(|reply| build(cancel, reply))?;
        self.await_answer(answer).await
    }

    /// Like [`call`](Self::call) for a first attempt, without a context.
    pub async fn ask<T, F>(&self, build: F) -> Result<T, ActorFault>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        let answer = self.send_now(build)?;
        self.await_answer(answer).await
    }

    /// Sends the request to the live actor while looking at the slot, so that the call needs no
    /// reference of its own to the actor; fails fast when there is none.
    fn send_now<T, F>(&self, build: F) -> Result<Pending<T>, ActorFault>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        let state = self.inner.state.borrow();
        let SlotState::Running { actor, generation } = &*state else {
            drop(state);
            return Err(self.get().err().unwrap_or_else(|| self.unavailable()));
        };
        if !is_alive(actor) {
            drop(state);
            return Err(self.get().err().unwrap_or_else(|| self.unavailable()));
        }
        let (tx, rx) = oneshot::channel();
        match actor.send_message(build(tx.into())) {
            Ok(()) => Ok(Pending {
                answer: rx,
                generation: *generation,
            }),
            Err(e) => {
                drop(state);
                Err(self.send_error(e))
            }
        }
    }

    async fn await_answer<T>(&self, pending: Pending<T>) -> Result<T, ActorFault> {
        let Pending { answer, generation } = pending;
        answer
            .await
            .map_err(|_| self.stopped_before_answering(generation))
    }

    fn unavailable(&self) -> ActorFault {
        ActorFault::Unavailable {
            actor: self.name().to_string(),
            retry_after: Some(Duration::ZERO),
        }
    }

    fn stopped_before_answering(&self, generation: u64) -> ActorFault {
        ActorFault::Failed {
            actor: self.name().to_string(),
            reason: "it stopped before answering".to_string(),
            crashed: Some(generation),
        }
    }

    fn send_error(&self, e: MessagingErr<M>) -> ActorFault {
        match e {
            MessagingErr::SendErr(_) | MessagingErr::ChannelClosed => ActorFault::Unavailable {
                actor: self.name().to_string(),
                retry_after: None,
            },
            MessagingErr::InvalidActorType => ActorFault::Failed {
                actor: self.name().to_string(),
                reason: "the slot holds an actor of another message type".to_string(),
                crashed: None,
            },
        }
    }

    async fn call_actor<T, F>(
        &self,
        actor: &ActorRef<M>,
        generation: u64,
        build: F,
    ) -> Result<T, ActorFault>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        match actor.call(build, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::SenderError) => Err(self.stopped_before_answering(generation)),
            Ok(CallResult::Timeout) => Err(ActorFault::Failed {
                actor: self.name().to_string(),
                reason: "no answer in time".to_string(),
                crashed: None,
            }),
            Err(e) => Err(self.send_error(e)),
        }
    }

    pub(crate) fn set_running(&self, actor: ActorRef<M>) {
        let generation = self.inner.starts.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner
            .state
            .send_replace(SlotState::Running { actor, generation });
    }
}

/// A request sent to the actor of `generation`, awaiting its answer.
struct Pending<T> {
    answer: oneshot::Receiver<T>,
    generation: u64,
}

/// False once the actor has left its message loop: it may still be published in the slot for
/// the moment it takes its supervisor to hear of the exit.
fn is_alive<M: Message>(actor: &ActorRef<M>) -> bool {
    actor.get_status() < ActorStatus::Stopping
}

/// Type-erased view of a slot that a supervisor uses to mark its child down.
pub(crate) trait SlotControl: Send + Sync {
    fn mark_down(&self, restart_at: Option<Instant>);
    /// Nothing will start the child again (its tree stopped).
    fn mark_gone(&self);
}

impl<M: Message> SlotControl for SlotInner<M> {
    fn mark_down(&self, restart_at: Option<Instant>) {
        self.state.send_replace(match restart_at {
            Some(at) => SlotState::Restarting { at },
            None => SlotState::Stopped,
        });
    }

    fn mark_gone(&self) {
        self.state.send_replace(SlotState::Gone);
    }
}

impl<M: Message> ActorSlot<M> {
    pub(crate) fn control(&self) -> Arc<dyn SlotControl> {
        self.inner.clone()
    }
}
