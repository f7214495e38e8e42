//! The promotion engine's records in the store, and the changes made to them.
//!
//! Everything lives in one tree, `promotion`, so that a transition (a request promoted, the
//! stage it fills, the history event, the audit entry waiting to be written) is one atomic
//! batch. Keys start with a kind byte:
//!
//! | key | record |
//! |---|---|
//! | `p` name `\0` version (u32 BE) | a pipeline version ([`Pipeline`]) |
//! | `h` id `\0` revision (u32 BE) | a report revision ([`Revision`]) |
//! | `H` id | a report's head ([`ReportHead`]) |
//! | `r` n (u64 BE) | a request ([`Request`]); its id is `pr-n` |
//! | `s` artifact `\0` stage | what a stage of an artifact holds ([`Slot`]) |
//! | `e` artifact `\0` n (u64 BE) | a history event |
//! | `n` name | a counter (request, report and event numbers, outbox) |
//! | `o` n (u64 BE) | an audit record committed with its transition, not yet in the audit log |
//! | `i` artifact `\0` stage `\0` n (u64 BE) | request `n` is open (or rejected) for that stage |

use std::collections::BTreeMap;

use ensemble_protocol::principal::Principal;
use ensemble_protocol::promotion::*;
use serde::{Deserialize, Serialize};

use crate::governance::audit::AuditRecord;
use crate::store::{Batch, Store, StoreError, Tree};

/// Who is acting: a governed identity with its roles, or the local owner of an ungoverned
/// runtime (`None`), who holds every role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<Principal>);

/// The subject of `who` as recorded: `owner` for the ungoverned local owner.
fn subject_of(who: Option<&Principal>) -> &str {
    who.map_or("owner", |p| p.subject.as_str())
}

impl Caller {
    /// The subject, as recorded (`owner` when ungoverned).
    pub fn subject(&self) -> &str {
        subject_of(self.0.as_ref())
    }

    /// Whether the caller holds `role`.
    pub fn holds(&self, role: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.roles.iter().any(|r| r == role))
    }

    /// Whether identities are real (governed): separation of duties applies only then.
    pub fn governed(&self) -> bool {
        self.0.is_some()
    }
}

/// A report revision as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Its content, as JSON (checked before it was stored).
    pub content: String,
    /// Where it is.
    pub state: ReportState,
    /// When it was started.
    pub created_at_ms: u64,
    /// When it was submitted.
    pub submitted_at_ms: Option<u64>,
}

impl Revision {
    /// Its content, decoded.
    pub fn content(&self) -> Result<ReportContent, PromotionError> {
        serde_json::from_str(&self.content)
            .map_err(|e| PromotionError::Store(format!("a stored report is unreadable: {e}")))
    }
}

/// A report's head: its latest revision, its author and the requests carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHead {
    /// The latest revision.
    pub latest: u32,
    /// Who created it.
    pub created_by: String,
    /// The requests carrying it.
    pub requests: Vec<String>,
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Its number (its id is `pr-n`).
    pub n: u64,
    /// The artifact.
    pub artifact: String,
    /// Its version.
    pub version: String,
    /// The pinned digest.
    pub digest: String,
    /// The stage asked for.
    pub stage: String,
    /// The stage the version comes from.
    pub from_stage: Option<String>,
    /// The pipeline's name and the version the request started with.
    pub pipeline: (String, u32),
    /// Where it is.
    pub state: RequestState,
    /// Who asked.
    pub requested_by: Option<Principal>,
    /// When.
    pub requested_at_ms: u64,
    /// The report.
    pub handoff_id: String,
    /// The report revision carried.
    pub handoff_revision: u32,
    /// Sign-offs (on any revision; those on the carried one count).
    pub signoffs: Vec<SignOff>,
    /// The workflow gate's run.
    pub workflow_run: Option<String>,
    /// The target stage's generation when the request opened: a change of the stage since
    /// supersedes the request.
    pub base_generation: u64,
    /// When it was promoted.
    pub promoted_at_ms: Option<u64>,
    /// By whom.
    pub promoted_by: Option<String>,
    /// Why it stopped.
    pub reason: Option<String>,
}

impl Request {
    /// Its id.
    pub fn id(&self) -> String {
        format!("pr-{}", self.n)
    }

    /// Who asked, as recorded.
    pub fn requester(&self) -> &str {
        subject_of(self.requested_by.as_ref())
    }

