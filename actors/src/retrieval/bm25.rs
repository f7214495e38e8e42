//! BM25 over tantivy's postings with our own `k1` and `b`.
//!
//! tantivy hard-codes k1 = 1.2, b = 0.75 (its block-max WAND precomputes with them), and on
//! SciFact train k1 = 1.5 scores better (see docs/retrieval.md), so the engine scores itself:
//! term at a time over each query term's postings, with Lucene's idf and tantivy's own
//! document lengths (its one-byte field norms, as Lucene's). Exhaustive over the postings of
//! the query terms — what Lucene did before block-max WAND, linear in the postings read.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::postings::Postings;
use tantivy::query::{EnableScoring, Query};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Score, Searcher, TERMINATED, Term};

/// BM25's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Term frequency saturation.
    pub k1: f32,
    /// Length normalisation (0: none, 1: full).
    pub b: f32,
}

pub use ensemble_protocol::retrieval::TermScore;

/// Lucene's idf: ln(1 + (N − n + 0.5) / (n + 0.5)).
pub fn idf(docs: u64, doc_freq: u64) -> f32 {
    let (n, df) = (docs as f32, doc_freq as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

fn term_score(p: Params, idf: f32, weight: f32, tf: u32, len: u32, avg_len: f32) -> f32 {
    let tf = tf as f32;
    let norm = p.k1 * (1.0 - p.b + p.b * len as f32 / avg_len);
    weight * idf * tf * (p.k1 + 1.0) / (tf + norm)
}

struct Scored(Score, DocAddress);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    // Reversed: the heap's top is the worst kept hit (lowest score, then latest address).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

/// Corpus statistics of the field.
struct Stats {
    docs: u64,
    avg_len: f32,
}

fn stats(searcher: &Searcher, field: Field) -> tantivy::Result<Stats> {
    let mut tokens = 0u64;
    let mut docs = 0u64;
    for s in searcher.segment_readers() {
        tokens += s.inverted_index(field)?.total_num_tokens();
        docs += u64::from(s.max_doc());
    }
    Ok(Stats {
        docs,
        avg_len: if docs == 0 {
            1.0
        } else {
            (tokens as f32 / docs as f32).max(1.0)
        },
    })
}

/// Weighted terms of one field.
pub type Group<'a> = (Field, &'a [(String, f32)]);

/// The best `depth` documents for the weighted terms of each field (their BM25 scores summed)
/// that pass `filter`, and how many documents matched in all.
pub fn top(
    searcher: &Searcher,
    groups: &[Group<'_>],
    params: Params,
    filter: Option<&dyn Query>,
    depth: usize,
) -> tantivy::Result<(Vec<(Score, DocAddress)>, u64)> {
    // (field, term, weight, idf, average length of the field)
    let mut weighted = Vec::new();
    for (field, terms) in groups {
        let stats = stats(searcher, *field)?;
        for (t, w) in terms.iter() {
            let term = Term::from_field_text(*field, t);
            let df = searcher.doc_freq(&term)?;
            if df > 0 && *w > 0.0 {
                weighted.push((*field, term, *w, idf(stats.docs, df), stats.avg_len));
            }
        }
    }
    let filter_weight = match filter {
        Some(f) => Some(f.weight(EnableScoring::disabled_from_searcher(searcher))?),
        None => None,
    };
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(depth + 1);
    let mut total = 0u64;
    let mut scores: Vec<f32> = Vec::new();
    let mut touched: Vec<DocId> = Vec::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        scores.clear();
        scores.resize(segment.max_doc() as usize, 0.0);
        touched.clear();
        for (field, term, weight, idf, avg_len) in &weighted {
            let norms = segment.get_fieldnorms_reader(*field)?;
            let index = segment.inverted_index(*field)?;
            let Some(mut postings) = index.read_postings(term, IndexRecordOption::WithFreqs)?
            else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                let slot = &mut scores[doc as usize];
                if *slot == 0.0 {
                    touched.push(doc);
                }
                *slot += term_score(
                    params,
                    *idf,
                    *weight,
                    postings.term_freq(),
                    norms.fieldnorm(doc),
                    *avg_len,
                );
                doc = postings.advance();
            }
        }
        let allowed: Option<Vec<bool>> = match &filter_weight {
            None => None,
            Some(w) => {
                let mut allowed = vec![false; segment.max_doc() as usize];
                let mut s = w.scorer(segment, 1.0)?;
                let mut d = s.doc();
                while d != TERMINATED {
                    allowed[d as usize] = true;
                    d = s.advance();
                }
                Some(allowed)
            }
        };
        let alive = segment.alive_bitset();
        for &doc in &touched {
            if alive.is_some_and(|a| a.is_deleted(doc))
                || allowed.as_ref().is_some_and(|a| !a[doc as usize])
            {
                continue;
            }
            total += 1;
            let hit = Scored(scores[doc as usize], DocAddress::new(ord as u32, doc));
            if heap.len() < depth {
                heap.push(hit);
            } else if heap.peek().is_some_and(|worst| hit < *worst) {
                heap.pop();
                heap.push(hit);
            }
        }
    }
    let hits = heap
        .into_sorted_vec()
        .into_iter()
        .map(|Scored(s, a)| (s, a))
        .collect();
    Ok((hits, total))
}

