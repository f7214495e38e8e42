//! The quality learner's patterns, and how it ranks tests for a change.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use ensemble_protocol::quality::*;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};

use super::paths;
use crate::learning::{
    CountMap, Cx, GCounter, InstanceId, LearnError, Model, Pattern, Patterns, Reply,
};

/// Commits touching more files than this teach file change counts but no co-change: a
/// reformatting or a licence update says nothing about which tests cover which code.
pub const WIDE_COMMIT_FILES: usize = 50;

/// What the quality learner stores, per repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QualityPattern {
    /// The repository's counts (`R` key).
    Repo(RepoStat),
    /// A commit already learned (`S` key), so a batch sent twice counts once.
    Seen(u64),
    /// A file's changes, and the tests changed with it (`F` key).
    File(FileStat),
    /// A test's runs and failures, and the files changed when it failed (`X` key).
    Test(TestStat),
}

/// A repository's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoStat {
    commits: GCounter,
    results: GCounter,
    last_seen: u64,
}

/// How often a file changed, and with which tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileStat {
    changes: GCounter,
    /// Test path → commits that changed both, each counting 1000/(its source files).
    with_tests: CountMap,
    /// The repository's commit count when it last changed (recency).
    last_change: u64,
    last_seen: u64,
}

/// A test's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestStat {
    runs: GCounter,
    failures: GCounter,
    /// Changed path (`f` + path) or directory (`d` + dir) → failures of this test with it.
    failed_with: CountMap,
    last_seen: u64,
}

impl Pattern for QualityPattern {
    fn heap_bytes(&self) -> usize {
        match self {
            QualityPattern::Repo(r) => r.commits.heap_bytes() + r.results.heap_bytes(),
            QualityPattern::Seen(_) => 0,
            QualityPattern::File(f) => f.changes.heap_bytes() + f.with_tests.heap_bytes(),
            QualityPattern::Test(t) => {
                t.runs.heap_bytes() + t.failures.heap_bytes() + t.failed_with.heap_bytes()
            }
        }
    }

    /// A file is worth its changes, a test its runs; a repository's counts are kept; a
    /// commit's "already learned" mark goes first.
    fn worth(&self) -> u64 {
        match self {
            QualityPattern::Repo(_) => u64::MAX,
            QualityPattern::Seen(_) => 0,
            // Both in thousandths of a commit, as co-changes are counted.
            QualityPattern::File(f) => f
                .changes
                .total()
                .saturating_mul(1000)
                .saturating_add(f.with_tests.total()),
            QualityPattern::Test(t) => t.runs.total() + 4 * t.failures.total(),
        }
    }

    fn last_seen(&self) -> u64 {
        match self {
            QualityPattern::Repo(r) => r.last_seen,
            QualityPattern::Seen(at) => *at,
            QualityPattern::File(f) => f.last_seen,
            QualityPattern::Test(t) => t.last_seen,
        }
    }

    fn merge(&mut self, other: &Self) -> bool {
        match (self, other) {
            (QualityPattern::Repo(a), QualityPattern::Repo(b)) => {
                let mut changed = a.commits.merge(&b.commits);
                changed |= a.results.merge(&b.results);
                changed | max_into(&mut a.last_seen, b.last_seen)
            }
            (QualityPattern::Seen(a), QualityPattern::Seen(b)) => max_into(a, *b),
            (QualityPattern::File(a), QualityPattern::File(b)) => {
                let mut changed = a.changes.merge(&b.changes);
                changed |= a.with_tests.merge(&b.with_tests);
                changed |= max_into(&mut a.last_change, b.last_change);
                changed | max_into(&mut a.last_seen, b.last_seen)
            }
            (QualityPattern::Test(a), QualityPattern::Test(b)) => {
                let mut changed = a.runs.merge(&b.runs);
                changed |= a.failures.merge(&b.failures);
                changed |= a.failed_with.merge(&b.failed_with);
                changed | max_into(&mut a.last_seen, b.last_seen)
            }
            // A key names one kind: two kinds under one key cannot come from this learner.
            _ => false,
        }
    }
}

