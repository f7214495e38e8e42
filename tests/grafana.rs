//! `deploy/grafana/ensemble.json` against a live runtime: every query parses as PromQL (with
//! Grafana's variables substituted), and every metric it names is in a real `/metrics` scrape
//! of a governed runtime that has served calls across its engines, crashed one until its
//! supervisor gave up, refused and rate-limited callers. `deploy/prometheus/alerts.yml` is held
//! to the same rule. With `promtool` installed (CI installs Debian's `prometheus`), the scrape
//! also passes `promtool check metrics`.

mod common;

use std::collections::BTreeSet;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ens-grafana-admin-51c0";
const LIMITED_KEY: &str = "ens-grafana-limited-9a2e";

/// Grafana's variables replaced by values PromQL accepts.
fn substitute(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    // Any other variable, `$name` or `${name}` (or `${name:format}`), becomes a regex.
    while let Some(at) = out.find('$') {
        let rest = &out[at + 1..];
        let len = if let Some(inner) = rest.strip_prefix('{') {
            inner.find('}').map_or(rest.len(), |end| end + 2)
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        out.replace_range(at..at + 1 + len, ".*");
    }
    out
}

/// The metric names an expression selects.
fn metric_names(expr: &Expr) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let selector = match e {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            };
            if let Some(vs) = selector {
                if let Some(name) = &vs.name {
                    self.0.insert(name.clone());
                }
                for m in &vs.matchers.matchers {
                    if m.name == "__name__" {
                        self.0.insert(m.value.clone());
                    }
                }
            }
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    let _ = walk_expr(&mut names, expr);
    names.0
}

/// Every PromQL query of a Grafana dashboard: its panels' targets (rows' nested panels too)
/// and its query variables (`label_values(selector, label)` reduced to its selector).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_string()));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = match &var["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().unwrap_or_default().to_string(),
        };
        let query = query.trim();
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|inner| inner.strip_suffix(')'))
            .map(|inner| match inner.rsplit_once(',') {
                Some((selector, _label)) => selector.trim().to_string(),
                None => inner.trim().to_string(),
            })
            .unwrap_or_else(|| query.to_string());
        if !selector.is_empty() {
            out.push((format!("variable {}", var["name"]), selector));
        }
    }
    out
}

/// Every query parses; answers the metric names they use (besides the scrape's own `up`).
fn names_in(queries: &[(String, String)]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut broken = Vec::new();
    for (title, expr) in queries {
        match parser::parse(&substitute(expr)) {
            Ok(parsed) => names.extend(metric_names(&parsed)),
            Err(e) => broken.push(format!("{title}: {e}\n    {expr}")),
        }
    }
    assert!(
        broken.is_empty(),
        "queries that do not parse:\n{}",
        broken.join("\n")
    );
    names.remove("up");
    names
}

/// The metric names in a Prometheus text exposition (histograms as their `_bucket`, `_sum`
/// and `_count` series).
fn scraped_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("admin", ADMIN_KEY, &["admin"]),
        ("limited", LIMITED_KEY, &["limited"]),
    ]);
    format!(
        r#"
[engines.registry.restart]
max_restarts = 1
period_ms = 60000

[tools.registry_debug_crash.breaker]
crash_threshold = 2

[[governance.roles]]
name = "admin"
tools = ["*"]
resources = ["*"]

[[governance.roles]]
name = "limited"
tools = ["registry_list"]

[[governance.roles.rate_limits]]
tools = "registry_list"
per_minute = 1

[governance.audit]
node_id = "grafana"

{accounts}"#
    )
}

async fn post_with_key(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
        .send()
        .await
        .expect("POST /mcp")
        .status()
        .as_u16()
}

