//! The tamper-evident audit log: every governance decision, tool call and change, one entry each,
//! in a hash chain in the store, with signed checkpoints kept outside it.
//!
//! # What it can and cannot detect
//!
//! Each entry carries the chain's head: `head_i = SHA-256(0x01 ‖ head_{i-1} ‖ leaf_i)`, where
//! `leaf_i = SHA-256(0x00 ‖ the entry's bytes)` and the chain starts at
//! `SHA-256("ensemble-audit-v1" ‖ node id)`. [`verify`] walks the log from the start and
//! recomputes every leaf and head.
//!
//! - **The chain alone** detects an entry edited, removed or moved *by someone who did not also
//!   recompute the heads after it*, and any change relative to a head you kept yourself
//!   ([`AuditLog::head`]).
//! - **Someone with write access to the data directory** can delete the newest entries, or
//!   rewrite an entry and recompute every head after it; the chain then verifies. Only a
//!   checkpoint kept *out of their reach* catches that: a checkpoint records the size and head of
//!   the log at a moment, so a shorter log ([`Problem::Truncated`]) or a recomputed one
//!   ([`Problem::HeadMismatchAtCheckpoint`]) no longer matches it.
//! - **Checkpoints in the store only** are deleted or rewritten as easily as the entries.
//!   Checkpoints in a directory outside the data directory ([`CheckpointConfig::dir`]) survive an
//!   attacker who holds only the data directory, and a signature by a key outside it
//!   ([`CheckpointConfig::key_file`]) stops them from forging new ones
//!   ([`Problem::BadSignature`]). Whoever holds the signing key *and* the checkpoint directory
//!   can rewrite everything: keep them on another machine or account for real assurance.
//! - **Without a key file no checkpoints are written**, and neither truncation nor
//!   recomputation can be detected.
//! - It proves nothing about events that were never appended: a server changed to skip its
//!   audit writes logs nothing to verify.
//!
//! # Writing
//!
//! [`AuditLog::append`] answers once the entry is durable. One writer task owns the chain: it
//! writes the entries queued in arrival order and makes them durable with [`Store::flush`]
//! (group commit), pipelined: while one flush runs it goes on writing the entries that arrive,
//! and starts the next flush, covering all of them, as soon as that one returns. An entry is
//! acknowledged only once a flush that started after it was written has returned. If a write or
//! a flush fails, every append not yet acknowledged gets [`AuditError::WriteFailed`], and so does
//! every later append until the log is opened again: a caller that cannot audit must refuse the
//! action (fail closed). Entries not acknowledged may still reach the disk; they are then part
//! of a valid chain, written but never acknowledged.
//!
//! # Storage
//!
//! Tree `audit`: key = sequence number (u64, big-endian); value = the entry's bytes, which are
//! the record through the store codec (format version byte, bincode: fixed field order) followed
//! by the sequence number (8 bytes, big-endian), the previous head (32 bytes) and the head (32
//! bytes). The leaf hashes every byte but the head. Tree `audit_meta` holds the node id and the
//! last entry written (so that opening reads the end of the log, not all of it); tree
//! `audit_checkpoints` holds the checkpoint notes by size.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ensemble_actors::governance::audit::{self, AuditKind, AuditLog, AuditRecord};
//! use ensemble_actors::governance::checkpoint::CheckpointConfig;
//! use ensemble_actors::store::Store;
//!
//! let store = Store::temporary().unwrap();
//! let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
//! let mut record = AuditRecord::new(AuditKind::Call, "alice", "tools/call");
//! record.target = Some("registry_get".into());
//! record.outcome = Some("ok".into());
//! assert_eq!(log.append(record).await.unwrap(), 0);
//! log.close().await.unwrap();
//!
//! let report = audit::verify(&store, None, &[]).unwrap();
//! assert!(report.is_intact());
//! assert_eq!(report.entries, 1);
//! # });
//! ```

use std::collections::BTreeMap;
use std::mem::Discriminant;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ensemble_protocol::codec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::checkpoint::{self, Checkpoint, CheckpointConfig, SigningKey, VerifyingKey};
use super::wal::{self, Wal};
use crate::store::{Store, StoreError, Tree};

/// The tree of entries.
pub const ENTRIES_TREE: &str = "audit";
/// The tree of the node id and the position of the last entry.
pub const META_TREE: &str = "audit_meta";
/// The tree of checkpoint notes, by size.
pub const CHECKPOINTS_TREE: &str = "audit_checkpoints";

const META_NODE_ID: &[u8] = b"node_id";
const META_TIP: &[u8] = b"tip";
const META_CHECKPOINT: &[u8] = b"checkpoint";

/// Sequence number, previous head and head, after the record.
const TRAILER: usize = 8 + 32 + 32;
/// Entries written before one flush, at most.
const MAX_BATCH: usize = 4096;
/// A flush under concurrent load starts at once with this many entries...
const LINGER_BATCH: u64 = 16;
/// ... or after waiting this long for them.
const LINGER: Duration = Duration::from_micros(200);

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An authorization decision (allowed or denied, by which rule).
    Decision,
    /// A tool call and its outcome.
    Call,
    /// A change of governance state (policy reload, lockdown, suspension).
    Change,
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened, in milliseconds since the Unix epoch.
    pub ts_unix_ms: u64,
    /// What kind of event it is.
    pub kind: AuditKind,
    /// Who acted (the authenticated identity).
    pub identity: String,
    /// The MCP session, if any.
    pub session: Option<String>,
    /// What was done, e.g. `tools/call`, `governance/lockdown`.
    pub action: String,
    /// What it was done to: a tool name or a resource URI.
    pub target: Option<String>,
    /// SHA-256 of the call's arguments in canonical JSON (see [`args_digest`]); hex in JSON.
    #[serde(default, with = "hex_digest")]
    pub args_sha256: Option<[u8; 32]>,
    /// Whether it was allowed.
    pub allowed: Option<bool>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// How it ended: `ok`, `error`, `denied`, `rate_limited`.
    pub outcome: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: Option<u64>,
    /// Anything else worth keeping.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record of `kind` by `identity` doing `action`, stamped now, every other field empty.
    pub fn new(kind: AuditKind, identity: impl Into<String>, action: impl Into<String>) -> Self {
        let ts_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            ts_unix_ms,
            kind,
            identity: identity.into(),
            session: None,
            action: action.into(),
            target: None,
            args_sha256: None,
            allowed: None,
            rule: None,
            outcome: None,
            duration_us: None,
            detail: None,
        }
    }
}

/// `Option<[u8; 32]>` as lowercase hex in human-readable formats (JSON), as bytes otherwise.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            v.map(super::hex).serialize(s)
        } else {
            v.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        if d.is_human_readable() {
            let Some(text) = Option::<String>::deserialize(d)? else {
                return Ok(None);
            };
            super::unhex(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        } else {
            Option::<[u8; 32]>::deserialize(d)
        }
    }
}

/// Lowercase hex of a digest.
pub fn hex(bytes: [u8; 32]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of `args` as canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings and numbers as serde_json writes them. Equal JSON values have equal digests,
/// whatever the order their keys came in.
///
/// ```
/// use ensemble_actors::governance::audit::args_digest;
/// use serde_json::json;
///
/// assert_eq!(
///     args_digest(&json!({"b": 1, "a": [true, null]})),
///     args_digest(&json!({"a": [true, null], "b": 1})),
/// );
/// ```
pub fn args_digest(args: &serde_json::Value) -> [u8; 32] {
    let mut hasher = HashWriter(Sha256::new());
    write_canonical(args, &mut hasher);
    hasher.0.finalize().into()
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut HashWriter) {
    use serde_json::Value;
    use std::io::Write as _;
    // Writing into a hasher cannot fail, and a string or a number always serializes.
    match value {
        Value::Array(items) => {
            let _ = out.write_all(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    let _ = out.write_all(b",");
                }
                write_canonical(item, out);
            }
            let _ = out.write_all(b"]");
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            let _ = out.write_all(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    let _ = out.write_all(b",");
                }
                let _ = serde_json::to_writer(&mut *out, key);
                let _ = out.write_all(b":");
                write_canonical(&map[key], out);
            }
            let _ = out.write_all(b"}");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The head the chain of node `node_id` starts from: SHA-256("ensemble-audit-v1" ‖ node id).
pub fn genesis(node_id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"ensemble-audit-v1")
        .chain_update(node_id.as_bytes())
        .finalize()
        .into()
}

/// `SHA-256(0x00 ‖ body)`: the leaf of an entry whose bytes, without the head, are `body`.
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(body)
        .finalize()
        .into()
}