    /// The sign-offs on the carried revision.
    pub fn current_signoffs(&self) -> Vec<SignOff> {
        self.signoffs
            .iter()
            .filter(|s| s.revision == self.handoff_revision)
            .cloned()
            .collect()
    }

    /// As the tools show it (gates not evaluated).
    pub fn info(&self) -> PromotionInfo {
        PromotionInfo {
            request_id: self.id(),
            artifact: self.artifact.clone(),
            version: self.version.clone(),
            digest: self.digest.clone(),
            stage: self.stage.clone(),
            from_stage: self.from_stage.clone(),
            pipeline: format!("{}@{}", self.pipeline.0, self.pipeline.1),
            state: self.state,
            requested_by: self.requester().to_string(),
            requested_at_ms: self.requested_at_ms,
            handoff_id: self.handoff_id.clone(),
            handoff_revision: self.handoff_revision,
            signoffs: self.current_signoffs(),
            workflow_run: self.workflow_run.clone(),
            promoted_at_ms: self.promoted_at_ms,
            promoted_by: self.promoted_by.clone(),
            reason: self.reason.clone(),
            gates: Vec::new(),
        }
    }
}

/// One version in a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occupant {
    /// The version.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// Since when.
    pub since_ms: u64,
    /// The request that put it there.
    pub request_id: Option<String>,
}

/// What a stage of an artifact holds, and what it held before (for rollbacks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The version in it now.
    pub current: Option<Occupant>,
    /// Earlier versions, the most recent last.
    pub previous: Vec<Occupant>,
    /// Bumped by every change of the stage.
    pub generation: u64,
}

/// Earlier occupants kept per stage for rollbacks.
pub const KEEP_PREVIOUS: usize = 50;

fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![kind];
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

/// The key of a pipeline version.
pub fn pipeline_key(name: &str, version: u32) -> Vec<u8> {
    key(b'p', &[name.as_bytes(), &version.to_be_bytes()])
}

/// The key of a report revision.
pub fn revision_key(id: &str, revision: u32) -> Vec<u8> {
    key(b'h', &[id.as_bytes(), &revision.to_be_bytes()])
}

/// The key of a report's head.
pub fn head_key(id: &str) -> Vec<u8> {
    key(b'H', &[id.as_bytes()])
}

/// The key of request `n`.
pub fn request_key(n: u64) -> Vec<u8> {
    key(b'r', &[&n.to_be_bytes()])
}

/// The key of an artifact's stage.
pub fn slot_key(artifact: &str, stage: &str) -> Vec<u8> {
    key(b's', &[artifact.as_bytes(), stage.as_bytes()])
}

/// The key of an artifact's history event `n`.
pub fn event_key(artifact: &str, n: u64) -> Vec<u8> {
    key(b'e', &[artifact.as_bytes(), &n.to_be_bytes()])
}

fn counter_key(name: &str) -> Vec<u8> {
    key(b'n', &[name.as_bytes()])
}

/// The key marking request `n` open for `stage` of `artifact`.
pub fn open_key(artifact: &str, stage: &str, n: u64) -> Vec<u8> {
    key(
        b'i',
        &[artifact.as_bytes(), stage.as_bytes(), &n.to_be_bytes()],
    )
}

/// The key of outbox entry `n`.
pub fn outbox_key(n: u64) -> Vec<u8> {
    key(b'o', &[&n.to_be_bytes()])
}

/// A request id's number (`pr-12` → 12).
pub fn request_number(id: &str) -> Option<u64> {
    id.strip_prefix("pr-")?.parse().ok()
}

/// The engine's tree, and the counters it hands numbers out from.
pub struct Records {
    /// The store (flushed before a transition is answered).
    pub store: Store,
    /// The `promotion` tree.
    pub tree: Tree,
    counters: BTreeMap<String, u64>,
}

