//! Workflow definitions (DAGs of tool calls): their shape, validation, and the substitution of
//! `${params.x}` and `${steps.<id>.output.<path>}` references in step arguments.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow: steps, each a tool call, ordered by `depends_on` edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The steps.
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the workflow: letters, digits, `_` and `-`.
    pub id: String,
    /// The tool to call.
    pub tool: String,
    /// The tool's arguments; strings may reference `${params.x}` and
    /// `${steps.<id>.output.<path>}` (a string that is only a reference keeps the JSON type).
    #[serde(default)]
    pub arguments: Value,
    /// Steps that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Retries of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<StepRetry>,
    /// Deadline of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When this step fails, its dependents still run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

/// A step's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRetry {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry, doubling after each.
    #[serde(default)]
    pub backoff_ms: u64,
}

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Two steps share an id.
    DuplicateId {
        /// The id.
        id: String,
    },
    /// A step id breaks the naming rule.
    InvalidId {
        /// The id.
        id: String,
    },
    /// A step calls a tool that does not exist.
    UnknownTool {
        /// The step.
        step: String,
        /// The tool.
        tool: String,
    },
    /// `depends_on` names a step that does not exist.
    UnknownDependency {
        /// The step.
        step: String,
        /// The missing step.
        depends_on: String,
    },
    /// An argument references a step that does not exist, or one it does not depend on
    /// (directly or transitively), so its output may not exist yet.
    UnknownReference {
        /// The step.
        step: String,
        /// The reference as written.
        reference: String,
        /// Why it cannot resolve.
        reason: String,
    },
    /// Steps that depend on each other in a cycle, in cycle order.
    Cycle {
        /// The member steps.
        steps: Vec<String>,
    },
    /// More steps than a definition may have ([`MAX_STEPS`]); nothing else is checked.
    TooManySteps {
        /// The definition's steps.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// The most steps a definition may have (as many as a template may expand to).
pub const MAX_STEPS: usize = crate::template::MAX_STEPS;

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::DuplicateId { id } => write!(f, "step id `{id}` is used more than once"),
            Problem::InvalidId { id } => {
                write!(f, "step id {id:?} must be 1–64 letters, digits, '_' or '-'")
            }
            Problem::UnknownTool { step, tool } => {
                write!(f, "step `{step}` calls unknown tool `{tool}`")
            }
            Problem::UnknownDependency { step, depends_on } => {
                write!(f, "step `{step}` depends on unknown step `{depends_on}`")
            }
            Problem::UnknownReference {
                step,
                reference,
                reason,
            } => write!(f, "step `{step}`: `{reference}` {reason}"),
            Problem::TooManySteps { count, limit } => write!(
                f,
                "the workflow has {count} steps, more than the {limit} a definition may have; \
                 split it into workflows that run one after another"
            ),
            Problem::Cycle { steps } => {
                write!(f, "steps form a cycle: {}", steps.join(" → "))?;
                if let Some(first) = steps.first() {
                    write!(f, " → {first}")?;
                }
                Ok(())
            }
        }
    }
}

/// A reference found in arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${params.<name>}`.
    Param(String),
    /// `${steps.<id>.output[.<path>]}`.
    StepOutput {
        /// The step.
        step: String,
        /// Field path inside the output (may be empty).
        path: Vec<String>,
    },
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses the body of a `${…}` reference.
pub fn parse_reference(body: &str) -> Result<Reference, String> {
    let mut parts = body.split('.');
    match parts.next() {
        Some("params") => match (parts.next(), parts.next()) {
            (Some(name), None) if !name.is_empty() => Ok(Reference::Param(name.to_string())),
            _ => Err("must be `${params.<name>}`".into()),
        },
        Some("steps") => {
            let step = parts.next().filter(|s| !s.is_empty());
            match (step, parts.next()) {
                (Some(step), Some("output")) => Ok(Reference::StepOutput {
                    step: step.to_string(),
                    path: parts.map(str::to_string).collect(),
                }),
                _ => Err("must be `${steps.<id>.output.<path>}`".into()),
            }
        }
        _ => Err("must start with `params.` or `steps.`".into()),
    }
}

/// Every `${…}` in `value`'s strings, with its text, in document order.
pub fn references(value: &Value) -> Vec<(String, Result<Reference, String>)> {
    let mut out = Vec::new();
    collect(value, &mut out);
    out
}