/// `SHA-256(0x01 ‖ prev ‖ leaf)`: the head after an entry.
pub fn chain_hash(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(prev)
        .chain_update(leaf)
        .finalize()
        .into()
}

/// One entry as stored: a record, its place in the chain, and the chain's head after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its sequence number (its key).
    pub seq: u64,
    /// The head before it.
    pub prev: [u8; 32],
    /// The head after it, as stored.
    pub head: [u8; 32],
    /// The record.
    pub record: AuditRecord,
}

impl AuditEntry {
    /// `record` as entry `seq` after `prev`, with its head computed.
    pub fn seal(seq: u64, prev: [u8; 32], record: AuditRecord) -> Result<Self, AuditError> {
        let mut bytes = encode_record(&record)?;
        let head = seal_bytes(&mut bytes, seq, &prev);
        Ok(Self {
            seq,
            prev,
            head,
            record,
        })
    }

    /// The entry's bytes, as stored (with `self.head` as it is, right or wrong).
    pub fn to_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let mut bytes = encode_record(&self.record)?;
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.prev);
        bytes.extend_from_slice(&self.head);
        Ok(bytes)
    }

    /// Reads an entry's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let raw = RawEntry::split(bytes)?;
        let record = codec::decode(raw.record).map_err(|e| e.to_string())?;
        Ok(Self {
            seq: raw.seq,
            prev: raw.prev,
            head: raw.head,
            record,
        })
    }

    /// The head this entry should carry: `SHA-256(0x01 ‖ prev ‖ leaf)` of its bytes.
    pub fn expected_head(&self) -> Result<[u8; 32], AuditError> {
        let bytes = self.to_bytes()?;
        Ok(chain_hash(
            &self.prev,
            &leaf_hash(&bytes[..bytes.len() - 32]),
        ))
    }
}

fn encode_record(record: &AuditRecord) -> Result<Vec<u8>, AuditError> {
    let mut bytes = codec::encode(record).map_err(|e| AuditError::Encode(e.to_string()))?;
    bytes.reserve_exact(TRAILER);
    Ok(bytes)
}

/// Appends the sequence number, `prev` and the new head to an encoded record; returns the head.
fn seal_bytes(bytes: &mut Vec<u8>, seq: u64, prev: &[u8; 32]) -> [u8; 32] {
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(prev);
    let head = chain_hash(prev, &leaf_hash(bytes));
    bytes.extend_from_slice(&head);
    head
}

/// An entry's bytes, split without decoding the record.
struct RawEntry<'a> {
    /// Every byte but the head: what the leaf hashes.
    body: &'a [u8],
    record: &'a [u8],
    seq: u64,
    prev: [u8; 32],
    head: [u8; 32],
}

impl<'a> RawEntry<'a> {
    fn split(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() <= TRAILER {
            return Err(format!("{} bytes is too short for an entry", bytes.len()));
        }
        let (body, head) = bytes.split_at(bytes.len() - 32);
        let (record, rest) = body.split_at(body.len() - 40);
        let (seq, prev) = rest.split_at(8);
        let array = |b: &[u8]| <[u8; 32]>::try_from(b).unwrap_or_default();
        Ok(Self {
            body,
            record,
            seq: u64::from_be_bytes(<[u8; 8]>::try_from(seq).unwrap_or_default()),
            prev: array(prev),
            head: array(head),
        })
    }
}

/// The value type of tree `audit`: an entry's bytes, stored through the codec as one byte
/// string (so that a damaged entry still reads back, to be reported, not refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBytes(pub Vec<u8>);

impl Serialize for EntryBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct EntryBytesRef<'a>(&'a [u8]);

impl Serialize for EntryBytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for EntryBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EntryBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the bytes of an audit entry")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<EntryBytes, E> {
                Ok(EntryBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<EntryBytes, E> {
                Ok(EntryBytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<EntryBytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(EntryBytes(out))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed (reading, or opening the trees).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node id cannot name a log.
    #[error("audit node id {node_id:?}: {reason}")]
    NodeId {
        /// The id given.
        node_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The store's log belongs to another node id.
    #[error(
        "the audit log in {path} belongs to node {stored:?}, not {given:?}: its chain starts \
         from that id; configure node id {stored:?}, or use another --data-dir"
    )]
    NodeMismatch {
        /// The data directory.
        path: PathBuf,
        /// The node id the log was started with.
        stored: String,
        /// The node id given now.
        given: String,
    },
    /// [`AuditLog::open`] was called outside a tokio runtime.
    #[error("the audit log needs a tokio runtime: open it from async code")]
    NoRuntime,
    /// A record could not be encoded.
    #[error("an audit record could not be encoded: {0}")]
    Encode(String),
    /// The last entry of the log cannot be read, so the chain cannot be continued.
    #[error(
        "audit entry {seq} in {path} is damaged ({reason}); run `ensemble audit verify`, then \
         restore the data directory from a backup"
    )]
    Damaged {
        /// The data directory.
        path: PathBuf,
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Entries could not be made durable; the log refuses appends until it is opened again.
    #[error(
        "the audit log could not make its entries durable ({reason}); the action must not \
         proceed, and the log refuses further entries until the runtime restarts"
    )]
    WriteFailed {
        /// What failed.
        reason: Arc<str>,
    },
    /// The log was closed.
    #[error("the audit log is closed")]
    Closed,
    /// The write-ahead file cannot be opened or read.
    #[error("the audit write-ahead file {0}")]
    Wal(String),
    /// The write-ahead file holds acknowledged entries that do not continue the log in the
    /// store: entries between them are lost.
    #[error(
        "the audit write-ahead file {path} continues the log at entry {found}, but the store's \
         log ends before entry {expected}: acknowledged entries are missing from both. Run \
         `ensemble audit verify`; to start anyway, move the file aside (its entries are then \
         left out of the log)"
    )]
    WalGap {
        /// The file.
        path: PathBuf,
        /// The next entry the store's log expects.
        expected: u64,
        /// The first entry of the file after the store's log.
        found: u64,
    },
    /// The signing key or checkpoint directory is unusable.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A checkpoint could not be written at close.
    #[error("the final audit checkpoint could not be written: {0}")]
    CheckpointWrite(String),
}

/// Which records [`AuditLog::query`] returns: every field set must match (strings exactly,
/// times as `since_ms <= ts < until_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Records of this identity.
    pub identity: Option<String>,
    /// Records about this tool or resource.
    pub target: Option<String>,
    /// Records with this outcome.
    pub outcome: Option<String>,
    /// Records of this kind.
    pub kind: Option<AuditKind>,
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Records before this time (ms since the epoch).
    pub until_ms: Option<u64>,
}

impl AuditFilter {
    /// True when `record` passes the filter.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.identity, Some(&record.identity))
            && eq(&self.target, record.target.as_deref())
            && eq(&self.outcome, record.outcome.as_deref())
            && self.kind.is_none_or(|k| k == record.kind)
            && self.since_ms.is_none_or(|t| record.ts_unix_ms >= t)
            && self.until_ms.is_none_or(|t| record.ts_unix_ms < t)
    }
}

/// One page of [`AuditLog::query`], oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The matching records with their sequence numbers, in ascending order.
    pub entries: Vec<(u64, AuditRecord)>,
    /// Pass as `after_seq` for the next page; `None` when the log has no more.
    pub next: Option<u64>,
}

/// What the writer has made durable, shared with every handle.
#[derive(Debug, Clone)]
struct Progress {
    /// Entries `0..durable` are durable.
    durable: u64,
    /// The head after them.
    head: [u8; 32],
    /// The size of the last checkpoint written.
    checkpoint: Option<u64>,
    /// Set once a write failed: entries from `from` on are not durable.
    failed: Option<Failed>,
    /// The writer has stopped.
    stopped: bool,
}

