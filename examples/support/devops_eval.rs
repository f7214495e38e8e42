//! The devops learner through its MCP tools, on just-in-time defect data
//! (`../shared/data/learning/devops/jitreliability`, task D1 of its README).
//!
//! Time-ordered per project: the earliest 60% of its changes are observed with
//! `devops_observe` and their outcomes reported with `devops_report_outcome` (known at the
//! change's time: the static protocol fits on all of them); the next 20% are observed and
//! scored with `devops_predict` one by one, in time order; the newest 20% are skipped (their
//! labels are right-censored). Every project goes through one instance, so a project's
//! predictions also rest on the other projects' outcomes (the cross-project prior).
//! `--online` also reports each test change's outcome once it is six months old, before the
//! later ones are scored (labels arrive late, as in a real pipeline).
//!
//! Features: every column but the label, the id and the date (`NA` left out), plus the
//! change's absolute churn (`la_lines` = la·lt, `ld_lines` = ld·lt: `la`/`ld` are relative).
//! Reported per project: ROC AUC (ties averaged), MCC, accuracy and recall at the learner's own
//! threshold (failure predicted at relative risk ≥ 1), and the share of failing changes found
//! within 20% of the effort (changed lines, (la+ld)·max(lt, 1)) when changes are inspected by
//! failure probability per line; with the README's baselines computed on the same rows: churn
//! (la+ld) AUC and smallest-first effort-aware recall.

use std::collections::BTreeMap;
use std::path::Path;

use ensemble::actors::learning::time::parse_time;
use serde_json::{Map, Value, json};

use super::{call, session};

struct Change {
    id: String,
    time: String,
    /// `time` in Unix seconds, read as the learner reads it.
    unix: i64,
    features: Map<String, Value>,
    bug: bool,
    churn: f64,
    effort: f64,
}

fn read_project(path: &Path) -> anyhow::Result<Vec<Change>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (is ../shared beside the project?)", path.display())
    })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(id), Some(date), Some(bug)) = (col("transactionid"), col("commitdate"), col("bug"))
    else {
        anyhow::bail!(
            "{}: expected transactionid, commitdate and bug columns",
            path.display()
        );
    };
    let num = |cells: &[&str], name: &str| -> f64 {
        col(name)
            .and_then(|i| cells.get(i))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let mut features = Map::new();
        for (i, h) in header.iter().enumerate() {
            if [id, date, bug].contains(&i) || *h == "project" {
                continue;
            }
            if let Some(v) = cells.get(i).and_then(|v| v.parse::<f64>().ok()) {
                features.insert((*h).to_string(), json!(v));
            }
        }
        let (la, ld, lt) = (num(&cells, "la"), num(&cells, "ld"), num(&cells, "lt"));
        features.insert("la_lines".into(), json!(la * lt));
        features.insert("ld_lines".into(), json!(ld * lt));
        let time = cells.get(date).copied().unwrap_or_default().to_string();
        let unix = parse_time("commitdate", &json!(time))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        out.push(Change {
            id: cells.get(id).copied().unwrap_or_default().to_string(),
            time,
            unix,
            features,
            bug: cells.get(bug).is_some_and(|b| b.trim() == "1"),
            churn: la + ld,
            effort: ((la + ld) * lt.max(1.0)).max(1.0),
        });
    }
    Ok(out)
}

/// ROC AUC of `scores` for `labels`, ties averaged.
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Share of failing changes found within 20% of the total effort, inspecting by `order`
/// (highest first).
fn recall_at_effort(order: &[f64], changes: &[&Change]) -> f64 {
    let mut idx: Vec<usize> = (0..changes.len()).collect();
    idx.sort_by(|&a, &b| order[b].total_cmp(&order[a]));
    let total: f64 = changes.iter().map(|c| c.effort).sum();
    let bugs = changes.iter().filter(|c| c.bug).count().max(1) as f64;
    let (mut spent, mut found) = (0.0, 0.0);
    for i in idx {
        spent += changes[i].effort;
        if spent > 0.2 * total {
            break;
        }
        if changes[i].bug {
            found += 1.0;
        }
    }
    found / bugs
}

/// (MCC, accuracy, recall) of `predicted` against `labels`.
fn confusion(predicted: &[bool], labels: &[bool]) -> (f64, f64, f64) {
    let (mut tp, mut tn, mut fp, mut fneg) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (p, l) in predicted.iter().zip(labels) {
        match (p, l) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
        }
    }
    let d = ((tp + fp) * (tp + fneg) * (tn + fp) * (tn + fneg)).sqrt();
    let mcc = if d > 0.0 {
        (tp * tn - fp * fneg) / d
    } else {
        0.0
    };
    let n = (tp + tn + fp + fneg).max(1.0);
    (mcc, (tp + tn) / n, tp / (tp + fneg).max(1.0))
}

