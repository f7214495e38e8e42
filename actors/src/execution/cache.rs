//! The execution engine's result cache: tool + canonical arguments → result, in an in-memory
//! LRU with TTLs and size bounds, backed by a sled tier that survives restarts.
//!
//! Only results of read-only or idempotent tools may be cached; the engine checks that before
//! calling [`ResultCache::put`]. Times are wall-clock milliseconds passed in by the caller, so
//! entries persisted before a restart expire on time after it, and tests need no sleeps.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Store, StoreError, Tree};

/// Size bounds of the in-memory tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Entries kept in memory at most.
    pub max_entries: usize,
    /// Bytes of cached JSON kept in memory at most.
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 << 20,
        }
    }
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Lookups answered from memory or disk.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries in memory.
    pub entries: usize,
    /// Bytes in memory.
    pub bytes: usize,
}

impl CacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// What to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidate {
    /// Every result of this tool.
    Tool(String),
    /// Every key starting with this (keys are `tool` + NUL + canonical JSON arguments).
    Prefix(String),
    /// Every key matching this glob (`*` any run of characters, `?` one character).
    Pattern(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    /// The result's JSON text (the codec cannot carry an untyped JSON value).
    json: String,
    expires_at_ms: u64,
}

#[derive(Debug)]
struct Slot {
    value: Value,
    bytes: usize,
    expires_at_ms: u64,
    tick: u64,
}

/// The cache. Owned by the execution engine actor (not shared across threads).
#[derive(Debug)]
pub struct ResultCache {
    limits: CacheLimits,
    memory: HashMap<String, Slot>,
    /// Last-use tick → key: the first entry is the least recently used.
    recency: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
    disk: Tree,
    stats: CacheStats,
}

