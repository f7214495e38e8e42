//! Ranking: a free-text query becomes a bag of analyzed terms (never a query language), scored
//! by BM25 over title and text as one field ([`super::bm25`]); optionally expanded by
//! pseudo-relevance feedback (RM3).

use std::collections::HashMap;

use ensemble_protocol::retrieval::{Feedback, Ranking, RetrievalError, WeightedTerm};
use tantivy::query::Query;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Score, Searcher, TantivyDocument};

use super::analysis::term_counts;
use super::bm25::{self, Params};
use super::collection::{Fields, stored_text};

/// Ranking settings with every part decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// RM3 feedback, when on: (documents, terms, weight of the original query).
    pub feedback: Option<(usize, usize, f32)>,
    /// BM25's parameters.
    pub bm25: Params,
}

/// The ranking a collection starts with when its creation names none: measured on the
/// development collections (see docs/retrieval.md).
pub const DEFAULT_RANKING: Ranking = Ranking {
    feedback: Some(Feedback {
        enabled: false,
        docs: Some(FEEDBACK_DOCS),
        terms: Some(FEEDBACK_TERMS),
        original_weight: Some(FEEDBACK_ORIGINAL_WEIGHT),
    }),
    k1: Some(1.5),
    b: Some(0.75),
};

/// Feedback documents when feedback is on and says nothing else.
const FEEDBACK_DOCS: u32 = 5;
/// Feedback terms, likewise.
const FEEDBACK_TERMS: u32 = 10;
/// The original query's weight against the expansion, likewise.
const FEEDBACK_ORIGINAL_WEIGHT: f32 = 0.8;

/// `over`'s parts where given, else `base`'s (the collection's defaults), else the built-in ones.
pub fn merge(base: &Ranking, over: Option<&Ranking>) -> Ranking {
    let d = DEFAULT_RANKING;
    let fb = |r: &Ranking| r.feedback;
    let pick_fb = over.and_then(fb).or(base.feedback).or(d.feedback);
    let base_fb = base.feedback.or(d.feedback);
    let feedback = pick_fb.map(|f| Feedback {
        enabled: f.enabled,
        docs: f
            .docs
            .or(base_fb.and_then(|b| b.docs))
            .or(Some(FEEDBACK_DOCS)),
        terms: f
            .terms
            .or(base_fb.and_then(|b| b.terms))
            .or(Some(FEEDBACK_TERMS)),
        original_weight: f
            .original_weight
            .or(base_fb.and_then(|b| b.original_weight))
            .or(Some(FEEDBACK_ORIGINAL_WEIGHT)),
    });
    Ranking {
        feedback,
        k1: over.and_then(|r| r.k1).or(base.k1).or(d.k1),
        b: over.and_then(|r| r.b).or(base.b).or(d.b),
    }
}

/// Checks a ranking's numbers; the message names the field.
pub fn check_ranking(r: &Ranking) -> Result<(), RetrievalError> {
    if let Some(f) = r.feedback {
        if let Some(docs) = f.docs
            && !(1..=100).contains(&docs)
        {
            return Err(bad("ranking.feedback.docs", docs, "1 to 100"));
        }
        if let Some(terms) = f.terms
            && !(1..=100).contains(&terms)
        {
            return Err(bad("ranking.feedback.terms", terms, "1 to 100"));
        }
        if let Some(w) = f.original_weight
            && !(w > 0.0 && w <= 1.0)
        {
            return Err(bad(
                "ranking.feedback.original_weight",
                w,
                "more than 0, at most 1",
            ));
        }
    }
    if let Some(k1) = r.k1
        && !(0.0..=10.0).contains(&k1)
    {
        return Err(bad("ranking.k1", k1, "0 to 10"));
    }
    if let Some(b) = r.b
        && !(0.0..=1.0).contains(&b)
    {
        return Err(bad("ranking.b", b, "0 to 1"));
    }
    Ok(())
}

