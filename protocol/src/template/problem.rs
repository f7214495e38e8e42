//! What can be wrong with a template or with the parameters given to it, and where.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::ParamType;
use crate::workflow::Problem;

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
    /// Includes nest deeper than [`MAX_INCLUDE_DEPTH`](super::MAX_INCLUDE_DEPTH).
    IncludeTooDeep {
        /// The chain of templates, `name@version`.
        chain: Vec<String>,
        /// The limit.
        limit: usize,
    },
    /// The expansion would have more than [`MAX_STEPS`](super::MAX_STEPS) steps or expand more includes.
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
pub(super) fn show(value: &Value) -> String {
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
