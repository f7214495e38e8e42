//! Offline retrieval evaluation: BEIR-format test collections, TREC run files, and the
//! measures of `trec_eval` (nDCG@k as `ndcg_cut`, recall@k as `recall_k`, MAP as `map`).
//!
//! Semantics, chosen to match `trec_eval` (and `pytrec_eval`, which the reference numbers in
//! `../shared/research/retrieval.md` were measured with):
//!
//! - a run is ordered by score, highest first, ties broken by document id in *descending*
//!   byte order; the rank column of a run file is ignored (as `trec_eval` ignores it);
//! - a document is relevant when its grade is above 0; nDCG's gain is the grade itself, the
//!   discount `log2(rank + 1)`, and the ideal DCG is built from every judged grade of the
//!   query, cut at the same depth;
//! - MAP averages precision at each relevant document retrieved, over the whole run, divided
//!   by the number of relevant documents;
//! - the mean is over the queries with at least one relevant judgment; such a query that is
//!   missing from the run counts 0 (`trec_eval -c`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ensemble::ir_eval::{Qrels, Run, Scored, evaluate};
//!
//! let mut qrels = Qrels::new();
//! qrels.insert("q1".into(), BTreeMap::from([("d1".to_string(), 1)]));
//! let mut run = Run::new();
//! run.insert("q1".into(), vec![Scored::new("d1", 2.0), Scored::new("d2", 1.0)]);
//! let summary = evaluate(&qrels, &run, 10, 100);
//! assert_eq!(summary.queries, 1);
//! assert_eq!(summary.ndcg, 1.0);
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Relevance judgments: query id → document id → grade (0 = judged not relevant).
pub type Qrels = BTreeMap<String, BTreeMap<String, i32>>;

/// A run: query id → the documents retrieved for it with their scores.
pub type Run = BTreeMap<String, Vec<Scored>>;

/// One retrieved document and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The document's id.
    pub doc: String,
    /// Its score (higher is better).
    pub score: f64,
}

impl Scored {
    /// A retrieved document.
    pub fn new(doc: impl Into<String>, score: f64) -> Self {
        Scored {
            doc: doc.into(),
            score,
        }
    }
}

/// A document of a BEIR corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// `_id`.
    pub id: String,
    /// `title` (empty when absent).
    pub title: String,
    /// `text`.
    pub text: String,
}

/// A query of a BEIR collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `_id`.
    pub id: String,
    /// `text`.
    pub text: String,
}

/// A BEIR-format collection with the judgments of one split.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The folder's name (`scifact`, `cranfield`, …).
    pub name: String,
    /// The split whose judgments were read (`train`, `test`, …).
    pub split: String,
    /// Every document, in file order.
    pub corpus: Vec<Doc>,
    /// The queries that have judgments in this split, in file order.
    pub queries: Vec<Query>,
    /// The judgments.
    pub qrels: Qrels,
}

