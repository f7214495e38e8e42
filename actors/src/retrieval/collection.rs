//! One collection's index: tantivy's files in its own directory (or in memory), a reader for
//! searches, and a writer thread that applies batches and commits them — every batch waiting
//! when a commit starts shares it (group commit), and a batch is answered only once committed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ensemble_protocol::retrieval::{Document, RetrievalError};
use tantivy::collector::Count;
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};
use tokio::sync::oneshot;

use super::analysis::{ANALYZER_NAME, Analysis};

/// The writer's indexing memory (tantivy flushes a segment when it is used up).
const WRITER_MEMORY: usize = 64 << 20;

/// Separates a metadata key from its value in the `meta` field's terms.
const META_SEP: char = '\u{1f}';

/// The fields of every collection's schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The document id (indexed as one term, stored).
    pub id: Field,
    /// Title and text together, analyzed, with positions (what queries match).
    pub body: Field,
    /// The title as given (stored only).
    pub title: Field,
    /// The text as given (stored only: snippets and feedback read it).
    pub text: Field,
    /// `key␟value` terms of the metadata (indexed only).
    pub meta: Field,
    /// The metadata as JSON text (stored only).
    pub metadata: Field,
    /// Concept ids (one term each, stored).
    pub category: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let body = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        body: b.add_text_field("body", body),
        title: b.add_text_field("title", STORED),
        text: b.add_text_field("text", STORED),
        meta: b.add_text_field("meta", STRING),
        metadata: b.add_text_field("metadata", STORED),
        category: b.add_text_field("category", STRING | STORED),
    };
    (b.build(), fields)
}

/// The term a metadata filter `key = value` looks up (scalars by their JSON text, strings bare).
pub fn meta_term(fields: &Fields, key: &str, value: &serde_json::Value) -> Option<Term> {
    let value = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(Term::from_field_text(
        fields.meta,
        &format!("{key}{META_SEP}{value}"),
    ))
}

/// A change for the writer thread.
enum Op {
    Index(Vec<Document>),
    Delete(Vec<String>),
}

struct Job {
    op: Op,
    done: oneshot::Sender<Result<u64, String>>,
}

/// An open collection.
pub struct Collection {
    _index: Index,
    reader: IndexReader,
    /// Its fields.
    pub fields: Fields,
    analyzer: TextAnalyzer,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: Option<PathBuf>,
    /// Index batches committed since it was opened.
    pub commits: Arc<AtomicU64>,
    /// Searches served since it was opened.
    pub searches: AtomicU64,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn index_error(collection: &str, e: impl std::fmt::Display) -> RetrievalError {
    RetrievalError::Index {
        collection: collection.to_string(),
        reason: e.to_string(),
    }
}

impl Collection {
    /// Creates (`create`) or opens the collection `name`'s index in `dir` (in memory when
    /// `None`).
    pub fn open(
        name: &str,
        dir: Option<&Path>,
        analysis: &Analysis,
        title_weight: u32,
        create: bool,
    ) -> Result<Self, RetrievalError> {
        let (schema, fields) = schema();
        let err = |e: tantivy::TantivyError| index_error(name, e);
        let index = match dir {
            None => Index::create_in_ram(schema),
            Some(dir) => {
                if create {
                    // What a crash left of an earlier creation that never reached the catalogue.
                    if dir.exists() {
                        std::fs::remove_dir_all(dir)
                            .map_err(|e| index_error(name, format!("{}: {e}", dir.display())))?;
                    }
                    std::fs::create_dir_all(dir)
                        .map_err(|e| index_error(name, format!("{}: {e}", dir.display())))?;
                    Index::create_in_dir(dir, schema).map_err(err)?
                } else {
                    let mmap = MmapDirectory::open(dir)
                        .map_err(|e| index_error(name, format!("{}: {e}", dir.display())))?;
                    Index::open(mmap).map_err(err)?
                }
            }
        };
        let analyzer = analysis.text_analyzer();
        index.tokenizers().register(ANALYZER_NAME, analyzer.clone());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(err)?;
        let (jobs, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let thread = WriterThread {
            name: name.to_string(),
            writer,
            reader: reader.clone(),
            fields,
            title_weight,
            commits: commits.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("rag-writer-{name}"))
            .spawn(move || thread.run(rx))
            .map_err(|e| index_error(name, e))?;
        Ok(Self {
            _index: index,
            reader,
            fields,
            analyzer,
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            dir: dir.map(Path::to_path_buf),
            commits,
            searches: AtomicU64::new(0),
        })
    }

    /// A searcher over what is committed now.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The collection's analyzer (a fresh handle: analyzers are not shared across threads).
    pub fn analyzer(&self) -> TextAnalyzer {
        self.analyzer.clone()
    }

    /// Documents searchable now.
    pub fn documents(&self) -> u64 {
        self.searcher().num_docs()
    }

    /// Whether a document with this id is searchable now.
    pub fn contains(&self, id: &str) -> bool {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        self.searcher().search(&q, &Count).unwrap_or(0) > 0
    }

    /// Queues documents (replacing those with the same ids); the answer, once committed, is the
    /// number of documents searchable after the commit.
    pub fn index(&self, docs: Vec<Document>) -> oneshot::Receiver<Result<u64, String>> {
        self.submit(Op::Index(docs))
    }

    /// Queues deletions; answered like [`Collection::index`].
    pub fn delete(&self, ids: Vec<String>) -> oneshot::Receiver<Result<u64, String>> {
        self.submit(Op::Delete(ids))
    }

    fn submit(&self, op: Op) -> oneshot::Receiver<Result<u64, String>> {
        let (done, rx) = oneshot::channel();
        // A closed collection or a writer thread that died leaves the receiver to report
        // "closed".
        if let Some(jobs) = lock(&self.jobs).as_ref() {
            let _ = jobs.send(Job { op, done });
        }
        rx
    }

    /// Segments and deleted documents of the committed index.
    pub fn segments(&self) -> (u64, u64) {
        let searcher = self.searcher();
        let deleted = searcher
            .segment_readers()
            .iter()
            .map(|s| u64::from(s.num_deleted_docs()))
            .sum();
        (searcher.segment_readers().len() as u64, deleted)
    }

    /// Bytes of the index files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.dir.as_deref().map_or(0, dir_size)
    }

