//! The retrieval (RAG) engine: named collections of documents, each a tantivy index under
//! `<data-dir>/retrieval/<collection>/` (in memory for an in-memory runtime), the catalogue of
//! collections in the sled tree `retrieval`.
//!
//! The actor owns the catalogue and hands work out: a batch goes to the collection's writer
//! thread and is answered once committed (batches waiting together share a commit); a search
//! runs on the blocking pool over a snapshot of the index, so searches run in parallel and never
//! wait behind a commit. Category filters ask the taxonomy (through [`SubtreeResolver`]) which
//! concepts lie under the ones named.

pub mod analysis;
pub mod bm25;
pub mod collection;
mod documents;
pub mod search;
pub mod snippet;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ensemble_protocol::retrieval::*;
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::registry::RegistryMsg;
use crate::store::{Store, StoreError, Tree};
use analysis::Analysis;
use collection::Collection;

/// A reply port of the retrieval engine.
pub type Reply<T> = RpcReplyPort<Result<T, RetrievalError>>;

/// The retrieval engine's messages, one per tool.
#[derive(Debug)]
pub enum RetrievalMsg {
    /// `rag_create_collection`.
    Create(
        CreateCollectionRequest,
        CancellationToken,
        Reply<CollectionInfo>,
    ),
    /// `rag_index`.
    Index(IndexRequest, CancellationToken, Reply<IndexResponse>),
    /// `rag_delete`.
    Delete(DeleteRequest, CancellationToken, Reply<DeleteResponse>),
    /// `rag_get`.
    Get(GetRequest, CancellationToken, Reply<Document>),
    /// `rag_search`.
    Search(SearchRequest, CancellationToken, Reply<SearchResponse>),
    /// `rag_stats`.
    Stats(StatsRequest, CancellationToken, Reply<StatsResponse>),
    /// `rag_drop_collection`.
    Drop(
        DropCollectionRequest,
        CancellationToken,
        Reply<DropCollectionResponse>,
    ),
    /// `rag_index_artifact`.
    IndexArtifact(
        IndexArtifactRequest,
        CancellationToken,
        Reply<IndexArtifactResponse>,
    ),
}

/// What the taxonomy says of filter concepts: (every concept under them, themselves included;
/// the ones it does not know).
pub type Subtrees = (Vec<String>, Vec<String>);

/// Finds the concepts under filter concepts (the runtime asks the taxonomy engine).
pub type SubtreeResolver = Arc<
    dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = Result<Subtrees, String>> + Send>>
        + Send
        + Sync,
>;

/// What the retrieval actor starts with.
#[derive(Clone)]
pub struct RetrievalArgs {
    /// The runtime's store (the catalogue's tree).
    pub store: Store,
    /// Where collections keep their index files (`<data-dir>/retrieval`); in memory when
    /// `None`.
    pub dir: Option<PathBuf>,
    /// The registry, for `rag_index_artifact`.
    pub registry: ActorSlot<RegistryMsg>,
    /// The taxonomy's subtrees, for category filters (exact concept ids only when absent).
    pub subtrees: Option<SubtreeResolver>,
}

impl std::fmt::Debug for RetrievalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalArgs")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A collection's catalogue entry (JSON text in the `retrieval` tree, key `c/<name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    language: String,
    analyzer: String,
    #[serde(default)]
    description: Option<String>,
    ranking: Ranking,
    #[serde(default = "default_title_weight")]
    title_weight: u32,
    created_ms: u64,
}

/// How many times a title counts when a creation says nothing: measured best on the
/// development collections with titles (see docs/retrieval.md).
pub const DEFAULT_TITLE_WEIGHT: u32 = 3;

fn default_title_weight() -> u32 {
    DEFAULT_TITLE_WEIGHT
}

/// The retrieval actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetrievalActor;

/// The engine's state: the catalogue and the open collections.
pub struct RetrievalState {
    args: RetrievalArgs,
    catalogue: Tree,
    records: BTreeMap<String, Record>,
    open: BTreeMap<String, Arc<Collection>>,
    /// Collections whose index could not be opened, with why.
    broken: BTreeMap<String, String>,
}

