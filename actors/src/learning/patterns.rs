//! A learner's patterns: in memory for answers, in its sled tree for restarts, within a memory
//! budget, and mergeable with another instance's.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{Batch, StoreError, Tree};

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
        let Some((batch, staged)) = self.stage()? else {
            return Ok(0);
        };
        let n = staged.len();
        if let Err(e) = self.tree.commit(batch) {
            self.restore(staged);
            return Err(e);
        }
        Ok(n)
    }

    /// Encodes what changed since the last flush into one batch for [`Tree::commit`], to be
    /// committed elsewhere (off the actor); the patterns count as written from now on. If
    /// the commit fails, [`Patterns::restore`] marks them changed again. `None` when nothing
    /// changed; on an encoding error nothing is taken.
    pub fn stage(&mut self) -> Result<Option<(Batch, Staged)>, StoreError> {
        if self.dirty.is_empty() && self.removed.is_empty() {
            return Ok(None);
        }
        let mut batch = Batch::default();
        for key in &self.dirty {
            if let Some(p) = self.entries.get(key) {
                self.tree.stage(&mut batch, key, p)?;
            }
        }
        for key in &self.removed {
            batch.remove(key);
        }
        let staged = Staged {
            keys: self.dirty.drain().chain(self.removed.drain()).collect(),
        };
        Ok(Some((batch, staged)))
    }

    /// Marks the patterns of a batch that could not be committed as changed again: each one
    /// present is written at the next flush, each one gone is removed.
    pub fn restore(&mut self, staged: Staged) {
        for key in staged.keys {
            if self.entries.contains_key(&key) {
                self.removed.remove(&key);
                self.dirty.insert(key);
            } else {
                self.dirty.remove(&key);
                self.removed.insert(key);
            }
        }
    }
}

/// The keys of a staged batch (see [`Patterns::stage`]).
#[derive(Debug, Default)]
pub struct Staged {
    keys: Vec<Box<[u8]>>,
}

impl Staged {
    /// Patterns written or removed by the batch.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn entry_bytes<P: Pattern>(key: &[u8], p: &P) -> usize {
    key.len() + p.heap_bytes() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Count(u64);

    impl Pattern for Count {
        fn heap_bytes(&self) -> usize {
            0
        }
        fn worth(&self) -> u64 {
            self.0
        }
        fn last_seen(&self) -> u64 {
            0
        }
        fn merge(&mut self, other: &Self) -> bool {
            let changed = other.0 > self.0;
            self.0 = self.0.max(other.0);
            changed
        }
    }

    fn stored(tree: &Tree, key: &[u8]) -> Option<u64> {
        tree.get::<Count>(key).expect("read").map(|c| c.0)
    }

    #[test]
    fn a_staged_batch_that_fails_is_written_by_the_next_one() {
        let store = Store::temporary().expect("store");
        let tree = store.tree("learning.test").expect("tree");
        let mut p: Patterns<Count> = Patterns::load(tree.clone()).expect("load");
        for k in [b"a", b"b", b"c"] {
            p.update(k, || Count(0), |c| c.0 += 1);
        }
        assert_eq!(p.write_changes().expect("written"), 3);
        // a changes, c is evicted; the batch is staged, then "fails" (never committed).
        p.update(b"a", || Count(0), |c| c.0 += 10);
        assert_eq!(p.evict_to(0, |k| k != b"c"), 1, "c goes");
        let (_lost, staged) = p.stage().expect("encoded").expect("changes");
        assert_eq!((staged.len(), p.pending()), (2, 0), "taken as written");
        // Meanwhile b changes; then the failure is reported.
        p.update(b"b", || Count(0), |c| c.0 += 100);
        p.restore(staged);
        assert_eq!(p.pending(), 3, "a and c again, and b");
        assert_eq!(p.write_changes().expect("written"), 3);
        assert_eq!(stored(&tree, b"a"), Some(11));
        assert_eq!(stored(&tree, b"b"), Some(101));
        assert_eq!(stored(&tree, b"c"), None, "the removal was not lost");
        // A batch committed elsewhere writes the patterns as they were when staged.
        p.update(b"a", || Count(0), |c| c.0 += 1);
        let (batch, staged) = p.stage().expect("encoded").expect("changes");
        p.update(b"a", || Count(0), |c| c.0 += 1);
        tree.commit(batch).expect("committed");
        drop(staged);
        assert_eq!(stored(&tree, b"a"), Some(12));
        assert_eq!(p.pending(), 1, "the later change waits for the next batch");
    }
}
