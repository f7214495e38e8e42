//! Command safety: parse a command line as bash would, run the rule base over what would run,
//! and turn the findings into a risk and a verdict. The learned part (labelled feedback) lives
//! in the shell model, which adds its evidence to the same risk.
//!
//! **Risk.** Each finding has a severity with a weight (low 0.15, medium 0.45, high 0.8,
//! critical 0.97); findings of different rules combine as independent evidence,
//! `risk = 1 − Π(1 − wᵢ)`. **Verdict**: `block` from 0.7 (one high or critical finding),
//! `warn` from 0.4 (one medium finding, or several low ones), `allow` below.

mod parse;
mod paths;
mod rules;
pub mod shellcheck;

pub use parse::{Script, parse};
pub use paths::{PathClass, classify};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; no risk by itself (e.g. a ShellCheck style note).
    Info,
    /// Unusual but usually fine.
    Low,
    /// Needs a second look.
    Medium,
    /// Dangerous unless meant.
    High,
    /// Known attack or irreversible damage.
    Critical,
}

impl Severity {
    /// Its weight in the risk.
    pub fn weight(self) -> f64 {
        match self {
            Severity::Info => 0.0,
            Severity::Low => 0.15,
            Severity::Medium => 0.45,
            Severity::High => 0.8,
            Severity::Critical => 0.97,
        }
    }

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One thing the rules found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule (`destructive-delete`, `reverse-shell`, …).
    pub rule: &'static str,
    /// How serious.
    pub severity: Severity,
    /// What it means, in a sentence.
    pub message: String,
    /// Where, as byte offsets `[start, end)` in the command.
    pub span: (usize, usize),
}

/// Risk at or above which the verdict is `block`.
pub const BLOCK_AT: f64 = 0.7;
/// Risk at or above which the verdict is `warn`.
pub const WARN_AT: f64 = 0.4;

/// The verdict for a risk.
pub fn verdict(risk: f64) -> &'static str {
    if risk >= BLOCK_AT {
        "block"
    } else if risk >= WARN_AT {
        "warn"
    } else {
        "allow"
    }
}

/// The risk of a set of findings, one per rule.
pub fn risk(findings: &[Finding]) -> f64 {
    1.0 - findings
        .iter()
        .map(|f| 1.0 - f.severity.weight())
        .product::<f64>()
}

/// Parses `command` and runs the rule base over it.
pub fn check_rules(command: &str) -> (Script, Vec<Finding>) {
    let script = parse(command);
    let findings = rules::check(&script, command);
    (script, findings)
}

/// A safer way to do what a finding's command does, where there is a usual one.
pub fn safer_alternative(findings: &[Finding], script: &Script) -> Option<String> {
    let worst = findings.iter().max_by_key(|f| f.severity)?;
    let alt = match worst.rule {
        "destructive-delete" => {
            "name the directory to remove, relative to where you are (`rm -r ./build`), and \
             list it first (`ls -la ./build`)"
        }
        "download-execute" => {
            "download to a file, read it, then run it: `curl -fsSLo install.sh URL && less \
             install.sh && sh install.sh`; prefer a package manager or a checksum-verified release"
        }
        "decode-execute" => "decode to a file and read it before running anything from it",
        "disk-write" => {
            "check the target with `lsblk -f` first, and write an image file rather than a device \
             while testing"
        }
        "permission-change" | "privilege-change" => {
            "grant only what is needed: `chmod u+x FILE` or `chmod 755 DIR`, never set-ID bits \
             or world-writable system files"
        }
        "fork-bomb" => "limit processes with `ulimit -u` when testing process creation",
        "history-tampering" => {
            "to keep one command out of history, start it with a space (with \
             HISTCONTROL=ignorespace) instead of erasing the history"
        }
        "uploads-file" | "network-send" => {
            "send only the file that is meant to leave, over an authenticated channel \
             (`scp FILE host:` to a host you own), never system files"
        }
        "root-shell" => "run the one command that needs it with `sudo CMD` instead of a root shell",
        _ => return None,
    };
    let _ = script;
    Some(alt.to_string())
}

/// Features of a command for the learned model: the programs it runs, their options, the
/// rules that fired, the kinds of paths it touches, and the words of program text it carries.
pub fn features(script: &Script, findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings {
        out.push(format!("r:{}", f.rule));
    }
    for c in &script.commands {
        if c.name.is_empty() {
            continue;
        }
        let name: String = c.name.chars().take(40).collect();
        out.push(format!("c:{name}"));
        for w in &c.wrappers {
            out.push(format!("w:{w}"));
        }
        for a in c.args.iter().take(32) {
            let t = a.text.as_str();
            if t.starts_with('-') && t.len() <= 24 {
                let opt = t.split('=').next().unwrap_or(t);
                out.push(format!("o:{name}:{opt}"));
            }
            if let Some(class) = classify(t) {
                out.push(format!("p:{class:?}"));
            }
            if t.contains("://") {
                out.push("u:url".into());
            }
            // Words of program text.
            if t.len() > 8 && (t.contains('(') || t.contains(';')) {
                for w in t
                    .split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_')
                    .filter(|w| w.len() >= 3 && w.len() <= 24)
                    .take(64)
                {
                    out.push(format!("t:{}", w.to_ascii_lowercase()));
                }
            }
        }
        if c.stages > 1 {
            out.push(format!(
                "s:{name}:{}",
                if c.stage == 0 { "first" } else { "later" }
            ));
        }
        for r in &c.redirs {
            out.push(format!("d:{:?}", r.kind));
        }
        if c.origin != parse::Origin::Top {
            out.push(format!("g:{:?}", c.origin));
        }
    }
    if script.lines > 1 {
        out.push("l:multiline".into());
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
