//! The supervisor actor.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RactorErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tokio::time::Instant;

use crate::backoff::{Backoff, random_fraction};
use crate::event::{EventBus, EventKind};
use crate::intensity::{Intensity, RestartHistory};
use crate::slot::{ActorSlot, SlotControl};
use crate::strategy::{ExitKind, RestartType, Strategy, plan};

/// The future a child's start function returns: the started child, linked to the supervisor.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

type StartFn = dyn Fn(ActorCell) -> StartFuture + Send + Sync;

/// How to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    name: Arc<str>,
    start: Arc<StartFn>,
    slot: Option<Arc<dyn SlotControl>>,
    /// For a nested supervisor: the slots of everything under it, marked down with it so that
    /// callers of its engines learn when the subtree restarts.
    descendants: Vec<Arc<dyn SlotControl>>,
    restart: RestartType,
    shutdown: Duration,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

impl ChildSpec {
    /// A child actor made by `make` (called again for each restart) and published in `slot`.
    /// The child is named after the slot.
    ///
    /// ```no_run
    /// # use ensemble_supervision::{ActorSlot, ChildSpec};
    /// # use ractor::{Actor, ActorRef, ActorProcessingErr};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     type Msg = (); type State = (); type Arguments = ();
    /// #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
    /// # }
    /// let slot = ActorSlot::new("echo");
    /// let spec = ChildSpec::actor(&slot, || (Echo, ()));
    /// ```
    pub fn actor<A, F>(slot: &ActorSlot<A::Msg>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let publish = slot.clone();
        let start = move |supervisor: ActorCell| -> StartFuture {
            let (actor, args) = make();
            let publish = publish.clone();
            Box::pin(async move {
                let (actor_ref, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
                publish.set_running(actor_ref.clone());
                Ok(actor_ref.get_cell())
            })
        };
        Self {
            name: slot.name().into(),
            start: Arc::new(start),
            slot: Some(slot.control()),
            descendants: Vec::new(),
            restart: RestartType::Permanent,
            shutdown: Duration::from_secs(5),
        }
    }

    /// A nested supervisor, published in `slot`. When it gives up, it fails, and this
    /// supervisor applies its own strategy, intensity and backoff to it: while the subtree
    /// waits for its restart, the slots under it say when it is due.
    pub fn supervisor(spec: SupervisorSpec, slot: &ActorSlot<SupervisorMsg>) -> Self {
        // A nested supervisor stops its own children one by one: give it the time they need.
        let shutdown = spec
            .children
            .iter()
            .map(|c| c.shutdown)
            .sum::<Duration>()
            .max(Duration::from_secs(5));
        let descendants = spec
            .children
            .iter()
            .flat_map(|c| c.slot.iter().chain(c.descendants.iter()).cloned())
            .collect();
        Self {
            descendants,
            ..Self::actor(slot, move || (Supervisor, spec.clone())).shutdown(shutdown)
        }
    }

    /// A child started by a function of its own: it must spawn the child linked to the
    /// supervisor cell it is given.
    pub fn from_fn<F>(name: impl Into<Arc<str>>, start: F) -> Self
    where
        F: Fn(ActorCell) -> StartFuture + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            start: Arc::new(start),
            slot: None,
            descendants: Vec::new(),
            restart: RestartType::Permanent,
            shutdown: Duration::from_secs(5),
        }
    }

    /// When the child is restarted (default [`RestartType::Permanent`]).
    pub fn restart(mut self, restart: RestartType) -> Self {
        self.restart = restart;
        self
    }

    /// How long a graceful stop may take before the child is killed (default 5 s).
    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A supervisor's configuration and children. Cloning it clones the recipe, not the actors.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    /// Name used in events, logs and metrics.
    pub name: Arc<str>,
    /// Which siblings restart together.
    pub strategy: Strategy,
    /// Restarts tolerated before giving up.
    pub intensity: Intensity,
    /// Delay between consecutive restarts of one child (equal jitter).
    pub backoff: Backoff,
    /// A child that stayed up this long starts its backoff again from the base delay.
    pub backoff_reset_after: Duration,
    /// Children in start order.
    pub children: Vec<ChildSpec>,
    /// Where events go.
    pub events: EventBus,
    /// Set by [`Supervisor::start`]: nothing above restarts this supervisor, so when it stops
    /// (shut down, or gave up) its children's slots are marked [`SlotState::Gone`].
    ///
    /// [`SlotState::Gone`]: crate::SlotState::Gone
    root: bool,
}

