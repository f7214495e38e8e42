//! The shell learner's patterns, and how it learns and suggests.

use std::collections::HashMap;

use ensemble_protocol::shell::*;
use ensemble_supervision::CancellationToken;
use serde::{Deserialize, Serialize};

use crate::learning::{
    CountMap, Cx, GCounter, InstanceId, LearnError, Model, Pattern, Patterns, Reply,
};

/// The longest context: the user's last three commands.
const ORDER: usize = 3;

/// Interpolation weights of the contexts of none (the plain command frequencies), one, two and
/// three commands. Chosen on the development users (`examples/learning_eval.rs`): the
/// frequencies only fill the list when the contexts name fewer commands than asked for.
const WEIGHTS: [f64; ORDER + 1] = [0.05, 1.0, 1.0, 1.0];

/// A command longer than this is learned into the history but never suggested or used as a
/// context: a suggestion is something to type again, not a pasted script.
const MAX_TOKEN_BYTES: usize = 1024;

/// Observations of a user's order-1 context after which the prior weighs half as much as the
/// user's own history.
const PRIOR_HALF_LIFE: f64 = 8.0;

/// What the shell learner stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShellPattern {
    /// The commands that followed a context, with their counts.
    Next(Successors),
    /// A user's last commands: the context of their next one.
    Recent(Recent),
    /// Labelled safety examples: of one exact command (`x…`), of the commands that have one
    /// feature (`f…`), or of all (`t`).
    Labels(Labels),
}

/// How often something was labelled harmless and malicious (per instance, so merges count each
/// example once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    harmless: GCounter,
    malicious: GCounter,
    /// The category last given for a malicious example (the greatest, after a merge).
    category: Option<String>,
    last_seen: u64,
}

impl Labels {
    fn counts(&self) -> (u64, u64) {
        (self.harmless.total(), self.malicious.total())
    }
}

/// The commands that followed one context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Successors {
    /// Command and its count, sorted by command.
    next: CountMap,
    last_seen: u64,
}

/// A user's last commands, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    last: Vec<String>,
    /// Wall clock (Unix ms) of the last one: instances' observation clocks do not compare, and
    /// the latest history across instances is the one that wins a merge.
    at_ms: u64,
}

impl Successors {
    fn add(&mut self, command: &str, instance: InstanceId, clock: u64) {
        self.next.add(command, instance, 1);
        self.last_seen = self.last_seen.max(clock);
    }

    fn total(&self) -> u64 {
        self.next.total()
    }
}

impl Pattern for ShellPattern {
    fn heap_bytes(&self) -> usize {
        match self {
            ShellPattern::Next(s) => s.next.heap_bytes(),
            ShellPattern::Recent(r) => {
                r.last.capacity() * std::mem::size_of::<String>()
                    + r.last.iter().map(String::capacity).sum::<usize>()
            }
            ShellPattern::Labels(l) => {
                l.harmless.heap_bytes()
                    + l.malicious.heap_bytes()
                    + l.category.as_ref().map_or(0, String::capacity)
            }
        }
    }

    /// A context is worth the observations it holds; a user's recent commands are kept.
    fn worth(&self) -> u64 {
        match self {
            ShellPattern::Next(s) => s.total(),
            ShellPattern::Recent(_) => u64::MAX,
            ShellPattern::Labels(l) => l.harmless.total() + l.malicious.total(),
        }
    }

    fn last_seen(&self) -> u64 {
        match self {
            ShellPattern::Next(s) => s.last_seen,
            ShellPattern::Recent(r) => r.at_ms,
            ShellPattern::Labels(l) => l.last_seen,
        }
    }

