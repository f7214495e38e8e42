//! Who may call what: roles that allow and deny tool, resource and prompt patterns.
//!
//! The decision is deny by default, and an explicit deny wins: a name is allowed when one of
//! the caller's roles allows it and none of them denies it. Patterns are globs, compiled once
//! into one automaton per role, list and kind (`*` any run of characters, `/` included; `?` one
//! character; `[ab]` a class; `{a,b}` alternatives; case-sensitive). Decisions are cached per
//! role set and name, so the cost per call is a hash lookup once a name has been decided.
//!
//! ```
//! use ensemble_actors::governance::policy::{Kind, Known, Policy, RoleSpec};
//!
//! let roles = vec![RoleSpec {
//!     name: "reader".into(),
//!     tools: vec!["registry_*".into()],
//!     deny_tools: vec!["registry_delete".into()],
//!     ..RoleSpec::default()
//! }];
//! let known = Known::tools(["registry_get", "registry_delete", "task_submit"]);
//! let policy = Policy::compile(&roles, &known).unwrap();
//! let reader = policy.role_set(["reader"]).unwrap();
//! assert!(policy.decide(&reader, Kind::Tool, "registry_get").allowed);
//! assert!(!policy.decide(&reader, Kind::Tool, "registry_delete").allowed);
//! assert!(!policy.decide(&reader, Kind::Tool, "task_submit").allowed);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// What a name is: a tool, a resource URI or a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A tool name (`tools/call`, `tools/list`).
    Tool,
    /// A resource URI (`resources/read`, `resources/list`).
    Resource,
    /// A prompt name (`prompts/get`, `prompts/list`).
    Prompt,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Tool, Kind::Resource, Kind::Prompt];

    fn index(self) -> usize {
        match self {
            Kind::Tool => 0,
            Kind::Resource => 1,
            Kind::Prompt => 2,
        }
    }

    /// The configuration key of its allow list (`tools`, `resources`, `prompts`).
    pub fn key(self) -> &'static str {
        ["tools", "resources", "prompts"][self.index()]
    }
}

/// One role as configured: the patterns it allows and denies, per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSpec {
    /// Its name, which bindings refer to.
    pub name: String,
    /// Tool names it allows.
    pub tools: Vec<String>,
    /// Tool names it denies (over any role's allow).
    pub deny_tools: Vec<String>,
    /// Resource URIs it allows (templates' URIs included).
    pub resources: Vec<String>,
    /// Resource URIs it denies.
    pub deny_resources: Vec<String>,
    /// Prompt names it allows.
    pub prompts: Vec<String>,
    /// Prompt names it denies.
    pub deny_prompts: Vec<String>,
    /// Rate limits on the calls of its holders, each identity on its own.
    pub rate_limits: Vec<RateSpec>,
}

/// A role's rate limit: calls of the tools matching `tools`, per identity, at most `count` per
/// period (GCRA: evenly spread, with bursts up to `burst`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateSpec {
    /// The tools it applies to (a glob, like the role's own patterns).
    pub tools: String,
    /// Calls per second...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// ... or per minute...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// ... or per hour (exactly one of the three).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    /// Calls that may come at once after a quiet spell (default: the count per period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateSpec {
    /// `(count, window in seconds)`, if exactly one period is set and its count is positive.
    pub fn quota(&self) -> Option<(u32, u64)> {
        match (self.per_second, self.per_minute, self.per_hour) {
            (Some(n), None, None) if n > 0 => Some((n, 1)),
            (None, Some(n), None) if n > 0 => Some((n, 60)),
            (None, None, Some(n)) if n > 0 => Some((n, 3600)),
            _ => None,
        }
    }
}

/// One rate limit of the policy: the role's index and the limit's index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitId {
    /// The role, by position.
    pub role: u16,
    /// The limit, by position in the role's `rate_limits`.
    pub index: u16,
}

impl RoleSpec {
    fn lists(&self, kind: Kind) -> (&[String], &[String]) {
        match kind {
            Kind::Tool => (&self.tools, &self.deny_tools),
            Kind::Resource => (&self.resources, &self.deny_resources),
            Kind::Prompt => (&self.prompts, &self.deny_prompts),
        }
    }
}

