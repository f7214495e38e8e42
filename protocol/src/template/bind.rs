//! Binding the values a caller gives to a template's declared parameters: unknown, missing,
//! wrongly typed and unmatched values are problems; defaults apply.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::model::{ParamType, Parameter, Template};
use super::problem::TemplateProblem;
use super::refs::{Piece, Token, classify, pieces};
use crate::workflow;

/// Largest compiled size of a `pattern`, in bytes (bounds the cost of a hostile pattern).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Checks the given values against the declared parameters and returns every parameter's value
/// (the given one, else the default, else null).
pub(super) fn bind(
    template: &Template,
    given: &Map<String, Value>,
    problems: &mut Vec<TemplateProblem>,
) -> BTreeMap<String, Value> {
    for name in given.keys() {
        if template.parameter(name).is_none() {
            problems.push(TemplateProblem::UnknownParameter { name: name.clone() });
        }
    }
    let mut values = BTreeMap::new();
    for p in &template.parameters {
        if values.contains_key(&p.name) {
            continue; // a duplicate declaration, reported by check()
        }
        let value = match given.get(&p.name).filter(|v| !v.is_null()) {
            None => {
                if p.default.is_none() && p.is_required() {
                    problems.push(TemplateProblem::MissingParameter {
                        name: p.name.clone(),
                        param_type: p.param_type,
                    });
                }
                p.default.clone().unwrap_or(Value::Null)
            }
            Some(v) => {
                // An invalid pattern is reported by check(); the value is then not matched.
                let regex = p.pattern.as_deref().and_then(|r| compile(r).ok());
                match check_value(p, v, regex.as_ref()) {
                    Ok(()) => {}
                    Err(Mismatch::Type) => problems.push(TemplateProblem::WrongType {
                        name: p.name.clone(),
                        expected: p.param_type,
                        got: v.clone(),
                    }),
                    Err(Mismatch::Pattern(value)) => {
                        problems.push(TemplateProblem::PatternMismatch {
                            name: p.name.clone(),
                            pattern: p.pattern.clone().unwrap_or_default(),
                            value,
                        })
                    }
                }
                v.clone()
            }
        };
        values.insert(p.name.clone(), value);
    }
    values
}

pub(super) enum Mismatch {
    Type,
    Pattern(String),
}

pub(super) fn check_value(
    p: &Parameter,
    value: &Value,
    regex: Option<&Regex>,
) -> Result<(), Mismatch> {
    if let Value::String(s) = value {
        let ps = pieces(s);
        let is_run_ref = |piece: &Piece<'_>| {
            matches!(piece, Piece::Ref { body, .. }
                if matches!(classify(body), Token::Workflow(b) if workflow::parse_reference(b).is_ok()))
        };
        if let [only] = ps.as_slice()
            && is_run_ref(only)
        {
            return Ok(()); // known at run time only
        }
        if p.param_type == ParamType::String && ps.iter().any(is_run_ref) {
            return Ok(()); // the pattern cannot be checked before the run
        }
    }
    if !p.param_type.matches(value) {
        return Err(Mismatch::Type);
    }
    if let (Some(regex), Value::String(s)) = (regex, value)
        && !regex.is_match(s)
    {
        return Err(Mismatch::Pattern(s.clone()));
    }
    Ok(())
}

