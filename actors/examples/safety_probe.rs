//! Development aid: shell_check's rule base on commands given one per line on stdin.
use ensemble_actors::learning::shell::safety::{check_rules, risk, verdict};
use std::io::Read;
fn main() {
    let mut text = String::new();
    let _ = std::io::stdin().read_to_string(&mut text);
    let sep = if text.contains("\n---\n") {
        "\n---\n"
    } else {
        "\n"
    };
    for cmd in text.split(sep).filter(|c| !c.trim().is_empty()) {
        let (_, f) = check_rules(cmd);
        let r = risk(&f);
        let rules: Vec<_> = f
            .iter()
            .map(|f| format!("{}:{}", f.rule, f.severity.as_str()))
            .collect();
        println!(
            "{:5} {:.2} {:?} {}",
            verdict(r),
            r,
            rules,
            cmd.replace('\n', "⏎").chars().take(110).collect::<String>()
        );
    }
}
