//! The quality learner through its MCP tools, on real Defects4J bugs
//! (`../shared/data/learning/quality`, task Q1 of its README).
//!
//! Per project, on a fresh instance, bugs in the order of their buggy commit: the history up
//! to the buggy revision (its ancestors, oldest first, never the fix or anything after it) goes
//! in through `quality_observe_commits`; the outcomes of earlier bugs whose fix is in that
//! history through `quality_observe_results` (their trigger classes failed, the rest of their
//! universe passed); then `quality_select_tests` ranks the fixed revision's test classes for
//! the fix commit's source-side paths. Reported at a third of the universe, with ties counted
//! pessimistically: (a) share of bugs with a failing class selected, (b) share of failing
//! classes selected, (c) mean fraction of the ranking needed to reach every failing class; and
//! (b) at a 15% budget. The README's no-learning baseline (exact name match, then the count of
//! earlier commits touching a modified class and the test class) is computed on the same
//! history in the same run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};

use super::{call, session};

struct Commit {
    sha: String,
    parents: Vec<String>,
    date: String,
    files: Vec<String>,
}

struct Bug {
    project: String,
    id: u64,
    buggy: String,
    fixed: String,
    modified: Vec<String>,
    triggers: Vec<String>,
    universe: Vec<String>,
    test_dir: String,
}

/// (a) hits, (b) caught, failing, (c) sum, b15 caught, bugs.
#[derive(Default, Clone, Copy)]
struct Tally {
    bugs: u64,
    any: u64,
    caught: u64,
    failing: u64,
    last: f64,
    caught15: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.bugs += o.bugs;
        self.any += o.any;
        self.caught += o.caught;
        self.failing += o.failing;
        self.last += o.last;
        self.caught15 += o.caught15;
    }

    fn row(&self) -> String {
        let b = self.bugs.max(1) as f64;
        let f = self.failing.max(1) as f64;
        format!(
            "{:.3} / {:.3} / {:.3} / {:.3}",
            self.any as f64 / b,
            self.caught as f64 / f,
            self.last / b,
            self.caught15 as f64 / f
        )
    }
}

/// Scores each universe class got, judged with pessimistic ties.
fn judge(universe: &[String], scores: &HashMap<&str, f64>, triggers: &[String]) -> Tally {
    let n = universe.len();
    let k = ((n as f64 / 3.0).round_ties_even() as usize).max(1);
    let k15 = ((n as f64 * 0.15).round_ties_even() as usize).max(1);
    let score = |t: &str| scores.get(t).copied().unwrap_or(f64::NEG_INFINITY);
    // A failing class is placed after every class with an equal or higher score.
    let position = |t: &str| {
        let s = score(t);
        universe.iter().filter(|u| score(u) >= s).count()
    };
    let positions: Vec<usize> = triggers.iter().map(|t| position(t)).collect();
    Tally {
        bugs: 1,
        any: u64::from(positions.iter().any(|p| *p <= k)),
        caught: positions.iter().filter(|p| **p <= k).count() as u64,
        failing: triggers.len() as u64,
        last: positions.iter().copied().max().unwrap_or(n) as f64 / n as f64,
        caught15: positions.iter().filter(|p| **p <= k15).count() as u64,
    }
}

/// The strings of array field `k` of `v`.
fn strings(v: &Value, k: &str) -> Vec<String> {
    v[k].as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn read_commits(path: &Path) -> anyhow::Result<Vec<Commit>> {
    // The files are gzip: read through the system's gzip rather than a decoder crate.
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .map_err(|e| anyhow::anyhow!("gzip -dc {}: {e}", path.display()))?;
    anyhow::ensure!(out.status.success(), "gzip -dc {} failed", path.display());
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let strings = |k: &str| strings(&v, k);
            Ok(Commit {
                sha: v["sha"].as_str().unwrap_or_default().to_string(),
                parents: strings("parents"),
                date: v["date"].as_str().unwrap_or_default().to_string(),
                files: strings("files"),
            })
        })
        .collect()
}

fn read_bugs(path: &Path) -> anyhow::Result<Vec<Bug>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (is ../shared beside the project?)", path.display())
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let strings = |k: &str| strings(&v, k);
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Ok(Bug {
                project: text("project"),
                id: v["bug_id"].as_u64().unwrap_or(0),
                buggy: text("buggy_sha"),
                fixed: text("fixed_sha"),
                modified: strings("modified_classes"),
                triggers: strings("trigger_test_classes"),
                universe: strings("test_universe"),
                test_dir: text("test_dir"),
            })
        })
        .collect()
}

