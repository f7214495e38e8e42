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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::workflow::{self, Definition, Problem, Reference, Step};

/// What joins an include's prefix to an included step id: `<prefix>-<id>`.
pub const PREFIX_SEPARATOR: &str = "-";

/// Includes nested deeper than this are a problem.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// An instantiation that would produce more steps than this, or expand more includes, is a
/// problem.
pub const MAX_STEPS: usize = 10_000;

/// Largest compiled size of a `pattern`, in bytes (bounds the cost of a hostile pattern).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

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

/// Where in a template a reference was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// The arguments of the step with this id.
    Step(String),
    /// The params of the include with this prefix.
    Include(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Step(id) => write!(f, "step `{id}`"),
            Place::Include(prefix) => write!(f, "include `{prefix}`"),
        }
    }
}

/// One problem with a template or with the parameters given to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TemplateProblem {
    /// The template name breaks the naming rule.
    InvalidName {
        /// The name.
        name: String,
    },
    /// The version is not semver.
    InvalidVersion {
        /// The version.
        version: String,
        /// Why.
        reason: String,
    },
    /// A parameter name breaks the naming rule.
    InvalidParameterName {
        /// The name.
        name: String,
    },
    /// Two parameters share a name.
    DuplicateParameter {
        /// The name.
        name: String,
    },
    /// A parameter's `pattern` is not a valid regular expression.
    InvalidPattern {
        /// The parameter.
        parameter: String,
        /// Why.
        reason: String,
    },
    /// A `pattern` on a parameter that is not a string.
    PatternOnNonString {
        /// The parameter.
        parameter: String,
        /// Its type.
        param_type: ParamType,
    },
    /// A parameter's default does not fit its type or pattern.
    InvalidDefault {
        /// The parameter.
        parameter: String,
        /// Why.
        reason: String,
    },
    /// A parameter says `"required": true` and has a default, which would never be used.
    RequiredWithDefault {
        /// The parameter.
        parameter: String,
    },
    /// `${name}` names a parameter the template does not declare.
    UndeclaredParameter {
        /// The name.
        name: String,
        /// Where.
        place: Place,
    },
    /// A `${…}` that is neither a parameter nor a valid workflow reference.
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// Where.
        place: Place,
        /// Why.
        reason: String,
    },
    /// An include prefix breaks the step id rule.
    InvalidPrefix {
        /// The prefix.
        prefix: String,
    },
    /// Two includes share a prefix.
    DuplicatePrefix {
        /// The prefix.
        prefix: String,
    },
    /// An include's template name breaks the naming rule.
    InvalidIncludeName {
        /// The include's prefix.
        prefix: String,
        /// The template name.
        template: String,
    },
    /// An include's version is neither a version nor a requirement.
    InvalidIncludeVersion {
        /// The include's prefix.
        prefix: String,
        /// The version as written.
        version: String,
    },
    /// A problem of the workflow: among the template's own steps (invalid or duplicate ids), or
    /// in the instantiated definition.
    Workflow {
        /// The problem.
        problem: Problem,
    },
    /// A required parameter was not given.
    MissingParameter {
        /// The parameter.
        name: String,
        /// Its type.
        param_type: ParamType,
    },
    /// A parameter was given that the template does not declare.
    UnknownParameter {
        /// The name given.
        name: String,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// The parameter.
        name: String,
        /// The declared type.
        expected: ParamType,
        /// The value given.
        got: Value,
    },
    /// A string that does not match the parameter's pattern.
    PatternMismatch {
        /// The parameter.
        name: String,
        /// The pattern.
        pattern: String,
        /// The value given.
        value: String,
    },
    /// An included template (or that version of it) does not exist.
    MissingTemplate {
        /// The include's prefix.
        prefix: String,
        /// The template name.
        template: String,
        /// The version asked for; `None` for the latest.
        version: Option<String>,
    },
    /// Templates include each other in a cycle: `name@version` of each, the first repeated last.
    IncludeCycle {
        /// The chain of templates.
        chain: Vec<String>,
    },
    /// Includes nest deeper than [`MAX_INCLUDE_DEPTH`].
    IncludeTooDeep {
        /// The chain of templates, `name@version`.
        chain: Vec<String>,
        /// The limit.
        limit: usize,
    },
    /// The expansion would have more than [`MAX_STEPS`] steps or expand more includes.
    TooManySteps {
        /// The limit.
        limit: usize,
    },
    /// A problem inside an included template.
    InInclude {
        /// The include's prefix.
        prefix: String,
        /// The included template, `name@version`.
        template: String,
        /// The problem.
        problem: Box<TemplateProblem>,
    },
}