/// How each weighted term adds to document `address`'s score.
pub fn explain(
    searcher: &Searcher,
    field: Field,
    terms: &[(String, f32)],
    params: Params,
    address: DocAddress,
) -> tantivy::Result<Vec<TermScore>> {
    let stats = stats(searcher, field)?;
    let segment = searcher.segment_reader(address.segment_ord);
    let norms = segment.get_fieldnorms_reader(field)?;
    let index = segment.inverted_index(field)?;
    let len = norms.fieldnorm(address.doc_id);
    let mut out = Vec::new();
    for (t, w) in terms {
        let term = Term::from_field_text(field, t);
        let Some(mut postings) = index.read_postings(&term, IndexRecordOption::WithFreqs)? else {
            continue;
        };
        // `seek` only moves forward.
        let mut doc = postings.doc();
        if doc < address.doc_id {
            doc = postings.seek(address.doc_id);
        }
        if doc != address.doc_id {
            continue;
        }
        let idf = idf(stats.docs, searcher.doc_freq(&term)?);
        let tf = postings.term_freq();
        out.push(TermScore {
            term: t.clone(),
            weight: *w,
            idf,
            tf,
            score: term_score(params, idf, *w, tf, len, stats.avg_len),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_is_lucenes() {
        // ln(1 + (10 - 1 + 0.5) / (1 + 0.5)) = ln(7.333…)
        assert!((idf(10, 1) - 7.333_333_f32.ln()).abs() < 1e-6);
        // A term in every document still counts a little.
        assert!(idf(10, 10) > 0.0);
    }

    #[test]
    fn term_score_saturates_and_normalises_length() {
        let p = Params { k1: 1.2, b: 0.75 };
        // tf 1 at average length: idf · 2.2 / (1 + 1.2) = idf.
        assert!((term_score(p, 2.0, 1.0, 1, 10, 10.0) - 2.0).abs() < 1e-6);
        // More occurrences add less and less, never past idf · (k1 + 1).
        let s: Vec<f32> = (1..6)
            .map(|tf| term_score(p, 1.0, 1.0, tf, 10, 10.0))
            .collect();
        assert!(s.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 0.5));
        assert!(s[4] < 2.2);
        // A longer document scores lower for the same tf; b = 0 ignores length.
        assert!(term_score(p, 1.0, 1.0, 1, 40, 10.0) < term_score(p, 1.0, 1.0, 1, 10, 10.0));
        let flat = Params { k1: 1.2, b: 0.0 };
        assert_eq!(
            term_score(flat, 1.0, 1.0, 1, 40, 10.0),
            term_score(flat, 1.0, 1.0, 1, 10, 10.0)
        );
    }
}
