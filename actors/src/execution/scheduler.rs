//! The execution engine's ready queue: scheduling policies, priority inheritance, deadlines and
//! a bounded capacity. Pure data structure; the engine actor owns one and drives it.
//!
//! ```
//! use ensemble_actors::scheduler::{Policy, Popped, ReadyQueue, Task};
//!
//! let mut q = ReadyQueue::new(Policy::Priority, 100);
//! q.push(Task { id: 1, priority: 1, deadline_ms: None }).unwrap();
//! q.push(Task { id: 2, priority: 5, deadline_ms: None }).unwrap();
//! assert_eq!(q.pop(0), Some(Popped::Run(2)));
//! assert_eq!(q.pop(0), Some(Popped::Run(1)));
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};

/// The order in which queued tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// First submitted, first run.
    Fifo,
    /// Highest (effective) priority first; ties in submission order.
    Priority,
    /// Earliest deadline first (tasks without one last); ties in submission order.
    Deadline,
    /// Highest priority first, then earliest deadline, then submission order.
    PriorityDeadline,
}

/// A task as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Caller-chosen unique id.
    pub id: u64,
    /// Higher runs first under the priority policies.
    pub priority: i32,
    /// Absolute deadline in milliseconds on the caller's clock.
    pub deadline_ms: Option<u64>,
}

/// What [`ReadyQueue::pop`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// Run this task.
    Run(u64),
    /// This task's deadline passed while it was queued: fail it, do not run it.
    Expired(u64),
}

/// Why a task was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue is at capacity.
    #[error(
        "the task queue is full ({capacity} tasks queued); retry later or raise the queue capacity"
    )]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// A task with this id is already queued.
    #[error("task {0} is already queued")]
    Duplicate(u64),
    /// No queued task has this id.
    #[error("task {0} is not queued")]
    NotQueued(u64),
}

type Key = (i64, i64, u64, u64);

#[derive(Debug, Clone)]
struct Entry {
    task: Task,
    seq: u64,
    /// Own priority lifted by the tasks waiting on this one.
    effective: i32,
    key: Key,
}

/// A bounded ready queue.
#[derive(Debug, Clone)]
pub struct ReadyQueue {
    policy: Policy,
    capacity: usize,
    next_seq: u64,
    entries: HashMap<u64, Entry>,
    order: BTreeSet<Key>,
    /// blocker → tasks waiting on it (those may or may not be queued).
    waiters: HashMap<u64, HashSet<u64>>,
    /// Priorities of waiters that are not in this queue (e.g. running or blocked elsewhere).
    waiter_priority: HashMap<u64, i32>,
}

impl ReadyQueue {
    /// An empty queue holding at most `capacity` tasks.
    pub fn new(policy: Policy, capacity: usize) -> Self {
        Self {
            policy,
            capacity,
            next_seq: 0,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            waiters: HashMap::new(),
            waiter_priority: HashMap::new(),
        }
    }

    /// Tasks queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The priority a queued task runs at (its own, lifted by its waiters).
    pub fn effective_priority(&self, id: u64) -> Option<i32> {
        self.entries.get(&id).map(|e| e.effective)
    }

    fn key(&self, e: &Entry) -> Key {
        let deadline = e
            .task
            .deadline_ms
            .map_or(i64::MAX, |d| d.min(i64::MAX as u64) as i64);
        let prio = -(e.effective as i64);
        match self.policy {
            Policy::Fifo => (0, 0, e.seq, e.task.id),
            Policy::Priority => (prio, 0, e.seq, e.task.id),
            Policy::Deadline => (deadline, 0, e.seq, e.task.id),
            Policy::PriorityDeadline => (prio, deadline, e.seq, e.task.id),
        }
    }

    /// Queues a task.
    pub fn push(&mut self, task: Task) -> Result<(), QueueError> {
        if self.entries.contains_key(&task.id) {
            return Err(QueueError::Duplicate(task.id));
        }
        if self.entries.len() >= self.capacity {
            return Err(QueueError::Full {
                capacity: self.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut e = Entry {
            task,
            seq,
            effective: task.priority,
            key: (0, 0, 0, 0),
        };
        e.effective = self.inherited(task.id, task.priority);
        e.key = self.key(&e);
        self.order.insert(e.key);
        self.entries.insert(task.id, e);
        Ok(())
    }

    /// The next task to run at time `now_ms` (an expired one is handed out as such).
    pub fn pop(&mut self, now_ms: u64) -> Option<Popped> {
        let key = *self.order.iter().next()?;
        self.order.remove(&key);
        let id = key.3;
        let e = self.entries.remove(&id)?;
        Some(match e.task.deadline_ms {
            Some(d) if d < now_ms => Popped::Expired(id),
            _ => Popped::Run(id),
        })
    }

    /// Removes a queued task (cancelled); true if it was queued.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.entries.remove(&id) {
            Some(e) => {
                self.order.remove(&e.key);
                true
            }
            None => false,
        }
    }

    /// Changes a queued task's own priority.
    pub fn set_priority(&mut self, id: u64, priority: i32) -> Result<(), QueueError> {
        let e = self.entries.get_mut(&id).ok_or(QueueError::NotQueued(id))?;
        e.task.priority = priority;
        self.refresh(id);
        self.propagate_from(id);
        Ok(())
    }

    /// Switches the policy; queued tasks are reordered.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        self.order.clear();
        for id in ids {
            let key = self.key(&self.entries[&id]);
            if let Some(e) = self.entries.get_mut(&id) {
                e.key = key;
            }
            self.order.insert(key);
        }
    }