fn bad(field: &str, value: impl ToString, accepted: &str) -> RetrievalError {
    RetrievalError::InvalidSetting {
        field: field.into(),
        value: value.to_string(),
        accepted: accepted.into(),
    }
}

impl Settings {
    /// The settings of a merged ranking.
    pub fn of(r: &Ranking) -> Self {
        let feedback = r.feedback.filter(|f| f.enabled).map(|f| {
            (
                f.docs.unwrap_or(FEEDBACK_DOCS) as usize,
                f.terms.unwrap_or(FEEDBACK_TERMS) as usize,
                f.original_weight.unwrap_or(FEEDBACK_ORIGINAL_WEIGHT),
            )
        });
        Self {
            feedback,
            bm25: Params {
                k1: r.k1.unwrap_or(1.5),
                b: r.b.unwrap_or(0.75),
            },
        }
    }
}

/// A ranked answer.
pub struct Ranked {
    /// The best `depth` documents with their scores.
    pub hits: Vec<(Score, DocAddress)>,
    /// Documents matched in all.
    pub total: u64,
    /// The terms run, with their weights and whether feedback added them.
    pub terms: Vec<WeightedTerm>,
    /// The original query's distinct terms (for snippets).
    pub query_terms: Vec<String>,
}

impl Ranked {
    /// The weighted terms as the scorer takes them.
    pub fn weights(&self) -> Vec<(String, f32)> {
        self.terms
            .iter()
            .map(|t| (t.term.clone(), t.weight))
            .collect()
    }
}

/// Ranks the collection's documents for `text`: the best `depth`, passing `filter` when given.
pub fn rank(
    searcher: &Searcher,
    fields: &Fields,
    analyzer: &mut TextAnalyzer,
    text: &str,
    filter: Option<&dyn Query>,
    settings: &Settings,
    depth: usize,
) -> tantivy::Result<Ranked> {
    let counts = term_counts(analyzer, text);
    let query_terms: Vec<String> = counts.iter().map(|(t, _)| t.clone()).collect();
    let total: f32 = counts.iter().map(|(_, c)| *c as f32).sum();
    // Each distinct term weighs its count (Anserini's bag of words).
    let original: Vec<(String, f32, bool)> = counts
        .iter()
        .map(|(t, c)| (t.clone(), *c as f32, false))
        .collect();
    let first_depth = match settings.feedback {
        Some((docs, _, _)) => depth.max(docs),
        None => depth,
    };
    let plain = |w: &[(String, f32, bool)]| -> Vec<(String, f32)> {
        w.iter().map(|(t, w, _)| (t.clone(), *w)).collect()
    };
    let first = plain(&original);
    let (mut hits, mut matched) = bm25::top(
        searcher,
        &[(fields.body, &first)],
        settings.bm25,
        filter,
        first_depth,
    )?;
    let mut weighted = original.clone();
    if let Some((docs, n_terms, alpha)) = settings.feedback
        && !hits.is_empty()
    {
        let expansion = rm3(
            searcher,
            fields,
            analyzer,
            &hits[..hits.len().min(docs)],
            n_terms,
        )?;
        if !expansion.is_empty() {
            // RM3 mixes distributions: the original query as term shares, scaled back to the
            // query's length so scores stay on the first pass's scale.
            let shares: Vec<(String, f32, bool)> = original
                .iter()
                .map(|(t, w, e)| (t.clone(), w / total, *e))
                .collect();
            weighted = interpolate(&shares, &expansion, alpha)
                .into_iter()
                .map(|(t, w, e)| (t, w * total, e))
                .collect();
            let second = plain(&weighted);
            (hits, matched) = bm25::top(
                searcher,
                &[(fields.body, &second)],
                settings.bm25,
                filter,
                depth,
            )?;
        }
    }
    hits.truncate(depth);
    Ok(Ranked {
        hits,
        total: matched,
        terms: weighted
            .into_iter()
            .map(|(term, weight, expansion)| WeightedTerm {
                term,
                weight,
                expansion,
            })
            .collect(),
        query_terms,
    })
}

