//! How the quality learner ranks a change's candidate tests.
//!
//! A repository's candidate list recurs from call to call, so it is read once into a
//! [`CandidateSet`]: each candidate's file, unit name, words and package, the words interned
//! and their rarity among the candidates computed, and what the history says of each
//! candidate's file and record (changes, failures) looked up again only after the learner
//! learned something. A ranking then reads the patterns of the few changed files and, per
//! candidate, compares small integers; the evidence that only a few candidates have (the
//! change touches the test, co-changes) is found through the set's index by file.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use ensemble_protocol::quality::Candidate;
use rustc_hash::{FxHashMap, FxHasher};

use super::model::{QualityPattern, key, key_into};
use super::paths;
use crate::learning::Patterns;

/// A package segment no candidate has (a changed file's package outside theirs).
const UNKNOWN: u32 = u32::MAX;

/// A list of candidates, read once and kept while the same list comes again.
#[derive(Debug)]
pub(super) struct CandidateSet {
    /// The candidates as given, to recognise the list.
    given: Vec<Candidate>,
    fingerprint: u64,
    entries: Vec<Entry>,
    /// File → the candidates in it.
    by_path: FxHashMap<String, Vec<u32>>,
    /// Word → its id.
    words: FxHashMap<String, u32>,
    /// Package segment, version suffix dropped (`lang3` → `lang`) → its id.
    segments: FxHashMap<String, u32>,
    /// How rare each word (by id) is among the candidates.
    idf: Vec<f64>,
    /// What the history says of each candidate, as of `generation`.
    facts: Vec<Facts>,
    generation: Option<u64>,
    /// When a ranking last used it (for keeping the most used sets).
    pub(super) used: u64,
}

/// What a candidate's id and file say by themselves.
#[derive(Debug)]
struct Entry {
    path: Option<String>,
    unit: String,
    words: Vec<u32>,
    /// The sum of its words' rarity.
    words_total: f64,
    package: Vec<u32>,
}

/// What the history says of a candidate.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    /// Its file's changes, and the repository's commit count at its last change.
    changes: u64,
    last_change: u64,
    /// The test's failures and runs reported.
    failures: u64,
    runs: u64,
}

/// A cheap fingerprint of a candidate list (the list itself is compared on a match).
pub(super) fn fingerprint(candidates: &[Candidate]) -> u64 {
    let mut h = FxHasher::default();
    candidates.len().hash(&mut h);
    for c in candidates {
        c.id.hash(&mut h);
        c.path.hash(&mut h);
    }
    h.finish()
}

fn intern(vocab: &mut FxHashMap<String, u32>, s: &str) -> u32 {
    if let Some(&id) = vocab.get(s) {
        return id;
    }
    let id = u32::try_from(vocab.len()).unwrap_or(UNKNOWN - 1);
    vocab.insert(s.to_string(), id);
    id
}

impl CandidateSet {
    /// Reads `candidates`; a candidate's file is its `path`, or the test file of the history
    /// (`tests`: by stem) its id names.
    pub(super) fn new(
        candidates: &[Candidate],
        fingerprint: u64,
        tests: Option<&HashMap<String, Vec<String>>>,
    ) -> Self {
        let mut words = FxHashMap::default();
        let mut segments = FxHashMap::default();
        let mut by_path: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        let mut entries = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.iter().enumerate() {
            let (name, id_package) = paths::id_parts(&c.id);
            let path = match &c.path {
                Some(p) => Some(p.as_str()),
                None => tests.and_then(|t| t.get(name)).and_then(|list| {
                    if list.len() == 1 {
                        return list.first().map(String::as_str);
                    }
                    // Several files of that name: the one whose package is the id's.
                    list.iter()
                        .map(String::as_str)
                        .max_by_key(|p| paths::common_prefix(&paths::package(p), &id_package))
                }),
            };
            let unit = paths::unit_of_test(name);
            let package = path
                .map_or(id_package, paths::package)
                .into_iter()
                .map(|s| intern(&mut segments, paths::segment_root(s)))
                .collect();
            if let Some(p) = path {
                by_path
                    .entry(p.to_string())
                    .or_default()
                    .push(u32::try_from(i).unwrap_or(u32::MAX));
            }
            entries.push(Entry {
                path: path.map(String::from),
                unit: unit.to_string(),
                words: paths::words(unit)
                    .iter()
                    .map(|w| intern(&mut words, w))
                    .collect(),
                words_total: 0.0,
                package,
            });
        }
        // A word's rarity: ln((n + 1) / (candidates with it + ½)).
        let mut df = vec![0u32; words.len()];
        let mut seen: Vec<u32> = Vec::new();
        for e in &entries {
            seen.clear();
            for &w in &e.words {
                if !seen.contains(&w) {
                    seen.push(w);
                    df[w as usize] += 1;
                }
            }
        }
        let n = entries.len() as f64;
        let idf: Vec<f64> = df
            .iter()
            .map(|&d| ((n + 1.0) / (f64::from(d) + 0.5)).ln().max(0.0))
            .collect();
        for e in &mut entries {
            e.words_total = e.words.iter().map(|&w| idf[w as usize]).sum();
        }
        Self {
            given: candidates.to_vec(),
            fingerprint,
            facts: vec![Facts::default(); entries.len()],
            entries,
            by_path,
            words,
            segments,
            idf,
            generation: None,
            used: 0,
        }
    }

