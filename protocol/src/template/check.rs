//! The checks of a template on its own (before parameters and includes), and the JSON Schema
//! of its parameters.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::bind::{Mismatch, check_value, compile};
use super::model::{ParamType, Template};
use super::problem::show;
use super::problem::{Place, TemplateProblem};
use super::refs::valid_param_name;
use super::refs::{INVALID_REFERENCE, Piece, Token, classify, pieces, valid_id, walk_strings};
use crate::workflow::{self, Problem};

impl Template {
    /// The problems that can be seen without parameters or included templates (empty when
    /// there are none).
    pub fn check(&self) -> Vec<TemplateProblem> {
        let mut problems = Vec::new();
        if crate::registry::validate_name(&self.name).is_err() {
            problems.push(TemplateProblem::InvalidName {
                name: self.name.clone(),
            });
        }
        if let Err(e) = semver::Version::parse(&self.version) {
            problems.push(TemplateProblem::InvalidVersion {
                version: self.version.clone(),
                reason: e.to_string(),
            });
        }
        let mut names = BTreeSet::new();
        for p in &self.parameters {
            if !valid_param_name(&p.name) {
                problems.push(TemplateProblem::InvalidParameterName {
                    name: p.name.clone(),
                });
            }
            if !names.insert(p.name.as_str()) {
                problems.push(TemplateProblem::DuplicateParameter {
                    name: p.name.clone(),
                });
            }
            let regex = match &p.pattern {
                None => None,
                Some(_) if p.param_type != ParamType::String => {
                    problems.push(TemplateProblem::PatternOnNonString {
                        parameter: p.name.clone(),
                        param_type: p.param_type,
                    });
                    None
                }
                Some(pattern) => match compile(pattern) {
                    Ok(r) => Some(r),
                    Err(reason) => {
                        problems.push(TemplateProblem::InvalidPattern {
                            parameter: p.name.clone(),
                            reason,
                        });
                        None
                    }
                },
            };
            if p.required == Some(true) && p.default.is_some() {
                problems.push(TemplateProblem::RequiredWithDefault {
                    parameter: p.name.clone(),
                });
            }
            if let Some(default) = &p.default {
                let reason = match check_value(p, default, regex.as_ref()) {
                    Ok(()) => None,
                    Err(Mismatch::Type) => {
                        Some(format!("{} is not of type {}", show(default), p.param_type))
                    }
                    Err(Mismatch::Pattern(text)) => Some(format!(
                        "{} does not match the pattern `{}`",
                        show(&Value::String(text)),
                        p.pattern.as_deref().unwrap_or_default()
                    )),
                };
                if let Some(reason) = reason {
                    problems.push(TemplateProblem::InvalidDefault {
                        parameter: p.name.clone(),
                        reason,
                    });
                }
            }
        }
        let mut ids = BTreeSet::new();
        for s in &self.steps {
            if !valid_id(&s.id) {
                problems.push(TemplateProblem::Workflow {
                    problem: Problem::InvalidId { id: s.id.clone() },
                });
            }
            if !ids.insert(s.id.as_str()) {
                problems.push(TemplateProblem::Workflow {
                    problem: Problem::DuplicateId { id: s.id.clone() },
                });
            }
            self.check_references(&s.arguments, Place::Step(s.id.clone()), &mut problems);
        }
        let mut prefixes = BTreeSet::new();
        for inc in &self.includes {
            if !valid_id(&inc.prefix) {
                problems.push(TemplateProblem::InvalidPrefix {
                    prefix: inc.prefix.clone(),
                });
            }
            if !prefixes.insert(inc.prefix.as_str()) {
                problems.push(TemplateProblem::DuplicatePrefix {
                    prefix: inc.prefix.clone(),
                });
            }
            if crate::registry::validate_name(&inc.template).is_err() {
                problems.push(TemplateProblem::InvalidIncludeName {
                    prefix: inc.prefix.clone(),
                    template: inc.template.clone(),
                });
            }
            if let Some(v) = &inc.version
                && semver::Version::parse(v).is_err()
                && semver::VersionReq::parse(v).is_err()
            {
                problems.push(TemplateProblem::InvalidIncludeVersion {
                    prefix: inc.prefix.clone(),
                    version: v.clone(),
                });
            }
            for value in inc.params.values() {
                self.check_references(value, Place::Include(inc.prefix.clone()), &mut problems);
            }
        }
        problems
    }

    fn check_references(&self, value: &Value, place: Place, problems: &mut Vec<TemplateProblem>) {
        let mut seen = BTreeSet::new();
        walk_strings(value, &mut |s| {
            for piece in pieces(s) {
                let problem = match piece {
                    Piece::Text(_) => None,
                    Piece::Unclosed(raw) => Some(TemplateProblem::InvalidReference {
                        reference: raw.to_string(),
                        place: place.clone(),
                        reason: "has no closing `}`".into(),
                    }),
                    Piece::Ref { raw, body } => match classify(body) {
                        Token::Param(name) if self.parameter(name).is_none() => {
                            Some(TemplateProblem::UndeclaredParameter {
                                name: name.to_string(),
                                place: place.clone(),
                            })
                        }
                        Token::Param(_) => None,
                        Token::Workflow(body) => {
                            workflow::parse_reference(body).err().map(|reason| {
                                TemplateProblem::InvalidReference {
                                    reference: raw.to_string(),
                                    place: place.clone(),
                                    reason,
                                }
                            })
                        }
                        Token::Invalid => Some(TemplateProblem::InvalidReference {
                            reference: raw.to_string(),
                            place: place.clone(),
                            reason: INVALID_REFERENCE.into(),
                        }),
                    },
                };
                if let Some(p) = problem {
                    let key = p.to_string();
                    if seen.insert(key) {
                        problems.push(p);
                    }
                }
            }
        });
    }