    fn merge(&mut self, other: &Self) -> bool {
        match (self, other) {
            (ShellPattern::Next(a), ShellPattern::Next(b)) => {
                let mut changed = a.next.merge(&b.next);
                if b.last_seen > a.last_seen {
                    a.last_seen = b.last_seen;
                    changed = true;
                }
                changed
            }
            // The later history wins; equal clocks are ordered by content, so the merge is
            // still commutative.
            (ShellPattern::Recent(a), ShellPattern::Recent(b))
                if (b.at_ms, &b.last) > (a.at_ms, &a.last) =>
            {
                *a = b.clone();
                true
            }
            (ShellPattern::Recent(_), ShellPattern::Recent(_)) => false,
            (ShellPattern::Labels(a), ShellPattern::Labels(b)) => {
                let mut changed = a.harmless.merge(&b.harmless);
                changed |= a.malicious.merge(&b.malicious);
                if b.category > a.category {
                    a.category = b.category.clone();
                    changed = true;
                }
                if b.last_seen > a.last_seen {
                    a.last_seen = b.last_seen;
                    changed = true;
                }
                changed
            }
            // Keys say which kind a pattern is: two kinds under one key cannot come from a
            // snapshot of this learner. Keep ours.
            _ => false,
        }
    }
}

/// The shell learner's own requests.
pub enum ShellMsg {
    /// Ranked next commands for a user.
    Suggest(SuggestRequest, CancellationToken, Reply<SuggestResponse>),
    /// Whether a command is safe to run.
    Check(CheckRequest, CancellationToken, Reply<CheckResponse>),
    /// A labelled example for the safety model.
    Feedback(FeedbackRequest, CancellationToken, Reply<FeedbackResponse>),
}

/// The shell learner.
#[derive(Debug, Default)]
pub struct ShellModel {
    /// Observations whose command was the first suggestion made just before it.
    hits: u64,
    /// Observations that had a suggestion to judge.
    trials: u64,
    /// Feedback labels the safety verdict agreed with before learning them (malicious: not
    /// `allow`; harmless: `allow`).
    safety_hits: u64,
    /// Feedback labels judged.
    safety_trials: u64,
}

/// Whose patterns: one user's, or everyone's (the prior).
#[derive(Clone, Copy)]
enum Scope<'a> {
    User(&'a str),
    Prior,
}

fn next_key(scope: Scope<'_>, context: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.push(b'n');
    match scope {
        Scope::User(u) => {
            key.push(b'u');
            key.extend_from_slice(u.as_bytes());
        }
        Scope::Prior => key.push(b'*'),
    }
    key.push(0);
    key.push(context.len() as u8);
    for c in context {
        key.push(0);
        key.extend_from_slice(c.as_bytes());
    }
    key
}

fn recent_key(user: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user.len() + 1);
    key.push(b'r');
    key.extend_from_slice(user.as_bytes());
    key
}

/// The command as a suggestion: trimmed, runs of blanks as one space. `None` when it is too
/// long to be worth suggesting.
fn token(command: &str) -> Option<String> {
    let t = command.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty() && t.len() <= MAX_TOKEN_BYTES).then_some(t)
}

fn check_user(user: &str) -> Result<(), LearnError> {
    if user.trim().is_empty() {
        return Err(LearnError::BadInput(
            "`user` is empty: give a stable name for whoever runs the commands".into(),
        ));
    }
    if user.len() > MAX_USER_BYTES || user.contains('\0') {
        return Err(LearnError::BadInput(format!(
            "`user` must be at most {MAX_USER_BYTES} bytes without NUL characters"
        )));
    }
    Ok(())
}

