//! ShellCheck's findings for scripts, when it is installed (`apt-get install shellcheck`).
//! They are reported beside the rules' findings and do not change the risk: ShellCheck judges
//! correctness and style, not intent. Without ShellCheck the check goes on and says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ensemble_protocol::shell::{CheckResponse, SafetyFinding};
use tokio::io::AsyncWriteExt;

use crate::learning::Reply;

/// How long ShellCheck may take on one script.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The program to run (`ENSEMBLE_SHELLCHECK` overrides, for tests and odd installs).
fn program() -> String {
    std::env::var("ENSEMBLE_SHELLCHECK").unwrap_or_else(|_| "shellcheck".to_string())
}

static SAID_MISSING: AtomicBool = AtomicBool::new(false);

/// Lints `command` on a task of its own, adds what ShellCheck found to `answer`, and replies.
pub fn complete(command: String, mut answer: CheckResponse, reply: Reply<CheckResponse>) {
    tokio::spawn(async move {
        match lint(&command).await {
            Ok(found) => answer.findings.extend(found),
            Err(note) => answer.notes.push(note),
        }
        let _ = reply.send(Ok(answer));
    });
}

/// ShellCheck's findings, or why there are none.
pub async fn lint(command: &str) -> Result<Vec<SafetyFinding>, String> {
    lint_with(&program(), command).await
}

async fn lint_with(program: &str, command: &str) -> Result<Vec<SafetyFinding>, String> {
    let spawned = tokio::process::Command::new(program)
        .args(["--format=json1", "--shell=bash", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !SAID_MISSING.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "shellcheck is not installed: scripts are checked by the rule base alone \
                     (install the `shellcheck` package to add its findings)"
                );
            }
            return Err(
                "ShellCheck is not installed; the script was checked by the rule base \
                        alone"
                    .into(),
            );
        }
        Err(e) => return Err(format!("ShellCheck could not start: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let text = command.to_string();
        tokio::spawn(async move {
            let _ = stdin.write_all(text.as_bytes()).await;
        });
    }
    let out = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("ShellCheck failed: {e}")),
        Err(_) => {
            return Err(format!(
                "ShellCheck took longer than {}s; skipped",
                TIMEOUT.as_secs()
            ));
        }
    };
    parse(command, &out.stdout)
}

/// Reads ShellCheck's `json1` output.
fn parse(command: &str, json: &[u8]) -> Result<Vec<SafetyFinding>, String> {
    #[derive(serde::Deserialize)]
    struct Out {
        comments: Vec<Comment>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Comment {
        line: usize,
        end_line: usize,
        column: usize,
        end_column: usize,
        level: String,
        code: u32,
        message: String,
    }
    let out: Out = serde_json::from_slice(json)
        .map_err(|e| format!("ShellCheck's output was not understood: {e}"))?;
    // Byte offset of each line's start.
    let mut starts = vec![0];
    starts.extend(command.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: usize, column: usize| {
        let start = starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(command.len());
        let line_text = command[start..].split('\n').next().unwrap_or("");
        // ShellCheck counts columns in characters, tabs as 8.
        let byte = line_text
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(line_text.len(), |(i, _)| i);
        start + byte
    };
    Ok(out
        .comments
        .into_iter()
        .map(|c| SafetyFinding {
            rule: format!("SC{}", c.code),
            severity: "info".into(),
            message: format!("{}: {}", c.level, c.message),
            span: [offset(c.line, c.column), offset(c.end_line, c.end_column)],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_shellcheck_the_check_says_so_and_goes_on() {
        let e = lint_with("/nonexistent/shellcheck", "echo $x")
            .await
            .unwrap_err();
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn json1_is_read_with_byte_spans() {
        let json = br#"{"comments":[{"file":"-","line":2,"endLine":2,"column":4,"endColumn":8,"level":"info","code":2086,"severity":"info","message":"Double quote to prevent globbing and word splitting.","fix":null}]}"#;
        let found = parse("x=1\nrm $x y", json).unwrap();
        assert_eq!(found[0].rule, "SC2086");
        assert_eq!(found[0].span, [7, 11]);
        assert_eq!(&"x=1\nrm $x y"[7..9], "$x");
        assert!(parse("x", b"not json").is_err());
    }
}