/// The names a policy is checked against at load: a pattern that matches none of them is
/// reported (it is almost always a typo). An empty list is not checked.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Every tool name.
    pub tools: Vec<String>,
    /// Every prompt name.
    pub prompts: Vec<String>,
    /// URI schemes resources are served under (`ensemble`); resource patterns must start with
    /// one of them (templates make "matches nothing" undecidable for URIs).
    pub resource_schemes: Vec<String>,
}

impl Known {
    /// Only these tools (no prompts, resources under `ensemble://`).
    pub fn tools<I: IntoIterator<Item = S>, S: Into<String>>(tools: I) -> Self {
        Self {
            tools: tools.into_iter().map(Into::into).collect(),
            prompts: Vec::new(),
            resource_schemes: vec!["ensemble".into()],
        }
    }
}

/// What is wrong with a role, found when the policy is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Where: `roles[2].deny_tools` (0-based, as in the file's order).
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A role's deny pattern matched.
    Deny {
        /// The role.
        role: Arc<str>,
        /// The pattern, as written.
        pattern: Arc<str>,
    },
    /// A role's allow pattern matched and no deny did.
    Allow {
        /// The role.
        role: Arc<str>,
        /// The pattern, as written.
        pattern: Arc<str>,
    },
    /// No role allows it: deny by default.
    Default,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Deny { role, pattern } => write!(f, "role {role}: deny {pattern}"),
            Rule::Allow { role, pattern } => write!(f, "role {role}: allow {pattern}"),
            Rule::Default => f.write_str("default deny"),
        }
    }
}

/// A decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the name may be used.
    pub allowed: bool,
    /// Why.
    pub rule: Rule,
    /// The rate limits a call of it counts against (tools only; empty when denied).
    pub limits: Arc<[LimitId]>,
}

/// A caller's roles, resolved against one policy (see [`Policy::role_set`]). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet {
    /// Interned: equal role sets have equal ids, which key the decision cache.
    id: u32,
    roles: Arc<[u16]>,
}

impl RoleSet {
    /// Whether it holds no role at all (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

/// One role's patterns for one kind.
struct Lists {
    allow: GlobSet,
    allow_text: Vec<Arc<str>>,
    deny: GlobSet,
    deny_text: Vec<Arc<str>>,
}

struct CompiledRole {
    name: Arc<str>,
    kinds: [Lists; 3],
    limits: Vec<globset::GlobMatcher>,
}

/// Decisions made so far, per role set, kind and name. Bounded: cleared past
/// [`Policy::CACHE_LIMIT`] names (a new name costs one uncached decision).
#[derive(Default)]
struct Cache {
    map: HashMap<(u32, Kind), HashMap<Box<str>, Decision>>,
    len: usize,
}

/// A compiled policy. Share it behind an `Arc`; every method takes `&self`.
pub struct Policy {
    roles: Vec<CompiledRole>,
    rates: Vec<(LimitId, RateSpec)>,
    by_name: HashMap<String, u16>,
    interned: Mutex<HashMap<Arc<[u16]>, u32>>,
    cache: RwLock<Cache>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("roles", &self.by_name.len())
            .finish()
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

impl Policy {
    /// Decisions kept before the cache starts over.
    pub const CACHE_LIMIT: usize = 65_536;

