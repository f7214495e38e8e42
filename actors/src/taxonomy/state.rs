//! The taxonomy engine's storage and in-memory indexes.
//!
//! Tree `taxonomy`: `m/<scheme>` holds a scheme's metadata (its versions, every deprecated
//! concept of any version with its replacements, the ids of earlier versions no longer
//! present); `v/<scheme>\0<version, big-endian u32>` holds one version as its normalised
//! document. Both are JSON text (the documents skip empty fields), and a new version and its
//! metadata are written in one atomic batch. The latest version of each scheme is kept in
//! memory with its label and phrase indexes, and one index across schemes (owners of each id,
//! children, replacements) answers subtree queries without touching the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ensemble_protocol::taxonomy::{TaxonomyDocument, TaxonomyError, VersionInfo};
use serde::{Deserialize, Serialize};

use super::Subtrees;
use super::classify::PhraseIndex;
use super::model::Version;
use super::search::LabelIndex;
use crate::clock::unix_ms;
use crate::engine::StoreBacked;
use crate::store::{Batch, Store, StoreError, Tree};

/// The taxonomy engine's tree.
pub const TREE: &str = "taxonomy";

/// One stored version.
#[derive(Debug, Serialize, Deserialize)]
struct StoredVersion {
    version: u32,
    created_at_ms: u64,
    document: TaxonomyDocument,
}

/// A scheme's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemeMeta {
    /// The scheme's id.
    pub scheme: String,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Every concept deprecated with replacements in any version, with its replacements.
    pub history: BTreeMap<String, BTreeSet<String>>,
    /// Ids present in an earlier version and absent from the latest.
    pub former: BTreeSet<String>,
}

/// A scheme's latest version with its indexes.
pub struct Loaded {
    /// Its metadata.
    pub meta: SchemeMeta,
    /// The latest version.
    pub latest: Arc<Version>,
    /// Its labels, for search.
    pub labels: LabelIndex,
    /// Its labels as phrases, for classification.
    pub phrases: PhraseIndex,
}

impl Loaded {
    fn new(meta: SchemeMeta, latest: Version) -> Self {
        metrics::gauge!("ensemble_taxonomy_concepts", "scheme" => meta.scheme.clone())
            .set(latest.concepts.len() as f64);
        Self {
            labels: LabelIndex::build(&latest),
            phrases: PhraseIndex::build(&latest),
            latest: Arc::new(latest),
            meta,
        }
    }
}

/// Indexes across the latest version of every scheme.
#[derive(Debug, Default)]
struct Global {
    owners: HashMap<String, Vec<String>>,
    children: HashMap<String, Vec<String>>,
    replaced_from: HashMap<String, Vec<String>>,
    former: HashMap<String, Vec<String>>,
}

/// The engine's state: the store and the latest version of each scheme.
pub struct TaxonomyState {
    store: Store,
    tree: Tree,
    schemes: BTreeMap<String, Loaded>,
    global: Global,
}

fn store_err(e: StoreError) -> TaxonomyError {
    TaxonomyError::Store(e.to_string())
}

fn meta_key(scheme: &str) -> Vec<u8> {
    [b"m/", scheme.as_bytes()].concat()
}

fn version_key(scheme: &str, version: u32) -> Vec<u8> {
    [b"v/", scheme.as_bytes(), b"\0", &version.to_be_bytes()].concat()
}

impl StoreBacked for TaxonomyState {
    type Error = TaxonomyError;

    fn open(store: Store) -> Result<Self, StoreError> {
        let tree = store.tree(TREE)?;
        let mut state = Self {
            store,
            tree,
            schemes: BTreeMap::new(),
            global: Global::default(),
        };
        let metas: Vec<(Vec<u8>, String)> =
            state.tree.scan(b"m/", None).collect::<Result<_, _>>()?;
        for (key, text) in metas {
            let corrupt = |detail: String| StoreError::Corrupt {
                path: state.store.path().to_path_buf(),
                detail: format!(
                    "taxonomy record `{}`: {detail}",
                    String::from_utf8_lossy(&key)
                ),
            };
            let meta: SchemeMeta =
                serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
            let Some(latest) = meta.versions.last().map(|v| v.version) else {
                continue;
            };
            let version = state
                .read_version(&meta.scheme, latest)
                .map_err(|e| corrupt(e.to_string()))?
                .ok_or_else(|| corrupt(format!("version {latest} is missing")))?;
            state
                .schemes
                .insert(meta.scheme.clone(), Loaded::new(meta, version));
        }
        state.rebuild_global();
        Ok(state)
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn store_error(e: StoreError) -> TaxonomyError {
        store_err(e)
    }
}

impl TaxonomyState {
    fn read_version(&self, scheme: &str, version: u32) -> Result<Option<Version>, TaxonomyError> {
        let Some(text) = self
            .tree
            .get::<String>(&version_key(scheme, version))
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        let stored: StoredVersion = serde_json::from_str(&text).map_err(|e| {
            TaxonomyError::Store(format!(
                "version {version} of `{scheme}` is unreadable: {e}"
            ))
        })?;
        Ok(Some(Version::new(
            scheme,
            stored.version,
            stored.created_at_ms,
            stored.document,
        )))
    }

    /// The ids of the stored schemes.
    pub fn known(&self) -> Vec<String> {
        self.schemes.keys().cloned().collect()
    }

