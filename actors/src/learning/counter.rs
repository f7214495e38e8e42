//! Per-instance counters that merge without double counting (a grow-only CRDT counter).

use serde::{Deserialize, Serialize};

/// A learner instance: random, chosen once per data directory and kept in it.
pub type InstanceId = u64;

/// A count kept per instance. An instance only ever increments its own entry; merging takes
/// the larger count per instance, so merging is commutative, associative and idempotent:
/// importing the same snapshot twice counts it once.
///
/// ```
/// use ensemble_actors::learning::GCounter;
///
/// let mut here = GCounter::default();
/// here.add(1, 3);
/// let mut there = GCounter::default();
/// there.add(2, 5);
/// here.merge(&there);
/// here.merge(&there);
/// assert_eq!(here.total(), 8);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    /// (instance, count), sorted by instance; almost always one entry.
    by_instance: Vec<(InstanceId, u64)>,
}

impl GCounter {
    /// Adds `n` to `instance`'s count.
    pub fn add(&mut self, instance: InstanceId, n: u64) {
        match self.by_instance.binary_search_by_key(&instance, |e| e.0) {
            Ok(i) => self.by_instance[i].1 = self.by_instance[i].1.saturating_add(n),
            Err(i) => self.by_instance.insert(i, (instance, n)),
        }
    }

    /// The sum over instances.
    pub fn total(&self) -> u64 {
        self.by_instance
            .iter()
            .fold(0u64, |a, e| a.saturating_add(e.1))
    }

    /// Takes the larger count of each instance; true if anything changed.
    pub fn merge(&mut self, other: &GCounter) -> bool {
        let mut changed = false;
        for &(instance, n) in &other.by_instance {
            match self.by_instance.binary_search_by_key(&instance, |e| e.0) {
                Ok(i) if self.by_instance[i].1 < n => {
                    self.by_instance[i].1 = n;
                    changed = true;
                }
                Ok(_) => {}
                Err(i) => {
                    self.by_instance.insert(i, (instance, n));
                    changed = true;
                }
            }
        }
        changed
    }

    /// Heap bytes, for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.by_instance.capacity() * std::mem::size_of::<(InstanceId, u64)>()
    }
}

/// Per-name [`GCounter`]s, sorted by name: how often each command followed a context, each path
/// a name was imported from. Merges name by name, so it merges as its counters do.
/// (Serialized as the bare list, so a pattern that held the list itself reads the same.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountMap(Vec<(String, GCounter)>);

impl CountMap {
    /// Adds `n` to `name`'s count for `instance`.
    pub fn add(&mut self, name: &str, instance: InstanceId, n: u64) {
        match self.0.binary_search_by(|(c, _)| c.as_str().cmp(name)) {
            Ok(i) => self.0[i].1.add(instance, n),
            Err(i) => {
                let mut count = GCounter::default();
                count.add(instance, n);
                self.0.insert(i, (name.to_string(), count));
            }
        }
    }

    /// `name`'s total count (0 when absent).
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .binary_search_by(|(c, _)| c.as_str().cmp(name))
            .map_or(0, |i| self.0[i].1.total())
    }

    /// The names with their counters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GCounter)> {
        self.0.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c.total()).sum()
    }

    /// Merges another instance's view name by name; true if anything changed.
    pub fn merge(&mut self, other: &CountMap) -> bool {
        let mut changed = false;
        for (name, count) in &other.0 {
            match self.0.binary_search_by(|(c, _)| c.cmp(name)) {
                Ok(i) => changed |= self.0[i].1.merge(count),
                Err(i) => {
                    self.0.insert(i, (name.clone(), count.clone()));
                    changed = true;
                }
            }
        }
        changed
    }

    /// Heap bytes, for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(String, GCounter)>()
            + self
                .0
                .iter()
                .map(|(n, c)| n.capacity() + c.heap_bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter() -> impl Strategy<Value = GCounter> {
        proptest::collection::vec((0u64..4, 0u64..100), 0..6).prop_map(|adds| {
            let mut c = GCounter::default();
            for (i, n) in adds {
                c.add(i, n);
            }
            c
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_and_idempotent(a in counter(), b in counter(), c in counter()) {
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            prop_assert_eq!(&ab, &ba);

            let mut ab_c = ab.clone();
            ab_c.merge(&c);
            let mut bc = b.clone();
            bc.merge(&c);
            let mut a_bc = a.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);

            let mut again = ab.clone();
            prop_assert!(!again.merge(&b), "a second merge changes nothing");
            prop_assert_eq!(&again, &ab);
            prop_assert!(ab.total() >= a.total().max(b.total()));
        }
    }
}
