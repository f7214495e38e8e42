//! Workflow templates: named, semver-versioned, parameterised workflows that can include one
//! another.
//!
//! A [`Template`] declares typed [`Parameter`]s and carries [`Step`](crate::workflow::Step)s of
//! the same shape as a workflow [`Definition`](crate::workflow::Definition). [`instantiate`]
//! checks the parameters a caller gives (every problem at once), applies defaults, substitutes
//! them, expands [`Include`]s and returns a plain [`Definition`](crate::workflow::Definition).
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
mod model;
mod problem;
mod refs;
#[cfg(test)]
mod testing;

pub use expand::{instantiate, select};
pub use model::{
    Include, MAX_INCLUDE_DEPTH, MAX_STEPS, PREFIX_SEPARATOR, ParamType, Parameter, Template,
};
pub use problem::{Place, TemplateProblem};
pub use refs::valid_param_name;
