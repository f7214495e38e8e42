//! Every configuration key: its path, what it accepts, and its environment variable.
//!
//! This table is the one list of keys. The file is checked against it key by key (so every
//! mistake is reported at once, with its line), `ENSEMBLE_*` variables are looked up in it,
//! and `config show` prints in its order. A unit test keeps it equal to the keys of
//! [`Config`](super::Config).

use std::net::SocketAddr;

/// Where a name stands for any engine or any tool in a key's path.
pub const ENGINE: &str = "<engine>";
/// See [`ENGINE`].
pub const TOOL: &str = "<tool>";

/// The engines whose policies `[engines.<name>]` sets.
pub const ENGINES: &[&str] = &[
    "registry",
    "validation",
    "execution",
    "workflow",
    "promotion",
    "retrieval",
    "taxonomy",
];

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accepts {
    /// A socket address such as `127.0.0.1:7300`.
    Address,
    /// A file system path.
    Path,
    /// `true` or `false`.
    Bool,
    /// An integer in `min..=max`.
    Integer {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// A percentage, 0 to 100 (an integer or a float).
    Percent,
    /// A number (an integer or a float) of at least `min`.
    Float {
        /// Smallest accepted.
        min: f64,
    },
    /// One of these words (case-insensitive; stored as written here).
    OneOf(&'static [&'static str]),
    /// An array of strings (from the environment: comma-separated).
    Strings,
    /// A non-empty string.
    Text,
    /// An `http://` or `https://` URL without a fragment.
    Url,
    /// An array of tables of one shape (only in the file).
    Records(Records),
}

/// The shapes of [`Accepts::Records`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Records {
    /// `[[governance.roles]]`.
    Roles,
    /// `[[governance.bindings]]`.
    Bindings,
    /// `[[governance.api_keys]]`.
    ApiKeys,
}

impl Records {
    fn describe(self) -> &'static str {
        match self {
            Records::Roles => {
                "[[governance.roles]] tables with name, tools, deny_tools, resources, \
                 deny_resources, prompts, deny_prompts, rate_limits"
            }
            Records::Bindings => {
                "[[governance.bindings]] tables with roles and one of subject, api_key or \
                 claim + value"
            }
            Records::ApiKeys => "[[governance.api_keys]] tables with name and sha256",
        }
    }

    fn check(self, value: &toml::Value) -> Result<(), String> {
        use super::governance::{ApiKey, Binding};
        use ensemble_actors::governance::policy::RoleSpec;
        fn shape<T: serde::de::DeserializeOwned>(value: &toml::Value) -> Result<(), String> {
            let toml::Value::Array(items) = value else {
                return Err("expected an array of tables".into());
            };
            for (i, item) in items.iter().enumerate() {
                if let Err(e) = item.clone().try_into::<T>() {
                    return Err(format!("entry {i}: {}", e.message().trim_end()));
                }
            }
            Ok(())
        }
        match self {
            Records::Roles => shape::<RoleSpec>(value),
            Records::Bindings => shape::<Binding>(value),
            Records::ApiKeys => shape::<ApiKey>(value),
        }
    }
}

/// Whether `text` is an http(s) URL with a host and no fragment.
fn is_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?']).next().unwrap_or_default();
        !host.is_empty() && !r.contains('#') && !r.contains(char::is_whitespace)
    })
}