#[derive(Debug, Clone)]
struct Failed {
    from: u64,
    reason: Arc<str>,
}

impl Failed {
    fn error(&self) -> AuditError {
        AuditError::WriteFailed {
            reason: self.reason.clone(),
        }
    }
}

enum Msg {
    Append {
        seq: u64,
        bytes: Vec<u8>,
    },
    AppendMany {
        first: u64,
        entries: Vec<Vec<u8>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), AuditError>>,
    },
}

/// Hands sequence numbers out in the order messages enter the queue.
struct Queue {
    tx: Option<mpsc::UnboundedSender<Msg>>,
    next: u64,
}

struct Shared {
    node_id: String,
    entries: Tree,
    queue: Mutex<Queue>,
    progress: watch::Receiver<Progress>,
    fail_next: Arc<AtomicBool>,
    /// Batches made durable (see [`AuditLog::write_outs`]).
    write_outs: Arc<AtomicU64>,
}

/// The audit log of one node: a handle on its writer task. Cheap to clone.
///
/// The queue between handles and the writer is unbounded, but each append waits for its entry
/// to be durable, so it holds at most one batch per concurrent appender.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("node_id", &self.shared.node_id)
            .field("len", &self.len())
            .finish()
    }
}

fn check_node_id(node_id: &str) -> Result<(), AuditError> {
    let reason = if node_id.is_empty() {
        Some("it is empty")
    } else if node_id.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if node_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        Some("it may not contain spaces, control characters or `+` (it names a signing key)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AuditError::NodeId {
            node_id: node_id.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A warning when `path` lies inside the data directory (where it protects nothing).
fn warn_if_inside(store: &Store, path: &Path, what: &str) {
    let data = store.path();
    let resolve = |p: &Path| p.canonicalize().or_else(|_| std::path::absolute(p));
    if let (Ok(data), Ok(path)) = (resolve(data), resolve(path))
        && path.starts_with(&data)
    {
        tracing::warn!(
            path = %path.display(),
            "the audit {what} is inside the data directory: whoever can rewrite the log can \
             rewrite it too; move it outside"
        );
    }
}

impl AuditLog {
    /// Opens the log of `node_id` in `store` (created on first use) and starts its writer on the
    /// current tokio runtime. Reads only the end of the log. Loads (or creates) the checkpoint
    /// signing key when `checkpoints.key_file` is set; without it no checkpoints are written.
    pub fn open(
        store: &Store,
        node_id: &str,
        checkpoints: CheckpointConfig,
    ) -> Result<Self, AuditError> {
        Self::open_rotating_at(store, node_id, checkpoints, wal::ROTATE_BYTES)
    }

    /// [`AuditLog::open`], with the write-ahead file emptied past `rotate_bytes`.
    fn open_rotating_at(
        store: &Store,
        node_id: &str,
        checkpoints: CheckpointConfig,
        rotate_bytes: u64,
    ) -> Result<Self, AuditError> {
        check_node_id(node_id)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        // Every series at 0 from the start, so that a rate (an alert) sees the first of each.
        for name in [
            "ensemble_governance_audit_entries_total",
            "ensemble_governance_audit_flushes_total",
            "ensemble_governance_audit_checkpoints_total",
            "ensemble_governance_audit_refusals_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        for stage in ["write", "checkpoint"] {
            metrics::counter!("ensemble_governance_audit_failures_total", "stage" => stage)
                .increment(0);
        }
        let entries = store.tree(ENTRIES_TREE)?;
        let meta = store.tree(META_TREE)?;
        let checkpoint_tree = store.tree(CHECKPOINTS_TREE)?;
        match meta.get::<String>(META_NODE_ID)? {
            Some(stored) if stored != node_id => {
                return Err(AuditError::NodeMismatch {
                    path: store.path().to_path_buf(),
                    stored,
                    given: node_id.into(),
                });
            }
            Some(_) => {}
            None => meta.insert(META_NODE_ID, node_id)?,
        }
        let (len, head) = read_tail(store, &entries, &meta, node_id)?;
        let (len, head) = recover_from_wal(store, &entries, &meta, len, head)?;
        let wal = store
            .source_dir()
            .map(|dir| Wal::open(dir, rotate_bytes))
            .transpose()
            .map_err(AuditError::Wal)?;
        let mut checkpointed: u64 = meta.get(META_CHECKPOINT)?.unwrap_or(0);
        if checkpointed > len {
            tracing::warn!(
                entries = len,
                checkpoint = checkpointed,
                "the audit log is shorter than its last checkpoint: it was truncated or \
                 restored from a backup; new checkpoints will conflict with the old ones (run \
                 `ensemble audit verify`)"
            );
            checkpointed = 0;
        }
        let signer = match &checkpoints.key_file {
            Some(path) => {
                warn_if_inside(store, path, "signing key");
                Some(checkpoint::load_or_create_key(path)?)
            }
            None => {
                tracing::warn!(
                    "audit checkpoints are off (no key file): the chain alone cannot show that \
                     the newest entries were removed or the chain recomputed"
                );
                None
            }
        };
        if let Some(dir) = &checkpoints.dir {
            std::fs::create_dir_all(dir).map_err(|e| checkpoint::CheckpointError::Dir {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
            warn_if_inside(store, dir, "checkpoint directory");
        }
        let (progress_tx, progress) = watch::channel(Progress {
            durable: len,
            head,
            checkpoint: (checkpointed > 0).then_some(checkpointed),
            failed: None,
            stopped: false,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let fail_next = Arc::new(AtomicBool::new(false));
        let write_outs = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            store: store.clone(),
            entries: entries.clone(),
            meta,
            checkpoint_tree,
            node_id: node_id.into(),
            len,
            head,
            durable: len,
            durable_head: head,
            flight: None,
            wal,
            wal_batch: Vec::new(),
            last_batch: 0,
            linger_until: None,
            signer,
            dir: checkpoints.dir,
            every_entries: checkpoints.every_entries,
            every: checkpoints.every,
            checkpointed,
            checkpointed_at: Instant::now(),
            retry_at: None,
            progress: progress_tx,
            failed: None,
            fail_next: fail_next.clone(),
            write_outs: write_outs.clone(),
        };
        runtime.spawn(writer.run(rx));
        Ok(Self {
            shared: Arc::new(Shared {
                node_id: node_id.into(),
                entries,
                queue: Mutex::new(Queue {
                    tx: Some(tx),
                    next: len,
                }),
                progress,
                fail_next,
                write_outs,
            }),
        })
    }

    /// The node id the log belongs to.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Appends `record`; answers its sequence number once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<u64, AuditError> {
        let bytes = encode_record(&record)?;
        let seq = self.enqueue(1, |seq| Msg::Append { seq, bytes })?;
        self.durable(seq + 1).await?;
        Ok(seq)
    }

    /// Appends `records` as consecutive entries; answers their sequence numbers once all are
    /// durable.
    pub async fn append_many(
        &self,
        records: impl IntoIterator<Item = AuditRecord>,
    ) -> Result<Range<u64>, AuditError> {
        let entries = records
            .into_iter()
            .map(|r| encode_record(&r))
            .collect::<Result<Vec<_>, _>>()?;
        let n = entries.len() as u64;
        if n == 0 {
            let at = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next;
            return Ok(at..at);
        }
        let first = self.enqueue(n, |first| Msg::AppendMany { first, entries })?;
        self.durable(first + n).await?;
        Ok(first..first + n)
    }

    /// Whether an append would be taken now (the log has not failed or closed).
    pub fn writable(&self) -> Result<(), AuditError> {
        self.open_queue().map(drop)
    }

    /// The queue to the writer, locked, unless the log failed or closed.
    fn open_queue(&self) -> Result<std::sync::MutexGuard<'_, Queue>, AuditError> {
        let queue = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(failed) = &self.shared.progress.borrow().failed {
            return Err(failed.error());
        }
        match queue.tx {
            Some(_) => Ok(queue),
            None => Err(AuditError::Closed),
        }
    }

    fn enqueue(&self, n: u64, msg: impl FnOnce(u64) -> Msg) -> Result<u64, AuditError> {
        let mut queue = self.open_queue()?;
        let seq = queue.next;
        let tx = queue.tx.as_ref().ok_or(AuditError::Closed)?;
        tx.send(msg(seq)).map_err(|_| AuditError::Closed)?;
        queue.next += n;
        Ok(seq)
    }

    /// Waits until entries `0..end` are durable, or the batch holding them failed.
    async fn durable(&self, end: u64) -> Result<(), AuditError> {
        let mut progress = self.shared.progress.clone();
        loop {
            {
                let p = progress.borrow_and_update();
                if p.durable >= end {
                    return Ok(());
                }
                if let Some(failed) = p.failed.as_ref().filter(|f| f.from < end) {
                    return Err(failed.error());
                }
                if p.stopped {
                    return Err(AuditError::Closed);
                }
            }
            if progress.changed().await.is_err() {
                return Err(AuditError::Closed);
            }
        }
    }

    /// Durable entries (the next sequence number, when no append is in flight).
    pub fn len(&self) -> u64 {
        self.shared.progress.borrow().durable
    }

    /// True when the log holds no durable entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chain's head after the durable entries (the start hash when there are none). Kept
    /// elsewhere, it lets [`verify`]'s caller check that the log up to here was not rewritten.
    pub fn head(&self) -> [u8; 32] {
        self.shared.progress.borrow().head
    }

    /// The size of the last checkpoint written, if any.
    pub fn last_checkpoint(&self) -> Option<u64> {
        self.shared.progress.borrow().checkpoint
    }

    /// Waits until a checkpoint of at least `size` entries has been written (for tests and
    /// shutdown sequencing); fails if the writer stops first.
    pub async fn wait_for_checkpoint(&self, size: u64) -> Result<(), AuditError> {
        let mut progress = self.shared.progress.clone();
        loop {
            {
                let p = progress.borrow_and_update();
                if p.checkpoint.is_some_and(|c| c >= size) {
                    return Ok(());
                }
                if let Some(failed) = &p.failed {
                    return Err(failed.error());
                }
                if p.stopped {
                    return Err(AuditError::Closed);
                }
            }
            if progress.changed().await.is_err() {
                return Err(AuditError::Closed);
            }
        }
    }

    /// Durable records that pass `filter`, oldest first, after sequence number `after_seq`
    /// (exclusive), at most `limit`. Pages by sequence number: pass the answer's `next` as
    /// `after_seq` for the next page. Reads the log from `after_seq` on, so a filter that
    /// matches little scans far: call it from `spawn_blocking` on a large log.
    pub fn query(
        &self,
        filter: &AuditFilter,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, AuditError> {
        let durable = self.len();
        let mut page = AuditPage::default();
        if limit == 0 {
            return Ok(page);
        }
        let after = after_seq.map(u64::to_be_bytes);
        for item in self
            .shared
            .entries
            .scan::<EntryBytes>(b"", after.as_ref().map(<[u8; 8]>::as_slice))
        {
            let (key, bytes) = item?;
            let seq = seq_of(&key).unwrap_or(u64::MAX);
            if seq >= durable {
                break;
            }
            let entry = AuditEntry::from_bytes(&bytes.0).map_err(|reason| AuditError::Damaged {
                path: self.shared.entries.store().path().to_path_buf(),
                seq,
                reason,
            })?;
            if filter.matches(&entry.record) {
                if page.entries.len() == limit {
                    page.next = page.entries.last().map(|(s, _)| *s);
                    break;
                }
                page.entries.push((seq, entry.record));
            }
        }
        Ok(page)
    }

    /// Writes everything queued, a final checkpoint (when checkpoints are on and entries came
    /// since the last), makes it durable and stops the writer. Appends after it fail with
    /// [`AuditError::Closed`], on every handle.
    pub async fn close(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let tx = queue.tx.take().ok_or(AuditError::Closed)?;
            tx.send(Msg::Close { reply })
                .map_err(|_| AuditError::Closed)?;
        }
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Batches made durable so far (each one write-out of the write-ahead file, or one store
    /// flush for a temporary store): entries per batch show how much appends are grouped.
    pub fn write_outs(&self) -> u64 {
        self.shared.write_outs.load(Ordering::Relaxed)
    }

    /// Makes the writer's next flush fail as a full disk would (tests of failing closed).
    #[doc(hidden)]
    pub fn fail_next_flush(&self) {
        self.shared.fail_next.store(true, Ordering::SeqCst);
    }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// The log's length and head, from the last entry (found from the tip record, or by a scan).
fn read_tail(
    store: &Store,
    entries: &Tree,
    meta: &Tree,
    node_id: &str,
) -> Result<(u64, [u8; 32]), AuditError> {
    let damaged = |seq: u64, reason: String| AuditError::Damaged {
        path: store.path().to_path_buf(),
        seq,
        reason,
    };
    let tip: Option<u64> = meta.get(META_TIP)?;
    let mut last: Option<(u64, EntryBytes)> = None;
    if let Some(tip) = tip {
        match entries.get::<EntryBytes>(&tip.to_be_bytes())? {
            Some(bytes) => last = Some((tip, bytes)),
            None => tracing::warn!(
                tip,
                "the last audit entry recorded is missing: entries were removed (run `ensemble \
                 audit verify`); the log continues after the last entry present"
            ),
        }
    }
    // Entries written after the tip record (a crash between the two), or every entry when the
    // tip record is missing.
    let from = last.as_ref().map(|(seq, _)| seq.to_be_bytes());
    for item in entries.scan::<EntryBytes>(b"", from.as_ref().map(<[u8; 8]>::as_slice)) {
        let (key, bytes) = item?;
        let seq = seq_of(&key)
            .ok_or_else(|| damaged(0, format!("a key of {} bytes in tree audit", key.len())))?;
        last = Some((seq, bytes));
    }
    match last {
        None => Ok((0, genesis(node_id))),
        Some((seq, bytes)) => {
            let raw = RawEntry::split(&bytes.0).map_err(|reason| damaged(seq, reason))?;
            Ok((seq + 1, raw.head))
        }
    }
}

/// Puts back the entries of the data directory's write-ahead file that continue the store's
/// log of `len` entries ending in `head` (acknowledged, but lost from the store by a crash
/// before its own flush reached them); answers the log's length and head after them. Then makes
/// the store durable and empties the file, so that it starts clean (a frame cut short by the
/// crash would otherwise sit in front of the next ones). A temporary store has no file.
fn recover_from_wal(
    store: &Store,
    entries: &Tree,
    meta: &Tree,
    mut len: u64,
    mut head: [u8; 32],
) -> Result<(u64, [u8; 32]), AuditError> {
    let Some(dir) = store.source_dir() else {
        return Ok((len, head));
    };
    let path = dir.join(wal::FILE_NAME);
    let (frames, mut ignored) = wal::read(&path).map_err(AuditError::Wal)?;
    if frames.is_empty() && ignored == 0 {
        return Ok((len, head));
    }
    let mut put_back = 0u64;
    for (i, bytes) in frames.iter().enumerate() {
        let checked = RawEntry::split(bytes).and_then(|raw| {
            if chain_hash(&raw.prev, &leaf_hash(raw.body)) == raw.head {
                Ok(raw)
            } else {
                Err("its head does not match its bytes".to_string())
            }
        });
        let raw = match checked {
            Ok(raw) => raw,
            Err(reason) => {
                // Only the last frame can be cut short by a crash; anything else is damage.
                ignored += frames[i..].iter().map(|f| 4 + f.len()).sum::<usize>();
                if i + 1 < frames.len() {
                    tracing::warn!(
                        path = %path.display(),
                        frame = i,
                        %reason,
                        "the audit write-ahead file is damaged; the entries after the damage \
                         are left out"
                    );
                }
                break;
            }
        };
        if raw.seq < len {
            continue;
        }
        if raw.seq > len {
            return Err(AuditError::WalGap {
                path,
                expected: len,
                found: raw.seq,
            });
        }
        if raw.prev != head {
            tracing::warn!(
                path = %path.display(),
                seq = raw.seq,
                "the audit write-ahead file does not continue the log in the store (the data \
                 directory was restored or rewritten?); its entries are left out"
            );
            break;
        }
        entries.insert(&raw.seq.to_be_bytes(), &EntryBytesRef(bytes))?;
        len += 1;
        head = raw.head;
        put_back += 1;
    }
    if put_back > 0 {
        meta.insert(META_TIP, &(len - 1))?;
        tracing::info!(
            entries = put_back,
            path = %path.display(),
            "audit entries acknowledged before an unclean stop were put back from the \
             write-ahead file"
        );
    }
    if ignored > 0 {
        tracing::info!(
            bytes = ignored,
            path = %path.display(),
            "the audit write-ahead file ended in a write cut short (never acknowledged)"
        );
    }
    store.flush_blocking()?;
    wal::empty(&path).map_err(AuditError::Wal)?;
    Ok((len, head))
}

/// Makes a stopped server's audit log whole: puts back into `store` the entries its
/// write-ahead file holds beyond the store's log (as opening the log does). Answers how many
/// entries the log has. For tools that read the log without opening it, such as
/// `ensemble audit verify` after a crash. A store without a log is left as it is.
pub fn recover(store: &Store) -> Result<u64, AuditError> {
    let entries = store.tree(ENTRIES_TREE)?;
    let meta = store.tree(META_TREE)?;
    let Some(node_id) = meta.get::<String>(META_NODE_ID)? else {
        return Ok(0);
    };
    let (len, head) = read_tail(store, &entries, &meta, &node_id)?;
    Ok(recover_from_wal(store, &entries, &meta, len, head)?.0)
}

/// The task that owns the chain.
struct Writer {
    store: Store,
    entries: Tree,
    meta: Tree,
    checkpoint_tree: Tree,
    node_id: String,
    /// Entries written (durable once a flush that started after them returns).
    len: u64,
    /// The head after the entries written.
    head: [u8; 32],
    /// Entries made durable and told to their appenders.
    durable: u64,
    /// The head after them.
    durable_head: [u8; 32],
    /// The flush making entries `durable..flight.len` durable, if one is running. The writer
    /// goes on writing the next entries meanwhile; they wait for the next flush.
    flight: Option<Flight>,
    /// The write-ahead file that makes entries durable (none for a temporary store: a store
    /// flush does it).
    wal: Option<Wal>,
    /// The frames of the entries written since the last flush started.
    wal_batch: Vec<u8>,
    /// Entries the last flush made durable: more than one means appenders are concurrent.
    last_batch: u64,
    /// While appenders are concurrent, a small batch waits this long for company before its
    /// flush starts (fewer, larger flushes: less CPU per entry under load).
    linger_until: Option<Instant>,
    signer: Option<SigningKey>,
    dir: Option<PathBuf>,
    every_entries: u64,
    every: Duration,
    /// The size of the last checkpoint.
    checkpointed: u64,
    checkpointed_at: Instant,
    /// After a failed checkpoint, none is tried before this.
    retry_at: Option<Instant>,
    progress: watch::Sender<Progress>,
    failed: Option<Failed>,
    fail_next: Arc<AtomicBool>,
    write_outs: Arc<AtomicU64>,
}

/// A flush started once entries `..len` were written: when it returns, they are durable and
/// `head` is the chain's head after them.
struct Flight {
    flush: Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
    len: u64,
    head: [u8; 32],
}

/// What woke the writer.
enum Event {
    Flushed(Result<(), String>),
    Due,
    Linger,
    Msg(Option<Msg>),
}

/// The running flush's outcome (never, when none runs).
async fn in_flight(flight: &mut Option<Flight>) -> Result<(), String> {
    match flight {
        Some(flight) => flight.flush.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        // Seal what an unclean stop left after the last checkpoint.
        if self.durable > self.checkpointed {
            let _ = self.checkpoint().await;
        }
        // False once the queue is closed (by `close`, or by dropping every handle).
        let mut receiving = true;
        let mut close = None;
        loop {
            // Whatever was written while the last flush ran goes into the next one at once.
            self.launch(receiving);
            if !receiving && self.flight.is_none() {
                break;
            }
            let due = self.timer_due();
            // A flush future of the store's is always polled to its end (never dropped while
            // it runs): another flusher may be waiting for it to report.
            let event = tokio::select! {
                biased;
                flushed = in_flight(&mut self.flight) => Event::Flushed(flushed),
                () = sleep_until(due) => Event::Due,
                () = sleep_until(self.linger_until), if self.linger_until.is_some() => Event::Linger,
                msg = rx.recv(), if receiving => Event::Msg(msg),
            };
            match event {
                Event::Flushed(flushed) => {
                    if let Some(flight) = self.flight.take() {
                        self.land(&flight, flushed);
                    }
                    if self.count_due() {
                        let _ = self.checkpoint().await;
                    }
                }
                Event::Due => {
                    self.settle().await;
                    if self.pending() {
                        let _ = self.checkpoint().await;
                    }
                }
                // The next turn's `launch` starts the flush.
                Event::Linger => {}
                Event::Msg(None) => receiving = false,
                Event::Msg(Some(first)) => {
                    let mut taken = 0usize;
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Close { reply } => {
                                close = Some(reply);
                                receiving = false;
                                break;
                            }
                            Msg::Append { seq, bytes } => {
                                taken += 1;
                                self.write(seq, bytes);
                            }
                            Msg::AppendMany { first, entries } => {
                                taken += entries.len();
                                for (seq, bytes) in (first..).zip(entries) {
                                    self.write(seq, bytes);
                                }
                            }
                        }
                        if taken < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                }
            }
        }
        if let Some(reply) = close {
            let _ = reply.send(self.close().await);
        }
        self.progress.send_modify(|p| p.stopped = true);
    }

    /// Writes one entry (not yet durable). After a failure, writes nothing more.
    fn write(&mut self, seq: u64, mut bytes: Vec<u8>) {
        if self.failed.is_some() {
            return;
        }
        if seq != self.len {
            self.fail(format!(
                "entry {seq} arrived when {} was next (a bug)",
                self.len
            ));
            return;
        }
        let head = seal_bytes(&mut bytes, seq, &self.head);
        match self
            .entries
            .insert(&seq.to_be_bytes(), &EntryBytesRef(&bytes))
        {
            Ok(()) => {
                self.len += 1;
                self.head = head;
                if self.wal.is_some() {
                    wal::frame(&mut self.wal_batch, &bytes);
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Starts a flush of the entries written since the last one, unless one is running (they
    /// wait for the next) or the log failed.
    fn launch(&mut self, receiving: bool) {
        if self.failed.is_some() || self.flight.is_some() || self.len == self.durable {
            return;
        }
        // Under concurrent load, gather a few more entries into this flush (bounded wait).
        if receiving && self.last_batch > 1 && self.len - self.durable < LINGER_BATCH {
            let now = Instant::now();
            match self.linger_until {
                None => {
                    self.linger_until = Some(now + LINGER);
                    return;
                }
                Some(until) if now < until => return,
                Some(_) => {}
            }
        }
        self.linger_until = None;
        // The tip record goes in with the batch (opening reads the log's end from it): a store
        // flush covers it; with the write-ahead file, the store's own flush does later, and
        // opening scans past a tip that lags.
        if let Err(e) = self.meta.insert(META_TIP, &(self.len - 1)) {
            self.fail(e.to_string());
            return;
        }
        metrics::counter!("ensemble_governance_audit_flushes_total").increment(1);
        let flush: Pin<Box<dyn Future<Output = Result<(), String>> + Send>> =
            if self.fail_next.swap(false, Ordering::SeqCst) {
                let reason = format!(
                    "store I/O at {} failed: no space left on device (injected)",
                    self.store.path().display()
                );
                Box::pin(std::future::ready(Err(reason)))
            } else if let Some(wal) = &mut self.wal {
                let batch = std::mem::take(&mut self.wal_batch);
                if wal.due_for_reset(batch.len()) {
                    // Everything in the file is in the store: once a store flush has made it
                    // durable there, the file starts again with this batch.
                    let store = self.store.clone();
                    let append = wal.append(batch, true);
                    Box::pin(async move {
                        store.flush().await.map_err(|e| e.to_string())?;
                        append.await
                    })
                } else {
                    Box::pin(wal.append(batch, false))
                }
            } else {
                // Its ticket is taken at its first poll, after every entry up to `len` was
                // written: the store's flush then covers them all.
                let store = self.store.clone();
                Box::pin(async move { store.flush().await.map_err(|e| e.to_string()) })
            };
        self.flight = Some(Flight {
            flush,
            len: self.len,
            head: self.head,
        });
    }

    /// Waits for the running flush, if any, and reports it.
    async fn settle(&mut self) {
        if let Some(mut flight) = self.flight.take() {
            let flushed = flight.flush.as_mut().await;
            self.land(&flight, flushed);
        }
    }

    /// Tells the appenders of the entries `flight` covered that they are durable (or failed).
    fn land(&mut self, flight: &Flight, flushed: Result<(), String>) {
        if self.failed.is_some() {
            return;
        }
        match flushed {
            Ok(()) => {
                self.write_outs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("ensemble_governance_audit_entries_total")
                    .increment(flight.len - self.durable);
                self.last_batch = flight.len - self.durable;
                self.durable = flight.len;
                self.durable_head = flight.head;
                let (len, head) = (flight.len, flight.head);
                self.progress.send_modify(|p| {
                    p.durable = len;
                    p.head = head;
                });
            }
            Err(reason) => self.fail(reason),
        }
    }

    /// Fails every entry not yet durable, and every later one.
    fn fail(&mut self, reason: String) {
        let from = self.durable;
        tracing::error!(
            from_seq = from,
            %reason,
            "audit entries could not be made durable; the audit log refuses further entries"
        );
        metrics::counter!("ensemble_governance_audit_failures_total", "stage" => "write")
            .increment(1);
        let failed = Failed {
            from,
            reason: reason.into(),
        };
        self.failed = Some(failed.clone());
        self.progress.send_modify(|p| p.failed = Some(failed));
    }

    fn pending(&self) -> bool {
        self.signer.is_some() && self.failed.is_none() && self.durable != self.checkpointed
    }

    /// When the time-based checkpoint is due (`None`: not now).
    fn timer_due(&self) -> Option<Instant> {
        if !self.pending() || self.every.is_zero() {
            return None;
        }
        let due = self.checkpointed_at.checked_add(self.every)?;
        Some(self.retry_at.map_or(due, |r| r.max(due)))
    }

    fn count_due(&self) -> bool {
        self.pending()
            && self.every_entries > 0
            && self.durable.saturating_sub(self.checkpointed) >= self.every_entries
            && self.retry_at.is_none_or(|r| Instant::now() >= r)
    }

    /// Signs and writes a checkpoint of the durable log (store, then directory). Called with no
    /// flush running (its own flush would wait for that one, which nobody polls meanwhile).
    async fn checkpoint(&mut self) -> Result<(), String> {
        let Some(key) = &self.signer else {
            return Ok(());
        };
        debug_assert!(self.flight.is_none());
        let size = self.durable;
        let mut checkpoint = Checkpoint::new(&self.node_id, size, self.durable_head);
        checkpoint.sign(key);
        let written = write_checkpoint(
            &self.store,
            &self.meta,
            &self.checkpoint_tree,
            self.dir.clone(),
            checkpoint,
        )
        .await;
        let now = Instant::now();
        self.checkpointed_at = now;
        match &written {
            Ok(()) => {
                self.retry_at = None;
                self.checkpointed = size;
                metrics::counter!("ensemble_governance_audit_checkpoints_total").increment(1);
                self.progress.send_modify(|p| p.checkpoint = Some(size));
            }
            Err(reason) => {
                self.retry_at = now.checked_add(self.every.max(Duration::from_secs(1)));
                metrics::counter!("ensemble_governance_audit_failures_total", "stage" => "checkpoint")
                    .increment(1);
                tracing::error!(size, %reason, "the audit checkpoint could not be written");
            }
        }
        written
    }

    async fn close(&mut self) -> Result<(), AuditError> {
        if let Some(failed) = &self.failed {
            return Err(failed.error());
        }
        if self.pending() {
            self.checkpoint()
                .await
                .map_err(AuditError::CheckpointWrite)?;
        }
        self.store.flush().await?;
        Ok(())
    }
}

/// Writes `checkpoint` to the store, makes it durable, then writes its file (free of the
/// writer: a `&Writer` held across an await would make the writer's future not `Send`).
async fn write_checkpoint(
    store: &Store,
    meta: &Tree,
    checkpoint_tree: &Tree,
    dir: Option<PathBuf>,
    checkpoint: Checkpoint,
) -> Result<(), String> {
    let note = checkpoint.to_note();
    let size = checkpoint.size.to_be_bytes();
    // A different note already kept for this size (the log was rolled back) stays; this one
    // goes beside it under the next free suffix.
    let mut key = size.to_vec();
    let mut suffix = 0u32;
    loop {
        match checkpoint_tree
            .insert_new(&key, &note)
            .map_err(|e| e.to_string())?
        {
            None => break,
            Some(existing) if existing == note => break,
            Some(_) => {
                suffix += 1;
                key.truncate(8);
                key.extend_from_slice(&suffix.to_be_bytes());
            }
        }
    }
    meta.insert(META_CHECKPOINT, &checkpoint.size)
        .map_err(|e| e.to_string())?;
    store.flush().await.map_err(|e| e.to_string())?;
    if let Some(dir) = dir {
        tokio::task::spawn_blocking(move || checkpoint::write_to_dir(&dir, &checkpoint))
            .await
            .map_err(|e| format!("the checkpoint file task failed: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// One kind of damage [`verify`] found, at the first place it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// An entry's stored head is not the hash of its bytes and the head before it: the entry
    /// was edited after it was written.
    EntryHashMismatch {
        /// The entry.
        seq: u64,
    },
    /// A sequence number is missing: the entry was deleted.
    Gap {
        /// The first missing sequence number.
        seq: u64,
    },
    /// An entry sits at another key than its own sequence number, or does not follow the head
    /// before it: entries were moved or swapped.
    OutOfOrder {
        /// The key where it was found.
        seq: u64,
    },
    /// An entry's bytes cannot be split into record and chain fields.
    Unreadable {
        /// The entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The recomputed head at a checkpoint's size is not the checkpoint's: the log before it
    /// was changed (with no entry problem before it, the heads were recomputed to hide it).
    HeadMismatchAtCheckpoint {
        /// The checkpoint's size.
        size: u64,
    },
    /// A checkpoint covers more entries than the log holds: the newest entries were deleted.
    Truncated {
        /// The largest checkpoint size.
        checkpoint_size: u64,
        /// The log's size (highest sequence number + 1).
        log_size: u64,
    },
    /// A checkpoint carries no valid signature by any key given: forged, or re-signed.
    BadSignature {
        /// The checkpoint's size.
        size: u64,
        /// Where it was read (a file, or the store).
        source: String,
    },
    /// Two trusted checkpoints of one size disagree on the head: the log was rolled back (a
    /// restore, or truncation) and grew again, or history was rewritten.
    Fork {
        /// The size.
        size: u64,
    },
    /// A checkpoint note cannot be read, or belongs to another log.
    BadCheckpoint {
        /// Where it was read.
        source: String,
        /// What is wrong.
        reason: String,
    },
    /// Entries exist but the log's node id record is gone: where the chain starts is unknown.
    MissingNodeId,
}

impl Problem {
    /// The kind as a short word (`entry-hash-mismatch`, `gap`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::EntryHashMismatch { .. } => "entry-hash-mismatch",
            Problem::Gap { .. } => "gap",
            Problem::OutOfOrder { .. } => "out-of-order",
            Problem::Unreadable { .. } => "unreadable",
            Problem::HeadMismatchAtCheckpoint { .. } => "head-mismatch-at-checkpoint",
            Problem::Truncated { .. } => "truncated",
            Problem::BadSignature { .. } => "bad-signature",
            Problem::Fork { .. } => "fork",
            Problem::BadCheckpoint { .. } => "bad-checkpoint",
            Problem::MissingNodeId => "missing-node-id",
        }
    }

    /// Where: `seq N`, `size N`, or empty.
    pub fn place(&self) -> String {
        match self {
            Problem::EntryHashMismatch { seq }
            | Problem::Gap { seq }
            | Problem::OutOfOrder { seq }
            | Problem::Unreadable { seq, .. } => format!("seq {seq}"),
            Problem::HeadMismatchAtCheckpoint { size }
            | Problem::BadSignature { size, .. }
            | Problem::Fork { size } => format!("size {size}"),
            Problem::Truncated {
                checkpoint_size, ..
            } => format!("size {checkpoint_size}"),
            Problem::BadCheckpoint { .. } | Problem::MissingNodeId => String::new(),
        }
    }

    /// What it means, in a sentence.
    pub fn meaning(&self) -> String {
        match self {
            Problem::EntryHashMismatch { seq } => {
                format!("entry {seq} was changed after it was written (its hash does not match)")
            }
            Problem::Gap { seq } => format!("entry {seq} is missing: it was deleted"),
            Problem::OutOfOrder { seq } => format!(
                "the entry at {seq} is not entry {seq} or does not follow the one before: \
                 entries were moved or swapped"
            ),
            Problem::Unreadable { seq, reason } => {
                format!("entry {seq} cannot be read ({reason}): it was damaged or overwritten")
            }
            Problem::HeadMismatchAtCheckpoint { size } => format!(
                "the first {size} entries no longer hash to the head signed at that size: \
                 something before it was changed (with no other problem listed there, the \
                 heads were recomputed to hide it)"
            ),
            Problem::Truncated {
                checkpoint_size,
                log_size,
            } => format!(
                "a checkpoint covers {checkpoint_size} entries but the log holds {log_size}: \
                 the newest entries were deleted"
            ),
            Problem::BadSignature { size, source } => format!(
                "the checkpoint of size {size} ({source}) is not signed by the given key: \
                 forged or re-signed"
            ),
            Problem::Fork { size } => format!(
                "two checkpoints of size {size} disagree: the log was rolled back (restored \
                 or truncated) and grew again, or rewritten"
            ),
            Problem::BadCheckpoint { source, reason } => {
                format!("{source} is not a checkpoint of this log: {reason}")
            }
            Problem::MissingNodeId => "the log's node id record is gone: the start of the \
                                       chain cannot be checked"
                .into(),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The log's node id (from the store, or the checkpoints when the store lost it).
    pub node_id: Option<String>,
    /// Entries read.
    pub entries: u64,
    /// Highest sequence number + 1.
    pub log_size: u64,
    /// Checkpoint notes read (files and store records).
    pub checkpoints: u64,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// The largest checkpoint whose head the log matches with no damage before it.
    pub last_good_checkpoint: Option<u64>,
    /// The first problem of each kind, in the order found.
    pub problems: Vec<Problem>,
    /// Problems found in all (every occurrence of every kind).
    pub problem_count: u64,
}

impl VerifyReport {
    /// True when nothing was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first problem of the same kind as `like` (its fields are ignored).
    pub fn find(&self, like: &Problem) -> Option<&Problem> {
        let kind = std::mem::discriminant(like);
        self.problems
            .iter()
            .find(|p| std::mem::discriminant(*p) == kind)
    }

    fn add(&mut self, problem: Problem, seen: &mut Vec<Discriminant<Problem>>) {
        self.problem_count += 1;
        let kind = std::mem::discriminant(&problem);
        if !seen.contains(&kind) {
            seen.push(kind);
            self.problems.push(problem);
        }
    }
}

/// A checkpoint [`verify`] trusts, and where it came from.
struct Trusted {
    size: u64,
    head: [u8; 32],
}

/// Unreadable records in a row are probed for at most this many sequence numbers.
const MAX_PROBE: u64 = 1 << 16;

/// Checks the audit log in `store`: streams every entry from sequence 0, recomputing each leaf
/// and head, and compares the result with every checkpoint in `checkpoints_dir` (the copy kept
/// outside the data directory) and in the store. With `public_keys`, a checkpoint counts only
/// if one of them signed it; without, signatures are not checked (the report says so).
///
/// Reports the first problem of each kind. An error means the store could not be read, not
/// that the log is damaged.
pub fn verify(
    store: &Store,
    checkpoints_dir: Option<&Path>,
    public_keys: &[VerifyingKey],
) -> Result<VerifyReport, AuditError> {
    let entries = store.tree(ENTRIES_TREE)?;
    let meta = store.tree(META_TREE)?;
    let mut report = VerifyReport {
        node_id: meta.get::<String>(META_NODE_ID)?,
        signatures_checked: !public_keys.is_empty(),
        ..VerifyReport::default()
    };
    let mut seen = Vec::new();

    // Every checkpoint, from the directory (authoritative) and from the store.
    let mut notes: Vec<(String, Result<Checkpoint, String>)> = Vec::new();
    if let Some(dir) = checkpoints_dir {
        for (path, parsed) in checkpoint::read_dir(dir)? {
            notes.push((format!("file {}", path.display()), parsed));
        }
    }
    for item in store.tree(CHECKPOINTS_TREE)?.iter::<String>() {
        let (key, note) = match item {
            Ok(item) => item,
            Err(StoreError::Codec { source, .. }) => {
                let source_name = "a store record".to_string();
                notes.push((source_name, Err(source.to_string())));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let size = key.get(..8).and_then(seq_of).unwrap_or(u64::MAX);
        notes.push((
            format!("store record {size}"),
            Checkpoint::parse(&note).and_then(|c| {
                if c.size == size {
                    Ok(c)
                } else {
                    Err(format!("the record of size {size} says {}", c.size))
                }
            }),
        ));
    }
    report.checkpoints = notes.len() as u64;
    if report.node_id.is_none() {
        report.node_id = notes.iter().find_map(|(_, c)| {
            c.as_ref()
                .ok()
                .and_then(|c| c.origin.strip_prefix("ensemble-audit/"))
                .map(str::to_string)
        });
    }
    let mut trusted: Vec<Trusted> = Vec::new();
    for (source, parsed) in notes {
        let checkpoint = match parsed {
            Ok(c) => c,
            Err(reason) => {
                report.add(Problem::BadCheckpoint { source, reason }, &mut seen);
                continue;
            }
        };
        if let Some(node_id) = &report.node_id
            && checkpoint.origin != checkpoint::origin(node_id)
        {
            let reason = format!(
                "its origin is {:?}, this log's is {:?} (another node's checkpoints?)",
                checkpoint.origin,
                checkpoint::origin(node_id)
            );
            report.add(Problem::BadCheckpoint { source, reason }, &mut seen);
            continue;
        }
        if !public_keys.is_empty() && !public_keys.iter().any(|k| checkpoint.verify(k)) {
            let size = checkpoint.size;
            report.add(Problem::BadSignature { size, source }, &mut seen);
            continue;
        }
        trusted.push(Trusted {
            size: checkpoint.size,
            head: checkpoint.head,
        });
    }
    // Distinct heads per size; two at one size are a fork.
    let mut by_size: BTreeMap<u64, Vec<[u8; 32]>> = BTreeMap::new();
    for t in trusted {
        let heads = by_size.entry(t.size).or_default();
        if !heads.contains(&t.head) {
            heads.push(t.head);
        }
    }
    for (&size, heads) in &by_size {
        if heads.len() > 1 {
            report.add(Problem::Fork { size }, &mut seen);
        }
    }
    let by_size: Vec<(u64, Vec<[u8; 32]>)> = by_size.into_iter().collect();

    let start = report.node_id.as_deref().map(genesis);
    let mut walk = Walk {
        checkpoints: &by_size,
        next_checkpoint: 0,
        chain: start.unwrap_or_default(),
        expected: 0,
        prev_head: start,
        first_bad: None,
    };
    if start.is_none() && !entries.is_empty() {
        report.add(Problem::MissingNodeId, &mut seen);
    }
    walk.at_position(0, &mut report, &mut seen);
    let mut unreadable_pending = 0u64;
    for item in entries.iter::<EntryBytes>() {
        let (key, bytes) = match item {
            Ok(item) => item,
            // The codec refused the record; its key is not in the error: found below by probing.
            Err(StoreError::Codec { .. }) => {
                unreadable_pending += 1;
                report.entries += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        report.entries += 1;
        let Some(seq) = seq_of(&key) else {
            let reason = format!("a record with a {}-byte key", key.len());
            let seq = walk.expected;
            walk.bad(seq);
            report.add(Problem::Unreadable { seq, reason }, &mut seen);
            continue;
        };
        if unreadable_pending > 0 {
            walk.probe(
                &entries,
                unreadable_pending,
                Some(seq),
                &mut report,
                &mut seen,
            )?;
            unreadable_pending = 0;
        }
        walk.entry(seq, &bytes.0, &mut report, &mut seen);
    }
    if unreadable_pending > 0 {
        walk.probe(&entries, unreadable_pending, None, &mut report, &mut seen)?;
    }
    report.log_size = walk.expected;
    // Checkpoints beyond the end of the log.
    if let Some((largest, _)) = by_size.last()
        && *largest > report.log_size
    {
        let beyond = by_size[walk.next_checkpoint..]
            .iter()
            .filter(|(size, _)| *size > report.log_size)
            .count() as u64;
        report.add(
            Problem::Truncated {
                checkpoint_size: *largest,
                log_size: report.log_size,
            },
            &mut seen,
        );
        report.problem_count += beyond.saturating_sub(1);
    }
    Ok(report)
}

/// The state of [`verify`]'s walk along the log.
struct Walk<'a> {
    checkpoints: &'a [(u64, Vec<[u8; 32]>)],
    next_checkpoint: usize,
    /// The head recomputed over every leaf read so far.
    chain: [u8; 32],
    /// The next sequence number expected.
    expected: u64,
    /// The stored head of the entry just before `expected`, when it was read.
    prev_head: Option<[u8; 32]>,
    /// The first sequence number with damage.
    first_bad: Option<u64>,
}

impl Walk<'_> {
    fn bad(&mut self, seq: u64) {
        self.first_bad = Some(self.first_bad.map_or(seq, |b| b.min(seq)));
    }

    /// Compares the recomputed chain with the checkpoints of size `position`, and reports those
    /// passed without reaching them (their last entry is missing).
    fn at_position(
        &mut self,
        position: u64,
        report: &mut VerifyReport,
        seen: &mut Vec<Discriminant<Problem>>,
    ) {
        while let Some((size, heads)) = self.checkpoints.get(self.next_checkpoint) {
            if *size > position {
                break;
            }
            self.next_checkpoint += 1;
            if *size == position && heads.iter().all(|h| *h == self.chain) {
                if self.first_bad.is_none_or(|b| b >= *size) {
                    report.last_good_checkpoint = Some(*size);
                }
            } else {
                report.add(Problem::HeadMismatchAtCheckpoint { size: *size }, seen);
            }
        }
    }

    fn entry(
        &mut self,
        seq: u64,
        bytes: &[u8],
        report: &mut VerifyReport,
        seen: &mut Vec<Discriminant<Problem>>,
    ) {
        if seq > self.expected {
            self.bad(self.expected);
            report.add(Problem::Gap { seq: self.expected }, seen);
            // The link to the entry before the gap cannot be checked.
            self.prev_head = None;
        }
        self.expected = seq + 1;
        let raw = match RawEntry::split(bytes) {
            Ok(raw) => raw,
            Err(reason) => {
                self.bad(seq);
                self.prev_head = None;
                report.add(Problem::Unreadable { seq, reason }, seen);
                self.at_position(seq + 1, report, seen);
                return;
            }
        };
        let leaf = leaf_hash(raw.body);
        let linked = self.prev_head.is_none_or(|p| p == raw.prev);
        if raw.seq != seq || !linked {
            self.bad(seq);
            report.add(Problem::OutOfOrder { seq }, seen);
        }
        if chain_hash(&raw.prev, &leaf) != raw.head {
            self.bad(seq);
            report.add(Problem::EntryHashMismatch { seq }, seen);
        }
        self.chain = chain_hash(&self.chain, &leaf);
        self.prev_head = Some(raw.head);
        self.at_position(seq + 1, report, seen);
    }

    /// Finds the sequence numbers of `count` records the codec refused, which lie after the
    /// last entry read and before `next` (the next readable one, if any).
    fn probe(
        &mut self,
        entries: &Tree,
        count: u64,
        next: Option<u64>,
        report: &mut VerifyReport,
        seen: &mut Vec<Discriminant<Problem>>,
    ) -> Result<(), AuditError> {
        let mut found = 0;
        let mut seq = self.expected;
        let end = next.unwrap_or(u64::MAX);
        while found < count && seq < end && seq - self.expected < MAX_PROBE {
            if entries.contains(&seq.to_be_bytes())? {
                found += 1;
                self.bad(seq);
                let reason = "the store cannot decode it".to_string();
                report.add(Problem::Unreadable { seq, reason }, seen);
                // Its leaf is unknown: the chain cannot go on through it.
                self.chain = [0; 32];
                self.prev_head = None;
                if seq > self.expected {
                    let gap = self.expected;
                    self.bad(gap);
                    report.add(Problem::Gap { seq: gap }, seen);
                }
                self.expected = seq + 1;
                self.at_position(seq + 1, report, seen);
            }
            seq += 1;
        }
        if found < count {
            let seq = self.expected;
            self.bad(seq);
            let reason = "a record after this one cannot be decoded".to_string();
            report.add(Problem::Unreadable { seq, reason }, seen);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> AuditRecord {
        let mut r = AuditRecord::new(AuditKind::Call, format!("user{i}"), "tools/call");
        r.args_sha256 = Some([i as u8; 32]);
        r
    }

    #[tokio::test]
    async fn the_write_ahead_file_starts_again_once_the_store_holds_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(wal::FILE_NAME);
        let store = Store::open(dir.path()).unwrap();
        let log =
            AuditLog::open_rotating_at(&store, "n", CheckpointConfig::default(), 2048).unwrap();
        let mut largest = 0;
        for i in 0..40 {
            log.append(record(i)).await.unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= 2048 + 1024, "{size} bytes after entry {i}");
            largest = largest.max(size);
        }
        let (frames, _) = wal::read(&path).unwrap();
        assert!(frames.len() < 40, "the file was emptied on the way");
        assert!(largest > 1024);
        // Each start again flushed the store first: the store alone holds every entry, on disk.
        let flushes = store.flush_count();
        assert!(flushes >= 1, "{flushes}");
        log.close().await.unwrap();
        drop((log, store));
        std::fs::remove_file(&path).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let report = verify(&store, None, &[]).unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.entries, 40);
    }

    #[test]
    fn entry_bytes_are_the_record_then_seq_prev_and_head() {
        let entry = AuditEntry::seal(5, [3; 32], record(5)).unwrap();
        let bytes = entry.to_bytes().unwrap();
        let record_bytes = codec::encode(&entry.record).unwrap();
        assert_eq!(&bytes[..record_bytes.len()], record_bytes);
        assert_eq!(&bytes[record_bytes.len()..][..8], 5u64.to_be_bytes());
        assert_eq!(entry.expected_head().unwrap(), entry.head);
        assert_eq!(AuditEntry::from_bytes(&bytes).unwrap(), entry);
    }

    #[test]
    fn entry_bytes_survive_the_store_codec_unchanged() {
        let bytes = AuditEntry::seal(0, [0; 32], record(1))
            .unwrap()
            .to_bytes()
            .unwrap();
        let stored = codec::encode(&EntryBytesRef(&bytes)).unwrap();
        let back: EntryBytes = codec::decode(&stored).unwrap();
        assert_eq!(back.0, bytes);
    }

    #[test]
    fn the_args_digest_is_hex_in_json() {
        let r = record(1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["args_sha256"], hex([1; 32]));
        let back: AuditRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn node_ids_that_cannot_name_a_key_are_refused() {
        for bad in ["", "a b", "a+b", "a\nb"] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
        }
        check_node_id("node-1.example/eu").unwrap();
    }
}