impl SupervisorSpec {
    /// A one-for-one supervisor with default intensity and backoff and no children.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            backoff: Backoff::new(Duration::from_millis(5), Duration::from_secs(5)),
            backoff_reset_after: Duration::from_secs(30),
            children: Vec::new(),
            events: EventBus::default(),
            root: false,
        }
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Gives up after more than `max_restarts` restarts within `period`.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }

    /// Sets the restart backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how long a child must stay up for its backoff to reset.
    pub fn backoff_reset_after(mut self, after: Duration) -> Self {
        self.backoff_reset_after = after;
        self
    }

    /// Appends a child (children start in the order they are added).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sends events to `events` (share one bus across a tree).
    pub fn events(mut self, events: EventBus) -> Self {
        self.events = events;
        self
    }
}

/// Why a supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Restart intensity exceeded.
    #[error(
        "supervisor `{supervisor}` gave up: {restarts} restarts within {period:?}, the last for \
         child `{child}`"
    )]
    GaveUp {
        /// The supervisor.
        supervisor: String,
        /// The child whose exit was one too many.
        child: String,
        /// Restarts counted.
        restarts: usize,
        /// The period.
        period: Duration,
    },
}

/// Messages a supervisor understands.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A backoff delay is over: start these children (index, epoch) if still due.
    RestartDue(Vec<(usize, u64)>),
    /// Report the children and their states.
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

/// A child as a supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's name.
    pub name: String,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
    /// Starts so far (restarts are `starts - 1`).
    pub starts: u64,
    /// Its restart type.
    pub restart: RestartType,
}

/// A child's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    /// Serving.
    Running,
    /// Waiting for its restart.
    Restarting,
    /// Down and not coming back (unless a parent restarts the supervisor).
    Stopped,
}

/// The supervisor actor. Start a tree with [`Supervisor::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

impl Supervisor {
    /// Starts a root supervisor (not linked to any parent) and its children, in order.
    /// Fails if a child fails to start (those already started are stopped first).
    pub async fn start(
        spec: SupervisorSpec,
    ) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), SpawnErr> {
        Actor::spawn(None, Supervisor, SupervisorSpec { root: true, ..spec }).await
    }

    /// The children of a running supervisor.
    pub async fn children(
        supervisor: &ActorRef<SupervisorMsg>,
    ) -> Result<Vec<ChildInfo>, RactorErr<SupervisorMsg>> {
        ractor::call!(supervisor, SupervisorMsg::Children)
    }
}

enum Status {
    Running(ActorCell),
    Restarting,
    Stopped,
}

struct Child {
    spec: ChildSpec,
    status: Status,
    /// Bumped whenever a restart is scheduled, so that a stale `RestartDue` is ignored.
    epoch: u64,
    /// Consecutive restarts, for the backoff.
    attempt: u32,
    started_at: Instant,
    starts: u64,
}

impl Child {
    fn slots(&self) -> impl Iterator<Item = &Arc<dyn SlotControl>> {
        self.spec.slot.iter().chain(self.spec.descendants.iter())
    }

    /// Marks the child, and everything under it, down until `restart_at` (or stopped).
    fn mark_down(&self, restart_at: Option<Instant>) {
        for slot in self.slots() {
            slot.mark_down(restart_at);
        }
    }

    /// Marks the child, and everything under it, as never coming back.
    fn mark_gone(&self) {
        for slot in self.slots() {
            slot.mark_gone();
        }
    }

    fn is_supervisor(&self) -> bool {
        !self.spec.descendants.is_empty()
    }
}

/// A supervisor's state.
pub struct SupervisorState {
    name: Arc<str>,
    strategy: Strategy,
    backoff: Backoff,
    backoff_reset_after: Duration,
    events: EventBus,
    history: RestartHistory,
    intensity: Intensity,
    children: Vec<Child>,
    by_id: HashMap<ActorId, usize>,
    root: bool,
}

enum Work {
    Exit(usize, ExitKind),
    Start(Vec<(usize, u64)>),
}

impl SupervisorState {
    fn new(spec: SupervisorSpec) -> Self {
        let now = Instant::now();
        Self {
            name: spec.name,
            strategy: spec.strategy,
            backoff: spec.backoff,
            backoff_reset_after: spec.backoff_reset_after,
            events: spec.events,
            history: RestartHistory::new(spec.intensity),
            intensity: spec.intensity,
            children: spec
                .children
                .into_iter()
                .map(|spec| Child {
                    spec,
                    status: Status::Stopped,
                    epoch: 0,
                    attempt: 0,
                    started_at: now,
                    starts: 0,
                })
                .collect(),
            by_id: HashMap::new(),
            root: spec.root,
        }
    }