fn collect(value: &Value, out: &mut Vec<(String, Result<Reference, String>)>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        let body = &after[..end];
                        out.push((format!("${{{body}}}"), parse_reference(body)));
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push((rest[start..].to_string(), Err("has no closing `}`".into())));
                        break;
                    }
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// Checks a definition; returns every problem found (empty when it is valid). `params` are the
/// parameter names the run will have, `is_tool` says whether a tool exists.
pub fn validate(
    def: &Definition,
    params: &BTreeSet<String>,
    is_tool: impl Fn(&str) -> bool,
) -> Vec<Problem> {
    if def.steps.len() > MAX_STEPS {
        return vec![Problem::TooManySteps {
            count: def.steps.len(),
            limit: MAX_STEPS,
        }];
    }
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for s in &def.steps {
        if !valid_id(&s.id) {
            problems.push(Problem::InvalidId { id: s.id.clone() });
        }
        if !seen.insert(s.id.as_str()) {
            problems.push(Problem::DuplicateId { id: s.id.clone() });
        }
    }
    let ids: BTreeSet<&str> = def.steps.iter().map(|s| s.id.as_str()).collect();
    for s in &def.steps {
        if !is_tool(&s.tool) {
            problems.push(Problem::UnknownTool {
                step: s.id.clone(),
                tool: s.tool.clone(),
            });
        }
        for d in &s.depends_on {
            if !ids.contains(d.as_str()) {
                problems.push(Problem::UnknownDependency {
                    step: s.id.clone(),
                    depends_on: d.clone(),
                });
            }
        }
    }
    let cycles = cycles(def);
    let in_cycle: BTreeSet<&str> = cycles.iter().flatten().map(String::as_str).collect();
    for steps in &cycles {
        problems.push(Problem::Cycle {
            steps: steps.clone(),
        });
    }
    let mut ancestry: Option<Ancestry> = None;
    for s in &def.steps {
        let refs = references(&s.arguments);
        for (text, parsed) in refs {
            let reason = match parsed {
                Err(e) => Some(e),
                Ok(Reference::Param(name)) if !params.contains(&name) => Some(format!(
                    "names parameter `{name}`, which this run does not have"
                )),
                Ok(Reference::StepOutput { step, .. }) if !ids.contains(step.as_str()) => {
                    Some(format!("names step `{step}`, which does not exist"))
                }
                Ok(Reference::StepOutput { step, .. })
                    if !in_cycle.contains(s.id.as_str())
                        && !s.depends_on.contains(&step)
                        && !ancestry
                            .get_or_insert_with(|| Ancestry::of(def))
                            .depends_on(&s.id, &step) =>
                {
                    Some(format!(
                        "uses the output of `{step}`, which `{}` does not depend on; add it to depends_on",
                        s.id
                    ))
                }
                Ok(_) => None,
            };
            if let Some(reason) = reason {
                problems.push(Problem::UnknownReference {
                    step: s.id.clone(),
                    reference: text,
                    reason,
                });
            }
        }
    }
    problems
}

/// Which steps each step depends on, transitively: a bit set per step, built once in
/// dependency order when a reference is not to a direct dependency. A walk of the ancestors per
/// reference would make validating a long chain whose steps all use the first one's output
/// quadratic in steps (50 million set insertions for 10,000 steps); the sets cost n²/8 bytes
/// (12.5 MB at [`MAX_STEPS`]) and n²/64 word operations.
struct Ancestry<'a> {
    index: HashMap<&'a str, usize>,
    /// Words per step.
    words: usize,
    bits: Vec<u64>,
    /// Steps whose set is complete (not on or after a cycle).
    done: Vec<bool>,
}

impl<'a> Ancestry<'a> {
    fn of(def: &'a Definition) -> Self {
        let n = def.steps.len();
        let (index, deps) = dependency_edges(def);
        // Kahn's order: a step once all its dependencies are done. Steps on a cycle, and
        // after one, never come: their sets would be partial (see `depends_on`).
        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; n * words];
        let mut done = vec![false; n];
        while let Some(i) = ready.pop() {
            done[i] = true;
            for &d in &deps[i] {
                let (lo, hi) = (i.min(d), i.max(d));
                let (head, tail) = bits.split_at_mut(hi * words);
                let (own, theirs) = if i < d {
                    (&mut head[lo * words..(lo + 1) * words], &tail[..words])
                } else {
                    (&mut tail[..words], &head[lo * words..(lo + 1) * words])
                };
                own.iter_mut().zip(theirs).for_each(|(a, b)| *a |= b);
                own[d / 64] |= 1 << (d % 64);
            }
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
        Self {
            index,
            words,
            bits,
            done,
        }
    }

