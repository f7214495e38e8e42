//! Names and `${…}` references: the naming rules, splitting a string at its references,
//! telling parameter references from workflow ones, and substituting parameters.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::workflow::{self, Reference};

/// The workflow step id rule (1–64 letters, digits, `_` and `-`).
pub(super) fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `name` is a valid parameter name.
pub fn valid_param_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name != "params"
        && name != "steps"
}

pub(super) const INVALID_REFERENCE: &str =
    "must be `${<parameter>}`, `${params.<name>}` or `${steps.<id>.output.<path>}`";

/// A piece of a string, split at `${…}`.
pub(super) enum Piece<'a> {
    Text(&'a str),
    /// `raw` is the whole `${body}`.
    Ref {
        raw: &'a str,
        body: &'a str,
    },
    /// `${` without a closing `}`, to the end of the string.
    Unclosed(&'a str),
}

pub(super) fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(Piece::Ref {
                    raw: &rest[start..start + 2 + end + 1],
                    body: &after[..end],
                });
                rest = &after[end + 1..];
            }
            None => {
                out.push(Piece::Unclosed(&rest[start..]));
                rest = "";
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

pub(super) enum Token<'a> {
    /// A template parameter.
    Param(&'a str),
    /// `params.…` or `steps.…`, for the run.
    Workflow(&'a str),
    Invalid,
}

pub(super) fn classify(body: &str) -> Token<'_> {
    if body == "params"
        || body == "steps"
        || body.starts_with("params.")
        || body.starts_with("steps.")
    {
        Token::Workflow(body)
    } else if valid_param_name(body) {
        Token::Param(body)
    } else {
        Token::Invalid
    }
}

pub(super) fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// One substitution pass over a template's values.
pub(super) struct Fill<'a> {
    values: &'a BTreeMap<String, Value>,
    prefix: &'a str,
    /// Steps that `${steps.<id>…}` references brought in by parameter values name.
    pub(super) introduced: BTreeSet<String>,
}

impl<'a> Fill<'a> {
    pub(super) fn new(values: &'a BTreeMap<String, Value>, prefix: &'a str) -> Self {
        Self {
            values,
            prefix,
            introduced: BTreeSet::new(),
        }
    }

    pub(super) fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                let ps = pieces(s);
                if let [Piece::Ref { raw, body }] = ps.as_slice() {
                    return match classify(body) {
                        Token::Param(name) => self.param(name),
                        Token::Workflow(body) => Value::String(self.rewrite(raw, body)),
                        Token::Invalid => v.clone(),
                    };
                }
                let mut out = String::with_capacity(s.len());
                for piece in ps {
                    match piece {
                        Piece::Text(t) | Piece::Unclosed(t) => out.push_str(t),
                        Piece::Ref { raw, body } => match classify(body) {
                            Token::Param(name) => match self.param(name) {
                                Value::String(text) => out.push_str(&text),
                                Value::Null => {}
                                other => out.push_str(&other.to_string()),
                            },
                            Token::Workflow(body) => out.push_str(&self.rewrite(raw, body)),
                            Token::Invalid => out.push_str(raw),
                        },
                    }
                }
                Value::String(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn param(&mut self, name: &str) -> Value {
        let v = self.values.get(name).cloned().unwrap_or(Value::Null);
        for (_, r) in workflow::references(&v) {
            if let Ok(Reference::StepOutput { step, .. }) = r {
                self.introduced.insert(step);
            }
        }
        v
    }

    /// `${steps.<id>…}` with the prefix on the id; anything else as written.
    fn rewrite(&self, raw: &str, body: &str) -> String {
        if self.prefix.is_empty() {
            return raw.to_string();
        }
        match (workflow::parse_reference(body), body.strip_prefix("steps.")) {
            (Ok(Reference::StepOutput { .. }), Some(rest)) => {
                format!("${{steps.{}{rest}}}", self.prefix)
            }
            _ => raw.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::template::testing::*;
    use crate::template::*;

    #[test]
    fn substitution_is_nested_and_keeps_types() {
        let t = template(json!({
            "name": "nest", "version": "1.0.0",
            "parameters": [
                {"name": "n", "type": "integer"},
                {"name": "cfg", "type": "object"},
                {"name": "who", "type": "string"},
                {"name": "ok", "type": "boolean"}
            ],
            "steps": [
                {"id": "first", "tool": "t"},
                {"id": "x", "tool": "t", "depends_on": ["first"], "arguments": {
                    "n": "${n}",
                    "deep": [[{"cfg": "${cfg}", "list": ["${ok}", "${n}", 7, null]}]],
                    "text": "hi ${who}: n=${n}, cfg=${cfg}, ok=${ok}",
                    "run": "${params.run_param}",
                    "prev": "${steps.first.output.v}",
                    "literal": "$ {n} and $n"
                }}
            ]
        }));
        let def = instantiate(
            &t,
            &params(json!({"n": 2, "cfg": {"a": [1]}, "who": "${params.who}", "ok": true})),
            &none,
        )
        .unwrap();
        assert_eq!(
            step(&def, "x").arguments,
            json!({
                "n": 2,
                "deep": [[{"cfg": {"a": [1]}, "list": [true, 2, 7, null]}]],
                "text": "hi ${params.who}: n=2, cfg={\"a\":[1]}, ok=true",
                "run": "${params.run_param}",
                "prev": "${steps.first.output.v}",
                "literal": "$ {n} and $n"
            })
        );
        // One pass: text a parameter's value brings in is not substituted again.
        let values: BTreeMap<String, Value> = [
            ("a".to_string(), json!("${b}")),
            ("b".to_string(), json!(1)),
        ]
        .into();
        let mut fill = Fill::new(&values, "");
        assert_eq!(
            fill.value(&json!(["${a}", "x${a}"])),
            json!(["${b}", "x${b}"])
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z ${}.]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn type_of(v: &Value) -> Option<ParamType> {
        match v {
            Value::String(_) => Some(ParamType::String),
            Value::Number(_) => Some(ParamType::Number),
            Value::Bool(_) => Some(ParamType::Boolean),
            Value::Array(_) => Some(ParamType::Array),
            Value::Object(_) => Some(ParamType::Object),
            Value::Null => None,
        }
    }

    proptest! {
        /// A whole-string reference anywhere in the arguments becomes exactly the value given.
        #[test]
        fn whole_references_keep_any_value(value in json_value()) {
            let Some(ty) = type_of(&value) else { return Ok(()) };
            let t = template(json!({
                "name": "p", "version": "1.0.0",
                "parameters": [{"name": "v", "type": ty}],
                "steps": [{"id": "x", "tool": "t",
                           "arguments": {"a": "${v}", "b": [{"c": ["${v}"]}], "d": 1}}]
            }));
            let mut given = Map::new();
            given.insert("v".into(), value.clone());
            let result = instantiate(&t, &given, &none);
            // Text with `${` in it may not be a valid workflow reference.
            if value.to_string().contains("${") {
                return Ok(());
            }
            let def = result.map_err(|p| TestCaseError::fail(format!("{:?}", texts(&p))))?;
            prop_assert_eq!(&def.steps[0].arguments, &json!({"a": value, "b": [{"c": [value]}], "d": 1}));
        }
    }
}
