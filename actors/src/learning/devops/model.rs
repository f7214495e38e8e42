//! The devops learner's patterns, and how it predicts a change's risk.
//!
//! Every observed change is a pattern (its time, features, and outcome once reported), so
//! snapshots merge change by change and the models are derived state:
//!
//! - features are read as `sign(x)·ln(1 + |x|)` and standardised with their project's running
//!   mean and spread (over every change observed, outcomes not needed);
//! - a logistic regression over every project's outcomes (the prior, balanced classes) and
//!   one over the project's own; a prediction blends their log-odds, the project's with weight
//!   [`PROJECT_WEIGHT`] once it has [`FULL_PROJECT_OUTCOMES`] outcomes (less before, none
//!   without), and reads them against the project's failure rate;
//! - outcomes weigh less as they age (half-life [`HALF_LIFE_DAYS`]);
//! - models are refitted when the outcomes have grown by a tenth since the last fit, and never
//!   use an outcome reported after the time a prediction is asked for.
//!
//! Chosen on the development projects (`examples/learning_eval.rs devops`): the blend beats
//! either model alone on the worst projects, and the prior alone is as good as anything for a
//! project with a hundred outcomes.

use std::collections::HashMap;

use ensemble_protocol::devops::*;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};

use super::fit::{LogReg, MAX_MODEL_FEATURES, Row, Running, logit, probability, squash};
use crate::learning::time::parse_time;
use crate::learning::{Cx, InstanceId, LearnError, Model, Pattern, Patterns, Reply};

/// Age at which an outcome counts half as much as a new one.
pub const HALF_LIFE_DAYS: f64 = 730.0;

/// The weight of the project's own model in the blend, once it has enough outcomes.
pub const PROJECT_WEIGHT: f64 = 0.3;

/// Outcomes from which the project's model has its full weight.
pub const FULL_PROJECT_OUTCOMES: f64 = 500.0;

/// L2 penalty of both models.
const LAMBDA: f64 = 1.0;

/// Outcomes' worth of every project's failure rate in a project's own rate.
const RATE_PRIOR: f64 = 20.0;

/// Refit once the outcomes have grown by this share since the last fit.
const REFIT_GROWTH: f64 = 0.1;

/// The longest project name, change id or feature name, in bytes.
const MAX_NAME_BYTES: usize = 1024;

/// What the devops learner stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DevopsPattern {
    /// An observed change (`C` key: project, change id).
    Change(Change),
    /// A feature's name (`V` key), so its hash reads back as a name.
    Name(u64),
}

/// One observed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When it happened (Unix seconds).
    time: i64,
    /// (feature name hash, value), sorted by hash.
    features: Vec<(u64, f32)>,
    /// How it turned out, once reported.
    outcome: Option<Label>,
    last_seen: u64,
}

/// A reported outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label {
    /// When it became known (Unix seconds).
    at: i64,
    /// Whether the change failed.
    failure: bool,
}

impl Pattern for DevopsPattern {
    fn heap_bytes(&self) -> usize {
        match self {
            DevopsPattern::Change(c) => c.features.capacity() * std::mem::size_of::<(u64, f32)>(),
            DevopsPattern::Name(_) => 0,
        }
    }

    /// Changes are worth alike, so the budget evicts the ones seen longest ago (old outcomes
    /// weigh least anyway, and a change awaiting its outcome is kept as long as a new one);
    /// names are kept.
    fn worth(&self) -> u64 {
        match self {
            DevopsPattern::Change(_) => 1,
            DevopsPattern::Name(_) => u64::MAX,
        }
    }

    fn last_seen(&self) -> u64 {
        match self {
            DevopsPattern::Change(c) => c.last_seen,
            DevopsPattern::Name(at) => *at,
        }
    }