    fn emit(&self, idx: usize, kind: EventKind) {
        self.events
            .emit(&self.name, &self.children[idx].spec.name, kind);
    }

    async fn start_child(&mut self, myself: &ActorCell, idx: usize) -> Result<(), SpawnErr> {
        let start = self.children[idx].spec.start.clone();
        let cell = start(myself.clone()).await?;
        self.by_id.insert(cell.get_id(), idx);
        let child = &mut self.children[idx];
        child.status = Status::Running(cell);
        child.started_at = Instant::now();
        child.starts += 1;
        let starts = child.starts;
        // The first start makes the series (at 0), so that a rate sees the first restart.
        let restarts = metrics::counter!("ensemble_actor_restarts_total", "actor" => child.spec.name.to_string());
        if starts > 1 {
            restarts.increment(1);
            tracing::info!(
                supervisor = &*self.name,
                child = &*child.spec.name,
                starts,
                "child restarted"
            );
        }
        self.emit(idx, EventKind::Started { starts });
        Ok(())
    }

    /// Stops child `idx` if it runs: gracefully within its shutdown timeout, then by kill.
    async fn stop_child(&mut self, idx: usize, reason: &str) {
        let child = &mut self.children[idx];
        let Status::Running(cell) = std::mem::replace(&mut child.status, Status::Stopped) else {
            return;
        };
        self.by_id.remove(&cell.get_id());
        child.mark_down(None);
        let timeout = child.spec.shutdown;
        match cell
            .stop_and_wait(Some(reason.to_string()), Some(timeout))
            .await
        {
            Ok(()) => {}
            Err(RactorErr::Timeout) => {
                tracing::warn!(
                    supervisor = &*self.name,
                    child = &*self.children[idx].spec.name,
                    ?timeout,
                    "child did not stop in time; killing it"
                );
                let _ = cell.kill_and_wait(Some(Duration::from_secs(5))).await;
            }
            // Already gone.
            Err(_) => {}
        }
        self.emit(idx, EventKind::Stopped);
    }

    /// Stops every child in reverse start order and cancels pending restarts. A root's
    /// children are gone for good: nothing above it will start them again.
    async fn stop_all(&mut self, reason: &str) {
        for idx in (0..self.children.len()).rev() {
            self.stop_child(idx, reason).await;
            let child = &mut self.children[idx];
            child.epoch += 1;
            if matches!(child.status, Status::Restarting) {
                child.status = Status::Stopped;
            }
            if self.root {
                child.mark_gone();
            } else {
                child.mark_down(None);
            }
        }
    }