    /// Closes the collection: its writer finishes what is queued and stops; answers the
    /// directory of its files (on disk), now free to remove. Blocks until the writer is done.
    pub fn close(&self) -> Option<PathBuf> {
        drop(lock(&self.jobs).take());
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
        self.dir.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Reads a stored document's text fields.
pub fn stored_text(doc: &TantivyDocument, field: Field) -> Option<String> {
    doc.get_first(field)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Builds the tantivy document of `doc`, its title counted `title_weight` times.
fn to_tantivy(fields: &Fields, doc: &Document, title_weight: u32) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_text(fields.id, &doc.id);
    let mut body = String::new();
    if let Some(t) = doc.title.as_deref().filter(|t| !t.is_empty()) {
        for _ in 0..title_weight.max(1) {
            body.push_str(t);
            body.push('\n');
        }
    }
    body.push_str(&doc.text);
    d.add_text(fields.body, &body);
    if let Some(t) = &doc.title {
        d.add_text(fields.title, t);
    }
    d.add_text(fields.text, &doc.text);
    if !doc.metadata.is_empty() {
        for (key, value) in &doc.metadata {
            let values = match value {
                serde_json::Value::Array(items) => items.iter().collect(),
                v => vec![v],
            };
            for v in values {
                if let Some(term) = meta_term(fields, key, v)
                    && let Some(text) = term.value().as_str()
                {
                    d.add_text(fields.meta, text);
                }
            }
        }
        d.add_text(
            fields.metadata,
            serde_json::to_string(&doc.metadata).unwrap_or_default(),
        );
    }
    for c in &doc.categories {
        d.add_text(fields.category, c);
    }
    d
}

struct WriterThread {
    name: String,
    title_weight: u32,
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    commits: Arc<AtomicU64>,
}

impl WriterThread {
    /// Applies every job waiting, commits once, answers them all; until the collection closes.
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut round = vec![first];
            while let Ok(more) = rx.try_recv() {
                round.push(more);
            }
            let answer = self.apply(&round).map_err(|e| e.to_string());
            for job in round {
                let _ = job.done.send(answer.clone());
            }
        }
        // The collection was closed or dropped: wait for merges, so its files are left whole.
        let _ = self.writer.wait_merging_threads();
        tracing::debug!(collection = %self.name, "retrieval writer stopped");
    }

    fn apply(&mut self, round: &[Job]) -> tantivy::Result<u64> {
        for job in round {
            match &job.op {
                Op::Index(docs) => {
                    for doc in docs {
                        self.writer
                            .delete_term(Term::from_field_text(self.fields.id, &doc.id));
                        self.writer.add_document(to_tantivy(
                            &self.fields,
                            doc,
                            self.title_weight,
                        ))?;
                    }
                }
                Op::Delete(ids) => {
                    for id in ids {
                        self.writer
                            .delete_term(Term::from_field_text(self.fields.id, id));
                    }
                }
            }
        }
        if let Err(e) = self.writer.commit() {
            // Back to the last commit: nothing of this round is half-applied.
            let _ = self.writer.rollback();
            return Err(e);
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.reader.reload()?;
        Ok(self.reader.searcher().num_docs())
    }
}