    fn merge(&mut self, other: &Self) -> bool {
        match (self, other) {
            (DevopsPattern::Change(a), DevopsPattern::Change(b)) => {
                let mut changed = false;
                // The same change seen twice with different features: keep the greater, so
                // both sides of a merge end the same.
                if (b.time, &b.features) > (a.time, &a.features) {
                    a.time = b.time;
                    a.features = b.features.clone();
                    changed = true;
                }
                if b.outcome > a.outcome {
                    a.outcome = b.outcome;
                    changed = true;
                }
                if b.last_seen > a.last_seen {
                    a.last_seen = b.last_seen;
                    changed = true;
                }
                changed
            }
            (DevopsPattern::Name(a), DevopsPattern::Name(b)) if b > a => {
                *a = *b;
                true
            }
            _ => false,
        }
    }
}

/// What the devops learner learns from.
#[derive(Debug, Clone)]
pub enum DevopsObservation {
    /// A change, before its outcome.
    Change(ObserveRequest),
    /// A change's outcome.
    Outcome(OutcomeRequest),
}

/// The devops learner's own requests.
pub enum DevopsMsg {
    /// How likely a change is to fail.
    Predict(PredictRequest, CancellationToken, Reply<PredictResponse>),
    /// What to do with a change.
    Recommend(
        RecommendRequest,
        CancellationToken,
        Reply<RecommendResponse>,
    ),
}

/// A fitted model and what it saw.
#[derive(Debug, Clone)]
struct Fitted {
    model: LogReg,
    /// The features it reads, in order (sorted hashes).
    features: Vec<u64>,
    /// Outcomes known up to this time were used (and only those).
    through: i64,
    /// How many.
    outcomes: usize,
}

/// The last few fits of one model: "now", and as of the times predictions were asked for
/// lately (a replay asks for one time after another, each close to the last).
#[derive(Debug, Default)]
struct Fits(Vec<Fitted>);

/// Fits kept per model.
const FITS_KEPT: usize = 4;

impl Fits {
    /// A fit that may answer as of `t` with `n_t` outcomes known by then (moved to the front).
    fn find(&mut self, t: i64, n_t: usize, features: Option<&[u64]>) -> Option<Fitted> {
        let i = self
            .0
            .iter()
            .position(|f| usable(f, t, n_t) && features.is_none_or(|order| f.features == order))?;
        let f = self.0.remove(i);
        self.0.insert(0, f.clone());
        Some(f)
    }

    fn keep(&mut self, f: Fitted) {
        self.0.insert(0, f);
        self.0.truncate(FITS_KEPT);
    }

    /// The fit with the most outcomes (the one that answers now, if any).
    fn latest(&self) -> Option<&Fitted> {
        self.0.iter().max_by_key(|f| f.outcomes)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A project's derived state.
#[derive(Debug, Default)]
struct Project {
    /// Keys of its changes with an outcome.
    labelled: Vec<Box<[u8]>>,
    /// When each outcome became known, sorted.
    known_at: Vec<i64>,
    /// Each feature's running statistics over its observed changes (squashed values).
    stats: HashMap<u64, Running>,
    /// The latest fits, most recently used first.
    fitted: Fits,
}

/// Observed changes from which a project's own statistics standardise its features (before,
/// every project's do).
const OWN_STATISTICS_FROM: f64 = 30.0;

impl Project {
    /// A change's standardised features in `order`, then 1: by the project's own statistics
    /// once it has enough changes, by everyone's before.
    fn row(
        &self,
        order: &[u64],
        features: &[(u64, f32)],
        everyone: &HashMap<u64, Running>,
    ) -> Vec<f64> {
        let mut x: Vec<f64> = order
            .iter()
            .map(|f| {
                let v = features
                    .binary_search_by_key(f, |e| e.0)
                    .map_or(0.0, |i| squash(f64::from(features[i].1)));
                let stats = match self.stats.get(f) {
                    Some(own) if own.count() >= OWN_STATISTICS_FROM => Some(own),
                    _ => everyone.get(f),
                };
                stats.map_or(0.0, |s| s.standardise(v))
            })
            .collect();
        x.push(1.0);
        x
    }

    fn learn_features(&mut self, features: &[(u64, f32)]) {
        learn_into(&mut self.stats, features);
    }
}

fn learn_into(stats: &mut HashMap<u64, Running>, features: &[(u64, f32)]) {
    for (f, v) in features {
        stats.entry(*f).or_default().add(squash(f64::from(*v)));
    }
}

/// The devops learner.
#[derive(Debug, Default)]
pub struct DevopsModel {
    names: HashMap<u64, String>,
    projects: HashMap<String, Project>,
    /// Every project's outcome times, sorted (for the prior).
    all_known_at: Vec<i64>,
    /// Each feature's running statistics over every project's changes.
    everyone: HashMap<u64, Running>,
    /// The latest fits of the prior, most recently used first.
    prior: Fits,
    /// Outcomes whose prediction just before was right (failure predicted at relative risk ≥ 1).
    right: u64,
    judged: u64,
}

/// The models a prediction rests on, as of some time.
struct Models {
    prior: Fitted,
    own: Option<Fitted>,
    /// The project's outcomes by then, and its failure rate (shrunk toward everyone's).
    outcomes: usize,
    rate: f64,
}

/// A stable hash of a feature name (FNV-1a), the same on every instance.
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn change_key(project: &str, change: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + project.len() + change.len());
    k.push(b'C');
    k.push(0);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k.extend_from_slice(change.as_bytes());
    k
}

fn name_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'V', 0];
    k.extend_from_slice(name.as_bytes());
    k
}

