//! Evaluates the shell learner's next-command suggestions on the development users, driving the
//! MCP tools exactly as a client would (rmcp's client over an in-process MCP session).
//!
//! ```sh
//! cargo run --release --example learning_eval -- [--data ../shared/data/learning/shell] [--users N]
//! ```
//!
//! For each user, online: `shell_suggest` (limit 3) before each command, then `shell_observe` of
//! it; top-1 and top-3 accuracy per user, macro-averaged. Then the cross-user prior: each user's
//! first 500 commands replayed on a fresh instance, alone and with a snapshot of the other half
//! of the users imported (`learning_export` / `learning_import`), and the gain in top-1.

use std::path::{Path, PathBuf};

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
    let mut args = std::env::args().skip(1);
    let mut data = PathBuf::from("../shared/data/learning/shell");
    let mut users = 30;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from).unwrap_or(data),
            "--users" => users = args.next().and_then(|n| n.parse().ok()).unwrap_or(users),
            other => anyhow::bail!("unknown argument {other}; see the header of this file"),
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
