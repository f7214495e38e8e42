//! Reading the layers: every key of the file, every `ENSEMBLE_*` variable and every flag is
//! checked against the key table, all problems are collected, then figment merges the layers
//! (defaults < file < environment < flags) and remembers which layer gave each value.
//!
//! figment's core is used for the merge, the extraction into [`Config`] and the provenance of
//! each value; its own TOML and environment providers are not: the file is read with `toml`'s
//! spanned parser (lines, and every error rather than the first), and variables are matched
//! against the key table (a typo is an error, not a silently ignored variable).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::Config;
use super::env::env_layer;
use super::file::FileWalk;
use super::keys::{self, ENGINES};

/// `ENSEMBLE_*` variables that are not configuration keys.
pub const NOT_KEYS: &[&str] = &[
    "ENSEMBLE_CONFIG",
    "ENSEMBLE_LOG",
    "ENSEMBLE_TEST_TOOLS",
    "ENSEMBLE_TEST_LOG",
    // The credential `ensemble call --url` and `ensemble learn --url` send.
    "ENSEMBLE_TOKEN",
    "ENSEMBLE_TOKEN_FILE",
];

/// What the configuration is read from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The configuration file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables (all of them: those without the `ENSEMBLE_` prefix are ignored).
    pub env: Vec<(String, String)>,
    /// Values given as command line flags.
    pub flags: Vec<FlagValue>,
    /// The tools `[tools.<name>]` may name; `None` accepts any name.
    pub known_tools: Option<Vec<String>>,
}

impl Sources {
    /// `file`, this process's environment (its Unicode variables), and no flags.
    pub fn with_process_env(file: Option<PathBuf>) -> Self {
        Self {
            file,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            ..Self::default()
        }
    }
}

/// A value given as a command line flag.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagValue {
    /// The key it sets, e.g. `store.data_dir`.
    pub key: &'static str,
    /// The flag, e.g. `--data-dir`.
    pub flag: &'static str,
    /// The value.
    pub value: toml::Value,
}

/// Where a value (or a problem) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The embedded default.
    Default,
    /// The configuration file, at this line (when known).
    File {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: Option<usize>,
    },
    /// An environment variable.
    Env(String),
    /// A command line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub origin: Origin,
    /// The key concerned (dotted), empty for a syntax error.
    pub key: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

/// The configuration was refused: every problem found, in file order, then variables, then
/// flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every problem.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// A configuration read from its layers, with where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    origins: BTreeMap<String, Origin>,
}

impl Loaded {
    /// Where the value of `key` (a dotted path such as `store.data_dir`) came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }
}