    /// A JSON Schema (an object) of the parameters this template takes, e.g. for a tool's
    /// `inputSchema`.
    pub fn parameters_schema(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in &self.parameters {
            let mut prop = Map::new();
            prop.insert("type".into(), Value::String(p.param_type.as_str().into()));
            if let Some(d) = &p.description {
                prop.insert("description".into(), Value::String(d.clone()));
            }
            if let Some(d) = &p.default {
                prop.insert("default".into(), d.clone());
            }
            if let Some(pattern) = &p.pattern {
                prop.insert("pattern".into(), Value::String(pattern.clone()));
            }
            if p.is_required() {
                required.push(Value::String(p.name.clone()));
            }
            properties.insert(p.name.clone(), Value::Object(prop));
        }
        let mut schema = Map::new();
        schema.insert("type".into(), Value::String("object".into()));
        if let Some(d) = &self.description {
            schema.insert("description".into(), Value::String(d.clone()));
        }
        schema.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        schema.insert("additionalProperties".into(), Value::Bool(false));
        Value::Object(schema)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::testing::*;
    use crate::template::*;

    #[test]
    fn static_problems_are_found_by_check() {
        let t = template(json!({
            "name": "/bad", "version": "1.0",
            "parameters": [
                {"name": "n", "type": "integer", "default": "three"},
                {"name": "n", "type": "string"},
                {"name": "1st", "type": "string"},
                {"name": "re", "type": "string", "pattern": "(unclosed"},
                {"name": "code", "type": "string", "pattern": "^[a-z]+$", "default": "ABC"},
                {"name": "num", "type": "number", "pattern": "x"},
                {"name": "both", "type": "string", "required": true, "default": "x"}
            ],
            "steps": [
                {"id": "a", "tool": "t", "arguments": {"x": ["${ghost}", {"y": "${n} ${oops.x}"}],
                 "z": "${steps.a}", "open": "${n"}},
                {"id": "a", "tool": "t"},
                {"id": "bad id", "tool": "t"}
            ],
            "includes": [
                {"template": "sub", "prefix": "p", "params": {"v": "${phantom}"}},
                {"template": "sub", "prefix": "p", "version": "not a version"},
                {"template": "sub", "prefix": "bad.prefix"}
            ]
        }));
        let problems = t.check();
        let text = texts(&problems);
        let expect = [
            TemplateProblem::InvalidName {
                name: "/bad".into(),
            },
            TemplateProblem::InvalidDefault {
                parameter: "n".into(),
                reason: "\"three\" is not of type integer".into(),
            },
            TemplateProblem::DuplicateParameter { name: "n".into() },
            TemplateProblem::InvalidParameterName { name: "1st".into() },
            TemplateProblem::InvalidDefault {
                parameter: "code".into(),
                reason: "\"ABC\" does not match the pattern `^[a-z]+$`".into(),
            },
            TemplateProblem::PatternOnNonString {
                parameter: "num".into(),
                param_type: ParamType::Number,
            },
            TemplateProblem::RequiredWithDefault {
                parameter: "both".into(),
            },
            TemplateProblem::UndeclaredParameter {
                name: "ghost".into(),
                place: Place::Step("a".into()),
            },
            TemplateProblem::Workflow {
                problem: Problem::DuplicateId { id: "a".into() },
            },
            TemplateProblem::Workflow {
                problem: Problem::InvalidId {
                    id: "bad id".into(),
                },
            },
            TemplateProblem::UndeclaredParameter {
                name: "phantom".into(),
                place: Place::Include("p".into()),
            },
            TemplateProblem::DuplicatePrefix { prefix: "p".into() },
            TemplateProblem::InvalidIncludeVersion {
                prefix: "p".into(),
                version: "not a version".into(),
            },
            TemplateProblem::InvalidPrefix {
                prefix: "bad.prefix".into(),
            },
        ];
        for e in &expect {
            assert!(problems.contains(e), "missing {e:?} in {text:?}");
        }
        assert!(
            problems.iter().any(
                |p| matches!(p, TemplateProblem::InvalidVersion { version, .. } if version == "1.0")
            ),
            "{text:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, TemplateProblem::InvalidPattern { parameter, .. } if parameter == "re")),
            "{text:?}"
        );
        for reference in ["${oops.x}", "${steps.a}", "${n"] {
            assert!(
                problems.iter().any(|p| matches!(p,
                    TemplateProblem::InvalidReference { reference: r, .. } if r == reference)),
                "{reference} in {text:?}"
            );
        }
        assert_eq!(problems.len(), expect.len() + 5, "{text:?}");
        assert!(
            text.contains(
                &"step `a`: `${ghost}` names parameter `ghost`, which the template does not \
                  declare; declare it in `parameters`"
                    .to_string()
            ),
            "{text:?}"
        );
        // instantiate reports them too, with the parameter problems.
        let err = instantiate(&t, &Map::new(), &none).unwrap_err();
        assert!(err.len() > problems.len(), "{:?}", texts(&err));
    }
}