    /// Whether `id` depends on `target`, directly or transitively. A step on or after a
    /// cycle is taken to (its references are checked once the cycle, reported, is gone).
    fn depends_on(&self, id: &str, target: &str) -> bool {
        match (self.index.get(id), self.index.get(target)) {
            (Some(&i), Some(&t)) => {
                !self.done[i] || self.bits[i * self.words + t / 64] & (1 << (t % 64)) != 0
            }
            _ => false,
        }
    }
}

/// Every step `id` depends on, transitively.
pub fn ancestors<'a>(def: &'a Definition, id: &str) -> BTreeSet<&'a str> {
    let by_id: HashMap<&str, &Step> = def.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = BTreeSet::new();
    let mut stack: Vec<&str> = by_id
        .get(id)
        .map(|s| s.depends_on.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(d) = stack.pop() {
        if let Some(step) = by_id.get(d)
            && out.insert(step.id.as_str())
        {
            stack.extend(step.depends_on.iter().map(String::as_str));
        }
    }
    out
}

/// Each step's position by id, and each step's dependencies by position (unknown ones left
/// out).
fn dependency_edges(def: &Definition) -> (HashMap<&str, usize>, Vec<Vec<usize>>) {
    let index: HashMap<&str, usize> = def
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let edges = def
        .steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    (index, edges)
}