/// Compact JSON of `value`, cut to a readable length.
fn show(value: &Value) -> String {
    const MAX: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TemplateProblem as P;
        match self {
            P::InvalidName { name } => write!(
                f,
                "template name {name:?} must be 1–200 letters, digits, '.', '_', '-' or '/', \
                 not starting or ending with '/'"
            ),
            P::InvalidVersion { version, reason } => write!(
                f,
                "version {version:?} is not a semantic version like 1.2.0: {reason}"
            ),
            P::InvalidParameterName { name } => write!(
                f,
                "parameter name {name:?} must be 1–64 letters, digits or '_', not starting with \
                 a digit, and not `params` or `steps`"
            ),
            P::DuplicateParameter { name } => {
                write!(f, "parameter `{name}` is declared more than once")
            }
            P::InvalidPattern { parameter, reason } => {
                write!(f, "parameter `{parameter}`: invalid pattern: {reason}")
            }
            P::PatternOnNonString {
                parameter,
                param_type,
            } => write!(
                f,
                "parameter `{parameter}`: `pattern` applies to strings only, but the type is \
                 {param_type}"
            ),
            P::InvalidDefault { parameter, reason } => {
                write!(f, "parameter `{parameter}`: the default {reason}")
            }
            P::RequiredWithDefault { parameter } => write!(
                f,
                "parameter `{parameter}` is required and has a default that would never be \
                 used; remove `required` or the default"
            ),
            P::UndeclaredParameter { name, place } => write!(
                f,
                "{place}: `${{{name}}}` names parameter `{name}`, which the template does not \
                 declare; declare it in `parameters`"
            ),
            P::InvalidReference {
                reference,
                place,
                reason,
            } => write!(f, "{place}: `{reference}` {reason}"),
            P::InvalidPrefix { prefix } => write!(
                f,
                "include prefix {prefix:?} must be 1–64 letters, digits, '_' or '-'"
            ),
            P::DuplicatePrefix { prefix } => write!(
                f,
                "include prefix `{prefix}` is used more than once; step ids would collide"
            ),
            P::InvalidIncludeName { prefix, template } => write!(
                f,
                "include `{prefix}`: template name {template:?} must be 1–200 letters, digits, \
                 '.', '_', '-' or '/', not starting or ending with '/'"
            ),
            P::InvalidIncludeVersion { prefix, version } => write!(
                f,
                "include `{prefix}`: version {version:?} is neither a version like 1.2.0 nor a \
                 requirement like ^1.2"
            ),
            P::Workflow { problem } => problem.fmt(f),
            P::MissingParameter { name, param_type } => {
                write!(
                    f,
                    "parameter `{name}` ({param_type}) is required but was not given"
                )
            }
            P::UnknownParameter { name } => write!(
                f,
                "parameter `{name}` is not declared by the template; remove it or check its \
                 spelling"
            ),
            P::WrongType {
                name,
                expected,
                got,
            } => write!(
                f,
                "parameter `{name}`: expected {expected}, got {}",
                show(got)
            ),
            P::PatternMismatch {
                name,
                pattern,
                value,
            } => write!(
                f,
                "parameter `{name}`: {} does not match the pattern `{pattern}`",
                show(&Value::String(value.clone()))
            ),
            P::MissingTemplate {
                prefix,
                template,
                version,
            } => match version {
                Some(v) => write!(
                    f,
                    "include `{prefix}`: template `{template}` version `{v}` does not exist"
                ),
                None => write!(
                    f,
                    "include `{prefix}`: template `{template}` does not exist"
                ),
            },
            P::IncludeCycle { chain } => {
                write!(f, "templates include each other: {}", chain.join(" → "))
            }
            P::IncludeTooDeep { chain, limit } => write!(
                f,
                "includes nest deeper than {limit}: {}",
                chain.join(" → ")
            ),
            P::TooManySteps { limit } => {
                write!(
                    f,
                    "the instantiated workflow would have more than {limit} steps or includes"
                )
            }
            P::InInclude {
                prefix,
                template,
                problem,
            } => write!(f, "in include `{prefix}` ({template}): {problem}"),
        }
    }
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

