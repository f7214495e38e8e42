//! Instantiation: picking a template's version, binding its parameters and expanding its
//! includes into one workflow definition.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::bind::bind;
use super::model::{MAX_INCLUDE_DEPTH, MAX_STEPS, PREFIX_SEPARATOR, Template};
use super::problem::TemplateProblem;
use super::refs::Fill;
use crate::workflow::{self, Definition, Reference, Step};

impl Template {
    /// [`instantiate`] this template.
    pub fn instantiate(
        &self,
        params: &Map<String, Value>,
        resolve: &dyn Fn(&str, Option<&str>) -> Option<Template>,
    ) -> Result<Definition, Vec<TemplateProblem>> {
        instantiate(self, params, resolve)
    }
}

/// The template called `name` among `templates`: with `version` `None` the latest (highest
/// release, else highest pre-release); with an exact version that version; with a requirement
/// (`^1.2`, `>=1, <2`) the highest version that meets it. Versions that are not semver are
/// never picked.
pub fn select<'a>(
    templates: impl IntoIterator<Item = &'a Template>,
    name: &str,
    version: Option<&str>,
) -> Option<&'a Template> {
    let candidates = templates
        .into_iter()
        .filter(|t| t.name == name)
        .filter_map(|t| semver::Version::parse(&t.version).ok().map(|v| (v, t)));
    match version {
        None => candidates
            .max_by(|(a, _), (b, _)| (a.pre.is_empty(), a).cmp(&(b.pre.is_empty(), b)))
            .map(|(_, t)| t),
        Some(v) => {
            if let Ok(exact) = semver::Version::parse(v) {
                candidates
                    .filter(|(c, _)| *c == exact)
                    .map(|(_, t)| t)
                    .next()
            } else {
                let req = semver::VersionReq::parse(v).ok()?;
                candidates
                    .filter(|(c, _)| req.matches(c))
                    .max_by(|(a, _), (b, _)| a.cmp(b))
                    .map(|(_, t)| t)
            }
        }
    }
}

/// Checks `params` against `template` (reporting every problem at once), applies defaults,
/// substitutes parameters, expands includes (`resolve(name, version)` gives an included
/// template; `None` asks for the latest) and checks the resulting workflow's structure (ids,
/// dependencies, cycles, step references; not tool names, not `${params.x}` names).
pub fn instantiate(
    template: &Template,
    params: &Map<String, Value>,
    resolve: &dyn Fn(&str, Option<&str>) -> Option<Template>,
) -> Result<Definition, Vec<TemplateProblem>> {
    let mut expander = Expander {
        resolve,
        chain: vec![template.key()],
        steps: Vec::new(),
        expansions: 0,
        too_many: false,
    };
    let mut problems = expander.expand(template, params, "");
    if expander.too_many {
        problems.push(TemplateProblem::TooManySteps { limit: MAX_STEPS });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let def = Definition {
        steps: expander.steps,
    };
    let run_params: BTreeSet<String> = def
        .steps
        .iter()
        .flat_map(|s| workflow::references(&s.arguments))
        .filter_map(|(_, r)| match r {
            Ok(Reference::Param(name)) => Some(name),
            _ => None,
        })
        .collect();
    let problems: Vec<TemplateProblem> = workflow::validate(&def, &run_params, |_| true)
        .into_iter()
        .map(|problem| TemplateProblem::Workflow { problem })
        .collect();
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(problems)
    }
}

struct Expander<'a> {
    resolve: &'a dyn Fn(&str, Option<&str>) -> Option<Template>,
    /// `name@version` of the templates being expanded, outermost first.
    chain: Vec<String>,
    steps: Vec<Step>,
    /// Templates expanded so far (bounds the work of includes that fan out without steps).
    expansions: usize,
    too_many: bool,
}