fn catalogue_error(e: impl std::fmt::Display) -> RetrievalError {
    RetrievalError::Index {
        collection: String::new(),
        reason: format!("the collection catalogue: {e}"),
    }
}

fn key(name: &str) -> Vec<u8> {
    format!("c/{name}").into_bytes()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RetrievalState {
    fn open(args: RetrievalArgs) -> Result<Self, StoreError> {
        let catalogue = args.store.tree("retrieval")?;
        let mut state = Self {
            args,
            catalogue,
            records: BTreeMap::new(),
            open: BTreeMap::new(),
            broken: BTreeMap::new(),
        };
        let mut records = Vec::new();
        for entry in state.catalogue.iter::<String>() {
            let record = entry.map_err(|e| e.to_string()).and_then(|(k, text)| {
                serde_json::from_str::<Record>(&text)
                    .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&k)))
            });
            match record {
                Ok(r) => records.push(r),
                // The rest of the catalogue keeps working; this entry is never served.
                Err(e) => tracing::error!("corrupt entry in the retrieval catalogue: {e}"),
            }
        }
        for record in records {
            let analysis = Analysis {
                language: record.language.clone(),
                analyzer: record.analyzer.clone(),
            };
            let dir = state.args.dir.as_ref().map(|d| d.join(&record.name));
            match Collection::open(
                &record.name,
                dir.as_deref(),
                &analysis,
                record.title_weight,
                false,
            ) {
                Ok(c) => {
                    metrics::gauge!("ensemble_retrieval_documents", "collection" => record.name.clone())
                        .set(c.documents() as f64);
                    state.open.insert(record.name.clone(), Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(collection = %record.name, "cannot open its index: {e}");
                    state.broken.insert(record.name.clone(), e.to_string());
                }
            }
            state.records.insert(record.name.clone(), record);
        }
        Ok(state)
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, RetrievalError> {
        if let Some(c) = self.open.get(name) {
            return Ok(c.clone());
        }
        if let Some(reason) = self.broken.get(name) {
            return Err(RetrievalError::Index {
                collection: name.into(),
                reason: format!("{reason}; drop it with `rag_drop_collection` and index again"),
            });
        }
        Err(RetrievalError::UnknownCollection {
            name: name.into(),
            known: self.records.keys().cloned().collect(),
        })
    }

    /// The open collection `name` for a call, or `None` once the call is answered: not at all
    /// when the caller cancelled, with the error when there is no such collection.
    fn serving<T>(
        &self,
        name: &str,
        cancel: &CancellationToken,
        reply: Reply<T>,
    ) -> Option<(Arc<Collection>, Reply<T>)> {
        if cancel.is_cancelled() {
            return None;
        }
        match self.collection(name) {
            Ok(c) => Some((c, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    }

    fn info(&self, record: &Record) -> CollectionInfo {
        CollectionInfo {
            name: record.name.clone(),
            language: record.language.clone(),
            analyzer: record.analyzer.clone(),
            description: record.description.clone(),
            ranking: search::merge(&record.ranking, None),
            title_weight: record.title_weight,
            documents: self.open.get(&record.name).map_or(0, |c| c.documents()),
            created_ms: record.created_ms,
        }
    }

    fn create(&mut self, req: CreateCollectionRequest) -> Result<CollectionInfo, RetrievalError> {
        check_name(&req.name)?;
        if let Some(existing) = self.records.get(&req.name) {
            return Err(RetrievalError::CollectionExists {
                name: req.name.clone(),
                documents: self.info(existing).documents,
            });
        }
        let analysis = Analysis::new(req.language.as_deref(), req.analyzer.as_deref())?;
        let ranking = req.ranking.unwrap_or(search::DEFAULT_RANKING);
        search::check_ranking(&ranking)?;
        let title_weight = req.title_weight.unwrap_or(DEFAULT_TITLE_WEIGHT);
        if !(1..=10).contains(&title_weight) {
            return Err(RetrievalError::InvalidSetting {
                field: "title_weight".into(),
                value: title_weight.to_string(),
                accepted: "1 to 10".into(),
            });
        }
        let dir = self.args.dir.as_ref().map(|d| d.join(&req.name));
        let collection =
            Collection::open(&req.name, dir.as_deref(), &analysis, title_weight, true)?;
        let record = Record {
            name: req.name.clone(),
            language: analysis.language,
            analyzer: analysis.analyzer,
            description: req.description,
            ranking,
            title_weight,
            created_ms: now_ms(),
        };
        let text = serde_json::to_string(&record).map_err(catalogue_error)?;
        self.catalogue
            .insert(&key(&record.name), &text)
            .map_err(catalogue_error)?;
        self.open.insert(record.name.clone(), Arc::new(collection));
        self.broken.remove(&record.name);
        let info = self.info(&record);
        self.records.insert(record.name.clone(), record);
        Ok(info)
    }
}

fn check_name(name: &str) -> Result<(), RetrievalError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(RetrievalError::InvalidName { name: name.into() })
    }
}

/// Answers `reply` once the store is flushed (the catalogue is durable).
fn when_flushed<T: Send + 'static>(
    store: &Store,
    reply: Reply<T>,
    answer: Result<T, RetrievalError>,
) {
    crate::engine::reply_when_durable(store, reply, answer, catalogue_error);
}