/// The elementary cycles' members (one cycle per strongly connected component with an edge
/// inside it), each in dependency order, sorted for stable output.
pub fn cycles(def: &Definition) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components over step → dependency edges.
    let (_, edges) = dependency_edges(def);
    let n = def.steps.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0usize, Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // Iterative DFS: (node, next edge to look at).
        let mut work = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut e)) = work.last_mut() {
            if *e < edges[v].len() {
                let w = edges[v][*e];
                *e += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let self_loop = component.len() == 1 && edges[v].contains(&v);
                    if component.len() > 1 || self_loop {
                        component.reverse();
                        out.push(
                            component
                                .into_iter()
                                .map(|i| def.steps[i].id.clone())
                                .collect::<Vec<_>>(),
                        );
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// Replaces references in `args`. A string that is exactly one reference becomes the referenced
/// JSON value (any type); references inside longer strings are spliced in as text.
pub fn substitute(
    args: &Value,
    params: &BTreeMap<String, Value>,
    outputs: &BTreeMap<String, Value>,
) -> Result<Value, String> {
    let resolve = |r: &Reference| -> Result<Value, String> {
        match r {
            Reference::Param(name) => params
                .get(name)
                .cloned()
                .ok_or_else(|| format!("parameter `{name}` has no value")),
            Reference::StepOutput { step, path } => {
                let mut v = outputs
                    .get(step)
                    .ok_or_else(|| format!("step `{step}` has no output"))?;
                for (i, field) in path.iter().enumerate() {
                    v = match v {
                        Value::Object(m) => m.get(field),
                        Value::Array(a) => field.parse::<usize>().ok().and_then(|i| a.get(i)),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        format!("the output of `{step}` has no `{}`", path[..=i].join("."))
                    })?;
                }
                Ok(v.clone())
            }
        }
    };
    match args {
        Value::String(s) => {
            if let Some(body) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && !body.contains("${")
                && !body.contains('}')
            {
                return resolve(&parse_reference(body)?);
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("`{}` has no closing `}}`", &rest[start..]))?;
                match resolve(&parse_reference(&after[..end])?)? {
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Ok(Value::String(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| substitute(v, params, outputs))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), substitute(v, params, outputs)?)))
            .collect::<Result<serde_json::Map<_, _>, String>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Definition {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_problem_is_reported_together() {
        let d = def(json!({"steps": [
            {"id": "a", "tool": "registry_get", "arguments": {"name": "${params.name}"}},
            {"id": "a", "tool": "nope_tool", "arguments": {}},
            {"id": "b", "tool": "registry_get", "depends_on": ["ghost"],
             "arguments": {"x": "${steps.c.output.v}", "y": "${params.missing}", "z": "${oops}"}},
            {"id": "c", "tool": "registry_get", "depends_on": ["d"]},
            {"id": "d", "tool": "registry_get", "depends_on": ["e"]},
            {"id": "e", "tool": "registry_get", "depends_on": ["c"]},
            {"id": "bad id!", "tool": "registry_get"}
        ]}));
        let params: BTreeSet<String> = ["name".to_string()].into();
        let problems = validate(&d, &params, |t| t.starts_with("registry_"));
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            problems.contains(&Problem::DuplicateId { id: "a".into() }),
            "{text:?}"
        );
        assert!(problems.contains(&Problem::InvalidId {
            id: "bad id!".into()
        }));
        assert!(problems.contains(&Problem::UnknownTool {
            step: "a".into(),
            tool: "nope_tool".into()
        }));
        assert!(problems.contains(&Problem::UnknownDependency {
            step: "b".into(),
            depends_on: "ghost".into()
        }));
        assert!(
            problems.contains(&Problem::Cycle {
                steps: vec!["c".into(), "d".into(), "e".into()]
            }),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains(
                "`${steps.c.output.v}` uses the output of `c`, which `b` does not depend on"
            )),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("`${params.missing}` names parameter `missing`")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("`${oops}` must start with")),
            "{text:?}"
        );
        assert_eq!(problems.len(), 8, "{text:?}");
        assert!(
            text.iter()
                .any(|t| t == "steps form a cycle: c → d → e → c"),
            "{text:?}"
        );
    }

    /// `n` steps in a chain, each using the output of `source(i)`.
    fn chain(n: usize, source: impl Fn(usize) -> usize) -> Definition {
        let steps = (0..n)
            .map(|i| {
                let mut s = json!({"id": format!("s{i}"), "tool": "t"});
                if i > 0 {
                    s["depends_on"] = json!([format!("s{}", i - 1)]);
                    s["arguments"] = json!({"x": format!("${{steps.s{}.output}}", source(i))});
                }
                s
            })
            .collect::<Vec<_>>();
        def(json!({ "steps": steps }))
    }

    #[test]
    fn references_to_far_ancestors_are_checked_in_one_pass() {
        // Each step uses the first one's output through the whole chain before it: a walk per
        // reference would take 50 million steps here.
        let d = chain(MAX_STEPS, |_| 0);
        assert_eq!(validate(&d, &BTreeSet::new(), |_| true), vec![]);
        // And a reference to a later step (not an ancestor) is still caught, far down.
        let d = chain(MAX_STEPS, |i| if i == 9_000 { 9_500 } else { i / 2 });
        assert_eq!(
            validate(&d, &BTreeSet::new(), |_| true),
            vec![Problem::UnknownReference {
                step: "s9000".into(),
                reference: "${steps.s9500.output}".into(),
                reason: "uses the output of `s9500`, which `s9000` does not depend on; add it \
                         to depends_on"
                    .into()
            }]
        );
    }

    #[test]
    fn a_definition_over_the_step_limit_is_refused_whole() {
        let d = chain(MAX_STEPS + 1, |i| i - 1);
        let problems = validate(&d, &BTreeSet::new(), |_| true);
        assert_eq!(
            problems,
            vec![Problem::TooManySteps {
                count: MAX_STEPS + 1,
                limit: MAX_STEPS
            }]
        );
        assert!(problems[0].to_string().contains("split it into workflows"));
    }

    #[test]
    fn a_valid_diamond_has_no_problems() {
        let d = def(json!({"steps": [
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t", "depends_on": ["a"], "arguments": {"v": "${steps.a.output.x}"}},
            {"id": "c", "tool": "t", "depends_on": ["a"]},
            {"id": "d", "tool": "t", "depends_on": ["b", "c"], "arguments": {"v": "${steps.a.output}"}}
        ]}));
        assert_eq!(validate(&d, &BTreeSet::new(), |_| true), []);
        let self_loop = def(json!({"steps": [{"id": "a", "tool": "t", "depends_on": ["a"]}]}));
        assert_eq!(cycles(&self_loop), [vec!["a".to_string()]]);
    }

    #[test]
    fn whole_string_references_keep_their_type() {
        let params: BTreeMap<String, Value> = [
            ("n".to_string(), json!(3)),
            ("who".to_string(), json!("ada")),
        ]
        .into();
        let outputs: BTreeMap<String, Value> = [(
            "fetch".to_string(),
            json!({"path": {"to": {"field": [1, 2]}}, "items": [{"id": 7}]}),
        )]
        .into();
        let args = json!({
            "count": "${params.n}",
            "list": "${steps.fetch.output.path.to.field}",
            "first": "${steps.fetch.output.items.0.id}",
            "greeting": "hello ${params.who}, n=${params.n}",
            "nested": [{"deep": "${params.who}"}],
            "plain": 5
        });
        let out = substitute(&args, &params, &outputs).unwrap();
        assert_eq!(
            out,
            json!({
                "count": 3, "list": [1, 2], "first": 7,
                "greeting": "hello ada, n=3", "nested": [{"deep": "ada"}], "plain": 5
            })
        );
        let err =
            substitute(&json!("${steps.fetch.output.path.nope}"), &params, &outputs).unwrap_err();
        assert_eq!(err, "the output of `fetch` has no `path.nope`");
    }
}