/// A path's dotted class name (`src/main/java/org/x/Foo.java` → `org.x.Foo`), if it is Java.
fn class_of(path: &str) -> Option<String> {
    let stem = path.strip_suffix(".java")?;
    let parts: Vec<&str> = stem.split('/').collect();
    let start = parts
        .iter()
        .position(|p| ["org", "com", "net", "io", "edu", "junit", "javax"].contains(p))?;
    Some(parts[start..].join("."))
}

fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn core(test: &str) -> &str {
    for s in ["TestCase", "Tests", "Test"] {
        if let Some(b) = test.strip_suffix(s)
            && !b.is_empty()
        {
            return b;
        }
    }
    test.strip_prefix("Test")
        .filter(|b| !b.is_empty())
        .unwrap_or(test)
}

/// Runs the evaluation over every project of `dir`.
pub async fn run(dir: &Path, only: Option<&str>, misses: bool) -> anyhow::Result<()> {
    let bugs = read_bugs(&dir.join("bugs.jsonl"))?;
    let mut projects: BTreeMap<&str, Vec<&Bug>> = BTreeMap::new();
    for b in &bugs {
        if only.is_none_or(|o| o == b.project) {
            projects.entry(b.project.as_str()).or_default().push(b);
        }
    }
    println!(
        "(a) bugs caught / (b) failing classes caught at 1/3 / (c) share of the ranking for \
         all / (b) at 15%\n"
    );
    println!("| project | bugs | learner | baseline (name, co-change) |\n|---|---|---|---|");
    let (mut all, mut all_base) = (Tally::default(), Tally::default());
    let mut select_ms: Vec<f64> = Vec::new();
    let mut ingest = (0usize, std::time::Duration::ZERO);
    for (project, mut bugs) in projects {
        let commits = read_commits(&dir.join("commits").join(format!("{project}.jsonl.gz")))?;
        let index: HashMap<&str, usize> = commits
            .iter()
            .enumerate()
            .map(|(i, c)| (c.sha.as_str(), i))
            .collect();
        let ancestors = |sha: &str| -> HashSet<usize> {
            let mut seen = HashSet::new();
            let mut stack: Vec<usize> = index.get(sha).copied().into_iter().collect();
            while let Some(i) = stack.pop() {
                if seen.insert(i) {
                    stack.extend(
                        commits[i]
                            .parents
                            .iter()
                            .filter_map(|p| index.get(p.as_str())),
                    );
                }
            }
            seen
        };
        bugs.sort_by_key(|b| index.get(b.buggy.as_str()).copied().unwrap_or(usize::MAX));
        let s = session().await?;
        let (mut fed, mut tally, mut base) = (HashSet::new(), Tally::default(), Tally::default());
        let mut pending: Vec<&Bug> = Vec::new();
        for bug in bugs {
            if !index.contains_key(bug.fixed.as_str()) {
                eprintln!(
                    "{project}-{}: fix commit not in the history; skipped",
                    bug.id
                );
                continue;
            }
            let history = ancestors(&bug.buggy);
            let mut new: Vec<usize> = history.difference(&fed).copied().collect();
            new.sort_unstable();
            for chunk in new.chunks(10_000) {
                let batch: Vec<Value> = chunk
                    .iter()
                    .map(|&i| {
                        let c = &commits[i];
                        json!({"sha": c.sha, "parents": c.parents, "date": c.date, "files": c.files})
                    })
                    .collect();
                let started = std::time::Instant::now();
                call(
                    &s.client,
                    "quality_observe_commits",
                    json!({"repo": project, "commits": batch}),
                )
                .await?;
                ingest.0 += chunk.len();
                ingest.1 += started.elapsed();
            }
            fed.extend(new);
            // Outcomes of earlier bugs whose fix is now in the history.
            let (known, later): (Vec<&Bug>, Vec<&Bug>) = pending
                .drain(..)
                .partition(|b| index.get(b.fixed.as_str()).is_some_and(|i| fed.contains(i)));
            pending = later;
            for b in known {
                let changed = source_side(&commits, &index, b);
                let passed: Vec<&String> = b
                    .universe
                    .iter()
                    .filter(|t| !b.triggers.contains(t))
                    .collect();
                call(
                    &s.client,
                    "quality_observe_results",
                    json!({"repo": project, "sha": b.fixed, "changed_files": changed,
                           "failed_tests": b.triggers, "passed_tests": passed}),
                )
                .await?;
            }
            let changed = source_side(&commits, &index, bug);
            let candidates: Vec<Value> = bug.universe.iter().map(|t| json!({"id": t})).collect();
            let started = std::time::Instant::now();
            let answer = call(
                &s.client,
                "quality_select_tests",
                json!({"repo": project, "changed_files": changed, "candidates": candidates}),
            )
            .await?;
            select_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let mut scores: HashMap<&str, f64> = HashMap::new();
            let mut reasons: HashMap<&str, &str> = HashMap::new();
            for r in answer["ranked"].as_array().into_iter().flatten() {
                if let (Some(id), Some(score)) = (r["id"].as_str(), r["score"].as_f64())
                    && let Some(u) = bug.universe.iter().find(|u| u.as_str() == id)
                {
                    scores.insert(u.as_str(), score);
                    reasons.insert(u.as_str(), r["explanation"].as_str().unwrap_or(""));
                }
            }
            let judged = judge(&bug.universe, &scores, &bug.triggers);
            if misses && judged.caught15 < judged.failing {
                print_misses(bug, &changed, &scores, &reasons);
            }
            tally.add(&judged);
            base.add(&judge(
                &bug.universe,
                &baseline(&commits, &history, bug),
                &bug.triggers,
            ));
            pending.push(bug);
        }
        println!(
            "| {project} | {} | {} | {} |",
            tally.bugs,
            tally.row(),
            base.row()
        );
        all.add(&tally);
        all_base.add(&base);
    }
    println!(
        "| **pooled** | {} | **{}** | {} |",
        all.bugs,
        all.row(),
        all_base.row()
    );
    select_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        select_ms
            .get(((select_ms.len() as f64 - 1.0) * q) as usize)
            .copied()
    };
    println!(
        "\nquality_select_tests over MCP (in process): p50 {:.2} ms, p99 {:.2} ms over {} calls; \
         history ingestion {:.0} commits/s ({} commits)",
        pct(0.5).unwrap_or(0.0),
        pct(0.99).unwrap_or(0.0),
        select_ms.len(),
        ingest.0 as f64 / ingest.1.as_secs_f64().max(1e-9),
        ingest.0
    );
    Ok(())
}

