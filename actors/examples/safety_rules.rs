//! The rule base alone (no MCP, no learning) over a labelled safety set, per category, with the
//! false alarms listed and, with `--show`, every miss: for working on the rules.
//! `cargo run -p ensemble-actors --example safety_rules -- [FILE.jsonl] [--show]`
//! (default `../shared/data/learning/shell/safety/commands.jsonl`).
use ensemble_actors::learning::shell::safety::{check_rules, risk, verdict};
use std::collections::BTreeMap;

fn main() {
    let path = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "../shared/data/learning/shell/safety/commands.jsonl".into());
    let show = std::env::args().any(|a| a == "--show");
    let text = std::fs::read_to_string(&path).expect("data");
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut fps = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let cmd = v["command"].as_str().unwrap_or("");
        let cat = format!(
            "{}/{}",
            v["category"].as_str().unwrap_or(""),
            if v["source"].as_str().unwrap_or("").starts_with("gtfo") {
                "gtfo"
            } else {
                "aegish"
            }
        );
        let (_, findings) = check_rules(cmd);
        let r = risk(&findings);
        let flagged = verdict(r) != "allow";
        let e = per.entry(cat.clone()).or_default();
        e.1 += 1;
        if flagged {
            e.0 += 1;
        }
        let rules: Vec<_> = findings
            .iter()
            .map(|f| format!("{}:{}", f.rule, f.severity.as_str()))
            .collect();
        if cat.starts_with("harmless") && flagged {
            fps.push(format!("{cmd:?} {rules:?}"));
        }
        if !cat.starts_with("harmless") && !flagged {
            misses.push(format!("[{cat}] {cmd:?} {rules:?}"));
        }
    }
    for (c, (d, n)) in &per {
        println!("{c:32} {d:4}/{n:4} {:.3}", *d as f64 / *n as f64);
    }
    println!("false alarms: {}", fps.len());
    for f in &fps {
        println!("  FP {f}");
    }
    if show {
        for m in &misses {
            println!("  MISS {m}");
        }
    }
}
