//! Sessions and their call history: who each MCP session is (identity, client, protocol),
//! when it was seen, and its calls (tool, start, duration, outcome), with per-tool statistics
//! per session and overall (count, error rate, p50/p95 latency).
//!
//! A session is an HTTP `Mcp-Session-Id`, a stdio connection, or, for stateless 2026-07-28
//! requests, the identity (`stateless:<subject>`). Memory is bounded: at most `max_sessions`
//! sessions (the least recently seen go first), none older than `max_age` since last seen,
//! `calls_kept` recent calls per session and the last [`SAMPLES`] durations per tool.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

/// Durations kept per tool for percentiles.
pub const SAMPLES: usize = 512;

/// One call, as a session's history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CallRecord {
    /// The tool.
    pub tool: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// How long it took (µs).
    pub duration_us: u64,
    /// `ok`, `error`, `denied`, `rate_limited`, `refused`, `cancelled`, `task`, …
    pub outcome: String,
}

/// Figures of one tool.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ToolFigures {
    /// Calls.
    pub count: u64,
    /// Calls that did not end `ok` (or as a task), over all calls.
    pub error_rate: f64,
    /// Median latency of the recent calls (ms).
    pub p50_ms: f64,
    /// 95th percentile latency of the recent calls (ms).
    pub p95_ms: f64,
}

#[derive(Debug, Clone, Default)]
struct ToolStats {
    count: u64,
    errors: u64,
    durations_us: VecDeque<u64>,
}

impl ToolStats {
    fn add(&mut self, duration_us: u64, ok: bool) {
        self.count += 1;
        if !ok {
            self.errors += 1;
        }
        if self.durations_us.len() == SAMPLES {
            self.durations_us.pop_front();
        }
        self.durations_us.push_back(duration_us);
    }

    fn figures(&self) -> ToolFigures {
        let mut d: Vec<u64> = self.durations_us.iter().copied().collect();
        d.sort_unstable();
        let pick = |q: f64| {
            if d.is_empty() {
                0.0
            } else {
                let i = ((d.len() - 1) as f64 * q).round() as usize;
                d[i.min(d.len() - 1)] as f64 / 1000.0
            }
        };
        ToolFigures {
            count: self.count,
            error_rate: if self.count == 0 {
                0.0
            } else {
                self.errors as f64 / self.count as f64
            },
            p50_ms: pick(0.5),
            p95_ms: pick(0.95),
        }
    }
}

/// What a session record says.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// Who (the subject).
    pub identity: String,
    /// The client's name, when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client's version, when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// The protocol version negotiated, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// First seen (Unix ms).
    pub first_seen_ms: u64,
    /// Last seen (Unix ms).
    pub last_seen_ms: u64,
    /// Calls made.
    pub calls: u64,
}

/// A session with its history.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionDetail {
    /// The record.
    #[serde(flatten)]
    pub info: SessionInfo,
    /// Its most recent calls, oldest first.
    pub recent_calls: Vec<CallRecord>,
    /// Per tool.
    pub tools: BTreeMap<String, ToolFigures>,
}

struct Session {
    info: SessionInfo,
    recent: VecDeque<CallRecord>,
    tools: HashMap<String, ToolStats>,
}

/// The client, as its session's requests tell it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientInfo {
    /// Its name.
    pub name: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// The protocol version.
    pub protocol_version: Option<String>,
}

/// Limits of the book.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Sessions kept at most.
    pub max_sessions: usize,
    /// A session unseen this long is dropped.
    pub max_age: Duration,
    /// Recent calls kept per session.
    pub calls_kept: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_sessions: 1000,
            max_age: Duration::from_secs(24 * 3600),
            calls_kept: 100,
        }
    }
}

/// Every session and the overall per-tool statistics. Shared behind the governance.
pub struct SessionBook {
    retention: Retention,
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    sessions: HashMap<String, Session>,
    overall: HashMap<String, ToolStats>,
}

impl std::fmt::Debug for SessionBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBook")
            .field("retention", &self.retention)
            .finish()
    }
}

fn ok(outcome: &str) -> bool {
    matches!(outcome, "ok" | "task" | "input_required")
}

impl SessionBook {
    /// An empty book.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            inner: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a call of `session` (created on first sight) at `now_ms`.
    pub fn record(
        &self,
        session: &str,
        identity: &str,
        client: Option<&ClientInfo>,
        call: CallRecord,
        now_ms: u64,
    ) {
        let mut book = self.book();
        let keep = self.retention.calls_kept;
        if !book.sessions.contains_key(session) {
            self.make_room(&mut book, now_ms);
            book.sessions.insert(
                session.to_string(),
                Session {
                    info: SessionInfo {
                        id: session.to_string(),
                        identity: identity.to_string(),
                        client_name: None,
                        client_version: None,
                        protocol_version: None,
                        first_seen_ms: now_ms,
                        last_seen_ms: now_ms,
                        calls: 0,
                    },
                    recent: VecDeque::new(),
                    tools: HashMap::new(),
                },
            );
        }
        let good = ok(&call.outcome);
        book.overall
            .entry(call.tool.clone())
            .or_default()
            .add(call.duration_us, good);
        let Some(s) = book.sessions.get_mut(session) else {
            return;
        };
        if let Some(c) = client {
            if c.name.is_some() {
                s.info.client_name = c.name.clone();
                s.info.client_version = c.version.clone();
            }
            if c.protocol_version.is_some() {
                s.info.protocol_version = c.protocol_version.clone();
            }
        }
        s.info.last_seen_ms = now_ms;
        s.info.calls += 1;
        s.tools
            .entry(call.tool.clone())
            .or_default()
            .add(call.duration_us, good);
        if keep > 0 {
            if s.recent.len() >= keep {
                s.recent.pop_front();
            }
            s.recent.push_back(call);
        }
    }