/// A bug's failing classes outside the 15% budget: where each is ranked, why, and what
/// outranks it (`--misses`).
fn print_misses(
    bug: &Bug,
    changed: &[String],
    scores: &HashMap<&str, f64>,
    reasons: &HashMap<&str, &str>,
) {
    let n = bug.universe.len();
    let k15 = ((n as f64 * 0.15).round_ties_even() as usize).max(1);
    let score = |t: &str| scores.get(t).copied().unwrap_or(f64::NEG_INFINITY);
    let mut ranked: Vec<&String> = bug.universe.iter().collect();
    ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
    println!(
        "\n{}-{} (n {n}, 15% = {k15}) changed {:?}",
        bug.project, bug.id, changed
    );
    for t in &bug.triggers {
        let position = bug.universe.iter().filter(|u| score(u) >= score(t)).count();
        if position > k15 {
            println!(
                "  missed {t} at {position} ({:.3}): {}",
                score(t),
                reasons.get(t.as_str()).copied().unwrap_or("")
            );
        }
    }
    for u in ranked.iter().take(3) {
        println!(
            "  top {u} ({:.3}): {}",
            score(u),
            reasons.get(u.as_str()).copied().unwrap_or("")
        );
    }
}

/// The fix commit's paths outside the test directory.
fn source_side(commits: &[Commit], index: &HashMap<&str, usize>, bug: &Bug) -> Vec<String> {
    let prefix = format!("{}/", bug.test_dir.trim_end_matches('/'));
    index
        .get(bug.fixed.as_str())
        .map(|&i| {
            commits[i]
                .files
                .iter()
                .filter(|f| !f.starts_with(&prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The README's no-learning baseline: exact name match first, then the number of commits of
/// the history that touch a modified class and the test class.
fn baseline<'b>(
    commits: &[Commit],
    history: &HashSet<usize>,
    bug: &'b Bug,
) -> HashMap<&'b str, f64> {
    let modified: HashSet<&str> = bug.modified.iter().map(String::as_str).collect();
    let universe: HashSet<&str> = bug.universe.iter().map(String::as_str).collect();
    let mut co: HashMap<String, f64> = HashMap::new();
    for &i in history {
        let classes: Vec<String> = commits[i]
            .files
            .iter()
            .filter_map(|f| class_of(f))
            .collect();
        if !classes.iter().any(|c| modified.contains(c.as_str())) {
            continue;
        }
        for c in classes {
            if universe.contains(c.as_str()) {
                *co.entry(c).or_default() += 1.0;
            }
        }
    }
    let names: HashSet<&str> = bug.modified.iter().map(|m| simple(m)).collect();
    bug.universe
        .iter()
        .map(|t| {
            let name = f64::from(u8::from(names.contains(core(simple(t)))));
            (t.as_str(), name * 1e6 + co.get(t).copied().unwrap_or(0.0))
        })
        .collect()
}
