//! The quality learner's patterns, and how it ranks tests for a change.

use std::collections::HashMap;

use ensemble_protocol::quality::*;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};

use super::paths;
use super::rank::{self, CandidateSet};
use crate::learning::{
    CountMap, Cx, GCounter, InstanceId, LearnError, Model, Pattern, Patterns, Reply,
};

/// Commits touching more files than this teach file change counts but no co-change: a
/// reformatting or a licence update says nothing about which tests cover which code.
pub const WIDE_COMMIT_FILES: usize = 50;

/// Candidate lists kept per repository.
const SETS_KEPT: usize = 4;

/// Candidates kept per repository, over its lists.
const CANDIDATES_KEPT: usize = 200_000;

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

impl RepoStat {
    /// Commits learned.
    pub(super) fn commit_count(&self) -> u64 {
        self.commits.total()
    }

    /// Whether any test outcome was reported.
    pub(super) fn has_results(&self) -> bool {
        self.results.total() > 0
    }
}

impl FileStat {
    /// (changes, the repository's commit count at the last one).
    pub(super) fn recency_facts(&self) -> (u64, u64) {
        (self.changes.total(), self.last_change)
    }

    /// Each test file changed with this file, with the commits that changed both (each
    /// counting 1/its source files).
    pub(super) fn co_changes(&self) -> impl Iterator<Item = (&str, f64)> {
        self.with_tests
            .iter()
            .map(|(test, n)| (test, n.total() as f64 / 1000.0))
    }
}

impl TestStat {
    /// (failures, runs) reported.
    pub(super) fn outcomes(&self) -> (u64, u64) {
        (self.failures.total(), self.runs.total())
    }

    /// Failures of this test when the file or directory `with` (`f`/`d` + path) changed.
    pub(super) fn failures_with(&self, with: &str) -> u64 {
        self.failed_with.get(with)
    }
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
    /// Repository → its candidate lists read lately (see [`CandidateSet`]), at most
    /// [`SETS_KEPT`].
    sets: HashMap<String, Vec<CandidateSet>>,
    /// Learning steps taken (what the history says of a candidate set is looked up again
    /// after one).
    generation: u64,
    /// Rankings made (when each kept set was last used).
    rankings: u64,
    /// Failing tests reported that the ranking just before had selected at a third.
    caught: u64,
    /// Failing tests reported after a ranking could be made.
    failing: u64,
}

pub(super) fn key(kind: u8, repo: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + repo.len() + 1 + rest.len());
    key_into(&mut k, kind, repo, rest);
    k
}

/// Writes a key into `buf` (cleared first): for lookups in a loop without an allocation each.
pub(super) fn key_into(buf: &mut Vec<u8>, kind: u8, repo: &str, rest: &str) {
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

/// Whether a text passes [`check_text`] (checked before its field's name is written out).
fn fits(value: &str) -> bool {
    value.len() <= MAX_PATH_BYTES && !value.contains('\0')
}

fn check_text(field: &str, value: &str) -> Result<(), LearnError> {
    if !fits(value) {
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
            // A new test file may be the one an id names: read the repository's lists again.
            self.sets.remove(repo);
        }
    }

    fn rebuild(&mut self, patterns: &Patterns<QualityPattern>) {
        self.tests_by_stem.clear();
        self.sets.clear();
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
            let mut set = CandidateSet::new(
                &candidates,
                rank::fingerprint(&candidates),
                self.tests_by_stem.get(&req.repo),
            );
            set.refresh(cx.patterns, &req.repo, self.generation);
            let ranked = rank::rank(&set, cx.patterns, &req.repo, &req.changed_files);
            let k = budget_count(candidates.len(), None);
            let top: Vec<&str> = ranked
                .order
                .iter()
                .take(k)
                .map(|&(_, i)| candidates[i].id.as_str())
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

    /// The kept set read from `candidates`, or a new one (the least used of the repository's
    /// dropped beyond [`SETS_KEPT`]), with what the history says of it up to date.
    fn set_for(
        &mut self,
        patterns: &Patterns<QualityPattern>,
        repo: &str,
        candidates: &[Candidate],
    ) -> &CandidateSet {
        self.rankings += 1;
        let fingerprint = rank::fingerprint(candidates);
        let sets = self.sets.entry(repo.to_string()).or_default();
        let at = match sets.iter().position(|s| s.is(fingerprint, candidates)) {
            Some(at) => at,
            None => {
                if sets.len() >= SETS_KEPT
                    && let Some(lru) = (0..sets.len()).min_by_key(|&i| sets[i].used)
                {
                    sets.swap_remove(lru);
                }
                let kept: usize = sets.iter().map(CandidateSet::len).sum();
                if kept + candidates.len() > CANDIDATES_KEPT {
                    sets.clear();
                }
                sets.push(CandidateSet::new(
                    candidates,
                    fingerprint,
                    self.tests_by_stem.get(repo),
                ));
                sets.len() - 1
            }
        };
        let set = &mut sets[at];
        set.used = self.rankings;
        set.refresh(patterns, repo, self.generation);
        set
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
            if !fits(&c.id) {
                check_text(&format!("candidates[{i}].id"), &c.id)?;
            }
            if let Some(p) = c.path.as_deref().filter(|p| !fits(p)) {
                check_text(&format!("candidates[{i}].path"), p)?;
            }
        }
        let budget = parse_budget(req.budget.as_ref())?;
        let k = budget_count(req.candidates.len(), budget);
        let commits_known = match patterns.get(&key(b'R', &req.repo, "")) {
            Some(QualityPattern::Repo(r)) => r.commits.total(),
            _ => 0,
        };
        let set = self.set_for(patterns, &req.repo, &req.candidates);
        let ranking = rank::rank(set, patterns, &req.repo, &req.changed_files);
        let selected = ranking
            .order
            .iter()
            .take(k)
            .map(|&(_, i)| req.candidates[i].id.clone())
            .collect();
        let limit = req.limit.map_or(ranking.order.len(), |l| l as usize);
        let ranked = ranking
            .order
            .iter()
            .take(limit)
            .enumerate()
            .map(|(at, &(score, i))| {
                let (reason, explanation) = ranking.reason(i);
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
        self.generation += 1;
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
        self.generation += 1;
        self.rebuild(patterns);
    }

    /// Failing tests reported that a third of the candidates, ranked just before, caught.
    fn accuracy(&self) -> Option<f64> {
        (self.failing > 0).then(|| self.caught as f64 / self.failing as f64)
    }
}
