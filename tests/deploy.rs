//! The deployment files parse and say what the docs say: `deploy/ensemble.service` (checked by
//! `systemd-analyze verify` where it exists, and always by an INI check of its own) and
//! `deploy/Dockerfile` (a structural lint; `docker build` too with `ENSEMBLE_TEST_DOCKER=1` when
//! a Docker daemon answers). The command lines both run are checked against the real binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ensemble");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `ensemble serve ARGS` would start: the same flags given to `config show` are accepted.
fn assert_serve_args_accepted(args: &[String], what: &str) {
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}");
    let out = Command::new(BIN)
        .args(["config", "show"])
        .args(&args[1..])
        .env_remove("ENSEMBLE_CONFIG")
        .output()
        .expect("run ensemble");
    assert!(
        out.status.success(),
        "{what}: `ensemble {}` is refused: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- systemd ------------------------------------------------------------------------------

/// The keys the unit may use, per section (a typo is a key systemd ignores with a warning).
fn known_unit_keys() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        (
            "Unit",
            &[
                "Description",
                "Documentation",
                "After",
                "Wants",
                "Requires",
                "Before",
            ][..],
        ),
        (
            "Service",
            &[
                "Type",
                "ExecStart",
                "EnvironmentFile",
                "Environment",
                "Restart",
                "RestartSec",
                "RestartPreventExitStatus",
                "KillSignal",
                "TimeoutStopSec",
                "DynamicUser",
                "User",
                "Group",
                "StateDirectory",
                "StateDirectoryMode",
                "WorkingDirectory",
                "UMask",
                "LimitNOFILE",
                "NoNewPrivileges",
                "CapabilityBoundingSet",
                "AmbientCapabilities",
                "ProtectSystem",
                "ProtectHome",
                "PrivateTmp",
                "PrivateDevices",
                "ProtectKernelTunables",
                "ProtectKernelModules",
                "ProtectKernelLogs",
                "ProtectControlGroups",
                "ProtectClock",
                "ProtectHostname",
                "RestrictAddressFamilies",
                "RestrictNamespaces",
                "RestrictRealtime",
                "RestrictSUIDSGID",
                "LockPersonality",
                "MemoryDenyWriteExecute",
                "SystemCallArchitectures",
                "ReadWritePaths",
            ][..],
        ),
        ("Install", &["WantedBy"][..]),
    ])
}

/// Parses a unit file: section → (key, value) in order, or the first line that is not
/// `[Section]`, `Key=Value`, a comment or blank.
fn parse_unit(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut section = None::<String>;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        if line.ends_with('\\') {
            return Err(format!("line {}: no continuation lines, please", n + 1));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: not Key=Value: {line:?}", n + 1));
        };
        let Some(section) = &section else {
            return Err(format!("line {}: a key before any [Section]", n + 1));
        };
        entries.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    Ok(entries)
}

#[test]
fn the_systemd_unit_parses_and_runs_a_valid_command() {
    let text = read("deploy/ensemble.service");
    let entries = parse_unit(&text).unwrap_or_else(|e| panic!("deploy/ensemble.service: {e}"));
    let known = known_unit_keys();
    for (section, key, _) in &entries {
        let keys = known
            .get(section.as_str())
            .unwrap_or_else(|| panic!("unknown section [{section}]"));
        assert!(
            keys.contains(&key.as_str()),
            "[{section}] {key}: not a key this unit is expected to use (a typo?)"
        );
    }
    let get = |section: &str, key: &str| {
        entries
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| panic!("[{section}] {key} is missing"))
    };
    // A spent restart budget exits 1: start afresh. A bad configuration exits 2: do not loop.
    assert_eq!(get("Service", "Restart"), "on-failure");
    assert_eq!(get("Service", "RestartPreventExitStatus"), "2");
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");
    let exec = get("Service", "ExecStart");
    let words: Vec<String> = exec.split_whitespace().map(String::from).collect();
    assert_eq!(words[0], "/usr/local/bin/ensemble");
    assert_serve_args_accepted(&words[1..], "ExecStart");

    // systemd's own parser, on a copy that runs the binary just built.
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("note: systemd-analyze not found; only the INI check above ran");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("ensemble.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/ensemble", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values (systemd ignores them): any line about
    // this unit is a failure.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ensemble.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_unit_check_catches_typos() {
    let entries = parse_unit("[Service]\nRestartt=always\n").unwrap();
    let known = known_unit_keys();
    assert!(!known["Service"].contains(&entries[0].1.as_str()));
    assert!(parse_unit("ExecStart=/bin/true\n").is_err());
    assert!(parse_unit("[Service]\nno equals sign\n").is_err());
}

// ---- the container ------------------------------------------------------------------------

/// The Dockerfile's instructions: (keyword, arguments), continuation lines joined, comments and
/// parser directives dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (kw, args) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((kw.to_uppercase(), args.trim().to_string()));
                pending.clear();
            }
        }
    }
    assert!(pending.is_empty(), "the file ends inside a continued line");
    out
}