impl Expander<'_> {
    /// Appends `template`'s steps, ids prefixed with `prefix`, and returns its problems.
    fn expand(
        &mut self,
        template: &Template,
        given: &Map<String, Value>,
        prefix: &str,
    ) -> Vec<TemplateProblem> {
        let mut problems = template.check();
        let values = bind(template, given, &mut problems);
        for inc in &template.includes {
            let mut fill = Fill::new(&values, prefix);
            let inc_params: Map<String, Value> = inc
                .params
                .iter()
                .map(|(k, v)| (k.clone(), fill.value(v)))
                .collect();
            let Some(sub) = (self.resolve)(&inc.template, inc.version.as_deref()) else {
                problems.push(TemplateProblem::MissingTemplate {
                    prefix: inc.prefix.clone(),
                    template: inc.template.clone(),
                    version: inc.version.clone(),
                });
                continue;
            };
            let key = sub.key();
            if let Some(at) = self.chain.iter().position(|k| *k == key) {
                let mut chain = self.chain[at..].to_vec();
                chain.push(key);
                problems.push(TemplateProblem::IncludeCycle { chain });
                continue;
            }
            if self.chain.len() >= MAX_INCLUDE_DEPTH {
                let mut chain = self.chain.clone();
                chain.push(key);
                problems.push(TemplateProblem::IncludeTooDeep {
                    chain,
                    limit: MAX_INCLUDE_DEPTH,
                });
                continue;
            }
            if self.too_many || self.expansions >= MAX_STEPS {
                self.too_many = true;
                continue;
            }
            self.expansions += 1;
            self.chain.push(key.clone());
            let inner = format!("{prefix}{}{PREFIX_SEPARATOR}", inc.prefix);
            let nested = self.expand(&sub, &inc_params, &inner);
            self.chain.pop();
            problems.extend(nested.into_iter().map(|p| TemplateProblem::InInclude {
                prefix: inc.prefix.clone(),
                template: key.clone(),
                problem: Box::new(p),
            }));
        }
        for step in &template.steps {
            if self.steps.len() >= MAX_STEPS {
                self.too_many = true;
                break;
            }
            let mut fill = Fill::new(&values, prefix);
            let arguments = fill.value(&step.arguments);
            let mut depends_on: Vec<String> = step
                .depends_on
                .iter()
                .map(|d| format!("{prefix}{d}"))
                .collect();
            let id = format!("{prefix}{}", step.id);
            for extra in fill.introduced {
                if extra != id && !depends_on.contains(&extra) {
                    depends_on.push(extra);
                }
            }
            self.steps.push(Step {
                id,
                arguments,
                depends_on,
                ..step.clone()
            });
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::template::testing::*;

    #[test]
    fn includes_prefix_ids_and_rewrite_references() {
        let lib = library();
        let etl = lib[2].clone();
        let def = instantiate(
            &etl,
            &params(json!({"source": "example.org", "table": "t1"})),
            &resolver(lib),
        )
        .unwrap();
        let ids: Vec<&str> = def.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["in-get", "in-parse", "load"]);
        assert_eq!(
            step(&def, "in-get").arguments,
            json!({"url": "https://example.org/data", "tries": 2})
        );
        let parse = step(&def, "in-parse");
        assert_eq!(parse.depends_on, ["in-get"]);
        assert_eq!(
            parse.arguments,
            json!({"body": "${steps.in-get.output.body}", "note": "from https://example.org/data"})
        );
        let load = step(&def, "load");
        assert_eq!(load.depends_on, ["in-parse"]);
        assert_eq!(load.arguments["rows"], "${steps.in-parse.output.rows}");
    }

    #[test]
    fn nested_includes_and_step_outputs_passed_in() {
        let mut lib = library();
        lib.push(template(json!({
            "name": "pipeline", "version": "1.0.0",
            "parameters": [{"name": "src", "type": "string", "pattern": "^[a-z.]+$"}],
            "includes": [
                {"template": "etl", "prefix": "a", "params": {"source": "${src}", "table": "alpha"}},
                {"template": "sink", "prefix": "out",
                 "params": {"rows": "${steps.prep.output.rows}", "label": "rows of ${src}"}}
            ],
            "steps": [
                {"id": "prep", "tool": "prep", "depends_on": ["a-load"]},
                {"id": "done", "tool": "notify", "depends_on": ["out-write"],
                 "arguments": {"what": "${steps.a-in-get.output.status}"}}
            ]
        })));
        lib.push(template(json!({
            "name": "sink", "version": "1.0.0",
            "parameters": [{"name": "rows", "type": "array"}, {"name": "label", "type": "string"}],
            "steps": [{"id": "write", "tool": "write", "arguments": {"rows": "${rows}", "label": "${label}"}}]
        })));
        let top = lib[3].clone();
        let def = instantiate(&top, &params(json!({"src": "x.org"})), &resolver(lib)).unwrap();
        let ids: Vec<&str> = def.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "a-in-get",
                "a-in-parse",
                "a-load",
                "out-write",
                "prep",
                "done"
            ]
        );
        assert_eq!(step(&def, "a-in-parse").depends_on, ["a-in-get"]);
        assert_eq!(
            step(&def, "a-in-parse").arguments["body"],
            "${steps.a-in-get.output.body}"
        );
        assert_eq!(step(&def, "a-load").depends_on, ["a-in-parse"]);
        assert_eq!(
            step(&def, "a-load").arguments,
            json!({"rows": "${steps.a-in-parse.output.rows}", "table": "alpha"})
        );
        assert_eq!(
            step(&def, "a-in-get").arguments["url"],
            "https://x.org/data"
        );
        // The outer step's output reaches the included step unprefixed, and the included step
        // depends on it.
        let write = step(&def, "out-write");
        assert_eq!(
            write.arguments,
            json!({"rows": "${steps.prep.output.rows}", "label": "rows of x.org"})
        );
        assert_eq!(write.depends_on, ["prep"]);
        // A parameter problem inside a nested include names where it is.
        let mut lib2 = library();
        lib2[2].includes[0]
            .params
            .insert("tries".into(), json!("two"));
        let etl = lib2[2].clone();
        let problems = instantiate(
            &etl,
            &params(json!({"source": "s", "table": "t"})),
            &resolver(lib2),
        )
        .unwrap_err();
        assert_eq!(
            texts(&problems),
            ["in include `in` (fetch@1.0.0): parameter `tries`: expected integer, got \"two\""]
        );
    }

    #[test]
    fn include_cycles_are_problems() {
        let a = template(json!({
            "name": "a", "version": "1.0.0",
            "includes": [{"template": "b", "prefix": "b"}],
            "steps": [{"id": "s", "tool": "t"}]
        }));
        let b = template(json!({
            "name": "b", "version": "1.0.0",
            "includes": [{"template": "a", "prefix": "a"}],
            "steps": [{"id": "s", "tool": "t"}]
        }));
        let lib = vec![a.clone(), b];
        let problems = instantiate(&a, &Map::new(), &resolver(lib)).unwrap_err();
        assert_eq!(
            problems,
            [TemplateProblem::InInclude {
                prefix: "b".into(),
                template: "b@1.0.0".into(),
                problem: Box::new(TemplateProblem::IncludeCycle {
                    chain: vec!["a@1.0.0".into(), "b@1.0.0".into(), "a@1.0.0".into()]
                })
            }]
        );
        assert_eq!(
            texts(&problems),
            ["in include `b` (b@1.0.0): templates include each other: a@1.0.0 → b@1.0.0 → a@1.0.0"]
        );
        // A template including itself.
        let me = template(json!({
            "name": "me", "version": "1.0.0",
            "includes": [{"template": "me", "prefix": "again"}]
        }));
        let problems = instantiate(&me, &Map::new(), &resolver(vec![me.clone()])).unwrap_err();
        assert!(
            matches!(&problems[..], [TemplateProblem::IncludeCycle { chain }]
            if chain == &["me@1.0.0", "me@1.0.0"])
        );
    }

    #[test]
    fn endless_distinct_includes_stop_at_the_depth_limit() {
        // A resolver that makes a new template for every request never repeats itself.
        let resolve = |name: &str, _: Option<&str>| -> Option<Template> {
            let n: usize = name.trim_start_matches('t').parse().ok()?;
            Some(template(json!({
                "name": format!("t{n}"), "version": "1.0.0",
                "includes": [{"template": format!("t{}", n + 1), "prefix": "x"}]
            })))
        };
        let root = resolve("t0", None).unwrap();
        let problems = instantiate(&root, &Map::new(), &resolve).unwrap_err();
        let text = texts(&problems);
        assert_eq!(problems.len(), 1, "{text:?}");
        assert!(text[0].contains("includes nest deeper than 16"), "{text:?}");
    }

    #[test]
    fn wide_fan_out_is_bounded() {
        // Five levels of 40 includes each: 40^5 expansions unless bounded.
        let levels: Vec<Template> = (0..6)
            .map(|l| {
                let includes: Vec<Value> = (0..40)
                    .map(|i| json!({"template": "wide", "version": format!("{}.0.0", l + 1), "prefix": format!("p{i}")}))
                    .collect();
                template(json!({
                    "name": "wide", "version": format!("{l}.0.0"),
                    "includes": if l < 5 { includes } else { Vec::new() },
                    "steps": [{"id": "s", "tool": "t"}]
                }))
            })
            .collect();
        let problems = instantiate(&levels[0], &Map::new(), &resolver(levels.clone())).unwrap_err();
        assert_eq!(
            problems,
            [TemplateProblem::TooManySteps { limit: MAX_STEPS }]
        );
    }

    #[test]
    fn missing_includes_are_problems() {
        let lib = library();
        let t = template(json!({
            "name": "m", "version": "1.0.0",
            "includes": [
                {"template": "nope", "prefix": "a"},
                {"template": "fetch", "version": "9.9.9", "prefix": "b", "params": {"url": "u"}},
                {"template": "fetch", "version": "^2", "prefix": "c", "params": {"url": "u"}}
            ]
        }));
        let problems = instantiate(&t, &Map::new(), &resolver(lib.clone())).unwrap_err();
        assert_eq!(
            texts(&problems),
            [
                "include `a`: template `nope` does not exist",
                "include `b`: template `fetch` version `9.9.9` does not exist"
            ]
        );
        // With the missing ones gone, the requirement `^2` picks 2.0.0.
        let mut ok = t.clone();
        ok.includes.drain(..2);
        let def = instantiate(&ok, &Map::new(), &resolver(lib)).unwrap();
        assert_eq!(def.steps[0].id, "c-get2");
    }

    #[test]
    fn the_instantiated_workflow_is_validated() {
        let t = template(json!({
            "name": "v", "version": "1.0.0",
            "steps": [
                {"id": "a", "tool": "t", "depends_on": ["ghost"]},
                {"id": "b", "tool": "t", "arguments": {"x": "${steps.a.output}"}}
            ]
        }));
        let problems = instantiate(&t, &Map::new(), &none).unwrap_err();
        let text = texts(&problems);
        assert_eq!(problems.len(), 2, "{text:?}");
        assert!(
            text[0].contains("depends on unknown step `ghost`"),
            "{text:?}"
        );
        assert!(text[1].contains("which `b` does not depend on"), "{text:?}");
    }

    #[test]
    fn select_picks_versions() {
        let mut lib = library();
        lib.push(template(
            json!({"name": "fetch", "version": "3.0.0-rc.1", "steps": []}),
        ));
        let v = |version: Option<&str>| select(&lib, "fetch", version).map(|t| t.version.as_str());
        assert_eq!(v(None), Some("2.0.0"));
        assert_eq!(v(Some("1.0.0")), Some("1.0.0"));
        assert_eq!(v(Some("^1")), Some("1.0.0"));
        assert_eq!(v(Some(">=1")), Some("2.0.0"));
        assert_eq!(v(Some("3.0.0-rc.1")), Some("3.0.0-rc.1"));
        assert_eq!(v(Some("4.0.0")), None);
        assert_eq!(select(&lib, "nope", None), None);
    }

    proptest! {
        /// Including any valid DAG under a prefix gives the same DAG with prefixed ids.
        #[test]
        fn including_a_dag_prefixes_it(
            edges in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..3), 1..8),
            prefix in "[a-z][a-z0-9_]{0,6}",
        ) {
            // Step i may depend on steps before it only: always a DAG.
            let steps: Vec<Value> = edges.iter().enumerate().map(|(i, deps)| {
                let deps: BTreeSet<String> = if i == 0 { BTreeSet::new() } else {
                    deps.iter().map(|d| format!("s{}", d.index(i))).collect()
                };
                let refs: Vec<String> = deps.iter().map(|d| format!("${{steps.{d}.output.v}}")).collect();
                json!({"id": format!("s{i}"), "tool": "t", "depends_on": deps,
                       "arguments": {"refs": refs, "text": format!("after {}", refs.join(","))}})
            }).collect();
            let inner = template(json!({"name": "inner", "version": "1.0.0", "steps": steps}));
            let outer = template(json!({"name": "outer", "version": "1.0.0",
                "includes": [{"template": "inner", "prefix": prefix}]}));
            let plain = instantiate(&inner, &Map::new(), &none)
                .map_err(|p| TestCaseError::fail(format!("{:?}", texts(&p))))?;
            let lib = vec![inner];
            let def = instantiate(&outer, &Map::new(), &resolver(lib))
                .map_err(|p| TestCaseError::fail(format!("{:?}", texts(&p))))?;
            prop_assert_eq!(def.steps.len(), plain.steps.len());
            let p = |id: &str| format!("{prefix}-{id}");
            for (got, want) in def.steps.iter().zip(&plain.steps) {
                prop_assert_eq!(&got.id, &p(&want.id));
                let deps: Vec<String> = want.depends_on.iter().map(|d| p(d)).collect();
                prop_assert_eq!(&got.depends_on, &deps);
                let text = want.arguments.to_string().replace("${steps.", &format!("${{steps.{prefix}-"));
                prop_assert_eq!(got.arguments.to_string(), text);
            }
        }
    }
}
