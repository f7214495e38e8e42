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
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ensemble {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_command_is_refused_with_the_usage() {
    let out = ensemble(&["serv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown command `serv`"), "{err}");
    assert!(err.contains("serve"), "{err}");
}

#[test]
fn serve_says_plainly_that_it_is_not_there_yet() {
    let out = ensemble(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "stdout is the protocol channel");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not yet"));
}