    /// Whether this set was read from `candidates`.
    pub(super) fn is(&self, fingerprint: u64, candidates: &[Candidate]) -> bool {
        self.fingerprint == fingerprint && self.given == candidates
    }

    /// How many candidates (for the cache's bound).
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Looks up what the history says of each candidate, unless already done as of
    /// `generation` (the learner's count of learning steps).
    pub(super) fn refresh(
        &mut self,
        patterns: &Patterns<QualityPattern>,
        repo: &str,
        generation: u64,
    ) {
        if self.generation == Some(generation) {
            return;
        }
        let results = matches!(
            patterns.get(&key(b'R', repo, "")),
            Some(QualityPattern::Repo(r)) if r.has_results()
        );
        let mut buf = Vec::new();
        for ((e, f), c) in self.entries.iter().zip(&mut self.facts).zip(&self.given) {
            *f = Facts::default();
            if let Some(path) = &e.path {
                key_into(&mut buf, b'F', repo, path);
                if let Some(QualityPattern::File(s)) = patterns.get(&buf) {
                    (f.changes, f.last_change) = s.recency_facts();
                }
            }
            if results {
                key_into(&mut buf, b'X', repo, &c.id);
                if let Some(QualityPattern::Test(t)) = patterns.get(&buf) {
                    (f.failures, f.runs) = t.outcomes();
                }
            }
        }
        self.generation = Some(generation);
    }
}

/// A changed file, as the ranking reads it.
struct Changed<'a> {
    path: &'a str,
    unit: &'a str,
    /// Its words that some candidate has (by id).
    words: Vec<u32>,
    /// Its package's segments (by id; [`UNKNOWN`] for one no candidate has).
    package: Vec<u32>,
    /// Its key among a test's past failures.
    failed_with: String,
}

/// What the history says about a change, gathered once per ranking.
struct Evidence<'a> {
    changed: Vec<Changed<'a>>,
    /// Test path → (co-changes with any changed file, the most with one, that file).
    co_change: FxHashMap<&'a str, (f64, f64, &'a str)>,
    repo_commits: u64,
}