fn from_json<T: serde::de::DeserializeOwned>(key: &[u8], text: &str) -> Result<T, PromotionError> {
    serde_json::from_str(text).map_err(|e| {
        PromotionError::Store(format!(
            "record `{}` in `promotion` is unreadable: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// The engine's error for a store failure.
pub(super) fn store_err(e: StoreError) -> PromotionError {
    PromotionError::Store(e.to_string())
}

/// A set of changes committed together, with the audit records they carry.
pub struct Change<'a> {
    records: &'a mut Records,
    auditing: bool,
    batch: Batch,
    counters: BTreeMap<String, u64>,
    /// The audit records of this transition, with their outbox numbers.
    pub audit: Vec<(u64, AuditRecord)>,
}

impl Change<'_> {
    /// Writes `value` at `key`.
    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        key: &[u8],
        value: &T,
    ) -> Result<(), PromotionError> {
        self.records
            .tree
            .stage(&mut self.batch, key, value)
            .map_err(store_err)
    }

    /// Removes the record at `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
    }

    /// Writes `value` at `key` as JSON text: for records holding protocol types, whose
    /// optional fields are left out when empty (which bincode cannot read back).
    pub fn put_json<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), PromotionError> {
        let text =
            serde_json::to_string(value).map_err(|e| PromotionError::Store(e.to_string()))?;
        self.put(key, &text)
    }

    /// The next number of counter `name` (committed with the change).
    pub fn next(&mut self, name: &str) -> u64 {
        let current = self
            .counters
            .get(name)
            .or_else(|| self.records.counters.get(name))
            .copied()
            .unwrap_or(0);
        self.counters.insert(name.to_string(), current + 1);
        current + 1
    }

    /// Whether [`Change::audit`] keeps records (only when there is an audit log).
    pub fn auditing(mut self, on: bool) -> Self {
        self.auditing = on;
        self
    }

    /// Records `record` for the audit log, committed with the change (nothing when the
    /// runtime keeps no audit log).
    pub fn audit(&mut self, record: AuditRecord) -> Result<(), PromotionError> {
        if !self.auditing {
            return Ok(());
        }
        let n = self.next("outbox");
        self.put(&outbox_key(n), &record)?;
        self.audit.push((n, record));
        Ok(())
    }

    /// Commits every change at once (not yet durable: the caller flushes).
    pub fn commit(mut self) -> Result<Vec<(u64, AuditRecord)>, PromotionError> {
        let counters = std::mem::take(&mut self.counters);
        for (name, value) in &counters {
            self.records
                .tree
                .stage(&mut self.batch, &counter_key(name), value)
                .map_err(store_err)?;
        }
        let batch = std::mem::take(&mut self.batch);
        self.records.tree.commit(batch).map_err(store_err)?;
        self.records.counters.extend(counters);
        Ok(std::mem::take(&mut self.audit))
    }
}

impl Records {
    /// Opens the tree and reads the counters.
    pub fn open(store: Store) -> Result<Self, StoreError> {
        let tree = store.tree("promotion")?;
        let mut counters = BTreeMap::new();
        for item in tree.scan::<u64>(b"n", None) {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            counters.insert(name, v);
        }
        Ok(Self {
            store,
            tree,
            counters,
        })
    }