fn max_into(a: &mut u64, b: u64) -> bool {
    if b > *a {
        *a = b;
        true
    } else {
        false
    }
}

/// What the quality learner learns from.
#[derive(Debug, Clone)]
pub enum QualityObservation {
    /// A batch of a repository's history.
    Commits(ObserveCommitsRequest),
    /// Test outcomes of one change.
    Results(ObserveResultsRequest),
}

/// The quality learner's own requests.
pub enum QualityMsg {
    /// Rank the tests for a change.
    Select(
        SelectTestsRequest,
        CancellationToken,
        Reply<SelectTestsResponse>,
    ),
}

/// The quality learner: its derived index of test files by name.
#[derive(Debug, Default)]
pub struct QualityModel {
    /// Repository → test file stem → the test files learned with that stem.
    tests_by_stem: HashMap<String, HashMap<String, Vec<String>>>,
    /// Repository → candidates given by id alone, parsed (see [`Parsed`]).
    parsed: HashMap<String, FxHashMap<String, Parsed>>,
    /// Failing tests reported that the ranking just before had selected at a third.
    caught: u64,
    /// Failing tests reported after a ranking could be made.
    failing: u64,
}

fn key(kind: u8, repo: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + repo.len() + 1 + rest.len());
    key_into(&mut k, kind, repo, rest);
    k
}

/// Writes a key into `buf` (cleared first): for lookups in a loop without an allocation each.
fn key_into(buf: &mut Vec<u8>, kind: u8, repo: &str, rest: &str) {
    buf.clear();
    buf.push(kind);
    buf.push(0);
    buf.extend_from_slice(repo.as_bytes());
    buf.push(0);
    buf.extend_from_slice(rest.as_bytes());
}

/// A key's repository and rest, for the kinds that have both.
fn split_key(k: &[u8]) -> Option<(u8, &str, &str)> {
    let (&kind, rest) = k.split_first()?;
    let rest = rest.strip_prefix(&[0u8])?;
    let at = rest.iter().position(|&b| b == 0)?;
    let repo = std::str::from_utf8(&rest[..at]).ok()?;
    let tail = std::str::from_utf8(&rest[at + 1..]).ok()?;
    Some((kind, repo, tail))
}

/// Counts one change of `file` (the repository's `ordinal`-th commit), and its co-change with
/// each of `tests` at `share` thousandths.
fn record_change(
    cx: &mut Cx<'_, QualityPattern>,
    repo: &str,
    file: &str,
    ordinal: u64,
    tests: &[&str],
    share: u64,
) {
    let (instance, clock) = (cx.instance, cx.clock);
    cx.patterns.update(
        &key(b'F', repo, file),
        || QualityPattern::File(FileStat::default()),
        |p| {
            if let QualityPattern::File(s) = p {
                s.changes.add(instance, 1);
                for &t in tests {
                    s.with_tests.add(t, instance, share);
                }
                s.last_change = ordinal;
                s.last_seen = clock;
            }
        },
    );
}

fn check_name(field: &str, value: &str) -> Result<(), LearnError> {
    if value.trim().is_empty() {
        return Err(LearnError::BadInput(format!(
            "`{field}` is empty: give the repository a stable name"
        )));
    }
    check_text(field, value)
}

fn check_text(field: &str, value: &str) -> Result<(), LearnError> {
    if value.len() > MAX_PATH_BYTES || value.contains('\0') {
        return Err(LearnError::BadInput(format!(
            "`{field}` must be at most {MAX_PATH_BYTES} bytes without NUL characters (got {} bytes)",
            value.len()
        )));
    }
    Ok(())
}

