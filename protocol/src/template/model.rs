//! What a template is: its name and version, typed parameters, steps and includes; and the
//! limits of an instantiation.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::workflow::Step;

/// What joins an include's prefix to an included step id: `<prefix>-<id>`.
pub const PREFIX_SEPARATOR: &str = "-";

/// Includes nested deeper than this are a problem.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// An instantiation that would produce more steps than this, or expand more includes, is a
/// problem.
pub const MAX_STEPS: usize = 10_000;

/// A named, versioned, parameterised workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The template's name: 1–200 letters, digits, `.`, `_`, `-` and `/`, not starting or ending
    /// with `/` (the artifact registry's naming rule).
    pub name: String,
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// What the template does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The parameters it takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Its own steps; `${name}` in their arguments refers to a parameter.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Other templates whose steps it inserts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<Include>,
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Letters, digits and `_`, not starting with a digit, at most 64; not `params` or `steps`.
    pub name: String,
    /// The JSON type a value must have.
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Must be given. Default: true when there is no `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Value when not given (literal, of the parameter's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// For `string` parameters: a regular expression the value must match (unanchored; use
    /// `^…$` for a whole match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What the parameter is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Parameter {
    /// Whether a value must be given.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

/// A parameter's JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A JSON number without a fractional part (`3` and `3.0`, not `3.5`).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON array.
    Array,
    /// A JSON object.
    Object,
}

impl ParamType {
    /// Whether `value` has this type.
    pub fn matches(self, value: &Value) -> bool {
        match (self, value) {
            (ParamType::String, Value::String(_))
            | (ParamType::Number, Value::Number(_))
            | (ParamType::Boolean, Value::Bool(_))
            | (ParamType::Array, Value::Array(_))
            | (ParamType::Object, Value::Object(_)) => true,
            (ParamType::Integer, Value::Number(n)) => {
                n.is_i64()
                    || n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
            }
            _ => false,
        }
    }

    /// The name used in templates and JSON Schema.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Inserts another template's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Include {
    /// The included template's name.
    pub template: String,
    /// Its version: exact (`1.2.0`) or a semver requirement (`^1.2`), as the resolver
    /// understands it; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Prefix of the included step ids (`<prefix>-<id>`): 1–64 letters, digits, `_` and `-`,
    /// unique among the template's includes.
    pub prefix: String,
    /// The included template's parameters; may use this template's `${name}` parameters and
    /// `${steps.<id>.output…}` of this template's steps.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

impl Template {
    /// `name@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The declared parameter called `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use crate::template::*;

    #[test]
    fn templates_reject_unknown_fields_and_have_a_schema() {
        let err = serde_json::from_value::<Template>(
            json!({"name": "x", "version": "1.0.0", "steps": [], "parametres": []}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("parametres"), "{err}");
        let err = serde_json::from_value::<Parameter>(json!({"name": "x", "type": "float"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("float"), "{err}");
        let schema = serde_json::to_value(schemars::schema_for!(Template)).unwrap();
        assert!(schema["properties"]["includes"].is_object(), "{schema}");
        let problems = serde_json::to_value(schemars::schema_for!(TemplateProblem)).unwrap();
        assert!(problems.to_string().contains("include_cycle"));
    }

    proptest! {
        /// Integers are integers and numbers; numbers with a fraction are numbers only.
        #[test]
        fn integer_and_number(i in any::<i64>(), f in -1e12f64..1e12) {
            prop_assert!(ParamType::Integer.matches(&json!(i)));
            prop_assert!(ParamType::Number.matches(&json!(i)));
            prop_assert!(ParamType::Number.matches(&json!(f)));
            prop_assert_eq!(ParamType::Integer.matches(&json!(f)), f.fract() == 0.0);
        }
    }
}