const SIX_MONTHS_S: i64 = 182 * 86_400 + 43_200;

/// Runs the evaluation over every `*.csv` of `dir`.
pub async fn run(dir: &Path, online: bool) -> anyhow::Result<()> {
    let mut projects: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e} (is ../shared beside the project?)", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "csv") {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            projects.insert(name, read_project(&path)?);
        }
    }
    let s = session().await?;
    // Every project's training slice first: the prior is everyone's experience.
    let started = std::time::Instant::now();
    for (name, changes) in &projects {
        let train = changes.len() * 6 / 10;
        eprintln!(
            "{name}: learning {train} changes ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        for c in &changes[..train] {
            call(
                &s.client,
                "devops_observe",
                json!({"project": name, "change_id": c.id,
                "time": c.time, "features": c.features}),
            )
            .await?;
            call(
                &s.client,
                "devops_report_outcome",
                json!({"project": name, "change_id": c.id,
                "outcome": if c.bug { "failure" } else { "success" }, "time": c.time}),
            )
            .await?;
        }
    }
    println!(
        "Protocol: static{} (train on the earliest 60%, test on the next 20%)\n",
        if online {
            " + online updates from test outcomes six months old"
        } else {
            ""
        }
    );
    println!(
        "| project | test changes | bug rate | churn AUC | smallest-first recall@20% | AUC | MCC | \
         recall@20% effort | accuracy | recall |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut sums = [0.0f64; 7];
    let mut predict_ms: Vec<f64> = Vec::new();
    for (name, changes) in &projects {
        let (train, test_end) = (changes.len() * 6 / 10, changes.len() * 8 / 10);
        let test: Vec<&Change> = changes[train..test_end].iter().collect();
        let mut probability = Vec::with_capacity(test.len());
        let mut flagged = Vec::with_capacity(test.len());
        let mut reported = 0;
        for (i, c) in test.iter().enumerate() {
            if online {
                let now = c.unix;
                while reported < i && test[reported].unix + SIX_MONTHS_S <= now {
                    let r = test[reported];
                    call(
                        &s.client,
                        "devops_report_outcome",
                        json!({"project": name,
                        "change_id": r.id, "outcome": if r.bug { "failure" } else { "success" },
                        "time": r.unix + SIX_MONTHS_S}),
                    )
                    .await?;
                    reported += 1;
                }
            }
            call(
                &s.client,
                "devops_observe",
                json!({"project": name, "change_id": c.id,
                "time": c.time, "features": c.features}),
            )
            .await?;
            let started = std::time::Instant::now();
            let p = call(
                &s.client,
                "devops_predict",
                json!({"project": name,
                "features": c.features, "time": c.time}),
            )
            .await?;
            predict_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            probability.push(p["failure_probability"].as_f64().unwrap_or(0.0));
            flagged.push(p["relative_risk"].as_f64().unwrap_or(0.0) >= 1.0);
        }
        eprintln!(
            "{name}: {} scored ({:.1} s)",
            test.len(),
            started.elapsed().as_secs_f64()
        );
        let labels: Vec<bool> = test.iter().map(|c| c.bug).collect();
        let churn: Vec<f64> = test.iter().map(|c| c.churn).collect();
        let smallest: Vec<f64> = test.iter().map(|c| -c.effort).collect();
        let density: Vec<f64> = test
            .iter()
            .zip(&probability)
            .map(|(c, p)| p / c.effort)
            .collect();
        let (mcc, acc, rec) = confusion(&flagged, &labels);
        let row = [
            auc(&churn, &labels),
            recall_at_effort(&smallest, &test),
            auc(&probability, &labels),
            mcc,
            recall_at_effort(&density, &test),
            acc,
            rec,
        ];
        let rate = labels.iter().filter(|l| **l).count() as f64 / labels.len().max(1) as f64;
        println!(
            "| {name} | {} | {rate:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            test.len(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6]
        );
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    let n = projects.len().max(1) as f64;
    let m: Vec<f64> = sums.iter().map(|s| s / n).collect();
    println!(
        "| **mean** | | | {:.3} | {:.3} | **{:.3}** | {:.3} | **{:.3}** | {:.3} | {:.3} |",
        m[0], m[1], m[2], m[3], m[4], m[5], m[6]
    );
    predict_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        predict_ms
            .get(((predict_ms.len() as f64 - 1.0) * q) as usize)
            .copied()
    };
    println!(
        "\ndevops_predict over MCP (in process): p50 {:.3} ms, p99 {:.3} ms over {} calls",
        pct(0.5).unwrap_or(0.0),
        pct(0.99).unwrap_or(0.0),
        predict_ms.len()
    );
    Ok(())
}
