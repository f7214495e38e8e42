//! The actor shape the store-backed engines share: state opened from the store in `pre_start`,
//! a mutation answered only once durable, cancellation checked before work starts, reads
//! answered at once.
//!
//! An engine implements [`StoreBacked`] for its state; its actor then reads:
//!
//! ```ignore
//! async fn pre_start(&self, _: ActorRef<Msg>, store: Store) -> Result<State, ActorProcessingErr> {
//!     engine::open(store)
//! }
//!
//! // in `handle`:
//! Msg::Put(req, cancel, reply) => engine::mutate(state, &cancel, reply, |s| s.put(req)),
//! Msg::Get(req, _, reply) => engine::read(reply, state.get(req)),
//! ```

use ensemble_supervision::CancellationToken;
use ractor::{ActorProcessingErr, RpcReplyPort};

use crate::store::{Store, StoreError};

/// An engine's state that lives in the store.
pub trait StoreBacked: Sized {
    /// The engine's error; a failed flush becomes one through [`StoreBacked::store_error`].
    type Error: Send + 'static;

    /// Opens the engine's trees in `store`.
    fn open(store: Store) -> Result<Self, StoreError>;

    /// The store the engine writes to.
    fn store(&self) -> &Store;

    /// The engine's error for a store failure.
    fn store_error(e: StoreError) -> Self::Error;
}

/// The state for `pre_start`: opened from `store`; a store that cannot be opened fails the start.
pub fn open<S: StoreBacked>(store: Store) -> Result<S, ActorProcessingErr> {
    Ok(S::open(store)?)
}

/// A mutation: not started (and not answered) when the caller cancelled before it began;
/// `work`'s refusal answered at once, its success once durable ([`reply_when_durable`]).
pub fn mutate<S, T>(
    state: &mut S,
    cancel: &CancellationToken,
    reply: RpcReplyPort<Result<T, S::Error>>,
    work: impl FnOnce(&mut S) -> Result<T, S::Error>,
) where
    S: StoreBacked,
    T: Send + 'static,
{
    if cancel.is_cancelled() {
        return;
    }
    let answer = work(state);
    reply_when_durable(state.store(), reply, answer, S::store_error);
}

/// A read: answered at once (a caller that went away is no error).
pub fn read<T>(reply: RpcReplyPort<T>, answer: T) {
    let _ = reply.send(answer);
}

/// Answers a write: a refusal at once; a success once every write made so far is durable,
/// without holding the actor's mailbox, so concurrent writes share one flush (group commit).
pub fn reply_when_durable<T, E>(
    store: &Store,
    reply: RpcReplyPort<Result<T, E>>,
    answer: Result<T, E>,
    on_error: fn(StoreError) -> E,
) where
    T: Send + 'static,
    E: Send + 'static,
{
    match answer {
        Ok(answer) => {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = reply.send(store.flush().await.map(|_| answer).map_err(on_error));
            });
        }
        Err(refused) => {
            let _ = reply.send(Err(refused));
        }
    }
}
