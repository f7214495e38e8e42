//! The taxonomy engine's requests, served from [`TaxonomyState`].

use std::collections::HashSet;
use std::sync::Arc;

use ensemble_protocol::taxonomy::*;
use ensemble_supervision::CancellationToken;

use super::integrity::{self, Checked};
use super::model::Version;
use super::search::{self, LabelIndex, Query};
use super::skos;
use super::state::TaxonomyState;
use super::{classify, state::SchemeMeta};

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;
const MAX_REMOVAL_WARNINGS: usize = 20;

fn invalid(field: &str, message: impl Into<String>) -> TaxonomyError {
    TaxonomyError::InvalidArgument {
        field: field.into(),
        message: message.into(),
    }
}

fn check_cancel(cancel: &CancellationToken) -> Result<(), TaxonomyError> {
    if cancel.is_cancelled() {
        Err(TaxonomyError::Cancelled)
    } else {
        Ok(())
    }
}

/// Checks a scheme id: 1–200 letters, digits, `.`, `_`, `-`.
pub fn validate_scheme_id(scheme: &str) -> Result<(), TaxonomyError> {
    let ok = !scheme.is_empty()
        && scheme.len() <= 200
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "scheme",
            format!(
                "{scheme:?} is not a valid scheme id: use 1–200 letters, digits, '.', '_', '-'"
            ),
        ))
    }
}

fn limit(limit: Option<u32>) -> Result<usize, TaxonomyError> {
    let n = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&n) {
        Ok(n as usize)
    } else {
        Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {n}"),
        ))
    }
}

/// Parses and checks a document; the integrity report, normalised document and warnings.
fn parse_and_check(
    format: Format,
    content: &str,
    base_iri: Option<&str>,
    scheme_uri: Option<&str>,
) -> Result<Checked, TaxonomyError> {
    let (doc, mut warnings) = skos::parse(format, content, base_iri, scheme_uri)?;
    let mut checked = integrity::check(doc);
    warnings.append(&mut checked.warnings);
    checked.warnings = warnings;
    Ok(checked)
}

/// Warnings for the concepts of `prev` that `next` drops without a replacement.
fn removal_warnings(prev: &Version, meta: &SchemeMeta, next: &TaxonomyDocument) -> Vec<String> {
    let kept: HashSet<&str> = next.concepts.iter().map(|c| c.id.as_str()).collect();
    let lost: Vec<&String> = prev
        .concepts
        .iter()
        .filter(|(id, c)| {
            !kept.contains(id.as_str())
                && c.replaced_by.is_empty()
                && !meta.history.contains_key(*id)
        })
        .map(|(id, _)| id)
        .collect();
    let mut out: Vec<String> = lost
        .iter()
        .take(MAX_REMOVAL_WARNINGS)
        .map(|id| {
            format!(
                "concept `{id}` ({}) is in version {} and missing from this one without a \
                 replacement; documents classified under it lose their concept — keep it, \
                 deprecated with `replaced_by` (dct:isReplacedBy), to redirect them",
                prev.label(id, None),
                prev.version
            )
        })
        .collect();
    if lost.len() > MAX_REMOVAL_WARNINGS {
        out.push(format!(
            "… and {} more concepts removed without a replacement",
            lost.len() - MAX_REMOVAL_WARNINGS
        ));
    }
    out
}

impl TaxonomyState {
    /// `taxonomy_import`: stores a new version when the document is valid and differs from
    /// the latest; nothing is stored otherwise.
    pub fn import(
        &mut self,
        req: ImportRequest,
        cancel: &CancellationToken,
    ) -> Result<ImportResponse, TaxonomyError> {
        let answer = self.import_inner(req, cancel);
        let outcome = match &answer {
            Ok(r) if r.created => "created",
            Ok(_) => "unchanged",
            Err(TaxonomyError::Integrity { .. }) => "invalid",
            Err(TaxonomyError::Parse { .. }) => "parse_error",
            Err(TaxonomyError::InvalidArgument { .. }) => "invalid_argument",
            Err(TaxonomyError::Cancelled) => "cancelled",
            Err(_) => "error",
        };
        metrics::counter!("ensemble_taxonomy_imports_total", "outcome" => outcome).increment(1);
        answer
    }

