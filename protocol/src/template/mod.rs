//! Workflow templates: named, semver-versioned, parameterised workflows that can include one
//! another.
//!
//! A [`Template`] declares typed [`Parameter`]s and carries [`Step`]s of the same shape as a
//! workflow [`Definition`]. [`instantiate`] checks the parameters a caller gives (every problem
//! at once), applies defaults, substitutes them, expands [`Include`]s and returns a plain
//! [`Definition`].
//!
//! # References
//!
//! Inside a template's step `arguments` and include `params`, a `${…}` is one of:
//!
//! - `${name}` — a template parameter (a name of letters, digits and `_`, not starting with a
//!   digit). It is replaced at instantiation. A string that is exactly `${name}` becomes the
//!   parameter's JSON value, whatever its type; a reference inside a longer string is spliced in
//!   as text (a string as is, `null` as nothing, anything else as compact JSON). Substitution
//!   goes through arrays and objects at any depth (object keys are not substituted) and is one
//!   pass: text that a parameter's value brings in is never substituted again.
//! - `${params.x}` and `${steps.<id>.output…}` — workflow references, left for the run to
//!   resolve ([`crate::workflow::substitute`]). Only step ids are touched: in an included
//!   template they get the include's prefix (see below).
//!
//! Anything else inside `${…}` is a problem.
//!
//! # Parameters
//!
//! A parameter is required unless it has a `default` or says `"required": false`. An optional
//! parameter that is not given and has no default is `null`. A given `null` counts as not given.
//! Defaults are literal values (not substituted). `pattern` is a regular expression (the `regex`
//! crate's syntax) that a string value must match somewhere, as in JSON Schema: anchor it with
//! `^…$` to match the whole value.
//!
//! A value that is a workflow reference — a string that is exactly `${params.x}` or
//! `${steps.<id>.output…}` — is only known when the workflow runs, so it is accepted for a
//! parameter of any type; a longer string that contains one is accepted for a `string`
//! parameter without its pattern being checked. This is how a template hands a step's output
//! to an included template: `"params": {"rows": "${steps.fetch.output.rows}"}`. A step that gets
//! a `${steps.<id>…}` reference through a parameter depends on that step automatically.
//!
//! # Includes
//!
//! An include inserts another template's steps, instantiated with the include's `params`
//! (which may use the outer template's parameters), before the template's own steps. Every
//! included step id becomes `<prefix>-<id>` (the [`PREFIX_SEPARATOR`]), and so do the ids in
//! its `depends_on` and in its own `${steps.<id>…}` references, so an included template only
//! ever sees its own steps; outer steps reach it through parameters. Includes nest: a step `c`
//! of a template included as `b` inside a template included as `a` is `a-b-c`. The outer
//! template refers to included steps by their prefixed id, e.g. `"depends_on": ["a-b-c"]`.
//! Ids must still fit the workflow rule (1–64 letters, digits, `_` and `-`) once prefixed.
//!
//! An include cycle, an include chain deeper than [`MAX_INCLUDE_DEPTH`], an expansion of more
//! than [`MAX_STEPS`] steps and a missing template are problems, never a stack overflow.

mod bind;
mod check;
mod expand;
mod problem;
mod refs;
#[cfg(test)]
mod testing;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::workflow::{Definition, Step};

pub use expand::{instantiate, select};
pub use problem::{Place, TemplateProblem};
pub use refs::valid_param_name;

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

    /// [`instantiate`] this template.
    pub fn instantiate(
        &self,
        params: &Map<String, Value>,
        resolve: &dyn Fn(&str, Option<&str>) -> Option<Template>,
    ) -> Result<Definition, Vec<TemplateProblem>> {
        instantiate(self, params, resolve)
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