impl ShellModel {
    fn recent<'a>(patterns: &'a Patterns<ShellPattern>, user: &str) -> &'a [String] {
        match patterns.get(&recent_key(user)) {
            Some(ShellPattern::Recent(r)) => &r.last,
            _ => &[],
        }
    }

    /// Adds the interpolated scores of the commands that may follow `recent` in `scope` (times
    /// `weight`) into `into`; returns how much evidence the order-1 context had.
    fn scores<'a>(
        patterns: &'a Patterns<ShellPattern>,
        scope: Scope<'_>,
        recent: &[String],
        into: &mut HashMap<&'a str, [f64; 2]>,
        slot: usize,
        weight: f64,
        fill: bool,
    ) -> u64 {
        let mut evidence = 0;
        let recent: Vec<&str> = recent.iter().map(String::as_str).collect();
        for (order, w) in WEIGHTS.iter().enumerate().skip(usize::from(!fill)) {
            if order > recent.len() {
                break;
            }
            let context = &recent[recent.len() - order..];
            let Some(ShellPattern::Next(s)) = patterns.get(&next_key(scope, context)) else {
                continue;
            };
            let total = s.total();
            if total == 0 {
                continue;
            }
            if order == 1 {
                evidence = total;
            }
            let scale = weight * w / total as f64;
            for (command, n) in s.next.iter() {
                if order == 0 && !into.contains_key(command) {
                    // Frequencies fill the list; they do not re-rank what the contexts say.
                    continue;
                }
                into.entry(command).or_default()[slot] += scale * n.total() as f64;
            }
        }
        evidence
    }

    /// The commands of `scope`'s frequency table not yet in `into`, with their scores.
    fn fill<'a>(
        patterns: &'a Patterns<ShellPattern>,
        scope: Scope<'_>,
        into: &mut HashMap<&'a str, [f64; 2]>,
        slot: usize,
        weight: f64,
    ) {
        let Some(ShellPattern::Next(s)) = patterns.get(&next_key(scope, &[])) else {
            return;
        };
        let total = s.total().max(1) as f64;
        for (command, n) in s.next.iter() {
            into.entry(command).or_default()[slot] +=
                weight * WEIGHTS[0] * n.total() as f64 / total;
        }
    }

    /// Ranked suggestions for `user`, best first.
    fn suggest(
        patterns: &Patterns<ShellPattern>,
        user: &str,
        prefix: Option<&str>,
        limit: usize,
    ) -> Vec<Suggestion> {
        let recent = Self::recent(patterns, user);
        // Per command: [the user's own score, the prior's].
        let mut scores: HashMap<&str, [f64; 2]> = HashMap::new();
        let evidence = Self::scores(
            patterns,
            Scope::User(user),
            recent,
            &mut scores,
            0,
            1.0,
            false,
        );
        // The prior speaks for a user whose own history is short.
        let prior_weight = 1.0 / (1.0 + evidence as f64 / PRIOR_HALF_LIFE);
        Self::scores(
            patterns,
            Scope::Prior,
            recent,
            &mut scores,
            1,
            prior_weight,
            false,
        );
        let wanted = |c: &str| prefix.is_none_or(|p| c.starts_with(p));
        if scores.keys().filter(|c| wanted(c)).count() < limit {
            // Too few after the contexts: the user's and everyone's most frequent commands.
            Self::fill(patterns, Scope::User(user), &mut scores, 0, 1.0);
            Self::fill(patterns, Scope::Prior, &mut scores, 1, prior_weight);
        }
        let norm = WEIGHTS.iter().sum::<f64>() * (1.0 + prior_weight);
        let mut ranked: Vec<(&str, [f64; 2])> =
            scores.into_iter().filter(|(c, _)| wanted(c)).collect();
        let by_score = |a: &(&str, [f64; 2]), b: &(&str, [f64; 2])| {
            (b.1[0] + b.1[1])
                .total_cmp(&(a.1[0] + a.1[1]))
                .then_with(|| a.0.cmp(b.0))
        };
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit - 1, by_score);
            ranked.truncate(limit);
        }
        ranked.sort_unstable_by(by_score);
        ranked
            .into_iter()
            .map(|(command, [u, p])| Suggestion {
                command: command.to_string(),
                score: ((u + p) / norm).clamp(0.0, 1.0),
                source: if u >= p { "user" } else { "prior" }.to_string(),
            })
            .collect()
    }

    fn learn(cx: &mut Cx<'_, ShellPattern>, user: &str, command: String) {
        let (instance, clock) = (cx.instance, cx.clock);
        let recent = Self::recent(cx.patterns, user).to_vec();
        let context: Vec<&str> = recent.iter().map(String::as_str).collect();
        for order in 0..=ORDER.min(context.len()) {
            let ctx = &context[context.len() - order..];
            for scope in [Scope::User(user), Scope::Prior] {
                cx.patterns.update(
                    &next_key(scope, ctx),
                    || ShellPattern::Next(Successors::default()),
                    |p| {
                        if let ShellPattern::Next(s) = p {
                            s.add(&command, instance, clock);
                        }
                    },
                );
            }
        }
        cx.patterns.update(
            &recent_key(user),
            || ShellPattern::Recent(Recent::default()),
            |p| {
                if let ShellPattern::Recent(r) = p {
                    r.last.push(command);
                    if r.last.len() > ORDER {
                        r.last.remove(0);
                    }
                    r.at_ms = crate::clock::unix_ms();
                }
            },
        );
    }
}