    /// A new set of changes.
    pub fn change(&mut self) -> Change<'_> {
        Change {
            records: self,
            auditing: false,
            batch: Batch::default(),
            counters: BTreeMap::new(),
            audit: Vec::new(),
        }
    }

    /// Reads the record at `key`.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, PromotionError> {
        self.tree.get(key).map_err(store_err)
    }

    /// Reads a record written with [`Change::put_json`].
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, PromotionError> {
        match self.get::<String>(key)? {
            Some(text) => from_json(key, &text).map(Some),
            None => Ok(None),
        }
    }

    /// Every record written with [`Change::put_json`] under `prefix`, in key order.
    pub fn scan_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), PromotionError>> + '_ {
        self.scan::<String>(prefix)
            .map(|r| r.and_then(|(k, text)| from_json(&k, &text).map(|v| (k, v))))
    }

    /// Every record under `prefix`, in key order.
    pub fn scan<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), PromotionError>> + '_ {
        self.tree
            .scan::<T>(prefix, None)
            .map(|r| r.map_err(store_err))
    }

    /// Every pipeline's latest version, by name.
    pub fn pipelines(&self) -> Result<Vec<Pipeline>, PromotionError> {
        let mut latest: BTreeMap<String, Pipeline> = BTreeMap::new();
        for item in self.scan_json::<Pipeline>(b"p") {
            let (_, p) = item?;
            latest.insert(p.name.clone(), p);
        }
        Ok(latest.into_values().collect())
    }

    /// A pipeline version (the latest when `version` is `None`).
    pub fn pipeline(&self, name: &str, version: Option<u32>) -> Result<Pipeline, PromotionError> {
        let found = match version {
            Some(v) => self.get_json::<Pipeline>(&pipeline_key(name, v))?,
            None => {
                let mut prefix = vec![b'p'];
                prefix.extend_from_slice(name.as_bytes());
                prefix.push(0);
                self.scan_json::<Pipeline>(&prefix)
                    .last()
                    .transpose()?
                    .map(|(_, p)| p)
            }
        };
        found.ok_or_else(|| {
            PromotionError::NotFound(format!(
                "no pipeline `{name}`{}; promotion_pipeline_list shows the pipelines",
                version.map(|v| format!(" version {v}")).unwrap_or_default()
            ))
        })
    }

    /// A request by id.
    pub fn request(&self, id: &str) -> Result<Request, PromotionError> {
        let unknown = || {
            PromotionError::NotFound(format!(
                "no promotion request `{id}`; promotion_list shows the requests"
            ))
        };
        let n = request_number(id).ok_or_else(unknown)?;
        self.get_json::<Request>(&request_key(n))?
            .ok_or_else(unknown)
    }

    /// The requests open (or rejected, waiting for a new report revision) for `stage` of
    /// `artifact`, oldest first.
    pub fn open_requests(
        &self,
        artifact: &str,
        stage: &str,
    ) -> Result<Vec<Request>, PromotionError> {
        let mut prefix = vec![b'i'];
        prefix.extend_from_slice(artifact.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(stage.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.scan::<u64>(&prefix) {
            let (_, n) = item?;
            if let Some(r) = self.get_json::<Request>(&request_key(n))? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// A report's head.
    pub fn head(&self, id: &str) -> Result<ReportHead, PromotionError> {
        self.get::<ReportHead>(&head_key(id))?.ok_or_else(|| {
            PromotionError::NotFound(format!(
                "no hand-off report `{id}`; handoff_create makes one"
            ))
        })
    }

    /// A report revision.
    pub fn revision(&self, id: &str, revision: u32) -> Result<Revision, PromotionError> {
        self.get::<Revision>(&revision_key(id, revision))?
            .ok_or_else(|| {
                PromotionError::NotFound(format!(
                    "hand-off report `{id}` has no revision {revision}"
                ))
            })
    }

    /// What a stage of an artifact holds.
    pub fn slot(&self, artifact: &str, stage: &str) -> Result<Slot, PromotionError> {
        Ok(self
            .get::<Slot>(&slot_key(artifact, stage))?
            .unwrap_or_default())
    }

    /// A report revision as `handoff_get` shows it.
    pub fn handoff(&self, id: &str, revision: Option<u32>) -> Result<Handoff, PromotionError> {
        let head = self.head(id)?;
        let number = revision.unwrap_or(head.latest);
        let rev = self.revision(id, number)?;
        let mut signoffs = BTreeMap::new();
        for request_id in &head.requests {
            let request = self.request(request_id)?;
            let on_this: Vec<SignOff> = request
                .signoffs
                .iter()
                .filter(|s| s.revision == number)
                .cloned()
                .collect();
            if !on_this.is_empty() {
                signoffs.insert(request_id.clone(), on_this);
            }
        }
        Ok(Handoff {
            id: id.to_string(),
            revision: number,
            latest_revision: head.latest,
            state: rev.state,
            content: rev.content()?,
            created_by: head.created_by,
            created_at_ms: rev.created_at_ms,
            submitted_at_ms: rev.submitted_at_ms,
            requests: head.requests,
            signoffs,
        })
    }

    /// The latest submitted (or later-state) revision of a report, if any.
    pub fn latest_submitted(&self, id: &str) -> Result<Option<(u32, Revision)>, PromotionError> {
        let head = self.head(id)?;
        for number in (1..=head.latest).rev() {
            let rev = self.revision(id, number)?;
            if rev.state != ReportState::Draft {
                return Ok(Some((number, rev)));
            }
        }
        Ok(None)
    }

    /// The audit records committed with their transitions and not yet written to the log.
    pub fn outbox(&self) -> Result<Vec<(u64, AuditRecord)>, PromotionError> {
        self.scan::<AuditRecord>(b"o")
            .map(|item| {
                let (k, record) = item?;
                let n = k
                    .get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or_default();
                Ok((n, record))
            })
            .collect()
    }
}

/// Drops outbox entries once their records are in the audit log.
pub fn clear_outbox(tree: &Tree, numbers: &[u64]) -> Result<(), PromotionError> {
    let mut batch = Batch::default();
    for n in numbers {
        batch.remove(&outbox_key(*n));
    }
    tree.commit(batch).map_err(store_err)
}