    /// Compiles the roles, checking every pattern; all problems are returned at once.
    pub fn compile(roles: &[RoleSpec], known: &Known) -> Result<Self, Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        let mut compiled = Vec::with_capacity(roles.len());
        let mut by_name = HashMap::new();
        for (i, spec) in roles.iter().enumerate() {
            let at = |field: &str| format!("roles[{i}].{field}");
            if spec.name.trim().is_empty() {
                problems.push(PolicyProblem {
                    key: at("name"),
                    message: "a role needs a name (bindings refer to it)".into(),
                });
            } else if by_name.contains_key(&spec.name) {
                problems.push(PolicyProblem {
                    key: at("name"),
                    message: format!("role `{}` is defined twice; merge the two", spec.name),
                });
            }
            if by_name.len() >= usize::from(u16::MAX) {
                problems.push(PolicyProblem {
                    key: at("name"),
                    message: "more than 65,535 roles".into(),
                });
                break;
            }
            let kinds = Kind::ALL.map(|kind| {
                let (allow, deny) = spec.lists(kind);
                let (allow, allow_text) =
                    Self::list(allow, kind, known, &at(kind.key()), &mut problems);
                let deny_key = at(&format!("deny_{}", kind.key()));
                let (deny, deny_text) = Self::list(deny, kind, known, &deny_key, &mut problems);
                Lists {
                    allow,
                    allow_text,
                    deny,
                    deny_text,
                }
            });
            let mut limits = Vec::new();
            for (j, rate) in spec.rate_limits.iter().enumerate() {
                let key = at(&format!("rate_limits[{j}]"));
                if rate.quota().is_none() {
                    problems.push(PolicyProblem {
                        key: key.clone(),
                        message: "set exactly one of per_second, per_minute or per_hour, to a \
                                  count of 1 or more"
                            .into(),
                    });
                }
                if rate.burst == Some(0) {
                    problems.push(PolicyProblem {
                        key: format!("{key}.burst"),
                        message: "a burst of 0 would refuse every call; use 1 or more".into(),
                    });
                }
                match glob(&rate.tools) {
                    Ok(g) => {
                        if let Some(message) =
                            Self::matches_nothing(&g, &rate.tools, Kind::Tool, known)
                        {
                            problems.push(PolicyProblem {
                                key: format!("{key}.tools"),
                                message,
                            });
                        }
                        limits.push(g.compile_matcher());
                    }
                    Err(e) => problems.push(PolicyProblem {
                        key: format!("{key}.tools"),
                        message: format!("{:?} is not a valid pattern ({})", rate.tools, e.kind()),
                    }),
                }
            }
            by_name
                .entry(spec.name.clone())
                .or_insert(compiled.len() as u16);
            compiled.push(CompiledRole {
                name: spec.name.as_str().into(),
                kinds,
                limits,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let rates = roles
            .iter()
            .enumerate()
            .flat_map(|(r, spec)| {
                spec.rate_limits.iter().enumerate().map(move |(i, rate)| {
                    (
                        LimitId {
                            role: r as u16,
                            index: i as u16,
                        },
                        rate.clone(),
                    )
                })
            })
            .collect();
        Ok(Self {
            roles: compiled,
            rates,
            by_name,
            interned: Mutex::new(HashMap::new()),
            cache: RwLock::new(Cache::default()),
        })
    }

    fn list(
        patterns: &[String],
        kind: Kind,
        known: &Known,
        key: &str,
        problems: &mut Vec<PolicyProblem>,
    ) -> (GlobSet, Vec<Arc<str>>) {
        let mut set = GlobSetBuilder::new();
        let mut text = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let g = match glob(pattern) {
                Ok(g) => g,
                Err(e) => {
                    problems.push(PolicyProblem {
                        key: key.to_string(),
                        message: format!(
                            "{pattern:?} is not a valid pattern ({}); use * for any run of \
                             characters, ? for one, [ab] or {{a,b}} for alternatives",
                            e.kind()
                        ),
                    });
                    continue;
                }
            };
            if let Some(message) = Self::matches_nothing(&g, pattern, kind, known) {
                problems.push(PolicyProblem {
                    key: key.to_string(),
                    message,
                });
            }
            set.add(g);
            text.push(pattern.as_str().into());
        }
        let set = set.build().unwrap_or_else(|_| GlobSet::empty());
        (set, text)
    }

    fn matches_nothing(g: &Glob, pattern: &str, kind: Kind, known: &Known) -> Option<String> {
        let names = match kind {
            Kind::Tool => &known.tools,
            Kind::Prompt => &known.prompts,
            Kind::Resource => {
                let scheme_ok = known.resource_schemes.iter().any(|s| {
                    pattern
                        .strip_prefix(s.as_str())
                        .is_some_and(|rest| rest.starts_with("://"))
                }) || pattern.starts_with('*');
                return (!scheme_ok).then(|| {
                    let schemes: Vec<String> = known
                        .resource_schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect();
                    format!(
                        "{pattern:?} matches no resource: URIs start with {}",
                        schemes.join(" or ")
                    )
                });
            }
        };
        let m = g.compile_matcher();
        // No names known (prompts at load, before the runtime exists): nothing to check against.
        if names.is_empty() || names.iter().any(|n| m.is_match(n.as_str())) {
            return None;
        }
        let what = if kind == Kind::Tool { "tool" } else { "prompt" };
        let near = names
            .iter()
            .map(|n| (strsim_like(pattern, n), n))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        Some(format!("{pattern:?} matches no {what}{near}"))
    }

    /// Every rate limit of every role.
    pub fn rate_limits(&self) -> &[(LimitId, RateSpec)] {
        &self.rates
    }

    /// A limit's name for headers and errors: `ROLE/INDEX`.
    pub fn limit_name(&self, id: LimitId) -> String {
        let role = self
            .roles
            .get(usize::from(id.role))
            .map_or("?", |r| &*r.name);
        format!("{role}/{}", id.index)
    }

    /// The names of the roles, in the order they were configured.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| &*r.name)
    }