impl<'a> Evidence<'a> {
    fn gather(
        patterns: &'a Patterns<QualityPattern>,
        repo: &str,
        changed: &'a [String],
        set: &CandidateSet,
    ) -> Self {
        // Documentation and data files say little about tests when code changed too.
        let any_code = changed.iter().any(|p| paths::is_code(p));
        let mut co_change: FxHashMap<&'a str, (f64, f64, &'a str)> = FxHashMap::default();
        let changed = changed
            .iter()
            .filter(|p| !any_code || paths::is_code(p))
            .map(|path| {
                if let Some(QualityPattern::File(f)) = patterns.get(&key(b'F', repo, path)) {
                    for (test, both) in f.co_changes() {
                        let e = co_change.entry(test).or_insert((0.0, 0.0, ""));
                        e.0 += both;
                        if both > e.1 {
                            e.1 = both;
                            e.2 = path;
                        }
                    }
                }
                let unit = paths::stem(path);
                Changed {
                    path,
                    unit,
                    words: paths::words(unit)
                        .iter()
                        .filter_map(|w| set.words.get(w.as_str()).copied())
                        .collect(),
                    package: paths::package(path)
                        .into_iter()
                        .map(|s| {
                            set.segments
                                .get(paths::segment_root(s))
                                .copied()
                                .unwrap_or(UNKNOWN)
                        })
                        .collect(),
                    failed_with: format!("f{path}"),
                }
            })
            .collect();
        let repo_commits = match patterns.get(&key(b'R', repo, "")) {
            Some(QualityPattern::Repo(r)) => r.commit_count(),
            _ => 0,
        };
        Self {
            changed,
            co_change,
            repo_commits,
        }
    }

    /// A candidate's evidence from its name, package and record (the rest is added by
    /// [`rank`] for the few candidates that have it).
    fn signals(
        &self,
        patterns: &'a Patterns<QualityPattern>,
        repo: &str,
        set: &CandidateSet,
        i: usize,
        key_buf: &mut Vec<u8>,
    ) -> Signals<'a> {
        let (e, f) = (&set.entries[i], &set.facts[i]);
        let mut s = Signals::default();
        // Only a test that failed has failures with files.
        let record = if f.failures > 0 {
            key_into(key_buf, b'X', repo, &set.given[i].id);
            match patterns.get(key_buf) {
                Some(QualityPattern::Test(t)) => Some(t),
                _ => None,
            }
        } else {
            None
        };
        let unit = e.unit.as_str();
        for ch in &self.changed {
            // Name: the test is named after the changed unit, or one name starts the other.
            match (unit.as_bytes().first(), ch.unit.as_bytes().first()) {
                (Some(a), Some(b)) if a == b => {
                    if unit == ch.unit {
                        s.name = 1.0;
                        s.name_of = ch.path;
                    }
                    if unit.starts_with(ch.unit) || ch.unit.starts_with(unit) {
                        s.prefix = 1.0;
                        if s.name_of.is_empty() {
                            s.name_of = ch.path;
                        }
                    }
                }
                (None, None) => {
                    s.name = 1.0;
                    s.name_of = ch.path;
                }
                _ => {}
            }
            // Words: the rarity-weighted share of the test's words found in the changed name.
            if !ch.words.is_empty() && e.words_total > 0.0 {
                let shared: f64 = e
                    .words
                    .iter()
                    .filter(|w| ch.words.contains(w))
                    .map(|&w| set.idf[w as usize])
                    .sum();
                let overlap = shared / e.words_total;
                if overlap > s.words {
                    s.words = overlap;
                    s.words_of = ch.path;
                }
            }
            // Package: how much of the longer package the two share.
            let depth = ch
                .package
                .iter()
                .zip(&e.package)
                .take_while(|(a, b)| a == b)
                .count();
            let longest = ch.package.len().max(e.package.len()).max(1);
            s.package = s.package.max(depth as f64 / longest as f64);
            // Earlier failures of this test when this file changed.
            if let Some(r) = record {
                s.failed_with += r.failures_with(&ch.failed_with) as f64;
            }
        }
        if self.repo_commits > 0 {
            let age = self.repo_commits.saturating_sub(f.last_change) as f64;
            s.recency = (f.changes as f64).ln_1p() * 0.5f64.powf(age / 300.0);
        }
        s.failures = f.failures as f64;
        s.runs = f.runs as f64;
        s
    }
}

/// A ranking of a candidate set for a change.
pub(super) struct Ranking<'a> {
    /// (score, the candidate's place in the request), best first; ties keep the request's order.
    pub(super) order: Vec<(f64, usize)>,
    signals: Vec<Signals<'a>>,
    max: Maxima,
}

impl Ranking<'_> {
    /// The strongest evidence for candidate `i`, and what it says.
    pub(super) fn reason(&self, i: usize) -> (&'static str, String) {
        self.signals[i].reason(&self.max)
    }
}