impl Accepts {
    /// What is accepted, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Accepts::Address => "an address like \"127.0.0.1:7300\"".into(),
            Accepts::Path => "a path (a string)".into(),
            Accepts::Bool => "true or false".into(),
            Accepts::Integer { min, max } if *max == i64::MAX => {
                format!("a whole number from {min}")
            }
            Accepts::Integer { min, max } => format!("a whole number from {min} to {max}"),
            Accepts::Percent => "a percentage from 0 to 100".into(),
            Accepts::Float { min } => format!("a number from {min}"),
            Accepts::OneOf(words) => one_of(words),
            Accepts::Strings => "an array of strings, like [\"https://example.com\"]".into(),
            Accepts::Text => "a non-empty string".into(),
            Accepts::Url => "a URL like \"https://example.com/path\" (no #fragment)".into(),
            Accepts::Records(r) => r.describe().into(),
        }
    }

    /// Checks a value from the file and returns it normalised (words in their canonical case,
    /// percentages as floats), or what is accepted.
    pub fn check(&self, value: &toml::Value) -> Result<toml::Value, String> {
        use toml::Value as V;
        let refuse = || Err(format!("expected {}", self.describe()));
        match (self, value) {
            (Accepts::Address, V::String(s)) => match s.parse::<SocketAddr>() {
                Ok(_) => Ok(value.clone()),
                Err(_) => Err(format!(
                    "{s:?} is not an address like \"127.0.0.1:7300\" (an IP address and a port)"
                )),
            },
            (Accepts::Path, V::String(s)) if !s.is_empty() => Ok(value.clone()),
            (Accepts::Bool, V::Boolean(_)) => Ok(value.clone()),
            (Accepts::Integer { min, max }, V::Integer(n)) if (*min..=*max).contains(n) => {
                Ok(value.clone())
            }
            (Accepts::Percent, V::Integer(n)) if (0..=100).contains(n) => Ok(V::Float(*n as f64)),
            (Accepts::Percent, V::Float(f)) if (0.0..=100.0).contains(f) => Ok(value.clone()),
            (Accepts::Float { min }, V::Integer(n)) if *n as f64 >= *min => Ok(V::Float(*n as f64)),
            (Accepts::Float { min }, V::Float(f)) if f.is_finite() && *f >= *min => {
                Ok(value.clone())
            }
            (Accepts::OneOf(words), V::String(s)) => words
                .iter()
                .find(|w| w.eq_ignore_ascii_case(s))
                .map(|w| V::String((*w).to_string()))
                .ok_or_else(|| format!("{s:?} is not accepted: use {}", one_of(words))),
            (Accepts::Strings, V::Array(items)) if items.iter().all(|i| i.is_str()) => {
                Ok(value.clone())
            }
            (Accepts::Text, V::String(s)) if !s.trim().is_empty() => Ok(value.clone()),
            (Accepts::Url, V::String(s)) if is_url(s) => Ok(value.clone()),
            (Accepts::Url, V::String(s)) => {
                Err(format!("{s:?} is not a URL: expected {}", self.describe()))
            }
            (Accepts::Records(r), V::Array(_)) => r.check(value).map(|()| value.clone()),
            _ => refuse(),
        }
    }

    /// Parses a value given as text (an environment variable), then checks it.
    pub fn parse(&self, text: &str) -> Result<toml::Value, String> {
        use toml::Value as V;
        let text = text.trim();
        let value = match self {
            Accepts::Address | Accepts::Path | Accepts::OneOf(_) | Accepts::Text | Accepts::Url => {
                V::String(text.to_string())
            }
            Accepts::Records(_) => {
                return Err("is a list of tables: set it in the configuration file".into());
            }
            Accepts::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => V::Boolean(true),
                "false" | "0" | "no" | "off" => V::Boolean(false),
                _ => return Err(format!("{text:?} is not true or false")),
            },
            Accepts::Integer { .. } => match text.replace('_', "").parse::<i64>() {
                Ok(n) => V::Integer(n),
                Err(_) => return Err(format!("{text:?}: expected {}", self.describe())),
            },
            Accepts::Percent | Accepts::Float { .. } => match text.parse::<f64>() {
                Ok(f) => V::Float(f),
                Err(_) => return Err(format!("{text:?}: expected {}", self.describe())),
            },
            Accepts::Strings => V::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| V::String(s.to_string()))
                    .collect(),
            ),
        };
        self.check(&value)
    }
}

fn one_of(words: &[&str]) -> String {
    match words {
        [] => "nothing".into(),
        [one] => format!("\"{one}\""),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|w| format!("\"{w}\"")).collect();
            format!("{} or \"{last}\"", init.join(", "))
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its dotted path; [`ENGINE`] or [`TOOL`] stand for a name.
    pub path: &'static str,
    /// What it accepts.
    pub accepts: Accepts,
    /// What it does (one line).
    pub help: &'static str,
}

const fn key(path: &'static str, accepts: Accepts, help: &'static str) -> Key {
    Key {
        path,
        accepts,
        help,
    }
}

const fn int(min: i64) -> Accepts {
    Accepts::Integer { min, max: i64::MAX }
}