    fn import_inner(
        &mut self,
        req: ImportRequest,
        cancel: &CancellationToken,
    ) -> Result<ImportResponse, TaxonomyError> {
        validate_scheme_id(&req.scheme)?;
        let checked = parse_and_check(
            req.format,
            &req.content,
            req.base_iri.as_deref(),
            req.scheme_uri.as_deref(),
        )?;
        check_cancel(cancel)?;
        if !checked.violations.is_empty() {
            return Err(TaxonomyError::Integrity {
                violations: checked.violations,
            });
        }
        if checked.doc.concepts.is_empty() {
            return Err(invalid(
                "content",
                "the document holds no concepts (skos:Concept); check the format and \
                 `scheme_uri`",
            ));
        }
        let mut warnings = checked.warnings;
        let doc = checked.doc;
        let summary = |version: u32, created: bool, warnings: Vec<String>| ImportResponse {
            scheme: req.scheme.clone(),
            version,
            created,
            concepts: doc.concepts.len() as u32,
            deprecated: doc.concepts.iter().filter(|c| c.deprecated).count() as u32,
            top_concepts: doc.top_concepts.clone(),
            warnings,
        };
        if let Ok(prev) = self.loaded(&req.scheme) {
            if prev.latest.document() == doc {
                return Ok(summary(prev.latest.version, false, warnings));
            }
            warnings.extend(removal_warnings(&prev.latest, &prev.meta, &doc));
        }
        let version = self.commit(&req.scheme, doc.clone())?;
        tracing::info!(scheme = %req.scheme, version, concepts = doc.concepts.len(), "taxonomy imported");
        Ok(summary(version, true, warnings))
    }

    /// `taxonomy_validate`: the integrity report, nothing stored.
    pub fn validate(&self, req: ValidateRequest) -> Result<ValidateResponse, TaxonomyError> {
        let mut checked = parse_and_check(
            req.format,
            &req.content,
            req.base_iri.as_deref(),
            req.scheme_uri.as_deref(),
        )?;
        if let Some(scheme) = &req.scheme {
            let prev = self.loaded(scheme)?;
            checked
                .warnings
                .extend(removal_warnings(&prev.latest, &prev.meta, &checked.doc));
        }
        Ok(ValidateResponse {
            valid: checked.violations.is_empty(),
            concepts: checked.doc.concepts.len() as u32,
            top_concepts: checked.doc.top_concepts,
            violations: checked.violations,
            warnings: checked.warnings,
        })
    }

    /// `taxonomy_export`.
    pub fn export(&self, req: ExportRequest) -> Result<ExportResponse, TaxonomyError> {
        let v = self.version(&req.scheme, req.version)?;
        Ok(ExportResponse {
            scheme: req.scheme,
            version: v.version,
            format: req.format,
            content: skos::export(&v, req.format)?,
        })
    }

    /// The version holding `concept`: of `scheme` when named, else of the one scheme whose
    /// latest version (or, with `version`, whose earlier versions) hold it.
    fn locate(
        &self,
        scheme: Option<&str>,
        concept: &str,
        version: Option<u32>,
    ) -> Result<Arc<Version>, TaxonomyError> {
        let owners: Vec<String> = match scheme {
            Some(s) => vec![s.to_string()],
            None => {
                let owners = self.owners(concept);
                if owners.is_empty() && version.is_some() {
                    self.former_owners(concept).to_vec()
                } else {
                    owners.to_vec()
                }
            }
        };
        match owners.as_slice() {
            [] => Err(self.unknown_concept(concept, None, None)),
            [one] => {
                let v = self.version(one, version)?;
                if v.concepts.contains_key(concept) {
                    Ok(v)
                } else {
                    Err(self.unknown_concept(concept, scheme, Some(&v)))
                }
            }
            many => Err(TaxonomyError::AmbiguousConcept {
                concept: concept.to_string(),
                schemes: many.to_vec(),
            }),
        }
    }

    /// An unknown-concept error with close ids and labels.
    fn unknown_concept(
        &self,
        concept: &str,
        scheme: Option<&str>,
        version: Option<&Version>,
    ) -> TaxonomyError {
        let latest: Vec<&Version> = match version {
            Some(v) => vec![v],
            None => self.schemes().map(|(_, l)| l.latest.as_ref()).collect(),
        };
        let mut suggestions: Vec<String> = Vec::new();
        let wanted = concept.to_lowercase();
        for v in &latest {
            for id in v.concepts.keys() {
                let lower = id.to_lowercase();
                let boundary = lower.strip_suffix(&wanted).is_some_and(|head| {
                    head.is_empty() || head.ends_with(['/', '#', '.', ':', '_', '-'])
                });
                if boundary && suggestions.len() < 5 {
                    suggestions.push(format!("`{id}` ({})", v.label(id, None)));
                }
            }
        }
        if let Some(q) = Query::new(concept, None, true) {
            for v in &latest {
                let hits = match self.loaded(&v.scheme) {
                    Ok(l) if l.latest.version == v.version => l.labels.search(v, &q, 5),
                    _ => LabelIndex::build(v).search(v, &q, 5),
                };
                for h in hits {
                    let s = format!("`{}` ({})", h.concept, h.label);
                    if suggestions.len() < 5 && !suggestions.contains(&s) {
                        suggestions.push(s);
                    }
                }
            }
        }
        TaxonomyError::UnknownConcept {
            concept: concept.to_string(),
            scheme: scheme.map(str::to_string),
            suggestions,
        }
    }

