//! The retrieval (RAG) engine's requests, answers and errors.
//!
//! Documents live in named collections, each a full-text index with its own analyzer. A
//! search is a free-text query ranked by BM25 (optionally with pseudo-relevance feedback),
//! filtered by taxonomy categories (a concept and everything narrower) and
//! by metadata.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most documents one `rag_index` call may carry.
pub const MAX_BATCH: usize = 10_000;

/// The most hits one search may ask for (`offset + limit`).
pub const MAX_HITS: usize = 1_000;

/// Creates a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    /// Collection name: 1–64 characters of lower-case letters, digits, `_` and `-`, starting
    /// with a letter or digit.
    pub name: String,
    /// The language of the documents, for stemming and stop words: `english` (the default),
    /// `arabic`, `danish`, `dutch`, `finnish`, `french`, `german`, `greek`, `hungarian`,
    /// `italian`, `norwegian`, `portuguese`, `romanian`, `russian`, `spanish`, `swedish`,
    /// `tamil`, `turkish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// How text becomes terms: `stemmed` (the default: words, lower-cased, stop words removed,
    /// stemmed in the language), `stemmed_keep_stopwords`, `words` (lower-cased words, no
    /// stemming), `ascii_folded` (like `stemmed`, accents folded to ASCII first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<String>,
    /// Free text about the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The collection's default ranking (each search may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
    /// How many times a title counts against the text (1–10, default 3): the title's words
    /// are indexed this many times in the searched field (BM25F with one saturation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_weight: Option<u32>,
}

/// How a search ranks documents. Every part can be switched per collection and per search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ranking {
    /// Pseudo-relevance feedback (RM3): the query is expanded with the terms that weigh most
    /// in the best first-pass documents, then run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
    /// BM25's term-frequency saturation `k1` (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k1: Option<f32>,
    /// BM25's length normalisation `b`, 0 to 1 (default 0.75).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<f32>,
}

/// Pseudo-relevance feedback (RM3) settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// False switches feedback off (it is off unless a ranking switches it on).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How many first-pass documents feed the expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<u32>,
    /// How many expansion terms are added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<u32>,
    /// The weight of the original query against the expansion, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_weight: Option<f32>,
}

fn yes() -> bool {
    true
}

/// A collection as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// The documents' language.
    pub language: String,
    /// The analyzer.
    pub analyzer: String,
    /// Free text about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its default ranking, every part filled in.
    pub ranking: Ranking,
    /// How many times a title counts against the text.
    pub title_weight: u32,
    /// Documents searchable now.
    pub documents: u64,
    /// When it was created (Unix milliseconds).
    pub created_ms: u64,
}

/// A document to index (an existing document with the same id is replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The document's id in its collection: 1–512 bytes.
    pub id: String,
    /// A title, searched together with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The text.
    pub text: String,
    /// Key-value pairs to filter on: each value a string, number or boolean, or an array of
    /// them (the document matches any element).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Taxonomy concept ids the document is classified under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// Indexes a batch of documents; answered once the batch is durable and searchable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexRequest {
    /// The collection.
    pub collection: String,
    /// The documents (at most 10,000 per call); a later one with the same id as an earlier one
    /// wins.
    pub documents: Vec<Document>,
}

/// What an index batch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IndexResponse {
    /// The collection.
    pub collection: String,
    /// Documents written (new or replaced).
    pub indexed: u64,
    /// Documents in the collection after the batch.
    pub documents: u64,
}

/// Deletes documents by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The collection.
    pub collection: String,
    /// The ids to delete.
    pub ids: Vec<String>,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteResponse {
    /// The collection.
    pub collection: String,
    /// Documents deleted.
    pub deleted: u64,
    /// Ids that were not in the collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Documents in the collection after the delete.
    pub documents: u64,
}

/// Reads one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    /// The collection.
    pub collection: String,
    /// The document's id.
    pub id: String,
}

/// Searches a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The collection.
    pub collection: String,
    /// Free text. Nothing in it is an operator: quotes, `+`, `-`, `:` and the like are just
    /// characters.
    pub query: String,
    /// How many hits (default 10; `offset + limit` at most 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// How many of the best hits to skip (for paging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Only documents that pass the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Explain each hit's score, and list the terms the query was run with.
    #[serde(default)]
    pub explain: bool,
    /// Overrides of the collection's ranking for this search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
    /// Leave snippets out (they cost a little per hit).
    #[serde(default)]
    pub no_snippets: bool,
}

/// A search filter; every part given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Concept ids: a document passes when it is classified under one of them or under
    /// anything narrower (per the taxonomy engine; a deprecated concept counts under its
    /// replacement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Metadata that must be equal: for each key, the value (or, when the document holds an
    /// array, one of its elements).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResponse {
    /// The collection.
    pub collection: String,
    /// The hits, best first.
    pub hits: Vec<Hit>,
    /// How many documents matched in all.
    pub total: u64,
    /// The terms the query ran with and their weights (with `explain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<WeightedTerm>,
    /// Filter concepts the taxonomy does not know (matched only as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_categories: Vec<String>,
}

