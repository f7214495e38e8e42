//! A worker actor whose behaviour the tests steer, and a shared log of starts and stops.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_supervision::{
    ActorSlot, CallOptions, CancellationToken, ChildSpec, PolicyError, RoutePolicy,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Lines like `start:a`, `stop:a`, in the order they happened.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Shared switches and counters of one worker (across its restarts).
#[derive(Default)]
pub struct Control {
    /// While set, `Work` panics.
    pub failing: AtomicBool,
    /// `Work` messages handled (including the ones that panicked).
    pub handled: AtomicU64,
    /// Set when `Slow` saw its token cancelled.
    pub saw_cancel: AtomicBool,
    /// How long `post_stop` takes.
    pub stop_delay_ms: AtomicU64,
}

pub enum WorkerMsg {
    /// Answers with `x + 1`, or panics while `failing`.
    Work(u64, RpcReplyPort<u64>),
    /// Panics.
    Panic,
    /// Returns an error from the handler.
    Fail,
    /// Stops normally.
    Stop,
    /// Works for `duration` unless the token is cancelled first; answers whether it finished.
    Slow(Duration, CancellationToken, RpcReplyPort<bool>),
}

pub struct Worker {
    pub name: String,
    pub log: Log,
    pub control: Arc<Control>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<WorkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        self.log.push(format!("start:{}", self.name));
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<WorkerMsg>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let delay = self.control.stop_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.log.push(format!("stop:{}", self.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Work(x, reply) => {
                self.control.handled.fetch_add(1, Ordering::SeqCst);
                if self.control.failing.load(Ordering::SeqCst) {
                    panic!("worker {} told to fail", self.name);
                }
                let _ = reply.send(x + 1);
            }
            WorkerMsg::Panic => panic!("worker {} panicked on purpose", self.name),
            WorkerMsg::Fail => return Err(format!("worker {} failed on purpose", self.name).into()),
            WorkerMsg::Stop => myself.stop(Some("done".into())),
            WorkerMsg::Slow(duration, token, reply) => {
                let finished = tokio::select! {
                    _ = token.cancelled() => {
                        self.control.saw_cancel.store(true, Ordering::SeqCst);
                        false
                    }
                    _ = tokio::time::sleep(duration) => true,
                };
                let _ = reply.send(finished);
            }
        }
        Ok(())
    }
}

/// A slot and child spec for a worker called `name`.
pub fn worker(name: &str, log: &Log) -> (ActorSlot<WorkerMsg>, ChildSpec, Arc<Control>) {
    let slot = ActorSlot::new(name);
    let control = Arc::new(Control::default());
    let (n, l, c) = (name.to_string(), log.clone(), control.clone());
    let spec = ChildSpec::actor(&slot, move || {
        (
            Worker {
                name: n.clone(),
                log: l.clone(),
                control: c.clone(),
            },
            (),
        )
    });
    (slot, spec, control)
}

/// Waits (bounded) until the slot serves a generation other than `seen`.
pub async fn restarted(slot: &ActorSlot<WorkerMsg>, seen: u64) -> ActorRef<WorkerMsg> {
    tokio::time::timeout(Duration::from_secs(10), slot.next_generation(seen))
        .await
        .expect("the child was not restarted within 10 s")
}

/// Waits (bounded) until the log has `n` lines and returns them.
pub async fn log_lines(log: &Log, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..1000 {
        got.extend(log.take());
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} log lines, got {got:?}");
}

/// `Work(1)` through `policy` to the worker in `slot`.
pub async fn work(
    policy: &RoutePolicy,
    slot: &ActorSlot<WorkerMsg>,
    opts: CallOptions,
) -> Result<u64, PolicyError<String>> {
    policy
        .call(opts, |ctx| {
            let slot = slot.clone();
            async move { Ok(slot.call(&ctx, |r| WorkerMsg::Work(1, r)).await?) }
        })
        .await
}
