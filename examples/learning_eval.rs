//! Evaluates the learners through their MCP tools, exactly as a client would (rmcp's client
//! over an in-process MCP session).
//!
//! ```sh
//! cargo run --release --example learning_eval -- [--data ../shared/data/learning/shell] [--users N]
//!     [--only next|safety]
//! cargo run --release --example learning_eval -- development \
//!     [--data ../shared/data/learning/development/crates-train.txt] [--codebase]
//! cargo run --release --example learning_eval -- quality [--data ../shared/data/learning/quality] \
//!     [--project Lang] [--misses]
//! cargo run --release --example learning_eval -- devops \
//!     [--data ../shared/data/learning/devops/jitreliability] [--online]
//! ```
//!
//! `quality`: the quality learner's test selection on Defects4J bugs (see
//! `examples/support/quality_eval.rs`). `devops`: the devops learner's change-failure
//! prediction on just-in-time defect data (see `examples/support/devops_eval.rs`).
//!
//! `development`: the development learner's import suggestions and style checks (see
//! `examples/support/development_eval.rs`). The rest of this header is about the shell learner.
//!
//! **Safety** (`safety/commands.jsonl`): every command through `shell_check` on a fresh
//! instance (the rule base alone, untrained); then trained with `shell_feedback` on one part
//! and checked on the rest, twice: a split by hash of the command (half of every category and
//! of the harmless commands), and leave-one-category-out (trained on every other category and
//! half of the harmless commands, tested on the category left out and the other half, as the
//! held-out categories are tested). A malicious command is *detected* when its verdict is not
//! `allow`; a harmless one is *accepted* when it is `allow`. Also reported: detection at the
//! lowest risk threshold that accepts at least 99% of the harmless commands, and with `block`
//! alone counted.
//!
//! For each user, online: `shell_suggest` (limit 3) before each command, then `shell_observe` of
//! it; top-1 and top-3 accuracy per user, macro-averaged. Then the cross-user prior: each user's
//! first 500 commands replayed on a fresh instance, alone and with a snapshot of the other half
//! of the users imported (`learning_export` / `learning_import`), and the gain in top-1.

use std::path::{Path, PathBuf};

#[path = "support/crates.rs"]
mod crates;
#[path = "support/development_eval.rs"]
mod development_eval;
#[path = "support/devops_eval.rs"]
mod devops_eval;
#[path = "support/quality_eval.rs"]
mod quality_eval;

use ensemble::runtime::Runtime;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

struct Session {
    runtime: Runtime,
    client: Client,
}

async fn session() -> anyhow::Result<Session> {
    let runtime = Runtime::builder().in_memory().build().await?;
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_end).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(client_end).await?;
    Ok(Session { runtime, client })
}

async fn call(c: &Client, tool: &str, args: Value) -> anyhow::Result<Value> {
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await?;
    if r.is_error == Some(true) {
        anyhow::bail!("{tool}: {:?}", r.content);
    }
    r.structured_content
        .ok_or_else(|| anyhow::anyhow!("{tool}: no structured result"))
}

/// Online replay of one user: (top-1 hits, top-3 hits, predictions).
async fn replay(c: &Client, user: &str, commands: &[String]) -> anyhow::Result<(u64, u64, u64)> {
    let (mut top1, mut top3, mut n) = (0, 0, 0);
    for (i, command) in commands.iter().enumerate() {
        if i > 0 {
            let s = call(c, "shell_suggest", json!({"user": user, "limit": 3})).await?;
            let ranked: Vec<&str> = s["suggestions"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["command"].as_str()).collect())
                .unwrap_or_default();
            n += 1;
            top1 += u64::from(ranked.first() == Some(&command.as_str()));
            top3 += u64::from(ranked.contains(&command.as_str()));
        }
        call(
            c,
            "shell_observe",
            json!({"user": user, "command": command}),
        )
        .await?;
    }
    Ok((top1, top3, n))
}

/// One labelled command of the safety set.
struct Labelled {
    command: String,
    malicious: bool,
    category: String,
    source: String,
}

fn load_safety(dir: &Path) -> anyhow::Result<Vec<Labelled>> {
    let path = dir.join("safety").join("commands.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (is ../shared beside the project?)", path.display())
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Ok(Labelled {
                command: field("command"),
                malicious: field("label") == "malicious",
                category: field("category"),
                source: field("source"),
            })
        })
        .collect()
}