/// A query term and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WeightedTerm {
    /// The term as indexed (analyzed: lower-cased, stemmed).
    pub term: String,
    /// Its weight in the query.
    pub weight: f32,
    /// True for a term added by feedback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expansion: bool,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// Its score (higher is better; comparable within one search only).
    pub score: f32,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The passage that matches best, matched words in `**bold**`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// Its categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Its metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// How the score was computed, term by term (with `explain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<TermScore>,
}

/// One query term's part in a hit's BM25 score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TermScore {
    /// The term (analyzed).
    pub term: String,
    /// Its weight in the query.
    pub weight: f32,
    /// Its inverse document frequency.
    pub idf: f32,
    /// How often it occurs in the document (title and text).
    pub tf: u32,
    /// What it adds to the score.
    pub score: f32,
}

/// Statistics of one collection, or of all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsRequest {
    /// The collection; every collection when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
}

/// Statistics of collections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatsResponse {
    /// One entry per collection, by name.
    pub collections: Vec<CollectionStats>,
}

/// Statistics of one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionStats {
    /// The collection as it is now.
    pub collection: CollectionInfo,
    /// Index segments.
    pub segments: u64,
    /// Deleted documents not yet merged away.
    pub deleted: u64,
    /// Bytes the index takes on disk (0 in memory).
    pub disk_bytes: u64,
    /// Searches served since the engine started.
    pub searches: u64,
    /// Index batches committed since the engine started.
    pub commits: u64,
}

/// Drops a collection and its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropCollectionRequest {
    /// The collection.
    pub name: String,
}

/// What a drop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DropCollectionResponse {
    /// The collection.
    pub name: String,
    /// Documents it held.
    pub documents: u64,
}

/// Indexes a text artifact from the registry, keeping its digest as provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexArtifactRequest {
    /// The collection.
    pub collection: String,
    /// The artifact: `name@version`, or a name alone for its latest version.
    pub artifact: String,
    /// The document id (default: `name@version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A title (default: the artifact's `title` field for a JSON object, else its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Extra metadata (`artifact`, `version` and `digest` are added).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Taxonomy concept ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// What indexing an artifact did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IndexArtifactResponse {
    /// The collection.
    pub collection: String,
    /// The document id.
    pub id: String,
    /// The artifact's name.
    pub artifact: String,
    /// The version indexed.
    pub version: String,
    /// The content's digest, kept in the document's metadata.
    pub digest: String,
    /// Documents in the collection after it.
    pub documents: u64,
}

/// Why a retrieval request failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetrievalError {
    /// The collection name breaks the naming rule.
    #[error(
        "`name` {name:?} is not a valid collection name: use 1–64 characters of lower-case \
         letters, digits, '_' and '-', starting with a letter or digit"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No such collection.
    #[error("no collection {name:?}; {}", known_list(.known))]
    UnknownCollection {
        /// The name given.
        name: String,
        /// The collections there are.
        known: Vec<String>,
    },
    /// The collection exists already.
    #[error(
        "collection {name:?} exists already (with {documents} documents); drop it first with \
         `rag_drop_collection`, or index into it"
    )]
    CollectionExists {
        /// Its name.
        name: String,
        /// Its documents.
        documents: u64,
    },
    /// A setting is not accepted.
    #[error("`{field}` {value:?} is not accepted: {accepted}")]
    InvalidSetting {
        /// The argument.
        field: String,
        /// The value given.
        value: String,
        /// What is accepted.
        accepted: String,
    },
    /// Documents of a batch are not valid; nothing of the batch was written.
    #[error("nothing indexed: {}", .problems.join("; "))]
    InvalidDocuments {
        /// Every problem, each naming the document.
        problems: Vec<String>,
    },
    /// No such document.
    #[error("no document {id:?} in collection {collection:?}")]
    UnknownDocument {
        /// The collection.
        collection: String,
        /// The id.
        id: String,
    },
    /// The artifact cannot be indexed.
    #[error("artifact {artifact:?} cannot be indexed: {reason}")]
    Artifact {
        /// The artifact asked for.
        artifact: String,
        /// Why.
        reason: String,
    },
    /// The index or the catalogue failed (disk, corruption).
    #[error("the index of collection {collection:?} failed: {reason}")]
    Index {
        /// The collection (empty for the catalogue).
        collection: String,
        /// What failed.
        reason: String,
    },
    /// The request was cancelled or the engine is stopping.
    #[error("the retrieval engine is stopping; try again")]
    Stopping,
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "there are no collections yet: create one with `rag_create_collection`".into()
    } else {
        format!("the collections are: {}", known.join(", "))
    }
}
