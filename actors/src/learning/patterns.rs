//! A learner's patterns: in memory for answers, in its sled tree for restarts, within a memory
//! budget, and mergeable with another instance's.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{StoreError, Tree};

/// One learned pattern.
pub trait Pattern: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Its heap size in bytes, for the memory budget (an estimate; keys are counted apart).
    fn heap_bytes(&self) -> usize;

    /// How much it is worth keeping: when a learner is over its budget, the patterns worth
    /// least per byte they take are evicted first (ties: the one seen longest ago,
    /// [`Pattern::last_seen`]).
    fn worth(&self) -> u64;

    /// When it was last strengthened, on the learner's observation clock.
    fn last_seen(&self) -> u64;

    /// Merges another instance's view of the same pattern. Must be commutative, associative
    /// and idempotent; returns true if `self` changed.
    fn merge(&mut self, other: &Self) -> bool;
}

/// Fixed cost of one entry besides its key and heap: the hash table slot and bookkeeping.
const ENTRY_OVERHEAD: usize = 64;

/// The patterns of one learner, keyed by bytes, with their dirty set and size.
#[derive(Debug)]
pub struct Patterns<P: Pattern> {
    tree: Tree,
    entries: HashMap<Box<[u8]>, P>,
    dirty: HashSet<Box<[u8]>>,
    removed: HashSet<Box<[u8]>>,
    bytes: usize,
}

impl<P: Pattern> Patterns<P> {
    /// Loads every pattern stored in `tree` (a tree of patterns only).
    pub fn load(tree: Tree) -> Result<Self, StoreError> {
        let mut entries = HashMap::new();
        let mut bytes = 0;
        for record in tree.iter::<P>() {
            let (key, pattern) = record?;
            bytes += entry_bytes(&key, &pattern);
            entries.insert(key.into_boxed_slice(), pattern);
        }
        Ok(Self {
            tree,
            entries,
            dirty: HashSet::new(),
            removed: HashSet::new(),
            bytes,
        })
    }

    /// The tree the patterns live in.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The pattern at `key`.
    pub fn get(&self, key: &[u8]) -> Option<&P> {
        self.entries.get(key)
    }

    /// Changes the pattern at `key` (made by `new` if absent) and marks it for the next flush.
    pub fn update<R>(
        &mut self,
        key: &[u8],
        new: impl FnOnce() -> P,
        f: impl FnOnce(&mut P) -> R,
    ) -> R {
        let (r, before, after) = match self.entries.get_mut(key) {
            Some(p) => {
                let before = entry_bytes(key, p);
                let r = f(p);
                (r, before, entry_bytes(key, p))
            }
            None => {
                let mut p = new();
                let r = f(&mut p);
                let after = entry_bytes(key, &p);
                self.entries.insert(key.into(), p);
                (r, 0, after)
            }
        };
        self.bytes = self.bytes + after - before;
        if !self.dirty.contains(key) {
            self.dirty.insert(key.into());
        }
        self.removed.remove(key);
        r
    }

    /// Merges `pattern` into the one at `key` (or inserts it); true if anything changed.
    pub fn merge(&mut self, key: &[u8], pattern: &P) -> bool {
        match self.entries.get(key) {
            Some(existing) => {
                let mut merged = existing.clone();
                if !merged.merge(pattern) {
                    return false;
                }
                self.update(key, || pattern.clone(), |p| *p = merged);
            }
            None => self.update(key, || pattern.clone(), |_| ()),
        }
        true
    }

    /// Every pattern.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &P)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    /// Patterns held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing has been learned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Estimated bytes in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Patterns changed since the last flush.
    pub fn pending(&self) -> usize {
        self.dirty.len() + self.removed.len()
    }

    /// Evicts the patterns worth least per byte (ties: seen longest ago) until at most `target` bytes
    /// remain; `keep` protects patterns that must stay (e.g. a user's recent history). Returns
    /// how many were evicted.
    pub fn evict_to(&mut self, target: usize, keep: impl Fn(&[u8]) -> bool) -> usize {
        if self.bytes <= target {
            return 0;
        }
        // Worth per byte: a large pattern must earn its room.
        let mut order: Vec<(f64, u64, &Box<[u8]>)> = self
            .entries
            .iter()
            .filter(|(k, _)| !keep(k))
            .map(|(k, p)| {
                (
                    p.worth() as f64 / entry_bytes(k, p) as f64,
                    p.last_seen(),
                    k,
                )
            })
            .collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut victims = Vec::new();
        let mut bytes = self.bytes;
        for (_, _, key) in order {
            if bytes <= target {
                break;
            }
            bytes -= entry_bytes(key, &self.entries[&**key]);
            victims.push(key.clone());
        }
        for key in &victims {
            self.entries.remove(key);
            self.dirty.remove(key);
            self.removed.insert(key.clone());
        }
        self.bytes = bytes;
        victims.len()
    }

    /// Writes what changed since the last flush as one atomic batch (the caller then flushes
    /// the store to make it durable).
    pub fn write_changes(&mut self) -> Result<usize, StoreError> {
        if self.dirty.is_empty() && self.removed.is_empty() {
            return Ok(0);
        }
        let n = self.dirty.len() + self.removed.len();
        let entries = &self.entries;
        let changes = self
            .dirty
            .iter()
            .map(|k| (&**k, entries.get(k)))
            .chain(self.removed.iter().map(|k| (&**k, None)));
        self.tree.apply(changes)?;
        self.dirty.clear();
        self.removed.clear();
        Ok(n)
    }
}

fn entry_bytes<P: Pattern>(key: &[u8], p: &P) -> usize {
    key.len() + p.heap_bytes() + ENTRY_OVERHEAD
}