fn check_name(field: &str, value: &str) -> Result<(), LearnError> {
    if value.trim().is_empty() {
        return Err(LearnError::BadInput(format!("`{field}` is empty")));
    }
    if value.len() > MAX_NAME_BYTES || value.contains('\0') {
        return Err(LearnError::BadInput(format!(
            "`{field}` must be at most {MAX_NAME_BYTES} bytes without NUL characters"
        )));
    }
    Ok(())
}

fn check_features(features: &std::collections::BTreeMap<String, f64>) -> Result<(), LearnError> {
    if features.len() > MAX_FEATURES {
        return Err(LearnError::BadInput(format!(
            "{} features; a change has at most {MAX_FEATURES}",
            features.len()
        )));
    }
    for (name, v) in features {
        check_name("features", name)?;
        if !v.is_finite() {
            return Err(LearnError::BadInput(format!(
                "feature `{name}` is {v}: features are finite numbers"
            )));
        }
    }
    Ok(())
}

fn hashed(features: &std::collections::BTreeMap<String, f64>) -> Vec<(u64, f32)> {
    let mut v: Vec<(u64, f32)> = features
        .iter()
        .map(|(k, x)| (name_hash(k), *x as f32))
        .collect();
    v.sort_unstable_by_key(|e| e.0);
    v
}

/// The key's project, for change keys.
fn project_of(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(b"C\0")?;
    let at = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..at]).ok()
}

fn insert_sorted(v: &mut Vec<i64>, t: i64) {
    let at = v.partition_point(|x| *x <= t);
    v.insert(at, t);
}

fn known_by(v: &[i64], t: i64) -> usize {
    v.partition_point(|x| *x <= t)
}

/// Whether a fit made through `f.through` with `f.outcomes` outcomes may answer as of `t`
/// when `n_t` outcomes are known by then: it uses nothing later than `t`, and is not too
/// stale.
fn usable(f: &Fitted, t: i64, n_t: usize) -> bool {
    f.through <= t && (n_t as f64) <= (f.outcomes as f64) * (1.0 + REFIT_GROWTH) + 5.0
}

impl DevopsModel {
    fn rebuild(&mut self, patterns: &Patterns<DevopsPattern>) {
        self.names.clear();
        self.projects.clear();
        self.all_known_at.clear();
        self.prior.clear();
        self.everyone.clear();
        for (k, p) in patterns.iter() {
            match p {
                DevopsPattern::Name(_) => {
                    if let Ok(name) = std::str::from_utf8(&k[2..]) {
                        self.names.insert(name_hash(name), name.to_string());
                    }
                }
                DevopsPattern::Change(c) => {
                    let Some(project) = project_of(k) else {
                        continue;
                    };
                    let p = self.projects.entry(project.to_string()).or_default();
                    p.learn_features(&c.features);
                    learn_into(&mut self.everyone, &c.features);
                    if let Some(label) = c.outcome {
                        p.labelled.push(k.into());
                        p.known_at.push(label.at);
                        self.all_known_at.push(label.at);
                    }
                }
            }
        }
        for p in self.projects.values_mut() {
            p.known_at.sort_unstable();
        }
        self.all_known_at.sort_unstable();
    }