/// Ranks `set` for a change to `changed`, best first.
pub(super) fn rank<'a>(
    set: &CandidateSet,
    patterns: &'a Patterns<QualityPattern>,
    repo: &str,
    changed: &'a [String],
) -> Ranking<'a> {
    let evidence = Evidence::gather(patterns, repo, changed, set);
    let mut key_buf = Vec::new();
    let mut signals: Vec<Signals<'a>> = (0..set.entries.len())
        .map(|i| evidence.signals(patterns, repo, set, i, &mut key_buf))
        .collect();
    let candidates_in = |path: &str| set.by_path.get(path).into_iter().flatten();
    // The change touches the test itself.
    for ch in &evidence.changed {
        for &i in candidates_in(ch.path) {
            signals[i as usize].changed = 1.0;
        }
    }
    // Co-change, each commit weighed by 1/its size.
    for (&test, &(sum, best, of)) in &evidence.co_change {
        for &i in candidates_in(test) {
            let s = &mut signals[i as usize];
            s.co_change = sum;
            s.co_change_best = best;
            s.co_change_of = of;
        }
    }
    let max = signals.iter().fold(Maxima::default(), |m, s| Maxima {
        co_change: m.co_change.max(s.co_change),
        recency: m.recency.max(s.recency),
    });
    let mut order: Vec<(f64, usize)> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| (s.score(&max), i))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ranking {
        order,
        signals,
        max,
    }
}

/// The evidence for one candidate.
#[derive(Default)]
struct Signals<'a> {
    changed: f64,
    name: f64,
    prefix: f64,
    name_of: &'a str,
    words: f64,
    words_of: &'a str,
    package: f64,
    co_change: f64,
    co_change_best: f64,
    co_change_of: &'a str,
    failed_with: f64,
    failures: f64,
    runs: f64,
    recency: f64,
}

/// The weights of the signals, chosen on the development projects' bugs (Lang, Math, Jsoup,
/// Compress) and stable when each project is left out in turn; co-change and recency are
/// scaled to the largest among the candidates.
mod weight {
    pub const CHANGED: f64 = 100.0;
    pub const NAME: f64 = 3.0;
    pub const PREFIX: f64 = 0.3;
    pub const WORDS: f64 = 1.0;
    pub const PACKAGE: f64 = 1.0;
    pub const CO_CHANGE: f64 = 2.0;
    pub const FAILED_WITH: f64 = 1.0;
    pub const FAILURES: f64 = 0.03;
    pub const RECENCY: f64 = 0.01;
}

/// The largest of each scaled signal among the candidates.
#[derive(Default)]
struct Maxima {
    co_change: f64,
    recency: f64,
}

fn scaled(x: f64, max: f64) -> f64 {
    if max > 0.0 { x / max } else { 0.0 }
}

impl Signals<'_> {
    /// Each signal's weighted part of the score.
    fn parts(&self, max: &Maxima) -> [(&'static str, f64); 8] {
        [
            ("changed", weight::CHANGED * self.changed),
            (
                "name_match",
                weight::NAME * self.name + weight::PREFIX * self.prefix,
            ),
            (
                "co_change",
                weight::CO_CHANGE * scaled(self.co_change, max.co_change),
            ),
            (
                "past_failure",
                weight::FAILED_WITH * self.failed_with.ln_1p(),
            ),
            ("name_words", weight::WORDS * self.words),
            ("package", weight::PACKAGE * self.package),
            (
                "past_failure_rate",
                weight::FAILURES * self.failures.ln_1p(),
            ),
            (
                "recent_change",
                weight::RECENCY * scaled(self.recency, max.recency),
            ),
        ]
    }

    fn score(&self, max: &Maxima) -> f64 {
        self.parts(max).iter().map(|p| p.1).sum()
    }

    /// The strongest evidence, and what it says.
    fn reason(&self, max: &Maxima) -> (&'static str, String) {
        let reason = self
            .parts(max)
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|p| p.1 > 0.0)
            .map_or("none", |p| p.0);
        let explanation = match reason {
            "changed" => "the change touches this test itself".to_string(),
            "name_match" => format!("named after `{}`", self.name_of),
            "co_change" => format!(
                "changed together with `{}` before ({:.1} commits' worth, small commits weighing more)",
                self.co_change_of, self.co_change_best
            ),
            "past_failure" => format!(
                "failed {} time(s) before when these files changed",
                self.failed_with
            ),
            "name_words" => format!(
                "its name shares {:.0}% of its words (weighted by rarity) with `{}`",
                self.words * 100.0,
                self.words_of
            ),
            "package" => format!(
                "in the changed code's package ({:.0}% shared)",
                self.package * 100.0
            ),
            "past_failure_rate" => {
                format!("failed in {} of {} reported runs", self.failures, self.runs)
            }
            "recent_change" => "changed recently and often".to_string(),
            _ => "no evidence links it to this change".to_string(),
        };
        (reason, explanation)
    }
}