fn check_paths(field: &str, values: &[String]) -> Result<(), LearnError> {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            return Err(LearnError::BadInput(format!("`{field}[{i}]` is empty")));
        }
        check_text(&format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

impl QualityModel {
    fn index_test(&mut self, repo: &str, path: &str) {
        let by_stem = self.tests_by_stem.entry(repo.to_string()).or_default();
        let list = by_stem.entry(paths::stem(path).to_string()).or_default();
        if !list.iter().any(|p| p == path) {
            list.push(path.to_string());
            // A new test file may be the one an id names: parse the repository's ids again.
            self.parsed.remove(repo);
        }
    }

    fn rebuild(&mut self, patterns: &Patterns<QualityPattern>) {
        self.tests_by_stem.clear();
        self.parsed.clear();
        for (k, p) in patterns.iter() {
            if let (Some((b'F', repo, path)), QualityPattern::File(_)) = (split_key(k), p)
                && paths::is_test_path(path)
            {
                self.index_test(repo, path);
            }
        }
    }

    /// Learns a batch of commits: (learned, detail).
    fn learn_commits(
        &mut self,
        cx: &mut Cx<'_, QualityPattern>,
        req: &ObserveCommitsRequest,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        check_name("repo", &req.repo)?;
        if req.commits.len() > MAX_COMMITS {
            return Err(LearnError::BadInput(format!(
                "{} commits in one call; send at most {MAX_COMMITS} per call, oldest first",
                req.commits.len()
            )));
        }
        // Check the whole batch before learning any of it.
        for (i, c) in req.commits.iter().enumerate() {
            if c.sha.trim().is_empty() {
                return Err(LearnError::BadInput(format!(
                    "`commits[{i}].sha` is empty: every commit needs its id"
                )));
            }
            check_text(&format!("commits[{i}].sha"), &c.sha)?;
            check_paths(&format!("commits[{i}].files"), &c.files)?;
        }
        let repo = req.repo.as_str();
        let repo_key = key(b'R', repo, "");
        let mut ordinal = match cx.patterns.get(&repo_key) {
            Some(QualityPattern::Repo(r)) => r.commits.total(),
            _ => 0,
        };
        let (instance, clock) = (cx.instance, cx.clock);
        let mut detail = ObserveDetail::default();
        let mut learned = 0u64;
        let (mut tests, mut code): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for c in &req.commits {
            let seen = key(b'S', repo, &c.sha);
            if cx.patterns.get(&seen).is_some() {
                detail.repeated_commits += 1;
                continue;
            }
            cx.patterns
                .update(&seen, || QualityPattern::Seen(clock), |_| ());
            ordinal += 1;
            learned += 1;
            tests.clear();
            code.clear();
            for f in &c.files {
                if paths::is_test_path(f) {
                    tests.push(f);
                } else {
                    code.push(f);
                }
            }
            tests.sort_unstable();
            tests.dedup();
            code.sort_unstable();
            code.dedup();
            let wide = c.files.len() > WIDE_COMMIT_FILES;
            if wide {
                detail.wide_commits += 1;
            }
            // A co-change in a small commit says more than one in a large one: each pair
            // counts 1/size (in thousandths), size being the commit's source files.
            let size = c.files.iter().filter(|f| paths::is_code(f)).count().max(1);
            let share = (1000 / size) as u64;
            for &t in &tests {
                record_change(cx, repo, t, ordinal, &[], share);
                self.index_test(repo, t);
            }
            let with: &[&str] = if !wide { &tests } else { &[] };
            for &f in &code {
                record_change(cx, repo, f, ordinal, with, share);
            }
        }
        cx.patterns.update(
            &repo_key,
            || QualityPattern::Repo(RepoStat::default()),
            |p| {
                if let QualityPattern::Repo(r) = p {
                    r.commits.add(instance, learned);
                    r.last_seen = clock;
                }
            },
        );
        Ok((learned, detail))
    }

    /// Learns one change's test outcomes.
    fn learn_results(
        &mut self,
        cx: &mut Cx<'_, QualityPattern>,
        req: &ObserveResultsRequest,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        check_name("repo", &req.repo)?;
        check_paths("changed_files", &req.changed_files)?;
        check_paths("failed_tests", &req.failed_tests)?;
        let passed = req.passed_tests.as_deref().unwrap_or_default();
        check_paths("passed_tests", passed)?;
        if let Some(t) = req.failed_tests.iter().find(|t| passed.contains(t)) {
            return Err(LearnError::BadInput(format!(
                "`{t}` is both in failed_tests and passed_tests: a test has one outcome per change"
            )));
        }
        // Judge the ranking this outcome answers before learning it (the running accuracy).
        if !req.failed_tests.is_empty() && !passed.is_empty() {
            let candidates: Vec<Candidate> = req
                .failed_tests
                .iter()
                .chain(passed)
                .map(|id| Candidate {
                    id: id.clone(),
                    path: None,
                })
                .collect();
            self.prepare(&req.repo, &candidates);
            let ranked = self.rank(cx.patterns, &req.repo, &req.changed_files, &candidates);
            let k = budget_count(candidates.len(), None);
            let top: Vec<&str> = ranked
                .iter()
                .take(k)
                .map(|(_, i, _)| candidates[*i].id.as_str())
                .collect();
            self.failing += req.failed_tests.len() as u64;
            self.caught += req
                .failed_tests
                .iter()
                .filter(|t| top.contains(&t.as_str()))
                .count() as u64;
        }
        let repo = req.repo.as_str();
        let (instance, clock) = (cx.instance, cx.clock);
        let mut with: Vec<String> = Vec::new();
        for f in &req.changed_files {
            with.push(format!("f{f}"));
            with.push(format!("d{}", paths::dir(f)));
        }
        with.sort_unstable();
        with.dedup();
        for t in &req.failed_tests {
            cx.patterns.update(
                &key(b'X', repo, t),
                || QualityPattern::Test(TestStat::default()),
                |p| {
                    if let QualityPattern::Test(s) = p {
                        s.runs.add(instance, 1);
                        s.failures.add(instance, 1);
                        for w in &with {
                            s.failed_with.add(w, instance, 1);
                        }
                        s.last_seen = clock;
                    }
                },
            );
        }
        for t in passed {
            cx.patterns.update(
                &key(b'X', repo, t),
                || QualityPattern::Test(TestStat::default()),
                |p| {
                    if let QualityPattern::Test(s) = p {
                        s.runs.add(instance, 1);
                        s.last_seen = clock;
                    }
                },
            );
        }
        cx.patterns.update(
            &key(b'R', repo, ""),
            || QualityPattern::Repo(RepoStat::default()),
            |p| {
                if let QualityPattern::Repo(r) = p {
                    r.results.add(instance, 1);
                    r.last_seen = clock;
                }
            },
        );
        Ok((1, ObserveDetail::default()))
    }

    /// Parses the candidates given by id alone that are not parsed yet.
    fn prepare(&mut self, repo: &str, candidates: &[Candidate]) {
        let tests = self.tests_by_stem.get(repo);
        let cache = self.parsed.entry(repo.to_string()).or_default();
        if cache.len() + candidates.len() > PARSED_KEPT {
            cache.clear();
        }
        for c in candidates.iter().filter(|c| c.path.is_none()) {
            if !cache.contains_key(&c.id) {
                cache.insert(c.id.clone(), Parsed::of(c, tests));
            }
        }
    }

    /// Ranks `candidates` for a change, best first: each candidate's evidence and order in
    /// the request, scored.
    pub(super) fn rank<'a>(
        &'a self,
        patterns: &'a Patterns<QualityPattern>,
        repo: &str,
        changed: &'a [String],
        candidates: &'a [Candidate],
    ) -> Vec<(f64, usize, Signals<'a>)> {
        let evidence = Evidence::gather(patterns, repo, changed);
        let tests = self.tests_by_stem.get(repo);
        let cache = self.parsed.get(repo);
        // Kept for candidates given by id alone; parsed now for those with a path of their own
        // (and any not prepared).
        let found: Vec<Result<&Parsed, Parsed>> = candidates
            .iter()
            .map(|c| {
                c.path
                    .is_none()
                    .then(|| cache.and_then(|m| m.get(&c.id)))
                    .flatten()
                    .ok_or_else(|| Parsed::of(c, tests))
            })
            .collect();
        let parts: Vec<&Parsed> = found
            .iter()
            .map(|f| match f {
                Ok(kept) => *kept,
                Err(fresh) => fresh,
            })
            .collect();
        let idf = WordIdf::over(&parts);
        let mut key_buf = Vec::new();
        let signals: Vec<Signals<'_>> = parts
            .iter()
            .zip(candidates)
            .map(|(p, c)| evidence.signals(patterns, repo, c, p, &idf, &mut key_buf))
            .collect();
        let max = signals.iter().fold(Maxima::default(), |m, s| Maxima {
            co_change: m.co_change.max(s.co_change),
            recency: m.recency.max(s.recency),
        });
        let mut scored: Vec<(f64, usize, Signals<'_>)> = signals
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s.score(&max), i, s))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored
    }

    fn select(
        &mut self,
        patterns: &Patterns<QualityPattern>,
        req: SelectTestsRequest,
    ) -> Result<SelectTestsResponse, LearnError> {
        check_name("repo", &req.repo)?;
        check_paths("changed_files", &req.changed_files)?;
        if req.candidates.is_empty() {
            return Err(LearnError::BadInput(
                "`candidates` is empty: list the tests to choose from ({id, path?} each)".into(),
            ));
        }
        if req.candidates.len() > MAX_CANDIDATES {
            return Err(LearnError::BadInput(format!(
                "{} candidates; at most {MAX_CANDIDATES} per call",
                req.candidates.len()
            )));
        }
        for (i, c) in req.candidates.iter().enumerate() {
            if c.id.is_empty() {
                return Err(LearnError::BadInput(format!(
                    "`candidates[{i}].id` is empty"
                )));
            }
            check_text(&format!("candidates[{i}].id"), &c.id)?;
            if let Some(p) = &c.path {
                check_text(&format!("candidates[{i}].path"), p)?;
            }
        }
        let budget = parse_budget(req.budget.as_ref())?;
        let k = budget_count(req.candidates.len(), budget);
        let commits_known = match patterns.get(&key(b'R', &req.repo, "")) {
            Some(QualityPattern::Repo(r)) => r.commits.total(),
            _ => 0,
        };
        self.prepare(&req.repo, &req.candidates);
        let ranked = self.rank(patterns, &req.repo, &req.changed_files, &req.candidates);
        let selected = ranked
            .iter()
            .take(k)
            .map(|(_, i, _)| req.candidates[*i].id.clone())
            .collect();
        let limit = req.limit.map_or(ranked.len(), |l| l as usize);
        let max = Maxima::of(&ranked);
        let ranked = ranked
            .into_iter()
            .take(limit)
            .enumerate()
            .map(|(at, (score, i, s))| {
                let (reason, explanation) = s.reason(&max);
                RankedTest {
                    id: req.candidates[i].id.clone(),
                    score,
                    selected: at < k,
                    reason: reason.to_string(),
                    explanation,
                }
            })
            .collect();
        Ok(SelectTestsResponse {
            ranked,
            selected,
            budget: k as u64,
            commits_known,
        })
    }
}