    fn learn_name(&mut self, cx: &mut Cx<'_, DevopsPattern>, name: &str) {
        let h = name_hash(name);
        if let std::collections::hash_map::Entry::Vacant(e) = self.names.entry(h) {
            e.insert(name.to_string());
            let clock = cx.clock;
            cx.patterns
                .update(&name_key(name), || DevopsPattern::Name(clock), |_| ());
        }
    }

    fn observe_change(
        &mut self,
        cx: &mut Cx<'_, DevopsPattern>,
        req: &ObserveRequest,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        check_name("project", &req.project)?;
        check_name("change_id", &req.change_id)?;
        check_features(&req.features)?;
        let time = parse_time("time", &req.time)?;
        for name in req.features.keys() {
            self.learn_name(cx, name);
        }
        let features = hashed(&req.features);
        self.projects
            .entry(req.project.clone())
            .or_default()
            .learn_features(&features);
        learn_into(&mut self.everyone, &features);
        let clock = cx.clock;
        cx.patterns.update(
            &change_key(&req.project, &req.change_id),
            || {
                DevopsPattern::Change(Change {
                    time,
                    features: Vec::new(),
                    outcome: None,
                    last_seen: clock,
                })
            },
            |p| {
                if let DevopsPattern::Change(c) = p {
                    c.time = time;
                    c.features = features;
                    c.last_seen = clock;
                }
            },
        );
        Ok((1, self.detail(&req.project)))
    }

    fn detail(&self, project: &str) -> ObserveDetail {
        ObserveDetail {
            outcomes_known: self.projects.get(project).map_or(0, |p| p.labelled.len()) as u64,
        }
    }

    fn report(
        &mut self,
        cx: &mut Cx<'_, DevopsPattern>,
        req: &OutcomeRequest,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        check_name("project", &req.project)?;
        check_name("change_id", &req.change_id)?;
        let at = parse_time("time", &req.time)?;
        let key = change_key(&req.project, &req.change_id);
        let Some(DevopsPattern::Change(change)) = cx.patterns.get(&key) else {
            return Err(LearnError::BadInput(format!(
                "change `{}` of project `{}` was never observed: record it with devops_observe \
                 (its features and time) before reporting its outcome",
                req.change_id, req.project
            )));
        };
        let failure = req.outcome == Outcome::Failure;
        let previous = change.outcome.map(|l| l.at);
        // Judge the prediction this outcome answers before learning it (with the models fitted
        // so far: judging fits nothing).
        if let Some(models) = self.cached_models(&req.project) {
            let (p, _) = self.score(&models, &req.project, &change.features);
            self.judged += 1;
            if (p >= models.rate) == failure {
                self.right += 1;
            }
        }
        let clock = cx.clock;
        cx.patterns.update(&key, unreachable_change, |p| {
            if let DevopsPattern::Change(c) = p {
                c.outcome = Some(Label { at, failure });
                c.last_seen = clock;
            }
        });
        let project = self.projects.entry(req.project.clone()).or_default();
        match previous {
            None => project.labelled.push(key.into()),
            // A second report replaces the first: its time moves.
            Some(before) => {
                if let Ok(i) = project.known_at.binary_search(&before) {
                    project.known_at.remove(i);
                }
                if let Ok(i) = self.all_known_at.binary_search(&before) {
                    self.all_known_at.remove(i);
                }
            }
        }
        // Any fit may now be stale or, for a corrected outcome, wrong.
        if previous.is_some() {
            project.fitted.clear();
            self.prior.clear();
        }
        insert_sorted(&mut project.known_at, at);
        insert_sorted(&mut self.all_known_at, at);
        Ok((1, self.detail(&req.project)))
    }