    /// `taxonomy_get_concept`.
    pub fn get_concept(&self, req: GetConceptRequest) -> Result<ConceptInfo, TaxonomyError> {
        let v = self.locate(req.scheme.as_deref(), &req.concept, req.version)?;
        let lang = req.language.as_deref();
        let concept = v
            .full_concept(&req.concept)
            .ok_or_else(|| self.unknown_concept(&req.concept, req.scheme.as_deref(), Some(&v)))?;
        let paths = v
            .paths(&req.concept, 20)
            .into_iter()
            .map(|p| p.iter().map(|id| v.concept_ref(id, lang)).collect())
            .collect();
        Ok(ConceptInfo {
            scheme: v.scheme.clone(),
            version: v.version,
            label: v.label(&req.concept, lang),
            top_concept: v.top_concepts.contains(&req.concept),
            concept,
            paths,
        })
    }

    /// `taxonomy_descendants` (`down`) and `taxonomy_ancestors`.
    pub fn relatives(
        &self,
        req: RelativesRequest,
        down: bool,
    ) -> Result<RelativesResponse, TaxonomyError> {
        if req.depth == Some(0) {
            return Err(invalid(
                "depth",
                "must be at least 1 (1 = direct relatives only)",
            ));
        }
        let v = self.locate(req.scheme.as_deref(), &req.concept, req.version)?;
        let found = if down {
            v.descendants(&req.concept, req.depth)
        } else {
            v.ancestors(&req.concept, req.depth)
        };
        Ok(RelativesResponse {
            scheme: v.scheme.clone(),
            version: v.version,
            concept: req.concept,
            concepts: found
                .into_iter()
                .map(|(id, distance)| Relative {
                    label: v.label(&id, None),
                    id,
                    distance,
                })
                .collect(),
        })
    }

    /// `taxonomy_search_labels`.
    pub fn search_labels(
        &self,
        req: SearchLabelsRequest,
    ) -> Result<SearchLabelsResponse, TaxonomyError> {
        let limit = limit(req.limit)?;
        let query = Query::new(&req.query, req.language.clone(), req.fuzzy.unwrap_or(true))
            .ok_or_else(|| invalid("query", "give at least one letter or digit"))?;
        let hits = match &req.scheme {
            Some(s) => {
                let l = self.loaded(s)?;
                l.labels.search(&l.latest, &query, limit)
            }
            None => search::merge(
                self.schemes()
                    .flat_map(|(_, l)| l.labels.search(&l.latest, &query, limit))
                    .collect(),
                limit,
            ),
        };
        Ok(SearchLabelsResponse { hits })
    }

    /// `taxonomy_classify`, with the votes of `neighbours`.
    pub fn classify(
        &self,
        req: ClassifyRequest,
        neighbours: &[Neighbour],
        cancel: &CancellationToken,
    ) -> Result<ClassifyResponse, TaxonomyError> {
        let limit = limit(req.limit)?;
        let l = self.loaded(&req.scheme)?;
        if req.text.trim().is_empty() && neighbours.is_empty() {
            return Err(invalid("text", "give the text to classify"));
        }
        check_cancel(cancel)?;
        let (concepts, neighbours_used) = classify::classify(
            &l.phrases,
            &l.latest,
            &l.meta.history,
            &req.text,
            req.language.as_deref(),
            neighbours,
            limit,
        );
        Ok(ClassifyResponse {
            scheme: req.scheme,
            version: l.latest.version,
            concepts,
            neighbours_used,
        })
    }

    /// `taxonomy_list`.
    pub fn list(&self) -> ListResponse {
        ListResponse {
            schemes: self
                .schemes()
                .map(|(id, l)| SchemeSummary {
                    scheme: id.clone(),
                    uri: l.latest.uri.clone(),
                    title: l.latest.title(),
                    latest: l.latest.version,
                    concepts: l.latest.concepts.len() as u32,
                    versions: l.meta.versions.clone(),
                })
                .collect(),
        }
    }
}
