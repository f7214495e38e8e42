//! What a promotion decision costs: `promotion_promote` on a request whose gates all pass
//! (a schema gate, a workflow gate whose run has already completed, three sign-offs, no
//! blockers), durable when answered: the store flushed to disk, the transition's audit
//! records in the store. Measured through the runtime's router on an on-disk data directory,
//! one decision at a time, against a durable `registry_put` through the same router in the
//! same run (the baseline: the cheapest durable write there is).
//!
//! Goal (issue 12): ≤ 1 ms per decision.
//!
//! ```sh
//! cargo bench --bench promotion
//! cargo bench --bench promotion -- --decisions 1000
//! ```

use std::time::{Duration, Instant};

use ensemble::runtime::Runtime;
use serde_json::{Value, json};

async fn ok(rt: &Runtime, tool: &str, args: Value) -> Value {
    rt.router()
        .call(tool, args.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{tool} {args}: {e}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(name: &str, mut samples: Vec<Duration>) -> (String, Duration) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let line = format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        samples.len(),
        mean.as_secs_f64() * 1e6,
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.95).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
    (line, percentile(&samples, 0.5))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let decisions: usize = args
        .iter()
        .position(|a| a == "--decisions")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder()
        .data_dir(dir.path().join("data"))
        .build()
        .await
        .expect("runtime");

    ok(
        &rt,
        "validation_register_schema",
        json!({"name": "service", "version": "1.0.0", "schema": {
            "type": "object", "required": ["image", "replicas"],
            "properties": {"image": {"type": "string"}, "replicas": {"type": "integer", "minimum": 1}}
        }}),
    )
    .await;
    ok(
        &rt,
        "template_register",
        json!({"template": {
            "name": "smoke", "version": "1.0.0",
            "parameters": [{"name": "artifact", "type": "string"}, {"name": "version", "type": "string"}],
            "steps": [{"id": "read", "tool": "registry_get",
                       "arguments": {"name": "${artifact}", "version": "${version}"}}]
        }}),
    )
    .await;
    ok(
        &rt,
        "promotion_pipeline_set",
        json!({"name": "bench", "pattern": "bench/*", "stages": [{"name": "dev", "gates": {
            "schema": "service@1.0.0",
            "workflow": {"template": "smoke", "params": {"artifact": "${artifact}", "version": "${version}"}},
            "signoffs": {"roles": ["tech_lead", "qa", "security"]},
        }}]}),
    )
    .await;
    let h = ok(
        &rt,
        "handoff_create",
        json!({"title": "bench", "components": [{"name": "api", "status": "done", "percent_complete": 100}]}),
    )
    .await;
    let handoff = h["id"].as_str().expect("id").to_string();
    ok(&rt, "handoff_submit", json!({"id": handoff})).await;

    let mut promote = Vec::with_capacity(decisions);
    let mut put = Vec::with_capacity(decisions);
    for i in 0..decisions {
        let name = format!("bench/svc-{i}");
        let started = Instant::now();
        ok(
            &rt,
            "registry_put",
            json!({"name": name, "version": "1.0.0", "content": {"image": "api:1", "replicas": 2}}),
        )
        .await;
        put.push(started.elapsed());
        let r = ok(
            &rt,
            "promotion_request",
            json!({"artifact": name, "version": "1.0.0", "handoff_id": handoff}),
        )
        .await;
        let id = r["request_id"].as_str().expect("request id").to_string();
        for role in ["tech_lead", "qa", "security"] {
            ok(
                &rt,
                "promotion_sign",
                json!({"request_id": id, "role": role, "decision": "approve"}),
            )
            .await;
        }
        // The workflow gate's run (started with the request) completes first: its own run
        // time is not the decision's.
        loop {
            let s = ok(&rt, "promotion_status", json!({"request_id": id})).await;
            let done = s["gates"]
                .as_array()
                .is_some_and(|g| g.iter().all(|g| g["passed"] == true));
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        let answer = ok(&rt, "promotion_promote", json!({"request_id": id})).await;
        promote.push(started.elapsed());
        assert_eq!(answer["state"], "promoted", "{answer}");
    }
    let flushes = rt.store().flush_count();
    println!(
        "\npromotion decisions on an on-disk data directory ({}), one at a time, {decisions} each; µs\n",
        dir.path().display()
    );
    println!("| call | n | mean | p50 | p95 | p99 |");
    println!("|---|---|---|---|---|---|");
    let (line, p50_put) = row("registry_put (baseline: one durable write)", put);
    println!("{line}");
    let (line, p50_promote) = row(
        "promotion_promote (schema + completed workflow + 3 sign-offs + findings)",
        promote,
    );
    println!("{line}");
    println!(
        "\npromote / put at p50: {:.2}×; store flushes in the run: {flushes}",
        p50_promote.as_secs_f64() / p50_put.as_secs_f64()
    );
    println!(
        "goal: promotion_promote ≤ 1000 µs per decision (p50 {:.0} µs: {})",
        p50_promote.as_secs_f64() * 1e6,
        if p50_promote <= Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = rt.shutdown().await;
}
