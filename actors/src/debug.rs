//! A test-only engine: tools that exist to exercise the runtime's failure handling (slow steps
//! for crash and cancellation tests).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use ensemble_protocol::debug::{SleepRequest, SleepResponse};
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The debug engine's messages.
pub enum DebugMsg {
    /// Sleeps `ms` (cancellable), then answers; the start is logged first.
    Sleep(
        SleepRequest,
        CancellationToken,
        RpcReplyPort<Result<SleepResponse, String>>,
    ),
}

/// The debug engine: its argument is a file to which each sleep's label is appended, as a line,
/// when the sleep starts (so a test can count executions across a process kill).
#[derive(Debug, Default, Clone, Copy)]
pub struct DebugActor;

/// The debug engine's state.
#[derive(Debug)]
pub struct DebugState {
    log: Option<PathBuf>,
    counts: HashMap<String, u64>,
}

impl Actor for DebugActor {
    type Msg = DebugMsg;
    type State = DebugState;
    type Arguments = Option<PathBuf>;

    async fn pre_start(
        &self,
        _: ActorRef<DebugMsg>,
        log: Option<PathBuf>,
    ) -> Result<DebugState, ActorProcessingErr> {
        Ok(DebugState {
            log,
            counts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<DebugMsg>,
        msg: DebugMsg,
        state: &mut DebugState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DebugMsg::Sleep(req, cancel, reply) => {
                let count = {
                    let c = state.counts.entry(req.label.clone()).or_insert(0);
                    *c += 1;
                    *c
                };
                if let Some(path) = &state.log {
                    // Synced before the sleep: the line must outlive a kill -9 of the process.
                    let logged = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| {
                            writeln!(f, "{}", req.label)?;
                            f.sync_data()
                        });
                    if let Err(e) = logged {
                        let _ = reply.send(Err(format!("test log {}: {e}", path.display())));
                        return Ok(());
                    }
                }
                // The actor keeps serving while this call sleeps.
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(req.ms)) => {
                            let _ = reply.send(Ok(SleepResponse {
                                label: req.label,
                                slept_ms: req.ms,
                                count,
                            }));
                        }
                        _ = cancel.cancelled() => {}
                    }
                });
            }
        }
        Ok(())
    }
}