/// A budget as given: a fraction of the candidates or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Budget {
    Fraction(f64),
    Count(u64),
}

fn parse_budget(b: Option<&serde_json::Number>) -> Result<Option<Budget>, LearnError> {
    let Some(b) = b else { return Ok(None) };
    if let Some(n) = b.as_u64() {
        if n == 0 {
            return Err(LearnError::BadInput(
                "`budget` is 0: give a count of at least 1 or a fraction in (0, 1]".into(),
            ));
        }
        return Ok(Some(Budget::Count(n)));
    }
    match b.as_f64() {
        Some(f) if f > 0.0 && f <= 1.0 => Ok(Some(Budget::Fraction(f))),
        _ => Err(LearnError::BadInput(format!(
            "`budget` {b} is neither a count (a whole number ≥ 1) nor a fraction in (0, 1]"
        ))),
    }
}

/// How many of `n` candidates a budget selects: a third by default, at least one.
pub(super) fn budget_count(n: usize, budget: Option<Budget>) -> usize {
    let k = match budget {
        None => (n as f64 / 3.0).round_ties_even() as usize,
        Some(Budget::Fraction(f)) => (n as f64 * f).round_ties_even() as usize,
        Some(Budget::Count(c)) => usize::try_from(c).unwrap_or(usize::MAX),
    };
    k.clamp(1, n.max(1))
}