/// Serves calls across the engines, as a dashboard's metrics need them served.
async fn exercise(server: &common::HttpServer) {
    let admin = common::keys::connect_with_key(&server.url, ADMIN_KEY).await;
    let ok = |tool: &'static str, args: Value| {
        let admin = &admin;
        async move { common::call_ok(admin, tool, args).await }
    };
    ok(
        "registry_put",
        json!({"name": "cfg", "version": "1.0.0", "content": {"a": 1}}),
    )
    .await;
    ok("registry_list", json!({})).await;
    ok(
        "validation_validate",
        json!({"schema": {"type": "integer"}, "document": 3}),
    )
    .await;
    ok("rag_create_collection", json!({"name": "docs"})).await;
    ok(
        "rag_index",
        json!({"collection": "docs", "documents": [
            {"id": "a", "text": "supervision trees restart failed actors"},
            {"id": "b", "text": "circuit breakers fail fast"}]}),
    )
    .await;
    ok(
        "rag_search",
        json!({"collection": "docs", "query": "restart"}),
    )
    .await;
    let scheme = json!({"concepts": [
        {"id": "ops", "pref_labels": [{"value": "operations", "lang": "en"}]},
        {"id": "alerts", "broader": ["ops"], "pref_labels": [{"value": "alerts", "lang": "en"}]}]});
    ok(
        "taxonomy_import",
        json!({"scheme": "topics", "format": "json", "content": scheme.to_string()}),
    )
    .await;
    ok("task_submit", json!({"tool": "registry_list"})).await;
    let def = json!({"steps": [
        {"id": "a", "tool": "registry_list", "arguments": {}},
        {"id": "b", "tool": "validation_validate", "depends_on": ["a"],
         "arguments": {"schema": {"type": "integer"}, "document": 1}}]});
    ok("workflow_run", json!({"definition": def, "wait": true})).await;
    ok(
        "shell_observe",
        json!({"command": "cargo test", "user": "grafana"}),
    )
    .await;

    // Two crashes: the registry's supervisor (one restart a minute) gives up, the crash tool's
    // breaker (two crashes) opens.
    for _ in 0..2 {
        let text =
            common::refusal(&admin, "registry_debug_crash", json!({"reason": "grafana"})).await;
        assert!(text.contains("registry"), "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }

    // Refusals: a tool the role does not have, a rate limit, a bad key.
    let limited = common::keys::connect_with_key(&server.url, LIMITED_KEY).await;
    common::call_ok(&limited, "registry_list", json!({})).await;
    common::refusal(&limited, "registry_list", json!({})).await;
    common::refusal(&limited, "registry_put", json!({})).await;
    assert_eq!(post_with_key(&server.url, "not-a-key").await, 401);
    limited.cancel().await.expect("close");
    admin.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_alert_query_names_a_live_metric() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/ensemble.json"))
            .expect("read the Grafana dashboard"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    let panels = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .count();
    assert!(panels >= 12, "{panels} panels with data; at least 12");
    assert!(queries.len() >= panels, "{} queries", queries.len());
    let mut used = names_in(&queries);

    // The alert rules: every `expr:` line of the rule file.
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml"))
        .expect("read the alert rules");
    let rules: Vec<(String, String)> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| {
            (
                "alert".to_string(),
                e.trim().trim_matches(['"', '\'', '|', '>']).to_string(),
            )
        })
        .filter(|(_, e)| !e.is_empty())
        .collect();
    assert!(rules.len() >= 8, "{} alert expressions read", rules.len());
    used.extend(names_in(&rules));

    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve_http(dir.path(), &config(), &[("ENSEMBLE_TEST_TOOLS", "1")]);
    exercise(&server).await;
    // The dashboard's sampler keeps two gauges (store size, governance mode): one tick.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let page = reqwest::get(format!("{}/metrics", server.base()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    let scraped = scraped_names(&page);
    let missing: Vec<&String> = used.difference(&scraped).collect();
    assert!(
        missing.is_empty(),
        "metrics the dashboard or the alerts use that the runtime does not export: {missing:?}"
    );

    // Prometheus's own lint of the exposition.
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(page.as_bytes())
                .expect("feed promtool");
            let out = child.wait_with_output().expect("promtool");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "promtool check metrics:\n{report}");
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here and could not run: {e}"
            );
            eprintln!(
                "\n*** promtool NOT FOUND ({e}): `promtool check metrics` was NOT run. \
                 Install Debian's `prometheus` package to run it. ***\n"
            );
        }
    }
}

#[test]
fn grafana_variables_are_substituted() {
    assert_eq!(
        substitute(r#"rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval])"#),
        r#"rate(x{job=~".*",instance=~".*"}[5m])"#
    );
    assert_eq!(
        substitute("y[$__interval] offset $__range"),
        "y[1m] offset 1h"
    );
    let e = parser::parse(&substitute(
        r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) / on() group_left sum(b) + {__name__="c"}"#,
    ))
    .expect("parses");
    assert_eq!(
        metric_names(&e).into_iter().collect::<Vec<_>>(),
        ["a_bucket", "b", "c"]
    );
}