const DOCKER_INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

fn lint_dockerfile(text: &str) -> Result<(), String> {
    let ins = instructions(text);
    if ins.first().map(|(k, _)| k.as_str()) != Some("FROM") {
        return Err("the first instruction must be FROM".into());
    }
    if let Some((k, _)) = ins
        .iter()
        .find(|(k, _)| !DOCKER_INSTRUCTIONS.contains(&k.as_str()))
    {
        return Err(format!("unknown instruction {k}"));
    }
    let stages: Vec<usize> = (0..ins.len()).filter(|&i| ins[i].0 == "FROM").collect();
    if stages.len() < 2 {
        return Err("build in one stage and run in another (multi-stage)".into());
    }
    let names: Vec<String> = stages
        .iter()
        .filter_map(|&i| {
            let words: Vec<&str> = ins[i].1.split_whitespace().collect();
            (words.len() == 3 && words[1].eq_ignore_ascii_case("AS")).then(|| words[2].into())
        })
        .collect();
    for (_, args) in ins.iter().filter(|(k, _)| k == "COPY") {
        if let Some(from) = args
            .split_whitespace()
            .find_map(|w| w.strip_prefix("--from="))
            && !names.iter().any(|n| n == from)
        {
            return Err(format!("COPY --from={from}: no stage of that name"));
        }
    }
    let last = &ins[*stages.last().unwrap_or(&0)..];
    let user = last
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .ok_or("the final stage has no USER: it would run as root")?;
    let who = user.split(':').next().unwrap_or_default();
    if who == "root" || who == "0" {
        return Err(format!("USER {user}: run as a non-root user"));
    }
    let health = last
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .ok_or("no HEALTHCHECK in the final stage")?;
    if !health.1.contains("/health") {
        return Err("the HEALTHCHECK must probe /health (liveness), not /ready".into());
    }
    Ok(())
}

/// The final stage's `ENTRYPOINT` + `CMD`, from their exec (JSON) forms.
fn container_command(text: &str) -> Vec<String> {
    let ins = instructions(text);
    let json = |kw: &str| -> Vec<String> {
        let (_, args) = ins
            .iter()
            .rev()
            .find(|(k, _)| k == kw)
            .unwrap_or_else(|| panic!("no {kw}"));
        serde_json::from_str(args).unwrap_or_else(|e| panic!("{kw} is not exec form: {e}"))
    };
    let mut cmd = json("ENTRYPOINT");
    cmd.extend(json("CMD"));
    cmd
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_health_checked() {
    let text = read("deploy/Dockerfile");
    lint_dockerfile(&text).unwrap_or_else(|e| panic!("deploy/Dockerfile: {e}"));
    let cmd = container_command(&text);
    assert_eq!(cmd[0], "/usr/local/bin/ensemble");
    assert_serve_args_accepted(&cmd[1..], "ENTRYPOINT + CMD");

    let docker_works = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if std::env::var_os("ENSEMBLE_TEST_DOCKER").is_some_and(|v| v == "1") && docker_works {
        let status = Command::new("docker")
            .args([
                "build",
                "-f",
                "deploy/Dockerfile",
                "-t",
                "ensemble:test",
                ".",
            ])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success(), "docker build failed");
    } else {
        println!(
            "note: docker build skipped (set ENSEMBLE_TEST_DOCKER=1 with a working Docker \
             daemon); the structural lint ran"
        );
    }
}

#[test]
fn the_dockerfile_lint_catches_mistakes() {
    let good = "FROM a AS build\nRUN x\nFROM b\nCOPY --from=build /x /x\nUSER 10001\nHEALTHCHECK CMD curl http://127.0.0.1:7300/health\n";
    assert_eq!(lint_dockerfile(good), Ok(()));
    let root = good.replace("USER 10001", "USER root");
    assert!(lint_dockerfile(&root).unwrap_err().contains("non-root"));
    let no_health = good.replace("HEALTHCHECK CMD curl http://127.0.0.1:7300/health\n", "");
    assert!(
        lint_dockerfile(&no_health)
            .unwrap_err()
            .contains("HEALTHCHECK")
    );
    let ready = good.replace("/health", "/ready");
    assert!(lint_dockerfile(&ready).is_err());
    let typo = good.replace("RUN x", "RUNN x");
    assert!(lint_dockerfile(&typo).unwrap_err().contains("RUNN"));
    let one_stage = "FROM a\nUSER 1\nHEALTHCHECK CMD curl /health\n";
    assert!(lint_dockerfile(one_stage).is_err());
    let bad_from = good.replace("--from=build", "--from=builder");
    assert!(lint_dockerfile(&bad_from).is_err());
    assert!(lint_dockerfile(&format!("RUN x\n{good}")).is_err());
}