/// A file that cannot be read or does not parse.
#[derive(Debug)]
pub struct EvalError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl EvalError {
    fn new(path: &Path, line: Option<usize>, reason: impl Into<String>) -> Self {
        EvalError {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl std::error::Error for EvalError {}

impl Collection {
    /// Reads `dir/corpus.jsonl`, `dir/queries.jsonl` and `dir/qrels/<split>.tsv`. Without a
    /// split, the folder's only split, or `test` when it has several (see [`default_split`]).
    pub fn load(dir: &Path, split: Option<&str>) -> Result<Collection, EvalError> {
        let split = match split {
            Some(s) => s.to_string(),
            None => default_split(dir)?,
        };
        let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
        if !qrels_path.is_file() {
            let have = splits(dir).unwrap_or_default();
            return Err(EvalError::new(
                &qrels_path,
                None,
                format!("no such split; this collection has: {}", have.join(", ")),
            ));
        }
        Self::load_judged(dir, &qrels_path, split)
    }

    /// Reads a BEIR folder's corpus and queries with the judgments of `qrels_path`, a file
    /// anywhere (e.g. held-out judgments kept outside the folder); `split` names them.
    pub fn load_judged(
        dir: &Path,
        qrels_path: &Path,
        split: String,
    ) -> Result<Collection, EvalError> {
        let qrels = read_qrels(qrels_path)?;
        let corpus = read_corpus(&dir.join("corpus.jsonl"))?;
        let queries_path = dir.join("queries.jsonl");
        let all = read_queries(&queries_path)?;
        let known: HashSet<&str> = all.iter().map(|q| q.id.as_str()).collect();
        let missing: Vec<&str> = qrels
            .keys()
            .map(String::as_str)
            .filter(|q| !known.contains(q))
            .collect();
        if !missing.is_empty() {
            return Err(EvalError::new(
                &queries_path,
                None,
                format!("judged queries with no text here: {}", missing.join(", ")),
            ));
        }
        let queries = all
            .into_iter()
            .filter(|q| qrels.contains_key(&q.id))
            .collect();
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "collection".into());
        Ok(Collection {
            name,
            split,
            corpus,
            queries,
            qrels,
        })
    }
}

/// The splits a BEIR folder has judgments for (`qrels/*.tsv`), sorted.
pub fn splits(dir: &Path) -> Result<Vec<String>, EvalError> {
    let qrels = dir.join("qrels");
    let entries =
        std::fs::read_dir(&qrels).map_err(|e| EvalError::new(&qrels, None, e.to_string()))?;
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".tsv").map(str::to_string)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The split to evaluate when none is named: the only one there is, else `test`.
pub fn default_split(dir: &Path) -> Result<String, EvalError> {
    let all = splits(dir)?;
    match all.as_slice() {
        [only] => Ok(only.clone()),
        _ if all.iter().any(|s| s == "test") => Ok("test".into()),
        _ => Err(EvalError::new(
            &dir.join("qrels"),
            None,
            format!(
                "name a split; there are: {}",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            ),
        )),
    }
}

fn lines(path: &Path) -> Result<impl Iterator<Item = (usize, io::Result<String>)>, EvalError> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::new(path, None, e.to_string()))?;
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l)))
}

/// Each non-blank line of a JSON-lines file, parsed.
fn json_lines(path: &Path) -> Result<Vec<(usize, Value)>, EvalError> {
    let mut out = Vec::new();
    for (n, line) in lines(path)? {
        let line = line.map_err(|e| EvalError::new(path, Some(n), e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .map_err(|e| EvalError::new(path, Some(n), e.to_string()))?;
        out.push((n, value));
    }
    Ok(out)
}

/// A string field, or a number written as its decimal text (some BEIR exports use numeric ids).
fn field(path: &Path, n: usize, v: &Value, key: &str, required: bool) -> Result<String, EvalError> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(x)) => Ok(x.to_string()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        other => Err(EvalError::new(
            path,
            Some(n),
            format!("`{key}` must be a string, found {other:?}"),
        )),
    }
}

/// Reads a BEIR `corpus.jsonl`.
pub fn read_corpus(path: &Path) -> Result<Vec<Doc>, EvalError> {
    json_lines(path)?
        .into_iter()
        .map(|(n, v)| {
            Ok(Doc {
                id: field(path, n, &v, "_id", true)?,
                title: field(path, n, &v, "title", false)?,
                text: field(path, n, &v, "text", true)?,
            })
        })
        .collect()
}

/// Reads a BEIR `queries.jsonl`.
pub fn read_queries(path: &Path) -> Result<Vec<Query>, EvalError> {
    json_lines(path)?
        .into_iter()
        .map(|(n, v)| {
            Ok(Query {
                id: field(path, n, &v, "_id", true)?,
                text: field(path, n, &v, "text", true)?,
            })
        })
        .collect()
}

/// Reads BEIR judgments: tab-separated `query-id corpus-id score`, with or without that header
/// line. A TREC qrels file (`qid 0 docid grade`, whitespace-separated) is read as well.
pub fn read_qrels(path: &Path) -> Result<Qrels, EvalError> {
    let mut qrels = Qrels::new();
    for (n, line) in lines(path)? {
        let line = line.map_err(|e| EvalError::new(path, Some(n), e.to_string()))?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (query, doc, grade) = match cols.as_slice() {
            [] => continue,
            ["query-id", ..] if n == 1 => continue,
            [q, d, g] | [q, _, d, g] => (*q, *d, *g),
            _ => {
                return Err(EvalError::new(
                    path,
                    Some(n),
                    "expected `query-id corpus-id score`",
                ));
            }
        };
        let grade: i32 = grade.parse().map_err(|_| {
            EvalError::new(path, Some(n), format!("score {grade:?} is not an integer"))
        })?;
        qrels
            .entry(query.to_string())
            .or_default()
            .insert(doc.to_string(), grade);
    }
    Ok(qrels)
}