    /// Drops sessions unseen for too long, then the least recently seen past the count.
    fn make_room(&self, book: &mut Book, now_ms: u64) {
        let max_age = self.retention.max_age.as_millis() as u64;
        book.sessions
            .retain(|_, s| now_ms.saturating_sub(s.info.last_seen_ms) <= max_age);
        while book.sessions.len() >= self.retention.max_sessions.max(1) {
            let oldest = book
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.info.last_seen_ms)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    book.sessions.remove(&id);
                }
                None => break,
            }
        }
    }

    /// The sessions (of `identity`, if given), most recently seen first, at most `limit`.
    pub fn list(&self, identity: Option<&str>, limit: usize) -> Vec<SessionInfo> {
        let book = self.book();
        let mut out: Vec<SessionInfo> = book
            .sessions
            .values()
            .filter(|s| identity.is_none_or(|i| s.info.identity == i))
            .map(|s| s.info.clone())
            .collect();
        out.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        out
    }

    /// One session with its history.
    pub fn get(&self, id: &str) -> Option<SessionDetail> {
        let book = self.book();
        let s = book.sessions.get(id)?;
        Some(SessionDetail {
            info: s.info.clone(),
            recent_calls: s.recent.iter().cloned().collect(),
            tools: s
                .tools
                .iter()
                .map(|(t, st)| (t.clone(), st.figures()))
                .collect(),
        })
    }

    /// Per-tool figures, of one session or overall.
    pub fn stats(&self, session: Option<&str>) -> Option<BTreeMap<String, ToolFigures>> {
        let book = self.book();
        let tools = match session {
            Some(id) => &book.sessions.get(id)?.tools,
            None => &book.overall,
        };
        Some(
            tools
                .iter()
                .map(|(t, st)| (t.clone(), st.figures()))
                .collect(),
        )
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.book().sessions.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tool: &str, ms: u64, outcome: &str) -> CallRecord {
        CallRecord {
            tool: tool.into(),
            started_ms: 0,
            duration_us: ms * 1000,
            outcome: outcome.into(),
        }
    }

    #[test]
    fn figures_per_session_and_overall() {
        let book = SessionBook::new(Retention::default());
        let client = ClientInfo {
            name: Some("claude".into()),
            version: Some("1.2".into()),
            protocol_version: Some("2025-11-25".into()),
        };
        for i in 1..=100 {
            book.record(
                "s1",
                "alice",
                Some(&client),
                call("registry_get", i, "ok"),
                10 + i,
            );
        }
        book.record("s1", "alice", None, call("registry_put", 5, "error"), 200);
        book.record("s2", "bob", None, call("registry_get", 1000, "ok"), 300);
        let s1 = book.get("s1").unwrap();
        assert_eq!(s1.info.calls, 101);
        assert_eq!(s1.info.client_name.as_deref(), Some("claude"));
        assert_eq!(s1.info.first_seen_ms, 11);
        assert_eq!(s1.info.last_seen_ms, 200);
        assert_eq!(s1.recent_calls.len(), 100);
        let get = &s1.tools["registry_get"];
        assert_eq!((get.count, get.p50_ms, get.p95_ms), (100, 51.0, 95.0));
        assert_eq!(s1.tools["registry_put"].error_rate, 1.0);
        let overall = book.stats(None).unwrap();
        assert_eq!(overall["registry_get"].count, 101);
        let listed = book.list(None, 10);
        assert_eq!(listed[0].id, "s2");
        assert_eq!(book.list(Some("alice"), 10).len(), 1);
    }

    #[test]
    fn memory_is_bounded_by_count_and_age() {
        let book = SessionBook::new(Retention {
            max_sessions: 3,
            max_age: Duration::from_millis(1000),
            calls_kept: 2,
        });
        for i in 0..5u64 {
            book.record(&format!("s{i}"), "a", None, call("t", 1, "ok"), i);
        }
        assert_eq!(book.len(), 3);
        assert!(book.get("s0").is_none() && book.get("s4").is_some());
        for _ in 0..5 {
            book.record("s4", "a", None, call("t", 1, "ok"), 10);
        }
        assert_eq!(book.get("s4").unwrap().recent_calls.len(), 2);
        // Much later, a new session: the stale ones are gone.
        book.record("late", "a", None, call("t", 1, "ok"), 5000);
        assert_eq!(book.len(), 1);
    }
}