    /// Records that `waiter` (of priority `waiter_priority`) waits on `blocker`: the blocker,
    /// and what it waits on in turn, run at least at the waiter's priority.
    pub fn add_waiter(&mut self, blocker: u64, waiter: u64, waiter_priority: i32) {
        self.waiters.entry(blocker).or_default().insert(waiter);
        if !self.entries.contains_key(&waiter) {
            self.waiter_priority.insert(waiter, waiter_priority);
        }
        self.refresh(blocker);
        self.propagate_from(blocker);
    }

    /// Forgets that `waiter` waits on `blocker` (it finished or was cancelled).
    pub fn remove_waiter(&mut self, blocker: u64, waiter: u64) {
        if let Some(set) = self.waiters.get_mut(&blocker) {
            set.remove(&waiter);
            if set.is_empty() {
                self.waiters.remove(&blocker);
            }
        }
        if !self.waiters.values().any(|s| s.contains(&waiter)) {
            self.waiter_priority.remove(&waiter);
        }
        self.refresh(blocker);
        self.propagate_from(blocker);
    }

    /// Own priority of `id` lifted by every waiter's effective priority.
    fn inherited(&self, id: u64, own: i32) -> i32 {
        let mut best = own;
        let mut seen = HashSet::new();
        let mut stack: Vec<u64> = self
            .waiters
            .get(&id)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        while let Some(w) = stack.pop() {
            if !seen.insert(w) {
                continue;
            }
            let p = match self.entries.get(&w) {
                Some(e) => e.task.priority,
                None => self.waiter_priority.get(&w).copied().unwrap_or(i32::MIN),
            };
            best = best.max(p);
            stack.extend(self.waiters.get(&w).into_iter().flatten().copied());
        }
        best
    }

    fn refresh(&mut self, id: u64) {
        let Some(own) = self.entries.get(&id).map(|e| e.task.priority) else {
            return;
        };
        let effective = self.inherited(id, own);
        let Some(e) = self.entries.get(&id).cloned() else {
            return;
        };
        let mut updated = e.clone();
        updated.effective = effective;
        updated.key = self.key(&updated);
        self.order.remove(&e.key);
        self.order.insert(updated.key);
        self.entries.insert(id, updated);
    }

    /// Re-derives the effective priority of everything `id` waits on, transitively.
    fn propagate_from(&mut self, id: u64) {
        let mut seen = HashSet::new();
        let mut stack = vec![id];
        while let Some(w) = stack.pop() {
            if !seen.insert(w) {
                continue;
            }
            let blockers: Vec<u64> = self
                .waiters
                .iter()
                .filter(|(_, ws)| ws.contains(&w))
                .map(|(b, _)| *b)
                .collect();
            for b in blockers {
                self.refresh(b);
                stack.push(b);
            }
        }
    }