/// The cache key of a call: the tool, a NUL, and the arguments as canonical JSON (object keys
/// sorted, no insignificant white space).
pub fn cache_key(tool: &str, args: &Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order`), so `to_string` is canonical.
    format!("{tool}\u{0}{args}")
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl ResultCache {
    /// A cache whose disk tier is the `cache` tree of `store`.
    pub fn open(store: &Store, limits: CacheLimits) -> Result<Self, StoreError> {
        Ok(Self {
            limits,
            memory: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            disk: store.tree("execution.cache")?,
            stats: CacheStats::default(),
        })
    }

    /// Counts so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.memory.len(),
            bytes: self.bytes,
            ..self.stats
        }
    }

    /// The cached result of `tool(args)`, if one is fresh at `now_ms`.
    pub fn get(&mut self, tool: &str, args: &Value, now_ms: u64) -> Option<Value> {
        let key = cache_key(tool, args);
        if let Some(slot) = self.memory.get(&key) {
            if slot.expires_at_ms > now_ms {
                let value = slot.value.clone();
                self.touch(&key);
                self.stats.hits += 1;
                return Some(value);
            }
            self.forget(&key);
            let _ = self.disk.remove(key.as_bytes());
        }
        // The disk tier: what an earlier process cached.
        match self.disk.get::<Stored>(key.as_bytes()) {
            Ok(Some(stored)) if stored.expires_at_ms > now_ms => {
                if let Ok(value) = serde_json::from_str::<Value>(&stored.json) {
                    self.admit(key, value.clone(), stored.json.len(), stored.expires_at_ms);
                    self.stats.hits += 1;
                    return Some(value);
                }
            }
            Ok(Some(_)) => {
                let _ = self.disk.remove(key.as_bytes());
            }
            _ => {}
        }
        self.stats.misses += 1;
        None
    }

    /// Caches `value` as the result of `tool(args)` until `now_ms + ttl_ms`.
    pub fn put(&mut self, tool: &str, args: &Value, value: Value, now_ms: u64, ttl_ms: u64) {
        let key = cache_key(tool, args);
        let json = value.to_string();
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        if let Err(e) = self.disk.insert(
            key.as_bytes(),
            &Stored {
                json: json.clone(),
                expires_at_ms,
            },
        ) {
            // The memory tier still works; a lost disk entry only costs a recomputation.
            tracing::warn!(error = %e, "result cache could not write its disk tier");
        }
        self.admit(key, value, json.len(), expires_at_ms);
    }

    /// Removes what `what` names from both tiers; returns how many keys went.
    pub fn invalidate(&mut self, what: &Invalidate) -> Result<usize, StoreError> {
        let matches = |key: &str| match what {
            Invalidate::Tool(tool) => key.split('\u{0}').next() == Some(tool.as_str()),
            Invalidate::Prefix(prefix) => key.starts_with(prefix.as_str()),
            Invalidate::Pattern(pattern) => glob(pattern.as_bytes(), key.as_bytes()),
        };
        let scan_prefix = match what {
            Invalidate::Tool(tool) => format!("{tool}\u{0}"),
            Invalidate::Prefix(prefix) => prefix.clone(),
            Invalidate::Pattern(_) => String::new(),
        };
        let mut gone: Vec<String> = Vec::new();
        for entry in self.disk.scan::<Stored>(scan_prefix.as_bytes(), None) {
            let (k, _) = entry?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if matches(&key) {
                gone.push(key);
            }
        }
        for key in self.memory.keys() {
            if matches(key) && !gone.contains(key) {
                gone.push(key.clone());
            }
        }
        for key in &gone {
            self.forget(key);
            self.disk.remove(key.as_bytes())?;
        }
        Ok(gone.len())
    }

    fn admit(&mut self, key: String, value: Value, bytes: usize, expires_at_ms: u64) {
        self.forget(&key);
        if bytes > self.limits.max_bytes || self.limits.max_entries == 0 {
            return;
        }
        while self.memory.len() >= self.limits.max_entries
            || self.bytes + bytes > self.limits.max_bytes
        {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some(slot) = self.memory.remove(&oldest) {
                self.bytes -= slot.bytes;
            }
        }
        self.tick += 1;
        self.recency.insert(self.tick, key.clone());
        self.bytes += bytes;
        self.memory.insert(
            key,
            Slot {
                value,
                bytes,
                expires_at_ms,
                tick: self.tick,
            },
        );
    }

    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.memory.get_mut(key) {
            self.recency.remove(&slot.tick);
            slot.tick = tick;
            self.recency.insert(tick, key.to_string());
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some(slot) = self.memory.remove(key) {
            self.recency.remove(&slot.tick);
            self.bytes -= slot.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cache(limits: CacheLimits) -> ResultCache {
        ResultCache::open(&Store::temporary().unwrap(), limits).unwrap()
    }

    #[test]
    fn keys_are_canonical() {
        let a = json!({"b": 1, "a": {"y": 2, "x": [1, 2]}});
        let b: Value = serde_json::from_str(r#"{ "a": {"x": [1,2], "y": 2}, "b": 1 }"#).unwrap();
        assert_eq!(cache_key("t", &a), cache_key("t", &b));
        assert_ne!(cache_key("t", &a), cache_key("u", &a));
    }

    #[test]
    fn hits_misses_and_ttl() {
        let mut c = cache(CacheLimits::default());
        let args = json!({"q": 1});
        assert_eq!(c.get("search", &args, 0), None);
        c.put("search", &args, json!({"r": 7}), 1_000, 500);
        assert_eq!(c.get("search", &args, 1_499), Some(json!({"r": 7})));
        assert_eq!(c.get("search", &args, 1_500), None, "expired at its TTL");
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 2));
        assert!((s.hit_rate() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn least_recently_used_entries_go_first_by_count_and_by_bytes() {
        let mut c = cache(CacheLimits {
            max_entries: 2,
            max_bytes: 1 << 20,
        });
        c.put("t", &json!(1), json!("a"), 0, 10_000);
        c.put("t", &json!(2), json!("b"), 0, 10_000);
        assert!(c.get("t", &json!(1), 1).is_some()); // 1 is now the most recent
        c.put("t", &json!(3), json!("c"), 0, 10_000);
        assert_eq!(c.stats().entries, 2);
        assert!(c.memory.contains_key(&cache_key("t", &json!(1))));
        assert!(
            !c.memory.contains_key(&cache_key("t", &json!(2))),
            "LRU evicted"
        );
        // An evicted entry still comes back from the disk tier.
        assert_eq!(c.get("t", &json!(2), 1), Some(json!("b")));

        let mut c = cache(CacheLimits {
            max_entries: 100,
            max_bytes: 10,
        });
        c.put("t", &json!(1), json!("12345"), 0, 10_000); // 7 bytes of JSON
        c.put("t", &json!(2), json!("67890"), 0, 10_000);
        assert_eq!(c.stats().entries, 1);
        assert!(c.stats().bytes <= 10);
    }

    #[test]
    fn invalidation_by_tool_prefix_and_pattern() {
        let mut c = cache(CacheLimits::default());
        for (tool, n) in [
            ("registry_get", 1),
            ("registry_get", 2),
            ("registry_list", 1),
            ("validation_validate", 1),
        ] {
            c.put(tool, &json!({"n": n}), json!(n), 0, 10_000);
        }
        assert_eq!(
            c.invalidate(&Invalidate::Tool("registry_get".into()))
                .unwrap(),
            2
        );
        assert_eq!(c.get("registry_get", &json!({"n": 1}), 1), None);
        assert!(c.get("registry_list", &json!({"n": 1}), 1).is_some());
        assert_eq!(
            c.invalidate(&Invalidate::Prefix("registry_".into()))
                .unwrap(),
            1
        );
        assert_eq!(
            c.invalidate(&Invalidate::Pattern("*validate*".into()))
                .unwrap(),
            1
        );
        assert_eq!(c.invalidate(&Invalidate::Pattern("*".into())).unwrap(), 0);
    }

    #[tokio::test]
    async fn the_disk_tier_survives_a_restart_and_still_expires() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut c = ResultCache::open(&store, CacheLimits::default()).unwrap();
            c.put("t", &json!({"k": 1}), json!({"v": 1}), 1_000, 60_000);
            c.put("t", &json!({"k": 2}), json!({"v": 2}), 1_000, 10);
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut c = ResultCache::open(&store, CacheLimits::default()).unwrap();
        assert_eq!(c.get("t", &json!({"k": 1}), 2_000), Some(json!({"v": 1})));
        assert_eq!(
            c.get("t", &json!({"k": 2}), 2_000),
            None,
            "expired while the process was down"
        );
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn globs() {
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"abbc"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*d", b"abc"));
    }
}