/// Key of the safety totals.
const TOTALS_KEY: &[u8] = b"t";

/// Labelled examples needed before the learned model speaks.
const MIN_EXAMPLES: u64 = 20;

/// The learned model's prior log-odds against "malicious": a command needs this much evidence
/// (in nats) before the model calls it likely malicious. Chosen on the development set so that
/// the model alone flags under 1% of held-out harmless commands
/// (`examples/learning_eval.rs --safety`).
const LEARNED_BIAS: f64 = 4.0;

/// The most one feature may move the log-odds.
const FEATURE_CAP: f64 = 3.0;

fn exact_key(command: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(command.len() + 1);
    key.push(b'x');
    key.extend_from_slice(
        command
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .as_bytes(),
    );
    key
}

fn feature_key(feature: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(feature.len() + 1);
    key.push(b'f');
    key.extend_from_slice(feature.as_bytes());
    key
}

fn labels(patterns: &Patterns<ShellPattern>, key: &[u8]) -> Option<(u64, u64)> {
    match patterns.get(key) {
        Some(ShellPattern::Labels(l)) => Some(l.counts()),
        _ => None,
    }
}

fn check_input(command: &str) -> Result<(), LearnError> {
    if command.trim().is_empty() {
        return Err(LearnError::BadInput(
            "`command` is empty: give the command line or script to check".into(),
        ));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(LearnError::BadInput(format!(
            "`command` is {} bytes; the shell learner checks commands up to {MAX_COMMAND_BYTES} \
             bytes: check a long script in parts",
            command.len()
        )));
    }
    if command.contains('\0') {
        return Err(LearnError::BadInput(
            "`command` contains a NUL character, which no shell command can hold".into(),
        ));
    }
    check_unicode("command", command)
}

/// Text holding U+FFFD came from something that was not valid Unicode (a lone surrogate escape
/// such as `\ud800`, repaired by the transport, or bytes decoded lossily): judging or learning
/// it would judge something other than what the client meant.
fn check_unicode(field: &str, text: &str) -> Result<(), LearnError> {
    match text.find('\u{fffd}') {
        Some(at) => Err(LearnError::BadInput(format!(
            "`{field}` is not valid Unicode at byte {at} (a lone surrogate escape such as \
             `\\ud800`, or text decoded with replacement characters): send it as UTF-8"
        ))),
        None => Ok(()),
    }
}

/// The learned model's log-odds that a command with these features is malicious (before the
/// bias), or `None` while it has too few examples. Naive Bayes over the features present,
/// each feature's evidence capped.
fn learned_log_odds(patterns: &Patterns<ShellPattern>, features: &[String]) -> Option<f64> {
    let (h_total, m_total) = labels(patterns, TOTALS_KEY)?;
    if h_total + m_total < MIN_EXAMPLES || h_total == 0 || m_total == 0 {
        return None;
    }
    let (h_total, m_total) = (h_total as f64, m_total as f64);
    let mut sum = 0.0;
    for f in features {
        if let Some((h, m)) = labels(patterns, &feature_key(f)) {
            let e = ((m as f64 + 0.5) / (m_total + 1.0)).ln()
                - ((h as f64 + 0.5) / (h_total + 1.0)).ln();
            sum += e.clamp(-FEATURE_CAP, FEATURE_CAP);
        }
    }
    Some(sum)
}

fn finding(f: &super::safety::Finding) -> SafetyFinding {
    SafetyFinding {
        rule: f.rule.to_string(),
        severity: f.severity.as_str().to_string(),
        message: f.message.clone(),
        span: [f.span.0, f.span.1],
    }
}