const U32: Accepts = Accepts::Integer {
    min: 1,
    max: u32::MAX as i64,
};

/// The scheduling policies, as the execution engine names them.
pub const SCHEDULING_POLICIES: &[&str] = &["FIFO", "PRIORITY", "DEADLINE", "PRIORITY_DEADLINE"];

/// Every key, in the order `config show` and `examples/ensemble.toml` present them. A table's
/// own keys come before its sub-tables (TOML cannot return to a table after a sub-table).
pub const KEYS: &[Key] = &[
    key(
        "server.http",
        Accepts::Address,
        "serve Streamable HTTP at http://ADDR/mcp (unset: MCP on stdio)",
    ),
    key(
        "server.allow_origins",
        Accepts::Strings,
        "browser Origins accepted over HTTP, besides the server's own",
    ),
    key(
        "server.log_format",
        Accepts::OneOf(&["text", "json"]),
        "log lines on stderr as text or JSON",
    ),
    key(
        "server.limits.max_body_bytes",
        int(1024),
        "largest request body over HTTP (413 above it)",
    ),
    key(
        "server.limits.max_json_depth",
        Accepts::Integer { min: 2, max: 128 },
        "deepest nesting of arrays and objects in a message",
    ),
    key(
        "server.limits.max_string_bytes",
        int(64),
        "longest string in a message, in bytes as sent",
    ),
    key(
        "server.limits.max_items",
        int(16),
        "most items in one array, or members in one object, of a message",
    ),
    key(
        "server.limits.max_sessions",
        int(1),
        "Streamable HTTP sessions open at once (an initialize beyond it gets 503)",
    ),
    key(
        "server.limits.session_idle_s",
        int(1),
        "a Streamable HTTP session that sent nothing this long (seconds) is closed",
    ),
    key(
        "server.limits.header_read_timeout_ms",
        int(100),
        "time a client has to send a request's header (ms) before its connection is closed",
    ),
    key(
        "server.limits.body_read_timeout_ms",
        int(100),
        "time a client has to send a request's body (ms; 408 after it)",
    ),
    key(
        "store.data_dir",
        Accepts::Path,
        "where the store lives (relative to the working directory)",
    ),
    key(
        "store.in_memory",
        Accepts::Bool,
        "keep everything in a temporary store that disappears on exit",
    ),
    key(
        "store.cache_capacity_bytes",
        int(1),
        "sled's page cache, in bytes (default 64 MiB; filled as used)",
    ),
    key(
        "execution.scheduling_policy",
        Accepts::OneOf(SCHEDULING_POLICIES),
        "the order queued tasks run in",
    ),
    key("execution.max_concurrent", int(1), "tasks running at once"),
    key(
        "execution.queue_capacity",
        int(1),
        "tasks waiting at most; more are refused",
    ),
    key(
        "supervision.max_restarts",
        Accepts::Integer {
            min: 0,
            max: u32::MAX as i64,
        },
        "the top-level budget: given-up engines restarted within period_ms before the process \
         drains and exits non-zero",
    ),
    key(
        "supervision.period_ms",
        int(1),
        "the top-level budget's period, in milliseconds",
    ),
    key(
        "supervision.restart_backoff_ms",
        int(0),
        "delay (ms) before a given-up engine restarts, doubled with each give-up in a row",
    ),
    key(
        "supervision.restart_backoff_max_ms",
        int(0),
        "the largest such delay, in milliseconds",
    ),
    key(
        "supervision.backoff_reset_after_ms",
        int(1),
        "a restarted engine up this long (ms) starts again from restart_backoff_ms",
    ),
    key(
        "engines.<engine>.bulkhead",
        int(1),
        "calls in flight at once per tool; more fail fast",
    ),
    key(
        "engines.<engine>.timeout_ms",
        int(1),
        "a call's deadline, retries included, in milliseconds",
    ),
    key(
        "engines.<engine>.breaker.sliding_window_size",
        U32,
        "the most recent calls the circuit breaker judges by",
    ),
    key(
        "engines.<engine>.breaker.minimum_calls",
        U32,
        "calls recorded before any rate is judged",
    ),
    key(
        "engines.<engine>.breaker.failure_rate_threshold",
        Accepts::Percent,
        "failure percentage at which the breaker opens",
    ),
    key(
        "engines.<engine>.breaker.slow_call_rate_threshold",
        Accepts::Percent,
        "slow-call percentage at which the breaker opens",
    ),
    key(
        "engines.<engine>.breaker.slow_call_duration_ms",
        int(1),
        "a call at least this long (ms) is slow",
    ),
    key(
        "engines.<engine>.breaker.wait_in_open_ms",
        int(1),
        "how long (ms) the breaker stays open before probing",
    ),
    key(
        "engines.<engine>.breaker.permitted_calls_in_half_open",
        U32,
        "probe calls let through while half-open",
    ),
    key(
        "engines.<engine>.breaker.crash_threshold",
        Accepts::Integer {
            min: 0,
            max: u32::MAX as i64,
        },
        "crashes of the engine (one per crash, however many calls died with it) that open the \
         breaker at once; 0 turns the rule off",
    ),
    key(
        "engines.<engine>.retry.max_attempts",
        U32,
        "attempts in all for read-only and idempotent tools (1 = no retry)",
    ),
    key(
        "engines.<engine>.restart.max_restarts",
        Accepts::Integer {
            min: 0,
            max: u32::MAX as i64,
        },
        "restarts tolerated within period_ms before the engine's supervisor gives up",
    ),
    key(
        "engines.<engine>.restart.period_ms",
        int(1),
        "the restart intensity's period, in milliseconds",
    ),
    key(
        "tools.<tool>.bulkhead",
        int(1),
        "as engines.<engine>.bulkhead, for this tool",
    ),
    key(
        "tools.<tool>.timeout_ms",
        int(1),
        "as engines.<engine>.timeout_ms, for this tool",
    ),
    key(
        "tools.<tool>.breaker.sliding_window_size",
        U32,
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.minimum_calls",
        U32,
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.failure_rate_threshold",
        Accepts::Percent,
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.slow_call_rate_threshold",
        Accepts::Percent,
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.slow_call_duration_ms",
        int(1),
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.wait_in_open_ms",
        int(1),
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.permitted_calls_in_half_open",
        U32,
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.breaker.crash_threshold",
        Accepts::Integer {
            min: 0,
            max: u32::MAX as i64,
        },
        "as in [engines.<engine>.breaker]",
    ),
    key(
        "tools.<tool>.retry.max_attempts",
        U32,
        "as engines.<engine>.retry.max_attempts, for this tool",
    ),
    key(
        "learning.shell.flush_interval_ms",
        int(1),
        "the shell learner writes observations to disk at least this often (ms); a kill -9 \
         loses at most this much",
    ),
    key(
        "learning.shell.memory_budget_bytes",
        int(4096),
        "memory the shell learner's patterns may take; past it the least valuable are evicted",
    ),
    key(
        "learning.development.flush_interval_ms",
        int(1),
        "the development learner writes what it learned to disk at least this often (ms); a \
         kill -9 loses at most this much",
    ),
    key(
        "learning.development.memory_budget_bytes",
        int(4096),
        "memory the development learner's patterns may take; past it the least valuable are \
         evicted",
    ),
    key(
        "learning.quality.flush_interval_ms",
        int(1),
        "the quality learner writes what it learned to disk at least this often (ms); a kill \
         -9 loses at most this much",
    ),
    key(
        "learning.quality.memory_budget_bytes",
        int(4096),
        "memory the quality learner's patterns may take; past it the least valuable are \
         evicted",
    ),
    key(
        "learning.devops.flush_interval_ms",
        int(1),
        "the devops learner writes what it learned to disk at least this often (ms); a kill \
         -9 loses at most this much",
    ),
    key(
        "learning.devops.memory_budget_bytes",
        int(4096),
        "memory the devops learner's observed changes may take; past it the oldest without \
         an outcome go first",
    ),
    key(
        "learning.devops.canary_at",
        Accepts::Float { min: 0.0 },
        "relative risk (failure probability over the project's failure rate) from which \
         devops_recommend says canary (default 1.0)",
    ),
    key(
        "learning.devops.hold_at",
        Accepts::Float { min: 0.0 },
        "relative risk from which devops_recommend says hold (default 2.0; at least canary_at)",
    ),
    key(
        "promotion.separation_of_duties",
        Accepts::Bool,
        "whoever opened a promotion request may not approve it (applies with governance on; \
         ungoverned, the local owner is the only identity)",
    ),
    key(
        "promotion.gate_timeout_ms",
        int(1),
        "how long a promotion gate's call to another engine (registry, validation, workflow) \
         may take (ms)",
    ),
    key(
        "governance.resource",
        Accepts::Url,
        "this server's canonical URI, the `aud` bearer tokens must carry (default \
         http://ADDR/mcp)",
    ),
    key(
        "governance.insecure_no_auth",
        Accepts::Bool,
        "serve HTTP on a non-loopback address without authentication (refused otherwise)",
    ),
    key(
        "governance.roles",
        Accepts::Records(Records::Roles),
        "what each role allows and denies (glob patterns; deny wins; default deny)",
    ),
    key(
        "governance.bindings",
        Accepts::Records(Records::Bindings),
        "which identities (subject, API key, claim) hold which roles",
    ),
    key(
        "governance.api_keys",
        Accepts::Records(Records::ApiKeys),
        "service accounts: a name and the SHA-256 of the key",
    ),
    key(
        "governance.break_glass",
        Accepts::Strings,
        "subjects that may still call tools in lockdown (the operator's break-glass identities)",
    ),
    key(
        "governance.all_work_roles",
        Accepts::Strings,
        "roles whose holders see and act on every submitter's queued tasks and workflow runs \
         (everyone else: only their own)",
    ),
    key(
        "governance.oauth.issuer",
        Accepts::Url,
        "the authorization server whose tokens are accepted (their `iss`)",
    ),
    key(
        "governance.oauth.jwks_file",
        Accepts::Path,
        "the issuer's signing keys, a JWKS file",
    ),
    key(
        "governance.oauth.jwks_url",
        Accepts::Url,
        "the issuer's signing keys, fetched (https; http only on loopback)",
    ),
    key(
        "governance.oauth.read_scope",
        Accepts::Text,
        "the scope a token needs to list and read",
    ),
    key(
        "governance.oauth.call_scope",
        Accepts::Text,
        "the scope a token needs to call tools (it implies read_scope)",
    ),
    key(
        "governance.oauth.leeway_s",
        Accepts::Integer { min: 0, max: 600 },
        "clock skew tolerated on a token's exp and nbf, in seconds",
    ),
    key(
        "governance.audit.node_id",
        Accepts::Text,
        "this node's name in the audit chain",
    ),
    key(
        "governance.audit.checkpoint_dir",
        Accepts::Path,
        "a directory outside the data dir that receives every signed checkpoint",
    ),
    key(
        "governance.audit.key_file",
        Accepts::Path,
        "the checkpoints' Ed25519 signing key, outside the data dir (created when absent)",
    ),
    key(
        "governance.audit.checkpoint_every_entries",
        int(0),
        "a signed checkpoint after this many entries (0: not by count)",
    ),
    key(
        "governance.audit.checkpoint_every_ms",
        int(0),
        "a signed checkpoint this long (ms) after the last, if entries came since (0: not by time)",
    ),
    key(
        "governance.sessions.max_sessions",
        int(1),
        "session records kept at most (the least recently seen are dropped first)",
    ),
    key(
        "governance.sessions.max_age_s",
        int(1),
        "a session unseen this long (seconds) is dropped",
    ),
    key(
        "governance.sessions.calls_kept",
        int(0),
        "recent calls kept per session",
    ),
    key(
        "governance.stdio.subject",
        Accepts::Text,
        "who a stdio client is, as bindings and the audit name it",
    ),
    key(
        "governance.stdio.roles",
        Accepts::Strings,
        "the roles of a stdio client",
    ),
];

