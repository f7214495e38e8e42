//! The configuration file, read key by key against the key table: every syntax error and
//! every wrong key or value is recorded with its line, and the valid keys are kept.

use std::collections::BTreeMap;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::keys;
use super::load::{Origin, Problem, did_you_mean, insert, name_problem};

/// Walks one file's document.
pub(super) struct FileWalk<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) known: Option<&'a [String]>,
    pub(super) problems: &'a mut Vec<Problem>,
    pub(super) lines: &'a mut BTreeMap<String, usize>,
}

impl FileWalk<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn problem(&mut self, line: Option<usize>, key: String, message: String) {
        self.problems.push(Problem {
            origin: Origin::File {
                path: self.path.to_path_buf(),
                line,
            },
            key,
            message,
        });
    }

    /// The document's valid keys, normalised; every problem recorded.
    pub(super) fn document(&mut self) -> toml::Table {
        let (doc, errors) = DeTable::parse_recoverable(self.text);
        for e in errors {
            let line = e.span().map(|s| self.line(s.start));
            let message = format!("{} (TOML syntax)", e.message().trim_end());
            self.problem(line, String::new(), message);
        }
        let mut out = toml::Table::new();
        self.table(doc.get_ref(), &mut Vec::new(), &mut out);
        // Tables iterate in key order; report in the order of the file.
        self.problems.sort_by_key(|p| match p.origin {
            Origin::File { line, .. } => line.unwrap_or(0),
            _ => 0,
        });
        out
    }

    fn table<'i>(&mut self, table: &DeTable<'i>, segs: &mut Vec<String>, out: &mut toml::Table) {
        for (k, v) in table.iter() {
            let line = self.line(k.span().start);
            segs.push(k.get_ref().to_string());
            self.entry(v.get_ref(), line, segs, out);
            segs.pop();
        }
    }

    fn entry(
        &mut self,
        value: &DeValue<'_>,
        line: usize,
        segs: &mut Vec<String>,
        out: &mut toml::Table,
    ) {
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let path = refs.join(".");
        if let Some(message) = name_problem(&refs, self.known) {
            if refs.len() == 2 {
                self.problem(Some(line), path, message);
            }
            return;
        }
        let pattern = keys::pattern_of(&refs);
        if let Some(key) = keys::find(&pattern) {
            let checked = plain(value).and_then(|v| key.accepts.check(&v));
            match checked {
                Ok(v) => {
                    insert(out, &refs, v);
                    self.lines.insert(path, line);
                }
                Err(message) => self.problem(Some(line), path, message),
            }
            return;
        }
        let below = keys::children(&pattern);
        if !below.is_empty() {
            match value {
                DeValue::Table(t) => self.table(t, segs, out),
                _ => self.problem(
                    Some(line),
                    path.clone(),
                    format!("is a table: write it as [{path}] with its keys below"),
                ),
            }
            return;
        }
        let (parent, name) = refs.split_at(refs.len() - 1);
        let siblings = keys::children(&keys::pattern_of(parent));
        let where_ = if parent.is_empty() {
            "at the top".to_string()
        } else {
            format!("in [{}]", parent.join("."))
        };
        let message = format!(
            "unknown key{}; known {where_}: {}",
            did_you_mean(name[0], siblings.iter().copied()),
            siblings.join(", ")
        );
        self.problem(Some(line), path, message);
    }
}

/// A value as `toml::Value`, or why it cannot be one.
fn plain(value: &DeValue<'_>) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match value {
        DeValue::String(s) => V::String(s.to_string()),
        DeValue::Integer(i) => V::Integer(
            i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("{i} is too large for a TOML integer"))?,
        ),
        DeValue::Float(f) => V::Float(
            f.as_str()
                .replace('_', "")
                .parse::<f64>()
                .map_err(|_| format!("{f} is not a number"))?,
        ),
        DeValue::Boolean(b) => V::Boolean(*b),
        DeValue::Datetime(d) => V::Datetime(*d),
        DeValue::Array(a) => V::Array(
            a.iter()
                .map(|v| plain(v.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => V::Table(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), plain(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