/// Judges a command: the rules, the learned model, and exact labels given before. Also says
/// whether ShellCheck should lint it.
fn judge(
    patterns: &Patterns<ShellPattern>,
    command: &str,
    shellcheck: Option<bool>,
) -> (CheckResponse, bool) {
    use super::safety::{self, Severity};
    let (script, mut found) = safety::check_rules(command);
    found.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.span.cmp(&b.span)));
    let mut risk = safety::risk(&found);
    let safer = safety::safer_alternative(&found, &script);
    let mut findings: Vec<SafetyFinding> = found.iter().map(finding).collect();
    let features = safety::features(&script, &found);
    if let Some(odds) = learned_log_odds(patterns, &features) {
        let p = 1.0 / (1.0 + (LEARNED_BIAS - odds).exp());
        if p >= 0.5 {
            let severity = if p >= 0.9 {
                Severity::High
            } else {
                Severity::Medium
            };
            findings.push(SafetyFinding {
                rule: "learned".into(),
                severity: severity.as_str().into(),
                message: format!(
                    "resembles commands labelled malicious through shell_feedback \
                     (probability {p:.2})"
                ),
                span: [0, command.len()],
            });
        }
        // The learned evidence counts as one more independent finding, weighted by how sure
        // the model is.
        risk = 1.0 - (1.0 - risk) * (1.0 - 0.9 * p);
    }
    if let Some((h, m)) = labels(patterns, &exact_key(command)) {
        if m > h {
            risk = risk.max(Severity::Critical.weight());
            findings.insert(
                0,
                SafetyFinding {
                    rule: "feedback".into(),
                    severity: Severity::Critical.as_str().into(),
                    message: format!(
                        "this exact command was labelled malicious ({m} of {} times)",
                        h + m
                    ),
                    span: [0, command.len()],
                },
            );
        } else if h > m {
            risk = risk.min(safety::WARN_AT / 2.0);
            findings.insert(0, SafetyFinding {
                rule: "feedback".into(),
                severity: Severity::Info.as_str().into(),
                message: format!(
                    "this exact command was labelled harmless ({h} of {} times), which overrides \
                     the rules",
                    h + m
                ),
                span: [0, command.len()],
            });
        }
    }
    let lint = shellcheck.unwrap_or(script.lines > 1 || command.starts_with("#!"));
    let risk = (risk * 1e4).round() / 1e4;
    (
        CheckResponse {
            verdict: safety::verdict(risk).to_string(),
            risk,
            findings,
            safer_alternative: safer,
            notes: Vec::new(),
        },
        lint,
    )
}

impl ShellModel {
    fn feedback(
        &mut self,
        cx: &mut Cx<'_, ShellPattern>,
        req: FeedbackRequest,
    ) -> Result<FeedbackResponse, LearnError> {
        check_input(&req.command)?;
        let malicious = match req.label.as_str() {
            "malicious" => true,
            "harmless" => false,
            other => {
                return Err(LearnError::BadInput(format!(
                    "`label` is `{other}`: give `harmless` or `malicious`"
                )));
            }
        };
        if let Some(c) = &req.category
            && (c.len() > 64 || c.contains('\0'))
        {
            return Err(LearnError::BadInput(
                "`category` must be at most 64 bytes without NUL characters".into(),
            ));
        }
        // Judge it before learning it: the model's running accuracy.
        let (before, _) = judge(cx.patterns, &req.command, Some(false));
        self.safety_trials += 1;
        self.safety_hits += u64::from((before.verdict != "allow") == malicious);
        let (script, found) = super::safety::check_rules(&req.command);
        let features = super::safety::features(&script, &found);
        let (instance, clock) = (cx.instance, cx.clock);
        let category = req.category.clone();
        let learn = |p: &mut ShellPattern| {
            if let ShellPattern::Labels(l) = p {
                if malicious {
                    l.malicious.add(instance, 1);
                    if category.is_some() && category > l.category {
                        l.category = category.clone();
                    }
                } else {
                    l.harmless.add(instance, 1);
                }
                l.last_seen = l.last_seen.max(clock);
            }
        };
        let new = || ShellPattern::Labels(Labels::default());
        cx.patterns.update(TOTALS_KEY, new, learn);
        cx.patterns.update(&exact_key(&req.command), new, learn);
        for f in &features {
            cx.patterns.update(&feature_key(f), new, learn);
        }
        let (harmless, malicious) = labels(cx.patterns, TOTALS_KEY).unwrap_or_default();
        let (answer, _) = judge(cx.patterns, &req.command, Some(false));
        Ok(FeedbackResponse {
            harmless,
            malicious,
            verdict: answer.verdict,
            risk: answer.risk,
        })
    }
}