/// RM3's relevance model from the feedback documents: each term's weight is its share of each
/// document's terms, weighted by the document's share of the feedback scores; the best
/// `n_terms`, normalised to sum to one.
fn rm3(
    searcher: &Searcher,
    fields: &Fields,
    analyzer: &mut TextAnalyzer,
    feedback: &[(Score, DocAddress)],
    n_terms: usize,
) -> tantivy::Result<Vec<(String, f32)>> {
    let score_sum: f32 = feedback.iter().map(|(s, _)| *s).sum();
    if score_sum <= 0.0 {
        return Ok(Vec::new());
    }
    let mut model: HashMap<String, f32> = HashMap::new();
    for (score, address) in feedback {
        let doc: TantivyDocument = searcher.doc(*address)?;
        let mut body = stored_text(&doc, fields.title).unwrap_or_default();
        body.push('\n');
        body.push_str(&stored_text(&doc, fields.text).unwrap_or_default());
        let counts = term_counts(analyzer, &body);
        let len: u32 = counts.iter().map(|(_, c)| c).sum();
        if len == 0 {
            continue;
        }
        let doc_weight = score / score_sum;
        for (t, c) in counts {
            *model.entry(t).or_default() += doc_weight * c as f32 / len as f32;
        }
    }
    let mut ranked: Vec<(String, f32)> = model.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n_terms);
    let sum: f32 = ranked.iter().map(|(_, w)| w).sum();
    if sum > 0.0 {
        for (_, w) in &mut ranked {
            *w /= sum;
        }
    }
    Ok(ranked)
}

/// `alpha` of the original query plus `1 − alpha` of the expansion, term by term.
fn interpolate(
    original: &[(String, f32, bool)],
    expansion: &[(String, f32)],
    alpha: f32,
) -> Vec<(String, f32, bool)> {
    let mut out: Vec<(String, f32, bool)> = original
        .iter()
        .map(|(t, w, _)| (t.clone(), alpha * w, false))
        .collect();
    for (t, w) in expansion {
        match out.iter_mut().find(|(o, _, _)| o == t) {
            Some(entry) => entry.1 += (1.0 - alpha) * w,
            None => out.push((t.clone(), (1.0 - alpha) * w, true)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_keeps_the_original_share() {
        let original = vec![("a".to_string(), 0.5, false), ("b".to_string(), 0.5, false)];
        let expansion = vec![("a".to_string(), 0.6), ("c".to_string(), 0.4)];
        let out = interpolate(&original, &expansion, 0.5);
        assert_eq!(out[0], ("a".to_string(), 0.55, false));
        assert_eq!(out[1], ("b".to_string(), 0.25, false));
        assert_eq!(out[2], ("c".to_string(), 0.2, true));
        let sum: f32 = out.iter().map(|t| t.1).sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_search_overrides_only_what_it_names() {
        let base = Ranking {
            feedback: Some(Feedback {
                enabled: true,
                docs: Some(5),
                terms: None,
                original_weight: None,
            }),
            k1: Some(0.9),
            b: None,
        };
        let over = Ranking {
            feedback: Some(Feedback {
                enabled: false,
                docs: None,
                terms: None,
                original_weight: None,
            }),
            k1: None,
            b: Some(0.4),
        };
        let s = Settings::of(&merge(&base, Some(&over)));
        assert_eq!(s.feedback, None);
        assert_eq!(s.bm25, Params { k1: 0.9, b: 0.4 });
        let s = Settings::of(&merge(&base, None));
        assert_eq!(s.feedback, Some((5, 10, 0.8)));
        assert_eq!(s.bm25, Params { k1: 0.9, b: 0.75 });
    }
}
