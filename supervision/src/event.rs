//! The supervisor event stream: starts, failures, restarts and give-ups.

use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// What happened to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The child started; `starts` counts its starts so far (1 for the first, 2 after a restart…).
    Started {
        /// Starts so far, this one included.
        starts: u64,
    },
    /// The child panicked, returned an error, was killed, or could not start.
    Failed {
        /// What the failure said.
        reason: String,
    },
    /// The child stopped cleanly by itself.
    Exited {
        /// The stop reason it gave, if any.
        reason: Option<String>,
    },
    /// A restart is scheduled after `delay` (the `attempt`-th in a row for this child).
    RestartScheduled {
        /// Backoff before the restart.
        delay: Duration,
        /// Consecutive restarts of this child, counting this one.
        attempt: u32,
    },
    /// The supervisor stopped the child (sibling restart or shutdown).
    Stopped,
    /// Too many restarts: the supervisor stopped all its children and failed, escalating to its
    /// parent. `child` is the one whose exit was one too many.
    GaveUp {
        /// Restarts within the period, the refused one included.
        restarts: usize,
        /// The intensity period.
        period: Duration,
    },
}

/// One event from a supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorEvent {
    /// The supervisor's name.
    pub supervisor: Arc<str>,
    /// The child's name.
    pub child: Arc<str>,
    /// What happened.
    pub kind: EventKind,
    /// When (wall clock, for display).
    pub at: SystemTime,
}

/// A broadcast of supervisor events shared by a whole supervision tree. Cheap to clone.
///
/// Receivers that fall behind by more than the capacity miss the oldest events (they are told
/// how many); counters that must be exact are kept as metrics by the supervisor itself.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<SupervisorEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per receiver.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::Sender::new(capacity.max(1)),
        }
    }

    /// A receiver of every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.tx.subscribe()
    }

    pub(crate) fn emit(&self, supervisor: &Arc<str>, child: &Arc<str>, kind: EventKind) {
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(SupervisorEvent {
            supervisor: supervisor.clone(),
            child: child.clone(),
            kind,
            at: SystemTime::now(),
        });
    }
}