impl Model for ShellModel {
    const NAME: &'static str = "shell";
    type Pattern = ShellPattern;
    type Observation = ObserveRequest;
    type Msg = ShellMsg;
    type Detail = ensemble_protocol::learning::NoDetail;

    fn open(_patterns: &Patterns<ShellPattern>, _instance: InstanceId) -> Self {
        Self::default()
    }

    fn observe(
        &mut self,
        cx: &mut Cx<'_, ShellPattern>,
        obs: ObserveRequest,
    ) -> Result<(u64, Self::Detail), LearnError> {
        check_user(&obs.user)?;
        check_unicode("user", &obs.user)?;
        check_unicode("command", &obs.command)?;
        if obs.command.len() > MAX_COMMAND_BYTES {
            return Err(LearnError::BadInput(format!(
                "`command` is {} bytes; the shell learner takes commands up to {MAX_COMMAND_BYTES} bytes",
                obs.command.len()
            )));
        }
        let Some(command) = token(&obs.command) else {
            if obs.command.trim().is_empty() {
                return Err(LearnError::BadInput(
                    "`command` is empty: give the command line as typed".into(),
                ));
            }
            // Too long to suggest again: acknowledged, not learned.
            return Ok((1, Default::default()));
        };
        // Judge the suggestion this observation answers before learning from it.
        if !Self::recent(cx.patterns, &obs.user).is_empty() {
            let first = Self::suggest(cx.patterns, &obs.user, None, 1);
            if let Some(s) = first.first() {
                self.trials += 1;
                if s.command == command {
                    self.hits += 1;
                }
            }
        }
        Self::learn(cx, &obs.user, command);
        Ok((1, Default::default()))
    }

    fn handle(&mut self, cx: &mut Cx<'_, ShellPattern>, msg: ShellMsg) {
        match msg {
            ShellMsg::Check(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                match check_input(&req.command) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) => {
                        let (answer, lint) = judge(cx.patterns, &req.command, req.shellcheck);
                        if lint {
                            super::safety::shellcheck::complete(req.command, answer, reply);
                        } else {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                }
            }
            ShellMsg::Feedback(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                let _ = reply.send(self.feedback(cx, req));
            }
            ShellMsg::Suggest(req, cancel, reply) => {
                if cancel.is_cancelled() {
                    return;
                }
                let answer = check_user(&req.user).map(|()| {
                    let limit = req.limit.unwrap_or(5).clamp(1, 50) as usize;
                    SuggestResponse {
                        suggestions: Self::suggest(
                            cx.patterns,
                            &req.user,
                            req.prefix.as_deref(),
                            limit,
                        ),
                    }
                });
                let _ = reply.send(answer);
            }
        }
    }

    /// A user's recent commands are the context of their next one, and the safety totals
    /// scale every feature: never evicted.
    fn keep(key: &[u8]) -> bool {
        key.first() == Some(&b'r') || key == TOTALS_KEY
    }

    fn accuracy(&self) -> Option<f64> {
        (self.trials > 0).then(|| self.hits as f64 / self.trials as f64)
    }

    fn task_accuracies(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        if let Some(a) = self.accuracy() {
            out.push(("next_command", a));
        }
        if self.safety_trials > 0 {
            out.push((
                "safety",
                self.safety_hits as f64 / self.safety_trials as f64,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels() -> impl Strategy<Value = ShellPattern> {
        (
            proptest::collection::vec((1u64..4, 0u64..5, 0u64..5), 0..5),
            proptest::option::of("[a-c]{1,2}"),
            0u64..10,
        )
            .prop_map(|(adds, category, last_seen)| {
                let mut l = Labels {
                    category,
                    last_seen,
                    ..Labels::default()
                };
                for (instance, h, m) in adds {
                    l.harmless.add(instance, h);
                    l.malicious.add(instance, m);
                }
                ShellPattern::Labels(l)
            })
    }

    proptest! {
        /// Merging labels from other instances is commutative and idempotent, as the learning
        /// core's sharing needs.
        #[test]
        fn labels_merge_commutatively_and_idempotently(a in labels(), b in labels()) {
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            let mut twice = ab.clone();
            prop_assert!(!twice.merge(&b));
            prop_assert_eq!(&twice, &ab);
        }
    }
}