    /// Standardised rows of `project`'s changes with an outcome known by `t`, weighted by
    /// age (against the project's newest), in `order`'s features.
    fn rows(
        &self,
        patterns: &Patterns<DevopsPattern>,
        project: &Project,
        order: &[u64],
        t: i64,
        rows: &mut Vec<Row>,
    ) {
        let found: Vec<(&Change, Label)> = project
            .labelled
            .iter()
            .filter_map(|k| match patterns.get(k) {
                Some(DevopsPattern::Change(c)) => c.outcome.filter(|l| l.at <= t).map(|l| (c, l)),
                _ => None,
            })
            .collect();
        let newest = found.iter().map(|(c, _)| c.time).max().unwrap_or(0);
        let half_life = HALF_LIFE_DAYS * 86_400.0;
        rows.extend(found.into_iter().map(|(c, l)| Row {
            x: project.row(order, &c.features, &self.everyone),
            failure: l.failure,
            weight: 0.5f64.powf((newest - c.time).max(0) as f64 / half_life),
        }));
    }

    /// The features the models read: the most common among changes with an outcome by `t`.
    fn feature_order(&self, patterns: &Patterns<DevopsPattern>, t: i64) -> Vec<u64> {
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for p in self.projects.values() {
            for k in &p.labelled {
                if let Some(DevopsPattern::Change(c)) = patterns.get(k)
                    && c.outcome.is_some_and(|l| l.at <= t)
                {
                    for (f, _) in &c.features {
                        *counts.entry(*f).or_default() += 1;
                    }
                }
            }
        }
        let mut order: Vec<(u64, usize)> = counts.into_iter().collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        order.truncate(MAX_MODEL_FEATURES);
        let mut order: Vec<u64> = order.into_iter().map(|f| f.0).collect();
        order.sort_unstable();
        order
    }

    /// The prior as of `t` (cached when it answers for now).
    fn prior_at(&mut self, patterns: &Patterns<DevopsPattern>, t: i64) -> Option<Fitted> {
        let n_t = known_by(&self.all_known_at, t);
        if n_t == 0 {
            return None;
        }
        if let Some(f) = self.prior.find(t, n_t, None) {
            return Some(f);
        }
        let order = self.feature_order(patterns, t);
        let mut rows = Vec::new();
        for p in self.projects.values() {
            self.rows(patterns, p, &order, t, &mut rows);
        }
        let fitted = Fitted {
            model: LogReg::fit(&rows, order.len() + 1, LAMBDA),
            features: order,
            through: self.all_known_at[n_t - 1],
            outcomes: n_t,
        };
        self.prior.keep(fitted.clone());
        Some(fitted)
    }

    /// The models for `project` as of `t`.
    fn models_at(
        &mut self,
        patterns: &Patterns<DevopsPattern>,
        project: &str,
        t: i64,
    ) -> Option<Models> {
        let prior = self.prior_at(patterns, t)?;
        let Some(n_t) = self.projects.get(project).map(|p| known_by(&p.known_at, t)) else {
            return Some(Models {
                rate: prior.model.base_rate,
                prior,
                own: None,
                outcomes: 0,
            });
        };
        let cached = self
            .projects
            .get_mut(project)
            .and_then(|p| p.fitted.find(t, n_t, Some(&prior.features)));
        let own = match cached {
            _ if n_t == 0 => None,
            Some(f) => Some(f),
            None => {
                let mut rows = Vec::new();
                let mut through = t;
                if let Some(p) = self.projects.get(project) {
                    self.rows(patterns, p, &prior.features, t, &mut rows);
                    through = p.known_at[n_t - 1];
                }
                let fitted = Fitted {
                    model: LogReg::fit(&rows, prior.features.len() + 1, LAMBDA),
                    features: prior.features.clone(),
                    through,
                    outcomes: n_t,
                };
                if let Some(p) = self.projects.get_mut(project) {
                    p.fitted.keep(fitted.clone());
                }
                Some(fitted)
            }
        };
        let rate = Self::rate(&prior, own.as_ref());
        Some(Models {
            prior,
            own,
            outcomes: n_t,
            rate,
        })
    }

