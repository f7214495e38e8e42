//! The cost of a governance decision: 100 roles of 20 patterns each (10 allow, 10 deny), the
//! caller holding 5 of them or all 100, against a bare `HashSet` lookup of the tool's name (an
//! allow-list with no patterns, no roles and no denies) measured in the same run.
//!
//! ```sh
//! cargo bench --bench governance
//! ```
//!
//! Goal (issue 11): ≤ 5 µs per decision, cached per identity and tool.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

use ensemble::actors::governance::policy::{Kind, Known, Policy, RoleSpec};

fn roles() -> Vec<RoleSpec> {
    (0..100)
        .map(|r| RoleSpec {
            name: format!("role{r}"),
            tools: (0..10)
                .map(|p| format!("engine{}_*", (r * 10 + p) % 40))
                .collect(),
            deny_tools: (0..10)
                .map(|p| format!("engine{}_{{drop,purge}}{p}", (r * 7 + p) % 40))
                .collect(),
            ..RoleSpec::default()
        })
        .collect()
}

fn tools() -> Vec<String> {
    (0..40)
        .flat_map(|e| {
            ["get", "put", "list", "drop0", "purge1"]
                .into_iter()
                .map(move |v| format!("engine{e}_{v}"))
        })
        .collect()
}

/// Nanoseconds per call of `f` over `names`, the best of five rounds.
fn per_call(names: &[String], mut f: impl FnMut(&str) -> bool) -> f64 {
    let rounds = 200;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u64;
        for _ in 0..rounds {
            for name in names {
                n += u64::from(black_box(f(black_box(name))));
            }
        }
        black_box(n);
        let ns = start.elapsed().as_nanos() as f64 / (rounds * names.len()) as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    let tools = tools();
    let roles = roles();
    let known = Known::tools(tools.iter().cloned());
    let started = Instant::now();
    let policy = match Policy::compile(&roles, &known) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let compile = started.elapsed();
    let five = policy
        .role_set((0..5).map(|r| format!("role{r}")))
        .expect("roles");
    let all = policy
        .role_set((0..100).map(|r| format!("role{r}")))
        .expect("roles");
    let allow: HashSet<String> = tools.iter().step_by(2).cloned().collect();

    let baseline = per_call(&tools, |n| allow.contains(n));
    let rows = [
        (
            "decide, 5 roles, cached",
            per_call(&tools, |n| policy.decide(&five, Kind::Tool, n).allowed),
        ),
        (
            "decide, 100 roles, cached",
            per_call(&tools, |n| policy.decide(&all, Kind::Tool, n).allowed),
        ),
        (
            "decide, 5 roles, uncached",
            per_call(&tools, |n| {
                policy.decide_uncached(&five, Kind::Tool, n).allowed
            }),
        ),
        (
            "decide, 100 roles, uncached",
            per_call(&tools, |n| {
                policy.decide_uncached(&all, Kind::Tool, n).allowed
            }),
        ),
    ];
    println!(
        "policy: 100 roles x 20 patterns over {} tools, compiled in {:.1} ms",
        tools.len(),
        compile.as_secs_f64() * 1e3
    );
    println!("{:<30} {:>10} {:>12}", "what", "ns/call", "x HashSet");
    println!(
        "{:<30} {:>10.1} {:>12.1}",
        "HashSet lookup (baseline)", baseline, 1.0
    );
    for (what, ns) in rows {
        println!("{what:<30} {ns:>10.1} {:>12.1}", ns / baseline);
    }
}