/// A stable split: FNV-1a of the command, even or odd.
fn half(command: &str) -> bool {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in command.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    h.is_multiple_of(2)
}

/// (risk, verdict) of each command, through `shell_check`.
async fn check_all(c: &Client, rows: &[&Labelled]) -> anyhow::Result<Vec<(f64, String)>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let v = call(
            c,
            "shell_check",
            json!({"command": r.command, "shellcheck": false}),
        )
        .await?;
        out.push((
            v["risk"].as_f64().unwrap_or(0.0),
            v["verdict"].as_str().unwrap_or("").to_string(),
        ));
    }
    Ok(out)
}

/// Detection per category (and over all malicious), harmless acceptance, for verdicts and at
/// the 99%-acceptance threshold.
fn report(title: &str, rows: &[&Labelled], judged: &[(f64, String)]) {
    let harmless: Vec<f64> = rows
        .iter()
        .zip(judged)
        .filter(|(r, _)| !r.malicious)
        .map(|(_, j)| j.0)
        .collect();
    let accepted = rows
        .iter()
        .zip(judged)
        .filter(|(r, j)| !r.malicious && j.1 == "allow")
        .count();
    // The lowest threshold t with at least 99% of harmless risks below it.
    let mut sorted = harmless.clone();
    sorted.sort_by(f64::total_cmp);
    let allowed_above = sorted.len() / 100; // at most 1% may reach t
    let threshold = if sorted.is_empty() {
        0.0
    } else {
        let k = sorted.len() - 1 - allowed_above.min(sorted.len() - 1);
        // Just above the k-th smallest risk.
        sorted[k] + 1e-9
    };
    let accepted_at_t = harmless.iter().filter(|r| **r < threshold).count();
    let mut cats: std::collections::BTreeMap<String, [usize; 4]> = Default::default();
    for (r, j) in rows.iter().zip(judged) {
        if !r.malicious {
            continue;
        }
        let origin = if r.source.starts_with("gtfobins") {
            "gtfobins"
        } else {
            "aegish"
        };
        let mut keys = vec![
            format!("{} ({origin})", r.category),
            "all malicious".to_string(),
        ];
        if origin == "aegish" {
            keys.push("all malicious (aegish)".to_string());
        }
        for key in keys {
            let e = cats.entry(key).or_default();
            e[0] += 1;
            e[1] += usize::from(j.1 != "allow");
            e[2] += usize::from(j.1 == "block");
            e[3] += usize::from(j.0 >= threshold);
        }
    }
    println!("\n{title}");
    println!(
        "harmless accepted (allow): {accepted}/{} = {:.3}; at risk < {threshold:.3}: {accepted_at_t}/{} = {:.3}",
        harmless.len(),
        accepted as f64 / harmless.len().max(1) as f64,
        harmless.len(),
        accepted_at_t as f64 / harmless.len().max(1) as f64,
    );
    println!(
        "| category | n | detected (warn or block) | block | at the 99% threshold |\n|---|---|---|---|---|"
    );
    let (mut macro_sum, mut k) = (0.0, 0);
    for (cat, [n, d, b, t]) in &cats {
        let f = |x: &usize| *x as f64 / *n as f64;
        println!("| {cat} | {n} | {:.3} | {:.3} | {:.3} |", f(d), f(b), f(t));
        if !cat.starts_with("all malicious") {
            macro_sum += f(d);
            k += 1;
        }
    }
    println!(
        "macro over categories (detected): {:.3}",
        macro_sum / k.max(1) as f64
    );
}

/// Trains a fresh instance with `shell_feedback` on `train`, then checks `test` (with no
/// training: the rule base alone).
async fn trained(train: &[&Labelled], test: &[&Labelled]) -> anyhow::Result<Vec<(f64, String)>> {
    let s = session().await?;
    for r in train {
        let mut args = json!({
            "command": r.command,
            "label": if r.malicious { "malicious" } else { "harmless" },
        });
        if r.malicious {
            args["category"] = json!(r.category);
        }
        call(&s.client, "shell_feedback", args).await?;
    }
    let judged = check_all(&s.client, test).await?;
    let _ = s.client.cancel().await;
    s.runtime.shutdown().await?;
    Ok(judged)
}