pub(super) fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::testing::*;
    use crate::template::*;

    fn typed() -> Template {
        template(json!({
            "name": "typed", "version": "1.0.0",
            "parameters": [
                {"name": "s", "type": "string", "required": false},
                {"name": "i", "type": "integer", "required": false},
                {"name": "n", "type": "number", "required": false},
                {"name": "b", "type": "boolean", "required": false},
                {"name": "a", "type": "array", "required": false},
                {"name": "o", "type": "object", "required": false}
            ],
            "steps": [{"id": "x", "tool": "t", "arguments": {
                "s": "${s}", "i": "${i}", "n": "${n}", "b": "${b}", "a": "${a}", "o": "${o}"
            }}]
        }))
    }

    #[test]
    fn every_parameter_problem_is_reported_together() {
        let t = template(json!({
            "name": "report", "version": "1.0.0",
            "parameters": [
                {"name": "count", "type": "integer"},
                {"name": "title", "type": "string"},
                {"name": "code", "type": "string", "pattern": "^[A-Z]{3}$"},
                {"name": "flag", "type": "boolean", "default": false}
            ],
            "steps": [{"id": "go", "tool": "t", "arguments": {
                "count": "${count}", "title": "${title}", "code": "${code}", "flag": "${flag}"
            }}]
        }));
        assert_eq!(t.check(), []);
        let problems = instantiate(
            &t,
            &params(json!({"count": "ten", "code": "abcd", "colour": "red"})),
            &none,
        )
        .unwrap_err();
        let text = texts(&problems);
        assert_eq!(problems.len(), 4, "{text:?}");
        assert!(
            text.contains(&"parameter `count`: expected integer, got \"ten\"".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"parameter `title` (string) is required but was not given".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(
                &"parameter `code`: \"abcd\" does not match the pattern `^[A-Z]{3}$`".to_string()
            ),
            "{text:?}"
        );
        assert!(
            problems.contains(&TemplateProblem::UnknownParameter {
                name: "colour".into()
            }),
            "{text:?}"
        );
        // Problems serialise with their kind.
        let json = serde_json::to_value(&problems).unwrap();
        assert!(
            json.as_array()
                .unwrap()
                .iter()
                .any(|p| p["kind"] == "wrong_type"
                    && p["name"] == "count"
                    && p["expected"] == "integer"
                    && p["got"] == "ten")
        );
    }

    #[test]
    fn each_type_is_checked() {
        let t = typed();
        let cases = [
            ("s", json!("text"), true),
            ("s", json!(3), false),
            ("i", json!(3), true),
            ("i", json!(-3), true),
            ("i", json!(3.0), true),
            ("i", json!(3.5), false),
            ("i", json!("3"), false),
            ("n", json!(3), true),
            ("n", json!(3.5), true),
            ("n", json!("3.5"), false),
            ("b", json!(true), true),
            ("b", json!("true"), false),
            ("b", json!(0), false),
            ("a", json!([1, "x"]), true),
            ("a", json!({"0": 1}), false),
            ("o", json!({"k": [1]}), true),
            ("o", json!([]), false),
        ];
        for (name, value, ok) in cases {
            let mut given = Map::new();
            given.insert(name.into(), value.clone());
            let result = instantiate(&t, &given, &none);
            match (ok, result) {
                (true, Ok(def)) => assert_eq!(def.steps[0].arguments[name], value),
                (false, Err(problems)) => {
                    let expected = t.parameter(name).unwrap().param_type;
                    assert_eq!(
                        problems,
                        [TemplateProblem::WrongType {
                            name: name.into(),
                            expected,
                            got: value.clone()
                        }]
                    );
                }
                (ok, other) => panic!("{name} = {value}: expected ok={ok}, got {other:?}"),
            }
        }
    }

    #[test]
    fn defaults_apply_and_optional_parameters_are_null() {
        let t = template(json!({
            "name": "defaults", "version": "0.1.0",
            "parameters": [
                {"name": "retries", "type": "integer", "default": 3},
                {"name": "label", "type": "string", "required": false},
                {"name": "tags", "type": "array", "default": ["a"]}
            ],
            "steps": [{"id": "x", "tool": "t", "arguments": {
                "retries": "${retries}", "label": "${label}", "text": "[${label}] x${retries}",
                "tags": "${tags}"
            }}]
        }));
        assert_eq!(t.check(), []);
        let def = instantiate(&t, &Map::new(), &none).unwrap();
        assert_eq!(
            def.steps[0].arguments,
            json!({"retries": 3, "label": null, "text": "[] x3", "tags": ["a"]})
        );
        // A given value wins; a given null counts as not given.
        let def = instantiate(
            &t,
            &params(json!({"retries": 5, "label": "L", "tags": null})),
            &none,
        )
        .unwrap();
        assert_eq!(
            def.steps[0].arguments,
            json!({"retries": 5, "label": "L", "text": "[L] x5", "tags": ["a"]})
        );
        assert!(!t.parameters[0].is_required());
        assert!(!t.parameters[1].is_required());
        let schema = t.parameters_schema();
        assert_eq!(schema["properties"]["retries"]["default"], 3);
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema.get("required").is_none());
    }

    #[test]
    fn patterns_are_matched() {
        let t = template(json!({
            "name": "p", "version": "1.0.0",
            "parameters": [{"name": "env", "type": "string", "pattern": "^(dev|prod)$"}],
            "steps": [{"id": "x", "tool": "t", "arguments": {"env": "${env}"}}]
        }));
        assert!(instantiate(&t, &params(json!({"env": "prod"})), &none).is_ok());
        let problems = instantiate(&t, &params(json!({"env": "production"})), &none).unwrap_err();
        assert_eq!(
            problems,
            [TemplateProblem::PatternMismatch {
                name: "env".into(),
                pattern: "^(dev|prod)$".into(),
                value: "production".into()
            }]
        );
        // A run-time reference cannot be matched yet and is accepted.
        let def = instantiate(&t, &params(json!({"env": "${params.env}"})), &none).unwrap();
        assert_eq!(def.steps[0].arguments, json!({"env": "${params.env}"}));
    }
}
