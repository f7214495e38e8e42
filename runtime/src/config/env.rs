//! `ENSEMBLE_*` variables: each names a key (`store.data_dir` is `ENSEMBLE_STORE_DATA_DIR`);
//! any other `ENSEMBLE_*` variable, save those in [`NOT_KEYS`], is a mistake to report.

use super::keys::{self, ENGINE, ENGINES, KEYS, TOOL};
use super::load::{NOT_KEYS, Origin, Problem, did_you_mean, insert, name_problem};

/// The `ENSEMBLE_*` variables that name keys, checked; every problem recorded.
pub(super) fn env_layer(
    env: &[(String, String)],
    known: Option<&[String]>,
    problems: &mut Vec<Problem>,
) -> toml::Table {
    let mut out = toml::Table::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with("ENSEMBLE_") && !NOT_KEYS.contains(&name.as_str()))
        .collect();
    vars.sort();
    for (name, text) in vars {
        let problem = |message| Problem {
            origin: Origin::Env(name.clone()),
            key: String::new(),
            message,
        };
        let Some(path) = keys::path_of_env(name) else {
            let all = all_env_names(known);
            problems.push(problem(format!(
                "is not a configuration variable{}; each key `a.b` is ENSEMBLE_A_B \
                 (`ensemble config show` lists the keys)",
                did_you_mean(name, all.iter().map(String::as_str))
            )));
            continue;
        };
        let segs: Vec<&str> = path.split('.').collect();
        if let Some(message) = name_problem(&segs, known) {
            problems.push(Problem {
                key: path.clone(),
                ..problem(message)
            });
            continue;
        }
        let Some(key) = keys::find(&keys::pattern_of(&segs)) else {
            continue;
        };
        match key.accepts.parse(text) {
            Ok(v) => insert(&mut out, &segs, v),
            Err(message) => problems.push(Problem {
                key: path.clone(),
                ..problem(message)
            }),
        }
    }
    out
}

/// Every variable name a key has (tools only when they are known).
fn all_env_names(known: Option<&[String]>) -> Vec<String> {
    let mut out = Vec::new();
    for k in KEYS {
        if k.path.contains(ENGINE) {
            out.extend(
                ENGINES
                    .iter()
                    .map(|e| keys::env_name(&k.path.replace(ENGINE, e))),
            );
        } else if k.path.contains(TOOL) {
            out.extend(
                known
                    .unwrap_or_default()
                    .iter()
                    .map(|t| keys::env_name(&k.path.replace(TOOL, t))),
            );
        } else {
            out.push(keys::env_name(k.path));
        }
    }
    out
}
