//! Reading JSON Schemas for people and for other tool formats: a property's type in words, an
//! example value, and whether OpenAI's strict mode accepts a schema.

use serde_json::{Map, Value, json};

/// How deep `$ref`s and nesting are followed (schemas can be recursive).
const DEPTH: usize = 6;

/// `#/$defs/Name` (or `#/definitions/Name`) in `root`.
fn resolve<'a>(root: &'a Map<String, Value>, reference: &str) -> Option<&'a Value> {
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    root.get("$defs")
        .or_else(|| root.get("definitions"))
        .and_then(|d| d.get(name))
}

/// The schema itself, or what its `$ref` points to.
fn deref<'a>(root: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(root, r).unwrap_or(schema),
        None => schema,
    }
}

/// A property's type in a few words: `string`, `integer ≥ 1`, `array of string`,
/// `"FIFO" \| "PRIORITY"`, `RunState` (a named definition), `string or null`.
pub fn type_words(root: &Map<String, Value>, schema: &Value) -> String {
    type_words_at(root, schema, 0)
}

fn type_words_at(root: &Map<String, Value>, schema: &Value, depth: usize) -> String {
    if depth > DEPTH {
        return "…".into();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        // A named enum reads better as its values.
        return match resolve(root, r) {
            Some(target) if target.get("enum").is_some() || target.get("oneOf").is_some() => {
                let words = type_words_at(root, target, depth + 1);
                if words.is_empty() { name } else { words }
            }
            _ => name,
        };
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(c) = schema.get("const") {
        return c.to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema.get(key).and_then(Value::as_array) {
            let words: Vec<String> = variants
                .iter()
                .map(|v| type_words_at(root, v, depth + 1))
                .collect();
            return join_alternatives(words);
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) => one_type(root, schema, t, depth),
        Some(Value::Array(types)) => join_alternatives(
            types
                .iter()
                .filter_map(Value::as_str)
                .map(|t| one_type(root, schema, t, depth))
                .collect(),
        ),
        _ => "any".into(),
    }
}

fn join_alternatives(mut words: Vec<String>) -> String {
    words.dedup();
    // `X or null` reads better with null last.
    if let Some(i) = words.iter().position(|w| w == "null") {
        let null = words.remove(i);
        words.push(null);
    }
    words.join(" or ")
}

fn one_type(root: &Map<String, Value>, schema: &Value, t: &str, depth: usize) -> String {
    match t {
        "array" => match schema.get("items") {
            Some(items) => format!("array of {}", type_words_at(root, items, depth + 1)),
            None => "array".into(),
        },
        "integer" | "number" => {
            let mut s = t.to_string();
            if let Some(min) = schema.get("minimum") {
                s.push_str(&format!(" ≥ {min}"));
            }
            if let Some(max) = schema.get("maximum") {
                s.push_str(&format!(" ≤ {max}"));
            }
            s
        }
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some(f) => format!("string ({f})"),
            None => "string".into(),
        },
        other => other.to_string(),
    }
}

/// An example value for `schema`: its example, default, const or first enum value when it
/// has one; else a value of its type, with an object's required properties filled in.
pub fn example(root: &Map<String, Value>, schema: &Value) -> Value {
    example_at(root, schema, "", 0)
}

/// A string for a property called `name`: a version looks like one, a tool is a real tool.
fn example_string(name: &str) -> Value {
    match name {
        "version" => json!("1.0.0"),
        "tool" => json!("registry_list"),
        n if n.ends_with("name") => json!("example"),
        _ => json!("text"),
    }
}

fn example_at(root: &Map<String, Value>, schema: &Value, name: &str, depth: usize) -> Value {
    if depth > DEPTH {
        return Value::Null;
    }
    let schema = deref(root, schema);
    if let Some(v) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .or_else(|| schema.get("default"))
        .or_else(|| schema.get("const"))
        .or_else(|| {
            schema
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
        })
    {
        return v.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema.get(key).and_then(Value::as_array) {
            let pick = variants
                .iter()
                .find(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .or(variants.first());
            return pick.map_or(Value::Null, |v| example_at(root, v, name, depth + 1));
        }
    }
    let t = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        // Any JSON value.
        _ => return json!({}),
    };
    match t {
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2025-01-01T00:00:00Z"),
            Some("uri") => json!("https://example.com"),
            _ => example_string(name),
        },
        "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "number" => schema.get("minimum").cloned().unwrap_or(json!(1.5)),
        "boolean" => json!(true),
        "array" => match schema.get("items") {
            Some(items) => json!([example_at(root, items, name, depth + 1)]),
            None => json!([]),
        },
        "object" => {
            let mut out = Map::new();
            let props = schema.get("properties").and_then(Value::as_object);
            let required = schema.get("required").and_then(Value::as_array);
            if let (Some(props), Some(required)) = (props, required) {
                for name in required.iter().filter_map(Value::as_str) {
                    if let Some(p) = props.get(name) {
                        out.insert(name.to_string(), example_at(root, p, name, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}

/// Whether OpenAI's strict mode accepts `schema` as it is: every object schema in it (nested,
/// in arrays, alternatives and definitions) forbids additional properties and requires every
/// property it lists.
pub fn strict_compatible(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            let is_object = map.get("type").is_some_and(|t| match t {
                Value::String(s) => s == "object",
                Value::Array(ts) => ts.iter().any(|t| t == "object"),
                _ => false,
            }) || map.contains_key("properties");
            if is_object {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    return false;
                }
                let props = map.get("properties").and_then(Value::as_object);
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(props) = props
                    && !props.keys().all(|k| required.contains(&k.as_str()))
                {
                    return false;
                }
            }
            map.values().all(strict_compatible)
        }
        Value::Array(items) => items.iter().all(strict_compatible),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn strict_needs_closed_objects_with_every_property_required() {
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}},
                            "required": ["a"], "additionalProperties": false});
        assert!(strict_compatible(&closed));
        let optional = json!({"type": "object", "properties": {"a": {"type": "string"}},
                              "additionalProperties": false});
        assert!(!strict_compatible(&optional));
        let open = json!({"type": "object", "properties": {}});
        assert!(!strict_compatible(&open));
        let nested = json!({"type": "object", "properties": {"a": {"type": "array",
            "items": {"type": "object", "properties": {"b": {"type": "integer"}}}}},
            "required": ["a"], "additionalProperties": false});
        assert!(!strict_compatible(&nested));
    }

    #[test]
    fn examples_fill_required_properties_and_follow_refs() {
        let root = obj(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "policy": {"$ref": "#/$defs/Policy"},
                "n": {"type": ["integer", "null"], "minimum": 2},
                "skip": {"type": "boolean"}
            },
            "required": ["name", "policy", "n"],
            "$defs": {"Policy": {"type": "string", "enum": ["FIFO", "PRIORITY"]}}
        }));
        let schema = Value::Object(root.clone());
        assert_eq!(
            example(&root, &schema),
            json!({"name": "example", "policy": "FIFO", "n": 2})
        );
        assert_eq!(
            type_words(&root, &root["properties"]["policy"]),
            "\"FIFO\" | \"PRIORITY\""
        );
        assert_eq!(
            type_words(&root, &root["properties"]["n"]),
            "integer ≥ 2 or null"
        );
    }
}