/// Reads, checks and layers the configuration.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let known = sources.known_tools.as_deref();
    let mut problems = Vec::new();
    let mut file_layer = toml::Table::new();
    let mut lines = BTreeMap::new();
    if let Some(path) = &sources.file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut walk = FileWalk {
                    path,
                    text: &text,
                    known,
                    problems: &mut problems,
                    lines: &mut lines,
                };
                file_layer = walk.document();
            }
            Err(e) => problems.push(Problem {
                origin: Origin::File {
                    path: path.clone(),
                    line: None,
                },
                key: String::new(),
                message: format!("cannot be read ({e}); give the path of a TOML file"),
            }),
        }
    }
    let env_layer = env_layer(&sources.env, known, &mut problems);
    let mut flag_layer = toml::Table::new();
    let mut flag_names = BTreeMap::new();
    for f in &sources.flags {
        let segs: Vec<&str> = f.key.split('.').collect();
        let Some(key) = keys::find(&keys::pattern_of(&segs)) else {
            problems.push(Problem {
                origin: Origin::Flag(f.flag.to_string()),
                key: f.key.to_string(),
                message: "is not a configuration key".into(),
            });
            continue;
        };
        match key.accepts.check(&f.value) {
            Ok(v) => {
                insert(&mut flag_layer, &segs, v);
                flag_names.insert(f.key.to_string(), f.flag.to_string());
            }
            Err(message) => problems.push(Problem {
                origin: Origin::Flag(f.flag.to_string()),
                key: f.key.to_string(),
                message,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let flags_md = flag_names.clone();
    let figment = Figment::new()
        .merge(Layer::new(Metadata::named(DEFAULT), defaults))
        .merge(Layer::new(
            match &sources.file {
                Some(path) => Metadata::from(FILE, path.as_path()),
                None => Metadata::named(FILE),
            },
            file_layer,
        ))
        .merge(Layer::new(
            Metadata::named(ENV).interpolater(|_, keys| keys::env_name(&keys.join("."))),
            env_layer,
        ))
        .merge(Layer::new(
            Metadata::named(FLAG).interpolater(move |_, keys| {
                flags_md.get(&keys.join(".")).cloned().unwrap_or_default()
            }),
            flag_layer,
        ));
    let config: Config = figment.extract().map_err(|e| ConfigError {
        problems: e
            .into_iter()
            .map(|e| Problem {
                origin: Origin::Default,
                key: e.path.join("."),
                message: e.kind.to_string(),
            })
            .collect(),
    })?;

    // Where each value came from: the layer figment took it from.
    let mut origins = BTreeMap::new();
    let mut leaves = Vec::new();
    if let Ok(value) = toml::Value::try_from(&config) {
        leaf_paths(&value, &mut Vec::new(), &mut leaves);
    }
    for path in leaves {
        let Some(md) = figment.find_metadata(&path) else {
            continue;
        };
        let segs: Vec<&str> = path.split('.').collect();
        let origin = match md.name.as_ref() {
            FILE => Origin::File {
                path: sources.file.clone().unwrap_or_default(),
                line: lines.get(&path).copied(),
            },
            ENV => Origin::Env(md.interpolate(&Profile::Default, &segs)),
            FLAG => Origin::Flag(md.interpolate(&Profile::Default, &segs)),
            _ => Origin::Default,
        };
        origins.insert(path, origin);
    }
    let section = governance_problems(&config, known, |key| {
        // `governance.bindings[1].roles` was read from the line of `governance.bindings`.
        let base = key.split('[').next().unwrap_or(key);
        match figment.find_metadata(base).map(|md| md.name.as_ref()) {
            Some(FILE) => Origin::File {
                path: sources.file.clone().unwrap_or_default(),
                line: lines.get(base).copied(),
            },
            Some(ENV) => Origin::Env(keys::env_name(base)),
            _ => Origin::Default,
        }
    });
    if !section.is_empty() {
        return Err(ConfigError { problems: section });
    }
    Ok(Loaded {
        config,
        file: sources.file.clone(),
        origins,
    })
}

/// `[governance]` as a whole: bindings against roles, and every role's patterns against the
/// tools when they are known.
fn governance_problems(
    config: &Config,
    known: Option<&[String]>,
    origin: impl Fn(&str) -> Origin,
) -> Vec<Problem> {
    use ensemble_actors::governance::policy::{Known, Policy};
    let g = &config.governance;
    let mut found = super::governance::problems(g);
    let mut tools = known.map(<[String]>::to_vec).unwrap_or_default();
    if known.is_some() && g.is_configured() {
        tools.extend(
            crate::governance::tools::TOOLS
                .iter()
                .map(|t| t.to_string()),
        );
    }
    let names = Known {
        tools,
        prompts: Vec::new(),
        resource_schemes: vec!["ensemble".into()],
    };
    if let Err(problems) = Policy::compile(&g.roles, &names) {
        found.extend(
            problems
                .into_iter()
                .map(|p| (format!("governance.{}", p.key), p.message)),
        );
    }
    found
        .into_iter()
        .map(|(key, message)| Problem {
            origin: origin(&key),
            key,
            message,
        })
        .collect()
}

const DEFAULT: &str = "default";
const FILE: &str = "configuration file";
const ENV: &str = "environment variable";
const FLAG: &str = "command line flag";

/// One layer for figment.
struct Layer {
    metadata: Metadata,
    data: Dict,
}

impl Layer {
    fn new(metadata: Metadata, table: toml::Table) -> Self {
        let data = match figment::value::Value::serialize(&table) {
            Ok(figment::value::Value::Dict(_, dict)) => dict,
            _ => Dict::new(),
        };
        Self { metadata, data }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.data.clone())]))
    }
}

fn leaf_paths(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                path.push(k.clone());
                leaf_paths(v, path, out);
                path.pop();
            }
        }
        _ => out.push(path.join(".")),
    }
}

/// Sets `value` at `path` in `table`, making the tables on the way.
pub(super) fn insert(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for seg in init {
        let entry = t
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(inner) => t = inner,
            _ => return,
        }
    }
    t.insert(last.to_string(), value);
}

