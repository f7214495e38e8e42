//! The `ensemble` binary's command line, run as a user runs it.

use std::process::Command;

fn ensemble(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(args)
        .output()
        .expect("the ensemble binary runs")
}

#[test]
fn version_prints_the_package_version() {
    let out = ensemble(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some(format!("ensemble {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let out = ensemble(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ensemble {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_command_is_refused_with_the_usage() {
    let out = ensemble(&["serv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognized subcommand 'serv'"), "{err}");
    assert!(
        err.contains("a similar subcommand exists: 'serve'"),
        "{err}"
    );
}

#[test]
fn serve_refuses_bad_options_with_what_to_fix() {
    let out = ensemble(&["serve", "--http", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an address like 127.0.0.1:7300"), "{err}");
    let out = ensemble(&["serve", "--log-format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[possible values: text, json]"), "{err}");
    let out = ensemble(&["serve", "--max-concurrent", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 is not in 1.."), "{err}");
}

#[test]
fn a_second_process_on_the_same_data_dir_is_told_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["serve", "--data-dir", data])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first one holds the store (it logs once it serves).
    let mut stderr = std::io::BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 {
        if line.contains("serving MCP on stdio") {
            break;
        }
    }
    let out = ensemble(&["serve", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another ensemble process"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "stdout is the protocol channel");
    first.kill().unwrap();
    first.wait().unwrap();
}
