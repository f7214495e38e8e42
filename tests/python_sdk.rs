//! The official Python MCP SDK (`mcp` 2.x) as a client of the real binary: over stdio with the
//! initialize handshake and with 2026-07-28 discovery, and over Streamable HTTP in both eras
//! (tests/python/sdk_client.py holds the checks).
//!
//! The SDK comes from PyPI: `.ci/run` installs `mcp==2.3.0` into a virtual environment and
//! points `MCP_SDK_PYTHON` at its interpreter. Without that variable the test looks for a
//! `python3` that can `import mcp`, and says so and passes when there is none (a developer's
//! machine without the SDK); with it set, a missing SDK fails the test.

mod common;

use std::process::Command;

fn python() -> Option<String> {
    if let Ok(p) = std::env::var("MCP_SDK_PYTHON") {
        return Some(p);
    }
    let ok = Command::new("python3")
        .args([
            "-c",
            "import mcp, sys; sys.exit(0 if mcp.__version__ >= '2' else 1)",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| "python3".to_string())
}

#[test]
fn the_python_sdk_talks_to_ensemble_in_both_eras() {
    let Some(python) = python() else {
        println!(
            "note: the Python MCP SDK 2.x is not installed (pip install mcp==2.3.0, or set \
             MCP_SDK_PYTHON); .ci/run installs it"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = common::serve_http(dir.path(), "", &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_client.py");
    let out = Command::new(&python)
        .args([script, env!("CARGO_BIN_EXE_ensemble"), &server.url])
        .env("ENSEMBLE_LOG", "warn")
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python SDK client failed:\n{stdout}\n{stderr}"
    );
    for label in [
        "stdio/legacy",
        "stdio/auto",
        "http/legacy",
        "http/auto",
        "stdio/2026",
        "http/2026",
    ] {
        assert!(
            stdout.contains(&format!("ok {label}")),
            "{label} did not run:\n{stdout}\n{stderr}"
        );
    }
}