/// What a candidate's id and file say by themselves. Kept between rankings for candidates
/// given by id alone (a repository's test ids recur in every call), until the history names a
/// new test file.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    path: Option<String>,
    unit: String,
    words: Vec<String>,
    package: Vec<String>,
}

/// Parsed candidates kept per repository, at most this many.
const PARSED_KEPT: usize = 200_000;

impl Parsed {
    /// Reads a candidate; its file is its `path`, or the test file of the history (`tests`:
    /// by stem) its id names.
    fn of(c: &Candidate, tests: Option<&HashMap<String, Vec<String>>>) -> Self {
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
        Self {
            path: path.map(String::from),
            unit: unit.to_string(),
            words: paths::words(unit),
            package: path
                .map_or(id_package, paths::package)
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

/// How rare each word of the candidates' names is among them.
struct WordIdf<'a> {
    df: FxHashMap<&'a str, u32>,
    n: f64,
}

impl<'a> WordIdf<'a> {
    fn over(parts: &[&'a Parsed]) -> Self {
        let mut df: FxHashMap<&'a str, u32> = FxHashMap::default();
        let mut seen: Vec<&str> = Vec::new();
        for p in parts {
            seen.clear();
            for w in &p.words {
                if !seen.contains(&w.as_str()) {
                    seen.push(w);
                    *df.entry(w.as_str()).or_default() += 1;
                }
            }
        }
        Self {
            df,
            n: parts.len() as f64,
        }
    }

    fn idf(&self, w: &str) -> f64 {
        let df = f64::from(self.df.get(w).copied().unwrap_or(0));
        ((self.n + 1.0) / (df + 0.5)).ln().max(0.0)
    }
}

/// A changed file, as the ranking reads it.
struct Changed<'a> {
    path: &'a str,
    unit: &'a str,
    words: Vec<String>,
    package: Vec<&'a str>,
    /// Its key among a test's past failures.
    failed_with: String,
}

/// What the history says about a change, gathered once per ranking.
struct Evidence<'a> {
    changed: Vec<Changed<'a>>,
    /// Test path → (co-changes with any changed file, the most with one, that file).
    co_change: FxHashMap<&'a str, (f64, f64, &'a str)>,
    repo_commits: u64,
    /// Whether any test outcome was reported for the repository.
    results: bool,
}