/// Writes a run in TREC format, `qid Q0 docid rank score tag`, each query's documents in the
/// order given, ranks from 1.
pub fn write_run(mut out: impl Write, run: &Run, tag: &str) -> io::Result<()> {
    for (query, docs) in run {
        for (i, d) in docs.iter().enumerate() {
            writeln!(out, "{query} Q0 {} {} {} {tag}", d.doc, i + 1, d.score)?;
        }
    }
    out.flush()
}

/// Reads a TREC run file (`qid Q0 docid rank score tag`). The rank column is not used.
pub fn read_run(path: &Path) -> Result<Run, EvalError> {
    let mut run = Run::new();
    for (n, line) in lines(path)? {
        let line = line.map_err(|e| EvalError::new(path, Some(n), e.to_string()))?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [] => continue,
            [query, _, doc, _, score, ..] => {
                let score: f64 = score.parse().map_err(|_| {
                    EvalError::new(path, Some(n), format!("score {score:?} is not a number"))
                })?;
                run.entry(query.to_string())
                    .or_default()
                    .push(Scored::new(*doc, score));
            }
            _ => {
                return Err(EvalError::new(
                    path,
                    Some(n),
                    "expected `qid Q0 docid rank score tag`",
                ));
            }
        }
    }
    Ok(run)
}

/// Removes every hit whose document id equals its query id. BEIR's evaluator and Anserini
/// (`-removeQuery`) do this, for collections such as ArguAna whose queries are documents of
/// the corpus; elsewhere it changes nothing.
pub fn drop_self_hits(run: &mut Run) {
    for (query, docs) in run.iter_mut() {
        docs.retain(|d| d.doc != *query);
    }
}

/// The documents of one query in `trec_eval`'s order: score descending, ties by document id
/// descending; a repeated document keeps its best-ranked place only.
pub fn trec_order(docs: &[Scored]) -> Vec<&str> {
    let mut sorted: Vec<&Scored> = docs.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| b.doc.cmp(&a.doc)));
    let mut seen = HashSet::with_capacity(sorted.len());
    sorted
        .into_iter()
        .map(|d| d.doc.as_str())
        .filter(|d| seen.insert(*d))
        .collect()
}

fn grade(judged: &BTreeMap<String, i32>, doc: &str) -> i32 {
    judged.get(doc).copied().unwrap_or(0)
}

fn relevant_count(judged: &BTreeMap<String, i32>) -> usize {
    judged.values().filter(|&&g| g > 0).count()
}

fn discount(rank: usize) -> f64 {
    // rank counts from 1: log2(rank + 1).
    ((rank + 1) as f64).log2()
}

/// nDCG at depth `k` of one ranked list (`trec_eval`'s `ndcg_cut_k`); 0 when the query has no
/// relevant document.
pub fn ndcg_at(ranked: &[&str], judged: &BTreeMap<String, i32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(grade(judged, d).max(0)) / discount(i + 1))
        .sum();
    let mut ideal: Vec<i32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) / discount(i + 1))
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// The share of the query's relevant documents found in the first `k` (`recall_k`).
pub fn recall_at(ranked: &[&str], judged: &BTreeMap<String, i32>, k: usize) -> f64 {
    let relevant = relevant_count(judged);
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| grade(judged, d) > 0)
        .count();
    found as f64 / relevant as f64
}

/// Average precision over the whole ranked list (`trec_eval`'s per-query `map`).
pub fn average_precision(ranked: &[&str], judged: &BTreeMap<String, i32>) -> f64 {
    let relevant = relevant_count(judged);
    if relevant == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, d) in ranked.iter().enumerate() {
        if grade(judged, d) > 0 {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    sum / relevant as f64
}

/// Mean measures of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Queries averaged over: those with at least one relevant judgment.
    pub queries: usize,
    /// The nDCG depth.
    pub ndcg_k: usize,
    /// Mean nDCG@`ndcg_k`.
    pub ndcg: f64,
    /// The recall depth.
    pub recall_k: usize,
    /// Mean recall@`recall_k`.
    pub recall: f64,
    /// Mean average precision.
    pub map: f64,
}