/// Checks the given values against the declared parameters and returns every parameter's value
/// (the given one, else the default, else null).
fn bind(
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

enum Mismatch {
    Type,
    Pattern(String),
}

fn check_value(p: &Parameter, value: &Value, regex: Option<&Regex>) -> Result<(), Mismatch> {
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

fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// The workflow step id rule (1–64 letters, digits, `_` and `-`).
fn valid_id(id: &str) -> bool {
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

const INVALID_REFERENCE: &str =
    "must be `${<parameter>}`, `${params.<name>}` or `${steps.<id>.output.<path>}`";

/// A piece of a string, split at `${…}`.
enum Piece<'a> {
    Text(&'a str),
    /// `raw` is the whole `${body}`.
    Ref {
        raw: &'a str,
        body: &'a str,
    },
    /// `${` without a closing `}`, to the end of the string.
    Unclosed(&'a str),
}

fn pieces(s: &str) -> Vec<Piece<'_>> {
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

enum Token<'a> {
    /// A template parameter.
    Param(&'a str),
    /// `params.…` or `steps.…`, for the run.
    Workflow(&'a str),
    Invalid,
}

fn classify(body: &str) -> Token<'_> {
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

fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// One substitution pass over a template's values.
struct Fill<'a> {
    values: &'a BTreeMap<String, Value>,
    prefix: &'a str,
    /// Steps that `${steps.<id>…}` references brought in by parameter values name.
    introduced: BTreeSet<String>,
}

impl<'a> Fill<'a> {
    fn new(values: &'a BTreeMap<String, Value>, prefix: &'a str) -> Self {
        Self {
            values,
            prefix,
            introduced: BTreeSet::new(),
        }
    }

    fn value(&mut self, v: &Value) -> Value {
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
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn template(v: Value) -> Template {
        serde_json::from_value(v).expect("a template")
    }

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("params must be an object"),
        }
    }

    fn none(_: &str, _: Option<&str>) -> Option<Template> {
        None
    }

    fn texts(problems: &[TemplateProblem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    fn step<'a>(def: &'a Definition, id: &str) -> &'a Step {
        def.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no step `{id}` in {def:?}"))
    }

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

    fn library() -> Vec<Template> {
        vec![
            template(json!({
                "name": "fetch", "version": "1.0.0",
                "parameters": [{"name": "url", "type": "string"},
                               {"name": "tries", "type": "integer", "default": 1}],
                "steps": [
                    {"id": "get", "tool": "http_get", "arguments": {"url": "${url}", "tries": "${tries}"}},
                    {"id": "parse", "tool": "parse", "depends_on": ["get"],
                     "arguments": {"body": "${steps.get.output.body}", "note": "from ${url}"}}
                ]
            })),
            template(json!({
                "name": "fetch", "version": "2.0.0",
                "parameters": [{"name": "url", "type": "string"}],
                "steps": [{"id": "get2", "tool": "http_get", "arguments": {"url": "${url}"}}]
            })),
            template(json!({
                "name": "etl", "version": "1.0.0",
                "parameters": [{"name": "source", "type": "string"},
                               {"name": "table", "type": "string"}],
                "includes": [{"template": "fetch", "version": "1.0.0", "prefix": "in",
                              "params": {"url": "https://${source}/data", "tries": 2}}],
                "steps": [
                    {"id": "load", "tool": "db_load", "depends_on": ["in-parse"],
                     "arguments": {"rows": "${steps.in-parse.output.rows}", "table": "${table}"}}
                ]
            })),
        ]
    }

    fn resolver(lib: Vec<Template>) -> impl Fn(&str, Option<&str>) -> Option<Template> {
        move |name, version| select(&lib, name, version).cloned()
    }

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

        /// Integers are integers and numbers; numbers with a fraction are numbers only.
        #[test]
        fn integer_and_number(i in any::<i64>(), f in -1e12f64..1e12) {
            prop_assert!(ParamType::Integer.matches(&json!(i)));
            prop_assert!(ParamType::Number.matches(&json!(i)));
            prop_assert!(ParamType::Number.matches(&json!(f)));
            prop_assert_eq!(ParamType::Integer.matches(&json!(f)), f.fract() == 0.0);
        }

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
