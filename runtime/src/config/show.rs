//! The effective configuration as TOML, each value followed by where it came from.

use std::fmt::Write as _;

use super::Loaded;
use super::keys::{self, ENGINE, ENGINES, KEYS, TOOL};

impl Loaded {
    /// The effective configuration as a TOML file that `config check` accepts, each key
    /// followed by a comment naming its origin: `default`, `FILE:LINE`, the environment
    /// variable or the flag. A key without a value (`server.http` unset) is shown commented.
    pub fn show(&self) -> String {
        let value = toml::Value::try_from(&self.config)
            .unwrap_or_else(|_| toml::Value::Table(toml::Table::new()));
        let mut out = String::from(
            "# The effective configuration; after each value, where it came from\n\
             # (default, the file and line, an ENSEMBLE_* variable, or a flag).\n",
        );
        let mut header = String::new();
        for path in self.paths() {
            let (table, leaf) = path.rsplit_once('.').unwrap_or(("", path.as_str()));
            let found = lookup(&value, &path);
            if table != header {
                header = table.to_string();
                let _ = write!(out, "\n[{header}]\n");
            }
            let line = match found {
                Some(v) => format!("{leaf} = {v}"),
                None => format!("# {leaf} ="),
            };
            let origin = match found {
                Some(_) => self.origin(&path).to_string(),
                None => format!("not set; {}", help(&path)),
            };
            let _ = writeln!(out, "{line:<40} # {origin}");
        }
        out
    }

    /// Every key to show, in table order: each engine in full, each configured tool's keys.
    fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        for section in keys::children("") {
            let prefix = format!("{section}.");
            let under: Vec<&str> = KEYS
                .iter()
                .map(|k| k.path)
                .filter(|p| p.starts_with(&prefix))
                .collect();
            match section {
                "engines" => {
                    for engine in ENGINES {
                        out.extend(under.iter().map(|p| p.replace(ENGINE, engine)));
                    }
                }
                "tools" => {
                    let value = toml::Value::try_from(&self.config.tools).ok();
                    for tool in self.config.tools.keys() {
                        out.extend(under.iter().map(|p| p.replace(TOOL, tool)).filter(|p| {
                            let rest = &p["tools.".len()..];
                            value.as_ref().is_some_and(|v| lookup(v, rest).is_some())
                        }));
                    }
                }
                _ => out.extend(under.iter().map(|p| p.to_string())),
            }
        }
        out
    }
}

fn lookup<'v>(value: &'v toml::Value, path: &str) -> Option<&'v toml::Value> {
    path.split('.').try_fold(value, |v, seg| v.get(seg))
}

fn help(path: &str) -> &'static str {
    let segs: Vec<&str> = path.split('.').collect();
    keys::find(&keys::pattern_of(&segs)).map_or("", |k| k.help)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Sources, load};

    #[test]
    fn the_shown_defaults_read_back_as_the_defaults() {
        let loaded = load(&Sources::default()).unwrap();
        let shown = loaded.show();
        assert!(shown.contains("[engines.workflow.restart]"), "{shown}");
        assert!(shown.contains("# http ="), "{shown}");
        assert!(
            shown.contains("data_dir = \"ensemble-data\"") && shown.contains("# default"),
            "{shown}"
        );
        let back: Config = toml::from_str(&shown).unwrap();
        assert_eq!(back, Config::default());
    }
}
