//! A host's slow tool for tests: `host_nap` sleeps `ms` milliseconds unless cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ensemble::runtime::Runtime;
use ensemble::runtime::engines::default_policy;
use ensemble::runtime::router::{ActorTool, Annotations};
use ensemble::supervision::{
    ActorSlot, CancellationToken, ChildSpec, Supervisor, SupervisorMsg, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, JsonSchema)]
pub struct NapRequest {
    pub ms: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct NapResponse {
    pub slept_ms: u64,
}

pub enum NapMsg {
    Nap(
        NapRequest,
        CancellationToken,
        RpcReplyPort<Result<NapResponse, String>>,
    ),
}

/// Sleeps unless cancelled (each nap on a task of its own, so naps overlap); records that it
/// saw a cancellation.
pub struct Napper(pub Arc<AtomicBool>);

impl Actor for Napper {
    type Msg = NapMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<NapMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<NapMsg>,
        msg: NapMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let NapMsg::Nap(req, cancel, reply) = msg;
        let saw_cancel = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(req.ms)) => {
                    let _ = reply.send(Ok(NapResponse { slept_ms: req.ms }));
                }
                _ = cancel.cancelled() => saw_cancel.store(true, Ordering::SeqCst),
            }
        });
        Ok(())
    }
}

/// Starts a host supervisor with a napper and registers it as `host_nap` on `runtime`;
/// returns the supervisor and the flag the napper sets when a nap is cancelled.
pub async fn host_nap(
    runtime: &Runtime,
    annotations: Annotations,
) -> (ActorRef<SupervisorMsg>, Arc<AtomicBool>) {
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let slot = ActorSlot::new("napper");
    let flag = saw_cancel.clone();
    let (host, _) = Supervisor::start(
        SupervisorSpec::new("host")
            .child(ChildSpec::actor(&slot, move || (Napper(flag.clone()), ()))),
    )
    .await
    .expect("host supervisor");
    runtime
        .router()
        .register_actor(
            ActorTool {
                name: "host_nap",
                description: "Sleep.",
                annotations,
                slot,
                policy: default_policy("host_nap"),
            },
            NapMsg::Nap,
        )
        .expect("register host_nap");
    (host, saw_cancel)
}