    /// The models that answer now without fitting anything, if the last fits may.
    fn cached_models(&self, project: &str) -> Option<Models> {
        let prior = self.prior.latest()?.clone();
        let own = self
            .projects
            .get(project)
            .and_then(|p| p.fitted.latest())
            .filter(|f| f.features == prior.features)
            .cloned();
        let outcomes = own.as_ref().map_or(0, |f| f.outcomes);
        Some(Models {
            rate: Self::rate(&prior, own.as_ref()),
            prior,
            own,
            outcomes,
        })
    }

    /// The project's failure rate, shrunk toward everyone's while it has few outcomes.
    fn rate(prior: &Fitted, own: Option<&Fitted>) -> f64 {
        match own {
            Some(f) => {
                let n = f.outcomes as f64;
                (f.model.base_rate * n + prior.model.base_rate * RATE_PRIOR) / (n + RATE_PRIOR)
            }
            None => prior.model.base_rate,
        }
    }

    /// (failure probability, per-feature contributions in log-odds) of a change by `models`.
    fn score(
        &self,
        models: &Models,
        project: &str,
        features: &[(u64, f32)],
    ) -> (f64, Vec<(u64, f64)>) {
        let order = &models.prior.features;
        let empty = Project::default();
        let x = self
            .projects
            .get(project)
            .unwrap_or(&empty)
            .row(order, features, &self.everyone);
        let a = match &models.own {
            Some(f) => PROJECT_WEIGHT * (f.outcomes as f64 / FULL_PROJECT_OUTCOMES).min(1.0),
            None => 0.0,
        };
        let weight = |j: usize| {
            let own = models.own.as_ref().map_or(0.0, |f| f.model.w[j]);
            a * own + (1.0 - a) * models.prior.model.w[j]
        };
        let z: f64 = (0..x.len()).map(|j| weight(j) * x[j]).sum();
        let p = probability(z + logit(models.rate.max(1e-6)));
        let contributions = order
            .iter()
            .enumerate()
            .map(|(j, f)| (*f, weight(j) * x[j]))
            .collect();
        (p, contributions)
    }

    fn predict(
        &mut self,
        patterns: &Patterns<DevopsPattern>,
        project: &str,
        features: &std::collections::BTreeMap<String, f64>,
        time: Option<&serde_json::Value>,
        policy: RiskPolicy,
    ) -> Result<PredictResponse, LearnError> {
        check_name("project", project)?;
        check_features(features)?;
        check_policy(&policy)?;
        let t = match time {
            Some(v) => parse_time("time", v)?,
            None => i64::MAX,
        };
        let x = hashed(features);
        let models = self
            .models_at(patterns, project, t)
            .ok_or_else(no_outcomes)?;
        let (p, contributions) = self.score(&models, project, &x);
        let base = models.rate.max(1e-6);
        let relative_risk = p / base;
        let risk = if relative_risk >= policy.hold_at {
            Risk::High
        } else if relative_risk >= policy.canary_at {
            Risk::Medium
        } else {
            Risk::Low
        };
        let mut factors: Vec<Factor> = contributions
            .into_iter()
            .filter(|(_, c)| c.abs() > 1e-9)
            .map(|(h, c)| {
                let feature = self
                    .names
                    .get(&h)
                    .cloned()
                    .unwrap_or_else(|| format!("#{h:016x}"));
                let value = features.get(&feature).copied().unwrap_or(0.0);
                Factor {
                    feature,
                    value,
                    contribution: c,
                }
            })
            .collect();
        factors.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        factors.truncate(5);
        let known = &models.prior.features;
        let ignored_features = features
            .keys()
            .filter(|k| known.binary_search(&name_hash(k)).is_err())
            .cloned()
            .collect();
        Ok(PredictResponse {
            failure_probability: p,
            relative_risk,
            risk,
            top_factors: factors,
            project_outcomes: models.outcomes as u64,
            prior_outcomes: models.prior.outcomes as u64,
            ignored_features,
        })
    }
}

fn unreachable_change() -> DevopsPattern {
    // `report` looked the change up just before: it is there.
    DevopsPattern::Change(Change {
        time: 0,
        features: Vec::new(),
        outcome: None,
        last_seen: 0,
    })
}

