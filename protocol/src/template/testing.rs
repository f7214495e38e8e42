//! What the template tests share: building templates and reading problems and steps.

use serde_json::{Map, Value, json};

use super::expand::select;
use super::model::Template;
use super::problem::TemplateProblem;
use crate::workflow::{Definition, Step};

pub(super) fn template(v: Value) -> Template {
    serde_json::from_value(v).expect("a template")
}

pub(super) fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("params must be an object"),
    }
}

pub(super) fn none(_: &str, _: Option<&str>) -> Option<Template> {
    None
}

pub(super) fn texts(problems: &[TemplateProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

pub(super) fn step<'a>(def: &'a Definition, id: &str) -> &'a Step {
    def.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {def:?}"))
}

pub(super) fn library() -> Vec<Template> {
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

pub(super) fn resolver(lib: Vec<Template>) -> impl Fn(&str, Option<&str>) -> Option<Template> {
    move |name, version| select(&lib, name, version).cloned()
}