/// Mean nDCG@`ndcg_k`, recall@`recall_k` and MAP of `run`, over the queries of `qrels` with at
/// least one relevant judgment (a query missing from the run counts 0).
pub fn evaluate(qrels: &Qrels, run: &Run, ndcg_k: usize, recall_k: usize) -> Summary {
    let mut summary = Summary {
        queries: 0,
        ndcg_k,
        ndcg: 0.0,
        recall_k,
        recall: 0.0,
        map: 0.0,
    };
    for (query, judged) in qrels {
        if relevant_count(judged) == 0 {
            continue;
        }
        summary.queries += 1;
        let ranked = run.get(query).map(|d| trec_order(d)).unwrap_or_default();
        summary.ndcg += ndcg_at(&ranked, judged, ndcg_k);
        summary.recall += recall_at(&ranked, judged, recall_k);
        summary.map += average_precision(&ranked, judged);
    }
    if summary.queries > 0 {
        let n = summary.queries as f64;
        summary.ndcg /= n;
        summary.recall /= n;
        summary.map /= n;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    /// Scores falling with the position, so `trec_order` keeps the order given.
    fn ranked(docs: &[&str]) -> Vec<Scored> {
        docs.iter()
            .enumerate()
            .map(|(i, d)| Scored::new(*d, 100.0 - i as f64))
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_perfect_ranking_scores_one_everywhere() {
        // Both relevant documents first: DCG = IDCG, both found, AP = (1/1 + 2/2) / 2 = 1.
        let j = judged(&[("d1", 1), ("d2", 1)]);
        let r = ["d1", "d2", "d3"];
        assert!(close(ndcg_at(&r, &j, 10), 1.0));
        assert!(close(recall_at(&r, &j, 100), 1.0));
        assert!(close(average_precision(&r, &j), 1.0));
    }

    #[test]
    fn graded_ndcg_uses_the_grades_as_gains_and_all_judged_grades_for_the_ideal() {
        // Grades d1 = 3, d2 = 2, d3 = 0 (judged, not relevant), d4 = 1; ranked d4 d1 d3 d2.
        // DCG@3  = 1/log2(2) + 3/log2(3) + 0/log2(4)        = 1 + 1.8927893 = 2.8927893
        // IDCG@3 = 3/log2(2) + 2/log2(3) + 1/log2(4)        = 3 + 1.2618595 + 0.5 = 4.7618595
        // nDCG@3 = 0.6074915
        // DCG@10 = 2.8927893 + 2/log2(5) = 2.8927893 + 0.8613531 = 3.7541424; IDCG@10 is
        // IDCG@3 (three positive grades), so nDCG@10 = 0.7883774.
        let j = judged(&[("d1", 3), ("d2", 2), ("d3", 0), ("d4", 1)]);
        let r = ["d4", "d1", "d3", "d2"];
        assert!((ndcg_at(&r, &j, 3) - 0.607_491_518).abs() < 1e-8);
        assert!((ndcg_at(&r, &j, 10) - 0.788_377_391).abs() < 1e-8);
        // Grade 0 is not relevant: 3 relevant, all found; AP = (1/1 + 2/2 + 3/4) / 3.
        assert!(close(recall_at(&r, &j, 100), 1.0));
        assert!(close(average_precision(&r, &j), (1.0 + 1.0 + 0.75) / 3.0));
    }

    #[test]
    fn relevant_documents_missing_from_the_run_still_count() {
        // Four relevant, two retrieved (ranks 2 and 4).
        // recall@100 = 2/4, recall@2 = 1/4; AP = (1/2 + 2/4) / 4 = 0.25;
        // nDCG@10 = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/log2 4 + 1/log2 5)
        //         = 1.0616063 / 2.5616063 = 0.4144299.
        let j = judged(&[("d1", 1), ("d2", 1), ("d3", 1), ("d4", 1)]);
        let r = ["x", "d1", "y", "d2"];
        assert!(close(recall_at(&r, &j, 100), 0.5));
        assert!(close(recall_at(&r, &j, 2), 0.25));
        assert!(close(average_precision(&r, &j), 0.25));
        assert!((ndcg_at(&r, &j, 10) - 0.414_429_925).abs() < 1e-8);
    }

    #[test]
    fn map_averages_over_judged_queries_and_counts_a_missing_query_as_zero() {
        let mut qrels = Qrels::new();
        // q1: two relevant, at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 0.8333333.
        qrels.insert("q1".into(), judged(&[("a", 1), ("b", 1)]));
        // q2: one relevant at rank 2: AP = 1/2.
        qrels.insert("q2".into(), judged(&[("c", 1)]));
        // q3: judged, nothing relevant: left out of the mean.
        qrels.insert("q3".into(), judged(&[("e", 0)]));
        let mut run = Run::new();
        run.insert("q1".into(), ranked(&["a", "x", "b"]));
        run.insert("q2".into(), ranked(&["x", "c"]));
        run.insert("q3".into(), ranked(&["e"]));
        // A query the qrels do not know is ignored.
        run.insert("q9".into(), ranked(&["a"]));
        let s = evaluate(&qrels, &run, 10, 100);
        assert_eq!(s.queries, 2);
        assert!(close(s.map, (5.0 / 6.0 + 0.5) / 2.0)); // 0.6666667
        assert!(close(s.recall, 1.0));

        // q4: relevant but not in the run: the mean is over three queries now.
        qrels.insert("q4".into(), judged(&[("f", 2)]));
        let s = evaluate(&qrels, &run, 10, 100);
        assert_eq!(s.queries, 3);
        assert!(close(s.map, (5.0 / 6.0 + 0.5) / 3.0)); // 0.4444444
        assert!(close(s.recall, 2.0 / 3.0));
    }

    #[test]
    fn runs_are_ordered_as_trec_eval_orders_them() {
        // Score descending; equal scores by document id descending; rank order given ignored.
        let docs = vec![
            Scored::new("b", 1.0),
            Scored::new("a", 2.0),
            Scored::new("c", 1.0),
            Scored::new("a", 0.5),
        ];
        assert_eq!(trec_order(&docs), ["a", "c", "b"]);
        // The relevant "b" is third, not first: nDCG@10 = (1/log2 4) / 1 = 0.5.
        let mut run = Run::new();
        run.insert("q".into(), docs);
        let mut qrels = Qrels::new();
        qrels.insert("q".into(), judged(&[("b", 1)]));
        assert!(close(evaluate(&qrels, &run, 10, 100).ndcg, 0.5));
    }

    #[test]
    fn a_hit_that_is_its_own_query_is_dropped() {
        let mut run = Run::new();
        run.insert("7".into(), ranked(&["7", "3", "9"]));
        run.insert("8".into(), ranked(&["7"]));
        drop_self_hits(&mut run);
        let ids = |q: &str| run[q].iter().map(|d| d.doc.clone()).collect::<Vec<_>>();
        assert_eq!(ids("7"), ["3", "9"]);
        assert_eq!(ids("8"), ["7"]);
    }

    #[test]
    fn a_run_file_reads_back_as_written() {
        let mut run = Run::new();
        run.insert(
            "q1".into(),
            vec![
                Scored::new("d1", f64::from(12.345_678_f32)),
                Scored::new("d2", 3.0),
            ],
        );
        run.insert("q2".into(), vec![Scored::new("d3", -0.5)]);
        let mut bytes = Vec::new();
        write_run(&mut bytes, &run, "tag").unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("q1 Q0 d1 1 "), "{text}");
        assert!(text.contains("q1 Q0 d2 2 3 tag\n"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.txt");
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_run(&path).unwrap(), run);
    }

    #[test]
    fn a_beir_folder_loads_with_its_only_split_and_judged_queries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("corpus.jsonl"),
            "{\"_id\":\"1\",\"title\":\"T\",\"text\":\"one\"}\n{\"_id\":2,\"text\":\"two\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("queries.jsonl"),
            "{\"_id\":\"q1\",\"text\":\"first\"}\n{\"_id\":\"q2\",\"text\":\"unjudged\"}\n",
        )
        .unwrap();
        std::fs::create_dir(d.join("qrels")).unwrap();
        std::fs::write(
            d.join("qrels/train.tsv"),
            "query-id\tcorpus-id\tscore\nq1\t1\t1\nq1\t2\t0\n",
        )
        .unwrap();
        let c = Collection::load(d, None).unwrap();
        assert_eq!(c.split, "train");
        assert_eq!(c.corpus.len(), 2);
        assert_eq!(c.corpus[1].id, "2");
        assert_eq!(c.corpus[1].title, "");
        assert_eq!(c.queries.len(), 1);
        assert_eq!(c.qrels["q1"]["2"], 0);
        let err = Collection::load(d, Some("test")).unwrap_err().to_string();
        assert!(
            err.contains("no such split") && err.contains("train"),
            "{err}"
        );
    }
}