fn no_outcomes() -> LearnError {
    LearnError::BadInput(
        "no outcomes learned yet, for any project: record changes with devops_observe and \
         their outcomes with devops_report_outcome (or import a snapshot with learning_import) \
         before asking for predictions"
            .into(),
    )
}

fn check_policy(p: &RiskPolicy) -> Result<(), LearnError> {
    if !(p.canary_at.is_finite() && p.hold_at.is_finite() && p.canary_at >= 0.0)
        || p.hold_at < p.canary_at
    {
        return Err(LearnError::BadInput(format!(
            "risk policy canary_at {} / hold_at {}: give 0 ≤ canary_at ≤ hold_at (relative \
             risks: 1 is the project's average change)",
            p.canary_at, p.hold_at
        )));
    }
    Ok(())
}

fn recommend(prediction: PredictResponse, policy: RiskPolicy) -> RecommendResponse {
    let rr = prediction.relative_risk;
    let why = prediction
        .top_factors
        .iter()
        .filter(|f| f.contribution > 0.0)
        .take(3)
        .map(|f| format!("{} = {}", f.feature, f.value))
        .collect::<Vec<_>>();
    let drivers = if why.is_empty() {
        String::new()
    } else {
        format!("; driven by {}", why.join(", "))
    };
    let (action, reason) = match prediction.risk {
        Risk::High => (
            Action::Hold,
            format!(
                "failure probability {:.2}, {rr:.1}× the project's average (hold at {}×){drivers}",
                prediction.failure_probability, policy.hold_at
            ),
        ),
        Risk::Medium => (
            Action::Canary,
            format!(
                "failure probability {:.2}, {rr:.1}× the project's average (canary from {}×, \
                 hold at {}×){drivers}",
                prediction.failure_probability, policy.canary_at, policy.hold_at
            ),
        ),
        Risk::Low => (
            Action::Deploy,
            format!(
                "failure probability {:.2}, {rr:.1}× the project's average, below the canary \
                 threshold of {}×",
                prediction.failure_probability, policy.canary_at
            ),
        ),
    };
    RecommendResponse {
        action,
        reason,
        policy,
        prediction,
    }
}

impl Model for DevopsModel {
    const NAME: &'static str = "devops";
    type Pattern = DevopsPattern;
    type Observation = DevopsObservation;
    type Msg = DevopsMsg;
    type Detail = ObserveDetail;

    fn open(patterns: &Patterns<DevopsPattern>, _instance: InstanceId) -> Self {
        let mut m = Self::default();
        m.rebuild(patterns);
        m
    }

    fn observe(
        &mut self,
        cx: &mut Cx<'_, DevopsPattern>,
        obs: DevopsObservation,
    ) -> Result<(u64, ObserveDetail), LearnError> {
        match obs {
            DevopsObservation::Change(req) => self.observe_change(cx, &req),
            DevopsObservation::Outcome(req) => self.report(cx, &req),
        }
    }

    fn handle(&mut self, cx: &mut Cx<'_, DevopsPattern>, msg: DevopsMsg) {
        match msg {
            DevopsMsg::Predict(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                let policy = req.policy.unwrap_or_default();
                let r = self.predict(
                    cx.patterns,
                    &req.project,
                    &req.features,
                    req.time.as_ref(),
                    policy,
                );
                let _ = reply.send(r);
            }
            DevopsMsg::Recommend(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                let policy = req.policy.unwrap_or_default();
                let r = self
                    .predict(
                        cx.patterns,
                        &req.project,
                        &req.features,
                        req.time.as_ref(),
                        policy,
                    )
                    .map(|p| recommend(p, policy));
                let _ = reply.send(r);
            }
        }
    }

    fn refresh(&mut self, patterns: &Patterns<DevopsPattern>) {
        self.rebuild(patterns);
    }

    /// Outcomes whose prediction just before they were learned was right (failure predicted
    /// at a relative risk of 1 or more).
    fn accuracy(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.right as f64 / self.judged as f64)
    }
}
