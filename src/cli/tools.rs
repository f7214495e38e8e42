//! `ensemble tools`: the tool catalogue of a runtime built with the configuration, as a table,
//! JSON, MCP's `tools/list` result, OpenAI function-calling tools, or the Markdown reference.

use std::fmt::Write as _;

use clap::ValueEnum;
use ensemble::runtime::Runtime;
use ensemble::runtime::config::Config;
use ensemble::runtime::router::{Annotations, ToolSpec};
use serde_json::{Map, Value, json};

use super::Failure;
use super::schema::{example, strict_compatible, type_words};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table: name, annotations, description.
    Table,
    /// A JSON array of the tools (name, description, schemas, annotations).
    Json,
    /// Exactly what MCP `tools/list` returns: `{"tools": [...]}`.
    Mcp,
    /// OpenAI function-calling `tools`: `[{"type": "function", "function": {...}}]`.
    Openai,
    /// The tool reference (docs/tools.md).
    Markdown,
}

/// Builds an in-memory runtime with `config`, prints its tools in `format`, and stops it.
pub async fn print(config: &Config, format: Format, test_tools: bool) -> Result<(), Failure> {
    let runtime = Runtime::builder()
        .config(config)
        .in_memory()
        .test_tools(test_tools)
        .build()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let specs = runtime.router().list();
    let mcp = runtime.router().mcp_tools();
    runtime
        .shutdown()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let text = match format {
        Format::Table => table(&specs),
        Format::Json => pretty(&specs),
        Format::Mcp => pretty(&rmcp::model::ListToolsResult::with_all_items(mcp)),
        Format::Openai => pretty(&openai(&specs)),
        Format::Markdown => markdown(&specs),
    };
    print!("{text}");
    Ok(())
}

fn pretty(value: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

fn annotation_words(a: Annotations) -> String {
    let mut words = Vec::new();
    if a.read_only {
        words.push("read-only");
    }
    if a.destructive {
        words.push("destructive");
    }
    if a.idempotent && !a.read_only {
        words.push("idempotent");
    }
    if words.is_empty() {
        "-".into()
    } else {
        words.join(", ")
    }
}

/// The first sentence-ish of a description, at most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

fn table(specs: &[ToolSpec]) -> String {
    let rows: Vec<[String; 3]> = specs
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                annotation_words(t.annotations),
                truncate(&t.description, 72),
            ]
        })
        .collect();
    let header = ["TOOL", "ANNOTATIONS", "DESCRIPTION"].map(String::from);
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(out, "{:<w0$}  {:<w1$}  {}", r[0], r[1], r[2]);
    }
    out
}

/// OpenAI function-calling tools. `strict` is true only where OpenAI's strict mode accepts
/// the schema as it is (every object closed and every property required).
pub fn openai(specs: &[ToolSpec]) -> Value {
    Value::Array(
        specs
            .iter()
            .map(|t| {
                let mut parameters = (*t.input_schema).clone();
                // OpenAI requires an object schema at the top.
                parameters
                    .entry("type")
                    .or_insert_with(|| Value::String("object".into()));
                let parameters = Value::Object(parameters);
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": parameters,
                        "strict": strict_compatible(&parameters),
                    }
                })
            })
            .collect(),
    )
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// A schema's properties as a Markdown table.
fn properties(out: &mut String, schema: &Map<String, Value>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let Some(props) = props.filter(|p| !p.is_empty()) else {
        out.push_str("No properties.\n");
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| property | type | required | description |\n|---|---|---|---|\n");
    for (name, p) in props {
        let description = p
            .get("description")
            .and_then(Value::as_str)
            .or_else(|| {
                // A `$ref`'d property carries its description on the definition.
                let r = p.get("$ref")?.as_str()?;
                let def = r.rsplit('/').next()?;
                schema.get("$defs")?.get(def)?.get("description")?.as_str()
            })
            .unwrap_or("");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} |",
            cell(&type_words(schema, p)),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            cell(description)
        );
    }
}

/// The tool reference: per tool its description, annotations, input and output schema as
/// tables, and an example call built from the input schema.
pub fn markdown(specs: &[ToolSpec]) -> String {
    let mut out = String::from(
        "# Tool reference\n\n\
         <!-- Generated by `ensemble tools --format markdown`; do not edit by hand.\n     \
         Regenerate: cargo run -- tools --format markdown > docs/tools.md -->\n\n\
         Every tool takes a JSON object of arguments and answers with `structuredContent` \
         matching its output schema (and the same JSON as a text block). Read-only and \
         idempotent tools are retried after an engine restart; the others are not.\n\n",
    );
    for t in specs {
        let _ = writeln!(
            out,
            "- [`{}`](#{}) — {}",
            t.name,
            t.name,
            truncate(&t.description, 90)
        );
    }
    for t in specs {
        let _ = write!(out, "\n## {}\n\n{}\n\n", t.name, t.description);
        let _ = writeln!(out, "Annotations: {}.\n", annotation_words(t.annotations));
        out.push_str("### Input\n\n");
        properties(&mut out, &t.input_schema);
        out.push_str("\n### Output\n\n");
        match &t.output_schema {
            Some(schema) => properties(&mut out, schema),
            None => out.push_str("Content blocks (no output schema).\n"),
        }
        let args = example(&t.input_schema, &Value::Object((*t.input_schema).clone()));
        let request = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": t.name, "arguments": args}
        });
        let compact = serde_json::to_string(&args).unwrap_or_default();
        let _ = write!(
            out,
            "\n### Example\n\n```json\n{}\n```\n\n```sh\nensemble call {} --args '{}'\n```\n",
            serde_json::to_string_pretty(&request).unwrap_or_default(),
            t.name,
            compact.replace('\'', "'\\''")
        );
    }
    out
}
