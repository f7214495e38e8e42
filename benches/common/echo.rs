//! The echo actor the supervision benchmarks call: it answers `x + 1` unless the call was
//! cancelled, and panics on request.

use ensemble::supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Messages of [`Echo`].
pub enum Msg {
    /// Answers `x + 1`.
    Work(u64, CancellationToken, RpcReplyPort<u64>),
    /// Panics (the restart benchmark; the cost benchmark never sends it).
    #[allow(dead_code)]
    Panic,
}

/// An actor as cheap as an actor gets.
pub struct Echo;

impl Actor for Echo {
    type Msg = Msg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Work(x, cancel, reply) => {
                // What a real engine does at its first checkpoint.
                if !cancel.is_cancelled() {
                    let _ = reply.send(x + 1);
                }
            }
            Msg::Panic => panic!("benchmark crash"),
        }
        Ok(())
    }
}