/// The key whose pattern is `pattern`.
pub fn find(pattern: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == pattern)
}

/// The pattern of a concrete path: the name under `engines` or `tools` becomes a placeholder.
pub fn pattern_of(path: &[&str]) -> String {
    path.iter()
        .enumerate()
        .map(|(i, seg)| match (i, path[0]) {
            (1, "engines") => ENGINE,
            (1, "tools") => TOOL,
            _ => seg,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The segments that may follow `prefix` (a pattern, empty for the top), in table order.
pub fn children(prefix: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KEYS {
        let rest = if prefix.is_empty() {
            Some(k.path)
        } else {
            k.path
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some(next) = rest.and_then(|r| r.split('.').next())
            && !out.contains(&next)
        {
            out.push(next);
        }
    }
    out
}

/// The environment variable of a concrete key path: `ENSEMBLE_` and the path in capitals, its
/// dots as underscores (`store.data_dir` is `ENSEMBLE_STORE_DATA_DIR`).
pub fn env_name(path: &str) -> String {
    format!("ENSEMBLE_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// The concrete key path of an `ENSEMBLE_*` variable, if it names one. A tool's name may hold
/// underscores: the longest key suffix that fits decides where the name ends.
pub fn path_of_env(var: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for k in KEYS {
        let pattern_env = env_name(k.path);
        let placeholder = [ENGINE, TOOL]
            .into_iter()
            .find(|p| k.path.contains(p))
            .map(|p| p.to_ascii_uppercase());
        match placeholder {
            None if pattern_env == var => return Some(k.path.to_string()),
            None => {}
            Some(ph) => {
                let Some((before, after)) = pattern_env.split_once(ph.as_str()) else {
                    continue;
                };
                if let Some(middle) = var
                    .strip_prefix(before)
                    .and_then(|r| r.strip_suffix(after))
                    .filter(|m| !m.is_empty())
                    && best.as_ref().is_none_or(|(len, _)| after.len() > *len)
                {
                    let name = middle.to_ascii_lowercase();
                    let lower = ph.to_ascii_lowercase();
                    best = Some((after.len(), k.path.replace(lower.as_str(), &name)));
                }
            }
        }
    }
    best.map(|(_, path)| path)
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_map_back_to_paths() {
        assert_eq!(
            path_of_env("ENSEMBLE_STORE_DATA_DIR").as_deref(),
            Some("store.data_dir")
        );
        assert_eq!(
            path_of_env("ENSEMBLE_ENGINES_REGISTRY_BREAKER_MINIMUM_CALLS").as_deref(),
            Some("engines.registry.breaker.minimum_calls")
        );
        assert_eq!(
            path_of_env("ENSEMBLE_TOOLS_REGISTRY_PUT_RETRY_MAX_ATTEMPTS").as_deref(),
            Some("tools.registry_put.retry.max_attempts")
        );
        assert_eq!(
            path_of_env("ENSEMBLE_TOOLS_TASK_SUBMIT_TIMEOUT_MS").as_deref(),
            Some("tools.task_submit.timeout_ms")
        );
        assert_eq!(path_of_env("ENSEMBLE_STORE_DATADIR"), None);
    }

    #[test]
    fn values_are_checked_and_normalised() {
        let policy = find("execution.scheduling_policy").unwrap().accepts;
        assert_eq!(
            policy.parse("fifo").unwrap(),
            toml::Value::String("FIFO".into())
        );
        assert!(policy.parse("LIFO").unwrap_err().contains("\"FIFO\""));
        let pct = Accepts::Percent;
        assert_eq!(
            pct.check(&toml::Value::Integer(50)).unwrap(),
            toml::Value::Float(50.0)
        );
        assert!(pct.check(&toml::Value::Integer(150)).is_err());
        assert_eq!(
            Accepts::Strings.parse("a, b").unwrap(),
            toml::Value::Array(vec!["a".into(), "b".into()])
        );
        assert!(
            find("server.http")
                .unwrap()
                .accepts
                .parse("localhost")
                .unwrap_err()
                .contains("127.0.0.1:7300")
        );
    }

    #[test]
    fn children_follow_the_table() {
        assert_eq!(
            children(""),
            vec![
                "server",
                "store",
                "execution",
                "supervision",
                "engines",
                "tools",
                "learning",
                "promotion",
                "governance"
            ]
        );
        assert_eq!(
            children("engines.<engine>"),
            vec!["bulkhead", "timeout_ms", "breaker", "retry", "restart"]
        );
        assert_eq!(
            nearest("timeout", children("engines.<engine>")),
            Some("timeout_ms")
        );
    }
}