impl<'a> Evidence<'a> {
    fn gather(patterns: &'a Patterns<QualityPattern>, repo: &str, changed: &'a [String]) -> Self {
        // Documentation and data files say little about tests when code changed too.
        let any_code = changed.iter().any(|p| paths::is_code(p));
        let mut co_change: FxHashMap<&'a str, (f64, f64, &'a str)> = FxHashMap::default();
        let changed = changed
            .iter()
            .filter(|p| !any_code || paths::is_code(p))
            .map(|path| {
                if let Some(QualityPattern::File(f)) = patterns.get(&key(b'F', repo, path)) {
                    for (test, n) in f.with_tests.iter() {
                        let both = n.total() as f64 / 1000.0;
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
                    words: paths::words(unit),
                    package: paths::package(path),
                    failed_with: format!("f{path}"),
                }
            })
            .collect();
        let (repo_commits, results) = match patterns.get(&key(b'R', repo, "")) {
            Some(QualityPattern::Repo(r)) => (r.commits.total(), r.results.total() > 0),
            _ => (0, false),
        };
        Self {
            changed,
            co_change,
            repo_commits,
            results,
        }
    }

    /// One candidate's raw evidence (co-change and recency not yet scaled to the others').
    fn signals(
        &self,
        patterns: &'a Patterns<QualityPattern>,
        repo: &str,
        c: &Candidate,
        parts: &Parsed,
        idf: &WordIdf,
        key_buf: &mut Vec<u8>,
    ) -> Signals<'a> {
        let mut s = Signals::default();
        let record = if self.results {
            match patterns.get(&key(b'X', repo, &c.id)) {
                Some(QualityPattern::Test(t)) => Some(t),
                _ => None,
            }
        } else {
            None
        };
        for ch in &self.changed {
            if parts.path.as_deref() == Some(ch.path) {
                s.changed = 1.0;
            }
            // Name: the test is named after the changed unit, or one name starts the other.
            let unit = parts.unit.as_str();
            if unit == ch.unit {
                s.name = 1.0;
                s.name_of = ch.path;
            }
            if !ch.unit.is_empty()
                && !unit.is_empty()
                && (unit.starts_with(ch.unit) || ch.unit.starts_with(unit))
            {
                s.prefix = 1.0;
                if s.name_of.is_empty() {
                    s.name_of = ch.path;
                }
            }
            // Words: the IDF-weighted share of the test's words found in the changed name.
            let overlap = word_overlap(&parts.words, &ch.words, idf);
            if overlap > s.words {
                s.words = overlap;
                s.words_of = ch.path;
            }
            // Package: how much of the longer package the two share.
            let depth = paths::common_prefix(&ch.package, &parts.package);
            let longest = ch.package.len().max(parts.package.len()).max(1);
            s.package = s.package.max(depth as f64 / longest as f64);
            // Earlier failures of this test when this file changed.
            if let Some(r) = record {
                s.failed_with += r.failed_with.get(&ch.failed_with) as f64;
            }
        }
        if let Some(path) = parts.path.as_deref() {
            // Co-change, each commit weighed by 1/its size.
            if let Some(&(sum, best, of)) = self.co_change.get(path) {
                s.co_change = sum;
                s.co_change_best = best;
                s.co_change_of = of;
            }
            key_into(key_buf, b'F', repo, path);
            if let Some(QualityPattern::File(f)) = patterns.get(key_buf)
                && self.repo_commits > 0
            {
                let age = self.repo_commits.saturating_sub(f.last_change) as f64;
                s.recency = (f.changes.total() as f64).ln_1p() * 0.5f64.powf(age / 300.0);
            }
        }
        if let Some(r) = record {
            s.failures = r.failures.total() as f64;
            s.runs = r.runs.total() as f64;
        }
        s
    }
}

