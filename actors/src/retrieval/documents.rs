//! Documents in and out: checking a batch (every problem at once), reading a document back,
//! a search from request to hits, and the text of a registry artifact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use ensemble_protocol::registry::{Artifact, GetRequest as ArtifactGet};
use ensemble_supervision::{ActorSlot, CancellationToken};

use crate::registry::RegistryMsg;
use ensemble_protocol::retrieval::*;
use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{Searcher, TantivyDocument, Term};

use super::SubtreeResolver;
use super::bm25;
use super::collection::{Collection, Fields, meta_term, stored_text};
use super::search::{Settings, check_ranking, merge, rank};
use super::snippet::snippet;

const MAX_ID_BYTES: usize = 512;
const MAX_KEY_BYTES: usize = 128;

/// The batch's documents, each id once (the last wins), or every problem of the batch.
pub fn check(docs: Vec<Document>) -> Result<Vec<Document>, RetrievalError> {
    let mut problems = Vec::new();
    if docs.len() > MAX_BATCH {
        problems.push(format!(
            "{} documents in one call; send at most {MAX_BATCH} per `rag_index` call",
            docs.len()
        ));
    }
    for (i, d) in docs.iter().enumerate() {
        let at = format!("documents[{i}] (id {:?})", d.id);
        if d.id.is_empty() || d.id.len() > MAX_ID_BYTES {
            problems.push(format!("{at}: `id` must be 1–{MAX_ID_BYTES} bytes"));
        }
        for (k, v) in &d.metadata {
            if k.is_empty() || k.len() > MAX_KEY_BYTES || k.contains('\u{1f}') {
                problems.push(format!(
                    "{at}: metadata key {k:?} must be 1–{MAX_KEY_BYTES} bytes without U+001F"
                ));
            }
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            let ok = match v {
                Value::Array(items) => items.iter().all(scalar),
                v => scalar(v),
            };
            if !ok {
                problems.push(format!(
                    "{at}: metadata {k:?} must be a string, number or boolean, or an array of them"
                ));
            }
        }
        for c in &d.categories {
            if c.is_empty() || c.len() > MAX_ID_BYTES {
                problems.push(format!("{at}: category ids must be 1–{MAX_ID_BYTES} bytes"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(RetrievalError::InvalidDocuments { problems });
    }
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, d) in docs.iter().enumerate() {
        last.insert(d.id.clone(), i);
    }
    Ok(docs
        .into_iter()
        .enumerate()
        .filter(|(i, d)| last.get(&d.id) == Some(i))
        .map(|(_, d)| d)
        .collect())
}

/// The stored document `id`.
pub fn get(c: &Collection, collection: &str, id: &str) -> Result<Document, RetrievalError> {
    let searcher = c.searcher();
    let q = TermQuery::new(
        Term::from_field_text(c.fields.id, id),
        IndexRecordOption::Basic,
    );
    let found = searcher
        .search(&q, &TopDocs::with_limit(1).order_by_score())
        .map_err(|e| index_error(collection, e))?;
    let Some((_, address)) = found.first() else {
        return Err(RetrievalError::UnknownDocument {
            collection: collection.into(),
            id: id.into(),
        });
    };
    let doc: TantivyDocument = searcher
        .doc(*address)
        .map_err(|e| index_error(collection, e))?;
    Ok(Document {
        id: id.into(),
        title: stored_text(&doc, c.fields.title),
        text: stored_text(&doc, c.fields.text).unwrap_or_default(),
        metadata: metadata(&doc, &c.fields),
        categories: categories(&doc, &c.fields),
    })
}

fn index_error(collection: &str, e: impl std::fmt::Display) -> RetrievalError {
    RetrievalError::Index {
        collection: collection.into(),
        reason: e.to_string(),
    }
}

fn metadata(doc: &TantivyDocument, fields: &Fields) -> BTreeMap<String, Value> {
    stored_text(doc, fields.metadata)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn categories(doc: &TantivyDocument, fields: &Fields) -> Vec<String> {
    doc.get_all(fields.category)
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Runs a search: the filter resolved (category subtrees from the taxonomy), the ranking on
/// the blocking pool, hits read back with snippets.
pub async fn search(
    c: Arc<Collection>,
    req: SearchRequest,
    collection_ranking: Ranking,
    subtrees: Option<SubtreeResolver>,
) -> Result<SearchResponse, RetrievalError> {
    let limit = req.limit.unwrap_or(10) as usize;
    let offset = req.offset.unwrap_or(0) as usize;
    if limit + offset > MAX_HITS {
        return Err(RetrievalError::InvalidSetting {
            field: "limit".into(),
            value: format!("{limit} (with offset {offset})"),
            accepted: format!("offset + limit at most {MAX_HITS}"),
        });
    }
    if let Some(r) = &req.ranking {
        check_ranking(r)?;
    }
    let settings = Settings::of(&merge(&collection_ranking, req.ranking.as_ref()));
    let filter = req.filter.clone().unwrap_or_default();
    let mut unknown_categories = Vec::new();
    let mut category_terms = Vec::new();
    if !filter.categories.is_empty() {
        let (members, unknown) = match &subtrees {
            Some(resolve) => resolve(filter.categories.clone()).await.map_err(|reason| {
                RetrievalError::Index {
                    collection: req.collection.clone(),
                    reason: format!("the taxonomy could not expand the category filter: {reason}"),
                }
            })?,
            None => (Vec::new(), filter.categories.clone()),
        };
        category_terms = members.into_iter().chain(unknown.iter().cloned()).collect();
        unknown_categories = unknown;
    }
    let task = tokio::task::spawn_blocking(move || {
        run(&c, &req, &filter, category_terms, &settings, limit, offset)
    });
    let mut answer = task.await.map_err(|_| RetrievalError::Stopping)??;
    answer.unknown_categories = unknown_categories;
    Ok(answer)
}

fn filter_query(
    fields: &Fields,
    filter: &Filter,
    category_terms: Vec<String>,
) -> Result<Option<Box<dyn Query>>, RetrievalError> {
    let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !filter.categories.is_empty() {
        let terms = category_terms
            .iter()
            .map(|c| Term::from_field_text(fields.category, c));
        parts.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
    }
    for (key, value) in &filter.metadata {
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        let mut terms = Vec::new();
        for v in values {
            terms.push(meta_term(fields, key, v).ok_or_else(|| {
                RetrievalError::InvalidSetting {
                    field: format!("filter.metadata.{key}"),
                    value: v.to_string(),
                    accepted: "a string, number or boolean, or an array of them".into(),
                }
            })?);
        }
        parts.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
    }
    Ok(match parts.len() {
        0 => None,
        _ => Some(Box::new(BooleanQuery::new(parts))),
    })
}

fn run(
    c: &Collection,
    req: &SearchRequest,
    filter: &Filter,
    category_terms: Vec<String>,
    settings: &Settings,
    limit: usize,
    offset: usize,
) -> Result<SearchResponse, RetrievalError> {
    let err = |e: tantivy::TantivyError| index_error(&req.collection, e);
    let searcher: Searcher = c.searcher();
    let filter = filter_query(&c.fields, filter, category_terms)?;
    let mut analyzer = c.analyzer();
    let ranked = rank(
        &searcher,
        &c.fields,
        &mut analyzer,
        &req.query,
        filter.as_deref(),
        settings,
        offset + limit,
    )
    .map_err(err)?;
    let mut hits = Vec::new();
    for (score, address) in ranked.hits.iter().skip(offset) {
        let doc: TantivyDocument = searcher.doc(*address).map_err(err)?;
        let text = stored_text(&doc, c.fields.text).unwrap_or_default();
        let explanation = if req.explain {
            bm25::explain(
                &searcher,
                c.fields.body,
                &ranked.weights(),
                settings.bm25,
                *address,
            )
            .map_err(err)?
        } else {
            Vec::new()
        };
        hits.push(Hit {
            id: stored_text(&doc, c.fields.id).unwrap_or_default(),
            score: *score,
            title: stored_text(&doc, c.fields.title),
            snippet: if req.no_snippets {
                None
            } else {
                snippet(&mut analyzer, &text, &ranked.query_terms)
            },
            categories: categories(&doc, &c.fields),
            metadata: metadata(&doc, &c.fields),
            explanation,
        });
    }
    Ok(SearchResponse {
        collection: req.collection.clone(),
        hits,
        total: ranked.total,
        terms: if req.explain {
            ranked.terms
        } else {
            Vec::new()
        },
        unknown_categories: Vec::new(),
    })
}

/// The (title, text) of a text artifact: `text/*` bytes as UTF-8, a JSON string, or a JSON
/// object with a string `text` (and maybe `title`); anything else is refused with why.
pub fn artifact_text(a: &Artifact) -> Result<(Option<String>, String), String> {
    if let Some(content) = &a.content {
        return match content {
            Value::String(s) => Ok((None, s.clone())),
            Value::Object(o) => match o.get("text").and_then(Value::as_str) {
                Some(text) => Ok((
                    o.get("title").and_then(Value::as_str).map(str::to_string),
                    text.to_string(),
                )),
                None => Err(
                    "its JSON content is an object without a string `text` field; store the \
                     text as a JSON string, as {\"title\", \"text\"}, or as text/* bytes"
                        .into(),
                ),
            },
            _ => Err("its JSON content is neither a string nor an object with `text`".into()),
        };
    }
    if !a.media_type.starts_with("text/") {
        return Err(format!(
            "its media type is {}; only text/* bytes and JSON text can be indexed",
            a.media_type
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(a.content_base64.as_deref().unwrap_or_default())
        .map_err(|e| format!("its content is not valid base64: {e}"))?;
    String::from_utf8(bytes)
        .map(|text| (None, text))
        .map_err(|_| "its bytes are not UTF-8 text".into())
}

/// Reads the artifact through the registry (its digest checked there) and indexes its text.
pub async fn index_artifact(
    c: Arc<Collection>,
    registry: ActorSlot<RegistryMsg>,
    req: IndexArtifactRequest,
    cancel: CancellationToken,
) -> Result<IndexArtifactResponse, RetrievalError> {
    let (name, version) = match req.artifact.split_once('@') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (req.artifact.clone(), None),
    };
    let refused = |reason: String| RetrievalError::Artifact {
        artifact: req.artifact.clone(),
        reason,
    };
    let get = ArtifactGet { name, version };
    let artifact = registry
        .ask(move |reply| RegistryMsg::Get(get, cancel, reply))
        .await
        .map_err(|fault| refused(format!("the registry: {fault}")))?
        .map_err(|e| refused(e.to_string()))?;
    let (title, text) = artifact_text(&artifact).map_err(refused)?;
    let id = req
        .id
        .unwrap_or_else(|| format!("{}@{}", artifact.name, artifact.version));
    let mut metadata = req.metadata;
    metadata.insert("artifact".into(), artifact.name.clone().into());
    metadata.insert("version".into(), artifact.version.clone().into());
    metadata.insert("digest".into(), artifact.digest.clone().into());
    let doc = Document {
        id: id.clone(),
        title: req.title.or(title).or_else(|| Some(artifact.name.clone())),
        text,
        metadata,
        categories: req.categories,
    };
    let docs = check(vec![doc])?;
    let documents = match c.index(docs).await {
        Ok(Ok(n)) => n,
        Ok(Err(reason)) => {
            return Err(RetrievalError::Index {
                collection: req.collection,
                reason,
            });
        }
        Err(_) => return Err(RetrievalError::Stopping),
    };
    Ok(IndexArtifactResponse {
        collection: req.collection,
        id,
        artifact: artifact.name,
        version: artifact.version,
        digest: artifact.digest,
        documents,
    })
}