/// Answers a queued index change once its commit is done.
fn when_committed<T: Send + 'static>(
    name: String,
    committed: tokio::sync::oneshot::Receiver<Result<u64, String>>,
    reply: Reply<T>,
    answer: impl FnOnce(u64) -> T + Send + 'static,
) {
    tokio::spawn(async move {
        let result = match committed.await {
            Ok(Ok(documents)) => {
                metrics::gauge!("ensemble_retrieval_documents", "collection" => name)
                    .set(documents as f64);
                Ok(answer(documents))
            }
            Ok(Err(reason)) => Err(RetrievalError::Index {
                collection: name,
                reason,
            }),
            Err(_) => Err(RetrievalError::Stopping),
        };
        let _ = reply.send(result);
    });
}

impl Actor for RetrievalActor {
    type Msg = RetrievalMsg;
    type State = RetrievalState;
    type Arguments = RetrievalArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: RetrievalArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if let Some(dir) = &args.dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(RetrievalState::open(args)?)
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Writers finish what they were given; a restarted actor opens the indexes afresh.
        let open = std::mem::take(&mut state.open);
        let _ = tokio::task::spawn_blocking(move || {
            for c in open.values() {
                c.close();
            }
        })
        .await;
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        use RetrievalMsg as M;
        match msg {
            M::Create(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let answer = state.create(req);
                when_flushed(&state.args.store, reply, answer);
            }
            M::Index(req, cancel, reply) => {
                let Some((c, reply)) = state.serving(&req.collection, &cancel, reply) else {
                    return Ok(());
                };
                let docs = match documents::check(req.documents) {
                    Ok(docs) => docs,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return Ok(());
                    }
                };
                let indexed = docs.len() as u64;
                metrics::counter!("ensemble_retrieval_documents_indexed_total").increment(indexed);
                let collection = req.collection.clone();
                when_committed(req.collection, c.index(docs), reply, move |documents| {
                    IndexResponse {
                        collection,
                        indexed,
                        documents,
                    }
                });
            }
            M::Delete(req, cancel, reply) => {
                let Some((c, reply)) = state.serving(&req.collection, &cancel, reply) else {
                    return Ok(());
                };
                let (present, missing): (Vec<String>, Vec<String>) =
                    dedup(req.ids).into_iter().partition(|id| c.contains(id));
                let deleted = present.len() as u64;
                let collection = req.collection.clone();
                when_committed(req.collection, c.delete(present), reply, move |documents| {
                    DeleteResponse {
                        collection,
                        deleted,
                        missing,
                        documents,
                    }
                });
            }
            M::Get(req, _, reply) => {
                let answer = state
                    .collection(&req.collection)
                    .and_then(|c| documents::get(&c, &req.collection, &req.id));
                let _ = reply.send(answer);
            }
            M::Search(req, cancel, reply) => {
                let ranking = state
                    .records
                    .get(&req.collection)
                    .map_or(search::DEFAULT_RANKING, |r| r.ranking);
                let Some((c, reply)) = state.serving(&req.collection, &cancel, reply) else {
                    return Ok(());
                };
                let subtrees = state.args.subtrees.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let answer = documents::search(c.clone(), req, ranking, subtrees).await;
                    c.searches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("ensemble_retrieval_searches_total").increment(1);
                    metrics::histogram!("ensemble_retrieval_search_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    let _ = reply.send(answer);
                });
            }
            M::Stats(req, _, reply) => {
                let names: Vec<String> = match &req.collection {
                    Some(name) => match state.collection(name) {
                        Ok(_) => vec![name.clone()],
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            return Ok(());
                        }
                    },
                    None => state.open.keys().cloned().collect(),
                };
                let collections = names
                    .iter()
                    .filter_map(|n| Some((state.records.get(n)?, state.open.get(n)?)))
                    .map(|(record, c)| {
                        let (segments, deleted) = c.segments();
                        CollectionStats {
                            collection: state.info(record),
                            segments,
                            deleted,
                            disk_bytes: c.disk_bytes(),
                            searches: c.searches.load(Ordering::Relaxed),
                            commits: c.commits.load(Ordering::Relaxed),
                        }
                    })
                    .collect();
                let _ = reply.send(Ok(StatsResponse { collections }));
            }
            M::Drop(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                if !state.records.contains_key(&req.name) && !state.broken.contains_key(&req.name) {
                    let _ = reply.send(Err(state.collection(&req.name).err().unwrap_or(
                        RetrievalError::UnknownCollection {
                            name: req.name.clone(),
                            known: Vec::new(),
                        },
                    )));
                    return Ok(());
                }
                if let Err(e) = state.catalogue.remove(&key(&req.name)) {
                    let _ = reply.send(Err(catalogue_error(e)));
                    return Ok(());
                }
                state.records.remove(&req.name);
                state.broken.remove(&req.name);
                let open = state.open.remove(&req.name);
                let documents = open.as_ref().map_or(0, |c| c.documents());
                let dir = state.args.dir.as_ref().map(|d| d.join(&req.name));
                let store = state.args.store.clone();
                let name = req.name;
                tokio::spawn(async move {
                    // The catalogue forgets it durably first: a crash after this leaves only
                    // files, which the next creation of that name clears.
                    if let Err(e) = store.flush().await {
                        let _ = reply.send(Err(catalogue_error(e)));
                        return;
                    }
                    let removed = tokio::task::spawn_blocking(move || {
                        if let Some(c) = open {
                            c.close();
                        }
                        match dir {
                            Some(dir) if dir.exists() => std::fs::remove_dir_all(&dir)
                                .map_err(|e| format!("{}: {e}", dir.display())),
                            _ => Ok(()),
                        }
                    })
                    .await;
                    if let Ok(Err(e)) = removed {
                        tracing::warn!(collection = %name, "its index files stay behind: {e}");
                    }
                    metrics::gauge!("ensemble_retrieval_documents", "collection" => name.clone())
                        .set(0.0);
                    let _ = reply.send(Ok(DropCollectionResponse { name, documents }));
                });
            }
            M::IndexArtifact(req, cancel, reply) => {
                let Some((c, reply)) = state.serving(&req.collection, &cancel, reply) else {
                    return Ok(());
                };
                let registry = state.args.registry.clone();
                tokio::spawn(async move {
                    let answer = documents::index_artifact(c, registry, req, cancel).await;
                    let _ = reply.send(answer);
                });
            }
        }
        Ok(())
    }
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}