    /// Every scheme, by id.
    pub fn schemes(&self) -> impl Iterator<Item = (&String, &Loaded)> {
        self.schemes.iter()
    }

    /// A stored scheme, or an error listing the known ones.
    pub fn loaded(&self, scheme: &str) -> Result<&Loaded, TaxonomyError> {
        self.schemes
            .get(scheme)
            .ok_or_else(|| TaxonomyError::UnknownScheme {
                scheme: scheme.to_string(),
                known: self.known(),
            })
    }

    /// Version `version` of `scheme` (the latest when `None`).
    pub fn version(
        &self,
        scheme: &str,
        version: Option<u32>,
    ) -> Result<Arc<Version>, TaxonomyError> {
        let l = self.loaded(scheme)?;
        let latest = l.latest.version;
        match version {
            None => Ok(l.latest.clone()),
            Some(n) if n == latest => Ok(l.latest.clone()),
            Some(n) if n == 0 || n > latest => Err(TaxonomyError::UnknownVersion {
                scheme: scheme.to_string(),
                version: n,
                latest,
            }),
            Some(n) => self.read_version(scheme, n)?.map(Arc::new).ok_or_else(|| {
                TaxonomyError::Store(format!(
                    "version {n} of `{scheme}` is missing from the store"
                ))
            }),
        }
    }

    /// The schemes whose latest version holds `id`.
    pub fn owners(&self, id: &str) -> &[String] {
        self.global.owners.get(id).map_or(&[], Vec::as_slice)
    }

    /// The schemes where `id` was in an earlier version only.
    pub fn former_owners(&self, id: &str) -> &[String] {
        self.global.former.get(id).map_or(&[], Vec::as_slice)
    }

    /// Stores a checked document as the next version of `scheme` (one atomic batch), then
    /// makes it the latest in memory. The caller makes it durable before answering.
    pub fn commit(&mut self, scheme: &str, doc: TaxonomyDocument) -> Result<u32, TaxonomyError> {
        let mut meta = self
            .schemes
            .get(scheme)
            .map(|l| l.meta.clone())
            .unwrap_or_else(|| SchemeMeta {
                scheme: scheme.to_string(),
                ..SchemeMeta::default()
            });
        let number = meta.versions.last().map_or(1, |v| v.version + 1);
        let created_at_ms = unix_ms();
        let version = Version::new(scheme, number, created_at_ms, doc.clone());
        if let Some(prev) = self.schemes.get(scheme) {
            meta.former.extend(prev.latest.concepts.keys().cloned());
        }
        meta.former.retain(|id| !version.concepts.contains_key(id));
        for (old, new) in version.replacements() {
            meta.history
                .entry(old.clone())
                .or_default()
                .extend(new.iter().cloned());
        }
        meta.versions.push(version.info());
        let stored = StoredVersion {
            version: number,
            created_at_ms,
            document: doc,
        };
        let (stored_text, meta_text) = (to_json(&stored)?, to_json(&meta)?);
        let mut batch = Batch::default();
        self.tree
            .stage(&mut batch, &version_key(scheme, number), &stored_text)
            .map_err(store_err)?;
        self.tree
            .stage(&mut batch, &meta_key(scheme), &meta_text)
            .map_err(store_err)?;
        self.tree.commit(batch).map_err(store_err)?;
        self.schemes
            .insert(scheme.to_string(), Loaded::new(meta, version));
        self.rebuild_global();
        Ok(number)
    }

    fn rebuild_global(&mut self) {
        let mut g = Global::default();
        for (name, l) in &self.schemes {
            for id in l.latest.concepts.keys() {
                g.owners.entry(id.clone()).or_default().push(name.clone());
            }
            for (parent, kids) in l.latest.child_lists() {
                g.children
                    .entry(parent.clone())
                    .or_default()
                    .extend(kids.iter().cloned());
            }
            for (old, news) in &l.meta.history {
                for new in news {
                    g.replaced_from
                        .entry(new.clone())
                        .or_default()
                        .push(old.clone());
                }
            }
            for id in &l.meta.former {
                g.former.entry(id.clone()).or_default().push(name.clone());
            }
        }
        self.global = g;
    }

    /// See [`super::TaxonomyMsg::Subtrees`].
    pub fn subtrees(&self, ids: Vec<String>) -> Subtrees {
        let g = &self.global;
        let mut unknown = Vec::new();
        let mut todo = Vec::new();
        for id in ids {
            if g.owners.contains_key(&id) || g.former.contains_key(&id) {
                todo.push(id);
            } else {
                unknown.push(id);
            }
        }
        let mut members = BTreeSet::new();
        while let Some(at) = todo.pop() {
            if members.contains(&at) {
                continue;
            }
            let next = g
                .children
                .get(&at)
                .into_iter()
                .chain(g.replaced_from.get(&at))
                .flatten()
                .filter(|n| !members.contains(*n))
                .cloned();
            todo.extend(next);
            members.insert(at);
        }
        unknown.sort();
        unknown.dedup();
        Subtrees {
            members: members.into_iter().collect(),
            unknown,
        }
    }
}

/// JSON text of a stored record (documents skip empty fields, which the binary codec cannot
/// read back).
fn to_json<T: Serialize>(value: &T) -> Result<String, TaxonomyError> {
    serde_json::to_string(value)
        .map_err(|e| TaxonomyError::Store(format!("could not encode a record: {e}")))
}