    async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: ActorId,
        exit: ExitKind,
        reason: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(idx) = self.by_id.remove(&id) else {
            // A child we stopped ourselves, or one already dealt with.
            return Ok(());
        };
        let child = &mut self.children[idx];
        child.status = Status::Stopped;
        child.mark_down(None);
        match exit {
            ExitKind::Abnormal => {
                let reason = reason.unwrap_or_else(|| "unknown".to_string());
                // A nested supervisor that gave up has said so itself; what follows here is
                // the restart this supervisor schedules for it.
                if !child.is_supervisor() {
                    tracing::error!(supervisor = &*self.name, child = &*child.spec.name, %reason, "child failed");
                }
                self.emit(idx, EventKind::Failed { reason });
            }
            ExitKind::Normal => {
                tracing::info!(
                    supervisor = &*self.name,
                    child = &*child.spec.name,
                    ?reason,
                    "child exited"
                );
                self.emit(idx, EventKind::Exited { reason });
            }
        }
        self.run(myself, Work::Exit(idx, exit)).await
    }

    async fn run(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        first: Work,
    ) -> Result<(), ActorProcessingErr> {
        let mut queue = VecDeque::from([first]);
        while let Some(work) = queue.pop_front() {
            match work {
                Work::Exit(idx, exit) => {
                    if let Some(group) = self.plan_restart(myself, idx, exit).await? {
                        queue.push_back(Work::Start(group));
                    }
                }
                Work::Start(group) => {
                    for (idx, epoch) in group {
                        let child = &self.children[idx];
                        if child.epoch != epoch || !matches!(child.status, Status::Restarting) {
                            continue;
                        }
                        if let Err(e) = self.start_child(&myself.get_cell(), idx).await {
                            self.children[idx].status = Status::Stopped;
                            self.emit(
                                idx,
                                EventKind::Failed {
                                    reason: format!("could not restart: {e}"),
                                },
                            );
                            queue.push_back(Work::Exit(idx, ExitKind::Abnormal));
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the strategy to the exit of `idx`: stops the siblings it takes down, and returns
    /// the group to start now (zero backoff), or schedules it and returns `None`.
    async fn plan_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        exit: ExitKind,
    ) -> Result<Option<Vec<(usize, u64)>>, ActorProcessingErr> {
        let view: Vec<(RestartType, bool)> = self
            .children
            .iter()
            .map(|c| (c.spec.restart, matches!(c.status, Status::Running(_))))
            .collect();
        let decision = plan(self.strategy, &view, idx, exit);
        if decision.is_noop() {
            return Ok(None);
        }
        let now = Instant::now();
        if !self.history.record(now) {
            let restarts = self.history.recent();
            metrics::counter!("ensemble_supervisor_giveups_total", "supervisor" => self.name.to_string())
                .increment(1);
            self.emit(
                idx,
                EventKind::GaveUp {
                    restarts,
                    period: self.intensity.period,
                },
            );
            let err = SupervisorError::GaveUp {
                supervisor: self.name.to_string(),
                child: self.children[idx].spec.name.to_string(),
                restarts,
                period: self.intensity.period,
            };
            tracing::error!(supervisor = &*self.name, "{err}");
            self.stop_all("supervisor gave up").await;
            return Err(err.into());
        }

        let child = &mut self.children[idx];
        if now.saturating_duration_since(child.started_at) >= self.backoff_reset_after {
            child.attempt = 0;
        }
        let delay = self.backoff.equal_jitter(child.attempt, random_fraction());
        child.attempt = child.attempt.saturating_add(1);
        let attempt = child.attempt;

        for &j in &decision.stop {
            self.stop_child(j, "restarting with a sibling").await;
        }
        for &j in &decision.discard {
            self.children[j].status = Status::Stopped;
            self.children[j].mark_down(None);
        }
        let at = now + delay;
        let group: Vec<(usize, u64)> = decision
            .restart
            .iter()
            .map(|&j| {
                let c = &mut self.children[j];
                c.epoch += 1;
                c.status = Status::Restarting;
                c.mark_down(Some(at));
                (j, c.epoch)
            })
            .collect();
        if self.children[idx].is_supervisor() {
            tracing::warn!(
                supervisor = &*self.name,
                child = &*self.children[idx].spec.name,
                delay = %crate::fault::human_duration(delay),
                attempt,
                "restarting `{}` and everything under it in {} (restart {attempt} in a row)",
                self.children[idx].spec.name,
                crate::fault::human_duration(delay),
            );
        }
        self.emit(idx, EventKind::RestartScheduled { delay, attempt });
        if delay.is_zero() {
            return Ok(Some(group));
        }
        myself.send_after(delay, move || SupervisorMsg::RestartDue(group));
        Ok(None)
    }

    fn info(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                name: c.spec.name.to_string(),
                status: match c.status {
                    Status::Running(_) => ChildStatus::Running,
                    Status::Restarting => ChildStatus::Restarting,
                    Status::Stopped => ChildStatus::Stopped,
                },
                starts: c.starts,
                restart: c.spec.restart,
            })
            .collect()
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        spec: SupervisorSpec,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState::new(spec);
        // The series exists from the start (at 0), so that a rate sees the first give-up.
        metrics::counter!("ensemble_supervisor_giveups_total", "supervisor" => state.name.to_string())
            .increment(0);
        for idx in 0..state.children.len() {
            if let Err(e) = state.start_child(&myself.get_cell(), idx).await {
                state.stop_all("a sibling failed to start").await;
                return Err(format!(
                    "supervisor `{}` could not start child `{}`: {e}",
                    state.name, state.children[idx].spec.name
                )
                .into());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // ractor would kill the children without running their `post_stop`: stop them
        // gracefully first, newest first.
        state.stop_all("supervisor stopping").await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::RestartDue(group) => state.run(&myself, Work::Start(group)).await,
            SupervisorMsg::Children(reply) => {
                let _ = reply.send(state.info());
                Ok(())
            }
        }
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Overrides ractor's default, which stops the supervisor when any child stops.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                state
                    .on_exit(
                        &myself,
                        cell.get_id(),
                        ExitKind::Abnormal,
                        Some(err.to_string()),
                    )
                    .await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // ractor reports a kill as a termination with reason "killed": for OTP that is
                // an abnormal exit.
                let exit = if reason.as_deref() == Some("killed") {
                    ExitKind::Abnormal
                } else {
                    ExitKind::Normal
                };
                state.on_exit(&myself, cell.get_id(), exit, reason).await
            }
            _ => Ok(()),
        }
    }
}