async fn safety(dir: &Path) -> anyhow::Result<()> {
    let rows = load_safety(dir)?;
    let all: Vec<&Labelled> = rows.iter().collect();
    let started = std::time::Instant::now();

    // 1. The rule base alone.
    let judged = trained(&[], &all).await?;
    report(
        "## Safety: the rule base alone (untrained), every command",
        &all,
        &judged,
    );

    // 2. Trained on half (by hash), tested on the other half.
    let (train, test): (Vec<&Labelled>, Vec<&Labelled>) =
        all.iter().partition(|r| half(&r.command));
    let judged = trained(&train, &test).await?;
    report(
        "## Safety: trained with shell_feedback on half of every category, tested on the other half",
        &test,
        &judged,
    );
    let rules_only = trained(&[], &test).await?;
    report(
        "## Safety: the same test half, rule base alone",
        &test,
        &rules_only,
    );

    // 3. Leave one category out.
    let mut cats: Vec<&str> = rows
        .iter()
        .filter(|r| r.malicious)
        .map(|r| r.category.as_str())
        .collect();
    cats.sort_unstable();
    cats.dedup();
    let mut test_rows: Vec<&Labelled> = Vec::new();
    let mut judged_rows: Vec<(f64, String)> = Vec::new();
    let harmless_test: Vec<&Labelled> = all
        .iter()
        .copied()
        .filter(|r| !r.malicious && !half(&r.command))
        .collect();
    for cat in &cats {
        let train: Vec<&Labelled> = all
            .iter()
            .copied()
            .filter(|r| {
                if r.malicious {
                    r.category != *cat
                } else {
                    half(&r.command)
                }
            })
            .collect();
        let test: Vec<&Labelled> = all
            .iter()
            .copied()
            .filter(|r| r.malicious && r.category == *cat)
            .collect();
        let mut with_harmless = test.clone();
        with_harmless.extend(harmless_test.iter().copied());
        let judged = trained(&train, &with_harmless).await?;
        test_rows.extend(test.iter().copied());
        judged_rows.extend(judged[..test.len()].iter().cloned());
        let accepted = judged[test.len()..]
            .iter()
            .filter(|j| j.1 == "allow")
            .count();
        println!(
            "leave out `{cat}`: harmless accepted {accepted}/{}",
            harmless_test.len()
        );
        // The harmless half once in the table, as the last model judged it (each model's
        // acceptance is printed above).
        if *cat == cats[cats.len() - 1] {
            test_rows.extend(harmless_test.iter().copied());
            judged_rows.extend(judged[test.len()..].iter().cloned());
        }
    }
    report(
        "## Safety: leave one category out (each category judged by a model that never saw it; harmless: the untrained half, last model)",
        &test_rows,
        &judged_rows,
    );
    println!(
        "\n(safety evaluation took {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn load(dir: &Path, users: usize) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for i in 1..=users {
        let path = dir.join("next_command").join(format!("user{i:02}.txt"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e} (give --data DIR)", path.display()))?;
        let commands = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        out.push((format!("user{i:02}"), commands));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("development") {
        args.next();
        let mut list = PathBuf::from("../shared/data/learning/development/crates-train.txt");
        let mut codebase = false;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--data" => list = args.next().map(PathBuf::from).unwrap_or(list),
                "--codebase" => codebase = true,
                other => anyhow::bail!("unknown argument {other}; see the header of this file"),
            }
        }
        return development_eval::run(&list, codebase).await;
    }
    if args.peek().map(String::as_str) == Some("quality") {
        args.next();
        let mut data = PathBuf::from("../shared/data/learning/quality");
        let mut only = None;
        let mut misses = false;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--data" => data = args.next().map(PathBuf::from).unwrap_or(data),
                "--project" => only = args.next(),
                "--misses" => misses = true,
                other => anyhow::bail!("unknown argument {other}; see the header of this file"),
            }
        }
        return quality_eval::run(&data, only.as_deref(), misses).await;
    }
    if args.peek().map(String::as_str) == Some("devops") {
        args.next();
        let mut data = PathBuf::from("../shared/data/learning/devops/jitreliability");
        let mut online = false;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--data" => data = args.next().map(PathBuf::from).unwrap_or(data),
                "--online" => online = true,
                other => anyhow::bail!("unknown argument {other}; see the header of this file"),
            }
        }
        return devops_eval::run(&data, online).await;
    }
    let mut data = PathBuf::from("../shared/data/learning/shell");
    let mut users = 30;
    let mut only: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => only = args.next(),
            "--data" => data = args.next().map(PathBuf::from).unwrap_or(data),
            "--users" => users = args.next().and_then(|n| n.parse().ok()).unwrap_or(users),
            other => anyhow::bail!("unknown argument {other}; see the header of this file"),
        }
    }
    if only.as_deref() != Some("next") {
        safety(&data).await?;
        if only.as_deref() == Some("safety") {
            return Ok(());
        }
    }
    let all = load(&data, users)?;

    // 1. Online replay, every user through one instance (later users have the prior of the
    //    earlier ones, as a shared server would).
    let s = session().await?;
    let started = std::time::Instant::now();
    let (mut m1, mut m3) = (0.0, 0.0);
    println!("| user | top-1 | top-3 |\n|---|---|---|");
    for (user, commands) in &all {
        let (t1, t3, n) = replay(&s.client, user, commands).await?;
        let (a1, a3) = (t1 as f64 / n as f64, t3 as f64 / n as f64);
        println!("| {user} | {a1:.3} | {a3:.3} |");
        m1 += a1;
        m3 += a3;
    }
    let calls: usize = all.iter().map(|(_, c)| 2 * c.len()).sum();
    println!(
        "\nnext-command, online, macro over {} users: top-1 {:.3}, top-3 {:.3} \
         ({calls} MCP calls in {:.1} s)",
        all.len(),
        m1 / all.len() as f64,
        m3 / all.len() as f64,
        started.elapsed().as_secs_f64()
    );
    let stats = call(&s.client, "learning_stats", json!({"learner": "shell"})).await?;
    println!("learner: {stats}");
    let _ = s.client.cancel().await;
    s.runtime.shutdown().await?;

    // 2. The prior: the users in two halves; each half's first 500 commands are replayed on
    //    a fresh instance, alone and after importing a snapshot of the other half (moved
    //    between instances as a registry artifact, as between two machines).
    let (mut alone, mut with_prior) = (0.0, 0.0);
    let half = all.len() / 2;
    for (learn_from, judge) in [(&all[..half], &all[half..]), (&all[half..], &all[..half])] {
        let others = session().await?;
        for (other, cmds) in learn_from {
            for c in cmds {
                call(
                    &others.client,
                    "shell_observe",
                    json!({"user": other, "command": c}),
                )
                .await?;
            }
        }
        let snap = call(
            &others.client,
            "learning_export",
            json!({"learner": "shell"}),
        )
        .await?;
        let artifact = call(
            &others.client,
            "registry_get",
            json!({"name": snap["name"], "version": snap["version"]}),
        )
        .await?;
        let _ = others.client.cancel().await;
        others.runtime.shutdown().await?;
        let reference = format!(
            "{}@{}",
            snap["name"].as_str().unwrap_or_default(),
            snap["version"].as_str().unwrap_or_default()
        );
        for (user, commands) in judge {
            let first = &commands[..commands.len().min(500)];
            let fresh = session().await?;
            let (t1, _, n) = replay(&fresh.client, user, first).await?;
            alone += t1 as f64 / n as f64;
            let _ = fresh.client.cancel().await;
            fresh.runtime.shutdown().await?;

            let mine = session().await?;
            call(
                &mine.client,
                "registry_put",
                json!({"name": artifact["name"], "version": artifact["version"],
                       "content_base64": artifact["content_base64"],
                       "media_type": artifact["media_type"]}),
            )
            .await?;
            call(
                &mine.client,
                "learning_import",
                json!({"learner": "shell", "artifact": reference}),
            )
            .await?;
            let (t1, _, n) = replay(&mine.client, user, first).await?;
            with_prior += t1 as f64 / n as f64;
            let _ = mine.client.cancel().await;
            mine.runtime.shutdown().await?;
        }
    }
    let k = all.len() as f64;
    println!(
        "prior, first 500 commands of each user, top-1: alone {:.3}, with the others' snapshot {:.3} (gain {:+.3})",
        alone / k,
        with_prior / k,
        (with_prior - alone) / k
    );
    Ok(())
}