    /// The names of the roles in `roles`.
    pub fn role_names_of(&self, roles: &RoleSet) -> Vec<String> {
        roles
            .roles
            .iter()
            .filter_map(|&i| self.roles.get(usize::from(i)))
            .map(|r| r.name.to_string())
            .collect()
    }

    /// Whether a role of this name exists.
    pub fn has_role(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The role set of a caller holding these roles; `Err` names a role that does not exist.
    pub fn role_set<I, S>(&self, names: I) -> Result<RoleSet, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut roles = Vec::new();
        for name in names {
            let name = name.as_ref();
            match self.by_name.get(name) {
                Some(i) => roles.push(*i),
                None => return Err(name.to_string()),
            }
        }
        roles.sort_unstable();
        roles.dedup();
        let roles: Arc<[u16]> = roles.into();
        let mut interned = self.interned.lock().unwrap_or_else(|p| p.into_inner());
        let next = interned.len() as u32;
        let id = *interned.entry(roles.clone()).or_insert(next);
        Ok(RoleSet { id, roles })
    }

    /// Whether `roles` may use `name`, and the rule that decided (cached).
    pub fn decide(&self, roles: &RoleSet, kind: Kind, name: &str) -> Decision {
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = cache.map.get(&(roles.id, kind)).and_then(|m| m.get(name)) {
                return d.clone();
            }
        }
        let decision = self.decide_uncached(roles, kind, name);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len >= Self::CACHE_LIMIT {
            *cache = Cache::default();
        }
        let inner = cache.map.entry((roles.id, kind)).or_default();
        if inner.insert(name.into(), decision.clone()).is_none() {
            cache.len += 1;
        }
        decision
    }