/// IDF-weighted share of the test's words that the changed unit's name has.
fn word_overlap(test: &[String], changed: &[String], idf: &WordIdf) -> f64 {
    let total: f64 = test.iter().map(|w| idf.idf(w)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let shared: f64 = test
        .iter()
        .filter(|w| changed.contains(w))
        .map(|w| idf.idf(w))
        .sum();
    shared / total
}

/// The evidence for one candidate.
#[derive(Default)]
pub(super) struct Signals<'a> {
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

impl Maxima {
    fn of(ranked: &[(f64, usize, Signals<'_>)]) -> Self {
        ranked.iter().fold(Self::default(), |m, (_, _, s)| Self {
            co_change: m.co_change.max(s.co_change),
            recency: m.recency.max(s.recency),
        })
    }
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

impl Model for QualityModel {
    const NAME: &'static str = "quality";
    type Pattern = QualityPattern;
    type Observation = QualityObservation;
    type Msg = QualityMsg;
    type Detail = ObserveDetail;

    fn open(patterns: &Patterns<QualityPattern>, _instance: InstanceId) -> Self {
        let mut m = Self::default();
        m.rebuild(patterns);
        m
    }

    fn observe(
        &mut self,
        cx: &mut Cx<'_, QualityPattern>,
        obs: QualityObservation,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        match obs {
            QualityObservation::Commits(req) => self.learn_commits(cx, &req),
            QualityObservation::Results(req) => self.learn_results(cx, &req),
        }
    }

    fn handle(&mut self, cx: &mut Cx<'_, QualityPattern>, msg: QualityMsg) {
        match msg {
            QualityMsg::Select(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                let _ = reply.send(self.select(cx.patterns, req));
            }
        }
    }

    fn refresh(&mut self, patterns: &Patterns<QualityPattern>) {
        self.rebuild(patterns);
    }

    /// Failing tests reported that a third of the candidates, ranked just before, caught.
    fn accuracy(&self) -> Option<f64> {
        (self.failing > 0).then(|| self.caught as f64 / self.failing as f64)
    }
}