/// Why a name under `engines` or `tools` is refused, if it is.
pub(super) fn name_problem(segs: &[&str], known_tools: Option<&[String]>) -> Option<String> {
    match segs {
        ["engines", name, ..] if !ENGINES.contains(name) => Some(format!(
            "there is no engine `{name}`{}; engines with settings: {}",
            did_you_mean(name, ENGINES.iter().copied()),
            ENGINES.join(", ")
        )),
        ["tools", name, ..] => match known_tools {
            Some(tools) if !tools.iter().any(|t| t == name) => Some(format!(
                "there is no tool `{name}`{}; `ensemble tools` lists them",
                did_you_mean(name, tools.iter().map(String::as_str))
            )),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    match keys::nearest(word, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ensemble.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn sources(path: Option<PathBuf>) -> Sources {
        Sources {
            file: path,
            known_tools: Some(vec!["registry_get".into(), "registry_put".into()]),
            ..Sources::default()
        }
    }

    #[test]
    fn no_file_is_the_defaults() {
        let loaded = load(&sources(None)).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.origin("store.data_dir"), Origin::Default);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let (_dir, path) = file(
            "[server]\n\
             htp = \"127.0.0.1:1\"\n\
             log_format = \"xml\"\n\
             [execution]\n\
             max_concurrent = 0\n\
             scheduling_policy = \"fifo\"\n\
             [engines.registri]\n\
             timeout_ms = 5\n\
             [engines.workflow.breaker]\n\
             failure_rate_threshold = 150\n\
             [tools.registry_gte]\n\
             bulkhead = 3\n",
        );
        let err = load(&sources(Some(path))).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 6, "{text}");
        for expected in [
            "ensemble.toml:2: `server.htp`: unknown key (did you mean `http`?)",
            "ensemble.toml:3: `server.log_format`: \"xml\" is not accepted: use \"text\" or \"json\"",
            "ensemble.toml:5: `execution.max_concurrent`: expected a whole number from 1",
            "ensemble.toml:7: `engines.registri`: there is no engine `registri` (did you mean `registry`?)",
            "ensemble.toml:10: `engines.workflow.breaker.failure_rate_threshold`: expected a percentage",
            "ensemble.toml:11: `tools.registry_gte`: there is no tool `registry_gte` (did you mean `registry_get`?)",
        ] {
            assert!(text.contains(expected), "{expected}\n---\n{text}");
        }
    }

    #[test]
    fn layers_apply_in_order_and_are_remembered() {
        let (_dir, path) = file(
            "[store]\ndata_dir = \"from-file\"\ncache_capacity_bytes = 1048576\n[execution]\nmax_concurrent = 2\n",
        );
        let mut s = sources(Some(path.clone()));
        s.env = vec![
            ("ENSEMBLE_STORE_DATA_DIR".into(), "from-env".into()),
            ("ENSEMBLE_EXECUTION_MAX_CONCURRENT".into(), "3".into()),
            ("PATH".into(), "/bin".into()),
            ("ENSEMBLE_LOG".into(), "debug".into()),
        ];
        s.flags = vec![FlagValue {
            key: "store.data_dir",
            flag: "--data-dir",
            value: "from-flag".into(),
        }];
        let loaded = load(&s).unwrap();
        assert_eq!(loaded.config.store.data_dir, PathBuf::from("from-flag"));
        assert_eq!(loaded.config.execution.max_concurrent, 3);
        assert_eq!(loaded.config.store.cache_capacity_bytes, 1 << 20);
        assert_eq!(
            loaded.origin("store.data_dir"),
            Origin::Flag("--data-dir".into())
        );
        assert_eq!(
            loaded.origin("execution.max_concurrent"),
            Origin::Env("ENSEMBLE_EXECUTION_MAX_CONCURRENT".into())
        );
        assert_eq!(
            loaded.origin("store.cache_capacity_bytes"),
            Origin::File {
                path,
                line: Some(3)
            }
        );
        assert_eq!(loaded.origin("server.log_format"), Origin::Default);
    }

    #[test]
    fn variables_are_checked_too() {
        let mut s = sources(None);
        s.env = vec![
            ("ENSEMBLE_STORE_DATADIR".into(), "x".into()),
            ("ENSEMBLE_EXECUTION_QUEUE_CAPACITY".into(), "lots".into()),
            (
                "ENSEMBLE_TOOLS_REGISTRY_GET_TIMEOUT_MS".into(),
                "100".into(),
            ),
        ];
        let err = load(&s).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        assert!(
            text.contains("did you mean `ENSEMBLE_STORE_DATA_DIR`"),
            "{text}"
        );
        assert!(
            text.contains("ENSEMBLE_EXECUTION_QUEUE_CAPACITY: `execution.queue_capacity`"),
            "{text}"
        );
    }

    #[test]
    fn a_tool_override_reaches_the_config() {
        let (_dir, path) = file(
            "[tools.registry_get]\ntimeout_ms = 250\n[tools.registry_get.breaker]\nminimum_calls = 2\n",
        );
        let loaded = load(&sources(Some(path))).unwrap();
        let t = &loaded.config.tools["registry_get"];
        assert_eq!(t.timeout_ms, Some(250));
        assert_eq!(t.breaker.minimum_calls, Some(2));
        assert_eq!(t.bulkhead, None);
    }
}