    /// The decision without the cache (what [`decide`](Self::decide) caches).
    pub fn decide_uncached(&self, roles: &RoleSet, kind: Kind, name: &str) -> Decision {
        let mut allow = None;
        for &i in roles.roles.iter() {
            let role = &self.roles[usize::from(i)];
            let lists = &role.kinds[kind.index()];
            if let Some(&p) = lists.deny.matches(name).first() {
                return Decision {
                    allowed: false,
                    rule: Rule::Deny {
                        role: role.name.clone(),
                        pattern: lists.deny_text[p].clone(),
                    },
                    limits: Arc::from(Vec::new()),
                };
            }
            if allow.is_none()
                && let Some(&p) = lists.allow.matches(name).first()
            {
                allow = Some(Rule::Allow {
                    role: role.name.clone(),
                    pattern: lists.allow_text[p].clone(),
                });
            }
        }
        match allow {
            Some(rule) => {
                let mut limits = Vec::new();
                if kind == Kind::Tool {
                    for &i in roles.roles.iter() {
                        for (j, m) in self.roles[usize::from(i)].limits.iter().enumerate() {
                            if m.is_match(name) {
                                limits.push(LimitId {
                                    role: i,
                                    index: j as u16,
                                });
                            }
                        }
                    }
                }
                Decision {
                    allowed: true,
                    rule,
                    limits: limits.into(),
                }
            }
            None => Decision {
                allowed: false,
                rule: Rule::Default,
                limits: Arc::from(Vec::new()),
            },
        }
    }
}

/// Edit distance (for "did you mean"), small strings only.
fn strsim_like(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn role(name: &str, tools: &[&str], deny: &[&str]) -> RoleSpec {
        RoleSpec {
            name: name.into(),
            tools: tools.iter().map(|s| s.to_string()).collect(),
            deny_tools: deny.iter().map(|s| s.to_string()).collect(),
            ..RoleSpec::default()
        }
    }

    const TOOLS: &[&str] = &[
        "registry_get",
        "registry_put",
        "registry_delete",
        "task_submit",
        "task_cancel",
        "workflow_run",
    ];

    #[test]
    fn every_problem_is_reported_at_once() {
        let roles = vec![
            role("a", &["regsitry_get", "task_*"], &["[bad"]),
            role("a", &[], &[]),
            RoleSpec {
                name: "".into(),
                resources: vec!["http://x/*".into()],
                ..RoleSpec::default()
            },
        ];
        let problems = Policy::compile(&roles, &Known::tools(TOOLS.iter().copied())).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "`roles[0].tools`: \"regsitry_get\" matches no tool (did you mean `registry_get`?)",
                "`roles[0].deny_tools`: \"[bad\" is not a valid pattern (unclosed character class; missing ']'); use * for any run of characters, ? for one, [ab] or {a,b} for alternatives",
                "`roles[1].name`: role `a` is defined twice; merge the two",
                "`roles[2].name`: a role needs a name (bindings refer to it)",
                "`roles[2].resources`: \"http://x/*\" matches no resource: URIs start with ensemble://",
            ]
        );
    }

    #[test]
    fn the_rule_that_decided_is_named() {
        let roles = vec![
            role("dev", &["registry_*", "task_*"], &[]),
            role("safe", &[], &["*_delete"]),
        ];
        let p = Policy::compile(&roles, &Known::tools(TOOLS.iter().copied())).unwrap();
        let both = p.role_set(["dev", "safe"]).unwrap();
        let d = p.decide(&both, Kind::Tool, "registry_delete");
        assert!(!d.allowed);
        assert_eq!(d.rule.to_string(), "role safe: deny *_delete");
        let d = p.decide(&both, Kind::Tool, "registry_get");
        assert_eq!(d.rule.to_string(), "role dev: allow registry_*");
        assert_eq!(
            p.decide(&both, Kind::Tool, "workflow_run").rule,
            Rule::Default
        );
        // The same set in another order is the same set (and the same cache entries).
        assert_eq!(p.role_set(["safe", "dev", "dev"]).unwrap(), both);
        assert_eq!(p.role_set(["dev", "ops"]).unwrap_err(), "ops");
        // Kinds are separate: a tool pattern says nothing about prompts.
        assert!(!p.decide(&both, Kind::Prompt, "registry_get").allowed);
    }

    #[test]
    fn resource_patterns_cross_slashes() {
        let roles = vec![RoleSpec {
            name: "r".into(),
            resources: vec!["ensemble://artifacts/*".into()],
            deny_resources: vec!["ensemble://artifacts/secret/*".into()],
            ..RoleSpec::default()
        }];
        let p = Policy::compile(&roles, &Known::tools(TOOLS.iter().copied())).unwrap();
        let r = p.role_set(["r"]).unwrap();
        assert!(
            p.decide(&r, Kind::Resource, "ensemble://artifacts/web/cfg/1.0.0")
                .allowed
        );
        assert!(
            !p.decide(&r, Kind::Resource, "ensemble://artifacts/secret/k/1")
                .allowed
        );
        assert!(!p.decide(&r, Kind::Resource, "ensemble://runs/1").allowed);
    }

    /// A name from a small alphabet, so that random patterns often match it.
    fn name() -> impl Strategy<Value = String> {
        "[ab_]{1,6}"
    }

    /// A glob over the same alphabet, with `*` and `?`.
    fn pattern() -> impl Strategy<Value = String> {
        "[ab_*?]{1,5}"
    }

    /// A brute-force glob matcher over `*` and `?` (the reference for the automaton).
    fn reference_match(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                reference_match(&p[1..], n) || (!n.is_empty() && reference_match(p, &n[1..]))
            }
            (Some(b'?'), Some(_)) => reference_match(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => reference_match(&p[1..], &n[1..]),
            _ => false,
        }
    }

    fn spec() -> impl Strategy<Value = Vec<(Vec<String>, Vec<String>)>> {
        proptest::collection::vec(
            (
                proptest::collection::vec(pattern(), 0..4),
                proptest::collection::vec(pattern(), 0..3),
            ),
            1..5,
        )
    }

    fn compile(spec: &[(Vec<String>, Vec<String>)]) -> Policy {
        let roles: Vec<RoleSpec> = spec
            .iter()
            .enumerate()
            .map(|(i, (allow, deny))| RoleSpec {
                name: format!("r{i}"),
                tools: allow.clone(),
                deny_tools: deny.clone(),
                ..RoleSpec::default()
            })
            .collect();
        // Every pattern matches its own text, so none is reported as matching nothing.
        let known = Known {
            tools: spec
                .iter()
                .flat_map(|(a, d)| a.iter().chain(d))
                .cloned()
                .collect(),
            ..Known::default()
        };
        match Policy::compile(&roles, &known) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        }
    }

    proptest! {
        /// The decision is exactly "some role allows it and no role denies it", with globs
        /// matching as a brute-force matcher says, cached or not.
        #[test]
        fn deny_wins_and_default_is_deny(spec in spec(), names in proptest::collection::vec(name(), 1..8)) {
            let policy = compile(&spec);
            let all: Vec<String> = (0..spec.len()).map(|i| format!("r{i}")).collect();
            let set = policy.role_set(&all).unwrap();
            for n in &names {
                let denied = spec.iter().any(|(_, d)| d.iter().any(|p| reference_match(p.as_bytes(), n.as_bytes())));
                let allowed = spec.iter().any(|(a, _)| a.iter().any(|p| reference_match(p.as_bytes(), n.as_bytes())));
                let expect = allowed && !denied;
                let d = policy.decide(&set, Kind::Tool, n);
                prop_assert_eq!(d.allowed, expect, "{} under {:?}: {}", n, spec, d.rule);
                prop_assert_eq!(policy.decide(&set, Kind::Tool, n), d.clone());
                prop_assert_eq!(policy.decide_uncached(&set, Kind::Tool, n), d.clone());
                match &d.rule {
                    Rule::Deny { pattern, .. } => prop_assert!(reference_match(pattern.as_bytes(), n.as_bytes())),
                    Rule::Allow { pattern, .. } => prop_assert!(reference_match(pattern.as_bytes(), n.as_bytes())),
                    Rule::Default => prop_assert!(!allowed),
                }
            }
        }

        /// Adding a role never turns a deny into an allow when that role only denies, and
        /// an empty role set allows nothing.
        #[test]
        fn more_denies_never_allow_more(spec in spec(), names in proptest::collection::vec(name(), 1..8)) {
            let policy = compile(&spec);
            let none = policy.role_set(Vec::<String>::new()).unwrap();
            for n in &names {
                prop_assert!(!policy.decide(&none, Kind::Tool, n).allowed);
                for i in 0..spec.len() {
                    let one = policy.role_set([format!("r{i}")]).unwrap();
                    let all: Vec<String> = (0..spec.len()).map(|j| format!("r{j}")).collect();
                    let every = policy.role_set(&all).unwrap();
                    // Deny wins: if any single role denies, the union denies.
                    let single = policy.decide(&one, Kind::Tool, n);
                    if matches!(single.rule, Rule::Deny { .. }) {
                        prop_assert!(!policy.decide(&every, Kind::Tool, n).allowed);
                    }
                }
            }
        }
    }
}
