//! Mutation fuzzing of shell_check's parser and rules, for a while: every command of a
//! labelled set, mutated (bytes inserted, deleted, duplicated, shell metacharacters spliced
//! in), must get an answer without a panic.
//! `cargo run --release -p ensemble-actors --example fuzz_shell -- [FILE.jsonl] [SECONDS]`.
use ensemble_actors::learning::shell::safety::check_rules;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "../shared/data/learning/shell/safety/commands.jsonl".into());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let seeds: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["command"].as_str().map(String::from))
        .collect();
    let pieces = [
        "$(",
        ")",
        "`",
        "'",
        "\"",
        "<<EOF\n",
        "\nEOF\n",
        "{",
        "}",
        "((",
        "))",
        "[[",
        "]]",
        "|",
        "&&",
        ";",
        "&",
        ">",
        "<",
        "2>&1",
        "\\",
        "$'\\x41'",
        "${x:-",
        "!",
        "#",
        "\n",
        "case x in",
        "esac",
        "function f",
        "<(",
        ">(",
        "coproc",
        "select",
        "time",
        "$[",
        "${!a[@]}",
        "~",
        "*",
        "?",
    ];
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = std::time::Instant::now();
    let (mut n, mut panics) = (0u64, 0u64);
    while started.elapsed().as_secs() < secs && !seeds.is_empty() {
        let mut s: Vec<char> = seeds[(rnd() % seeds.len() as u64) as usize]
            .chars()
            .collect();
        for _ in 0..(1 + rnd() % 6) {
            let at = if s.is_empty() {
                0
            } else {
                (rnd() % (s.len() as u64 + 1)) as usize
            };
            match rnd() % 4 {
                0 => {
                    let p = pieces[(rnd() % pieces.len() as u64) as usize];
                    for (k, c) in p.chars().enumerate() {
                        s.insert(at + k, c);
                    }
                }
                1 if at < s.len() => {
                    s.remove(at);
                }
                2 if at < s.len() => {
                    let end = (at + 1 + (rnd() % 20) as usize).min(s.len());
                    let dup: Vec<char> = s[at..end].to_vec();
                    for (k, c) in dup.into_iter().enumerate() {
                        s.insert(end + k, c);
                    }
                }
                _ => {
                    let c = char::from_u32((rnd() % 0x250) as u32).unwrap_or('x');
                    s.insert(at, c);
                }
            }
        }
        let text: String = s.into_iter().collect();
        n += 1;
        let t = text.clone();
        if std::panic::catch_unwind(move || check_rules(&t)).is_err() {
            panics += 1;
            println!("PANIC on {text:?}");
            if panics > 5 {
                break;
            }
        }
    }
    println!("{n} mutated commands, {panics} panics");
}