    /// Queued ids in the order they would run (for `queue_stats` and tests).
    pub fn snapshot(&self) -> Vec<u64> {
        self.order.iter().map(|k| k.3).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;

    fn t(id: u64, priority: i32, deadline_ms: Option<u64>) -> Task {
        Task {
            id,
            priority,
            deadline_ms,
        }
    }

    fn drain(q: &mut ReadyQueue, now: u64) -> Vec<Popped> {
        std::iter::from_fn(|| q.pop(now)).collect()
    }

    #[test]
    fn each_policy_orders_a_mixed_batch() {
        let batch = [
            t(1, 1, Some(300)),
            t(2, 5, None),
            t(3, 5, Some(100)),
            t(4, 0, Some(50)),
            t(5, 1, Some(100)),
        ];
        let run = |p| {
            let mut q = ReadyQueue::new(p, 10);
            for task in batch {
                q.push(task).unwrap();
            }
            drain(&mut q, 0)
                .into_iter()
                .map(|p| match p {
                    Popped::Run(id) | Popped::Expired(id) => id,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(Policy::Fifo), [1, 2, 3, 4, 5]);
        assert_eq!(run(Policy::Priority), [2, 3, 1, 5, 4]);
        assert_eq!(run(Policy::Deadline), [4, 3, 5, 1, 2]);
        assert_eq!(run(Policy::PriorityDeadline), [3, 2, 5, 1, 4]);
    }

    #[test]
    fn a_full_queue_rejects_with_a_clear_error() {
        let mut q = ReadyQueue::new(Policy::Fifo, 2);
        q.push(t(1, 0, None)).unwrap();
        q.push(t(2, 0, None)).unwrap();
        let err = q.push(t(3, 0, None)).unwrap_err();
        assert_eq!(err, QueueError::Full { capacity: 2 });
        assert!(err.to_string().contains("retry later"));
        assert_eq!(q.len(), 2, "nothing was dropped");
    }

    #[test]
    fn past_deadlines_come_out_as_expired() {
        let mut q = ReadyQueue::new(Policy::Deadline, 10);
        q.push(t(1, 0, Some(10))).unwrap();
        q.push(t(2, 0, Some(1000))).unwrap();
        assert_eq!(drain(&mut q, 500), [Popped::Expired(1), Popped::Run(2)]);
    }

    #[test]
    fn inheritance_lifts_a_blocker_and_what_it_waits_on() {
        let mut q = ReadyQueue::new(Policy::Priority, 10);
        q.push(t(1, 1, None)).unwrap(); // low-priority blocker
        q.push(t(2, 5, None)).unwrap(); // medium
        q.push(t(3, 0, None)).unwrap(); // what the blocker waits on
        q.add_waiter(3, 1, 1);
        // A high-priority task (running elsewhere, not queued) waits on 1.
        q.add_waiter(1, 99, 9);
        assert_eq!(q.effective_priority(1), Some(9));
        assert_eq!(q.effective_priority(3), Some(9), "transitively");
        assert_eq!(q.snapshot()[2], 2, "the medium task now runs last");
        q.remove_waiter(1, 99);
        assert_eq!(q.effective_priority(1), Some(1));
        assert_eq!(q.effective_priority(3), Some(1));
        assert_eq!(q.snapshot()[0], 2);
    }

    #[test]
    fn priority_changes_while_queued_and_policy_switches() {
        let mut q = ReadyQueue::new(Policy::Priority, 10);
        for id in 1..=3 {
            q.push(t(id, 0, Some(100 - id))).unwrap();
        }
        q.set_priority(3, 7).unwrap();
        assert_eq!(q.snapshot(), [3, 1, 2]);
        q.set_policy(Policy::Deadline);
        assert_eq!(q.snapshot(), [3, 2, 1]);
        assert_eq!(q.set_priority(42, 1), Err(QueueError::NotQueued(42)));
        assert!(q.remove(2));
        assert_eq!(q.snapshot(), [3, 1]);
    }

    fn policy() -> impl proptest::strategy::Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::Fifo),
            Just(Policy::Priority),
            Just(Policy::Deadline),
            Just(Policy::PriorityDeadline)
        ]
    }

    proptest! {
        /// Without waiters, popping yields exactly a plain sort of the batch by the policy's key.
        #[test]
        fn pops_match_a_reference_sort(p in policy(),
                                       tasks in proptest::collection::vec((-5i32..5, proptest::option::of(0u64..50)), 0..40)) {
            let mut q = ReadyQueue::new(p, 100);
            for (i, (prio, dl)) in tasks.iter().enumerate() {
                q.push(t(i as u64, *prio, *dl)).unwrap();
            }
            let mut expected: Vec<(usize, i32, Option<u64>)> =
                tasks.iter().enumerate().map(|(i, (p, d))| (i, *p, *d)).collect();
            let dl = |d: Option<u64>| d.unwrap_or(u64::MAX);
            match p {
                Policy::Fifo => {}
                Policy::Priority => expected.sort_by_key(|&(i, pr, _)| (Reverse(pr), i)),
                Policy::Deadline => expected.sort_by_key(|&(i, _, d)| (dl(d), i)),
                Policy::PriorityDeadline => expected.sort_by_key(|&(i, pr, d)| (Reverse(pr), dl(d), i)),
            }
            let got: Vec<u64> = drain(&mut q, 0).into_iter().map(|p| match p {
                Popped::Run(id) | Popped::Expired(id) => id,
            }).collect();
            prop_assert_eq!(got, expected.iter().map(|e| e.0 as u64).collect::<Vec<_>>());
        }
    }
}
