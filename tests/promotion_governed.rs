//! The promotion engine on a governed server, over HTTP with API keys: sign-offs only in roles
//! the signer holds, once per role, never by the requester (separation of duties); a stage is
//! entered only when every gate passes; every transition is in the audit log, by whom, in the
//! order it happened; and a kill -9 in the middle of concurrent promotions leaves each one
//! either done and audited, or not done and not audited.

mod common;

use std::time::{Duration, Instant};

use common::{Client, call_ok as call, refusal};
use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

const DEV_KEY: &str = "ens-dev-5a1c";
const LEAD_KEY: &str = "ens-lead-93be";
const QA_KEY: &str = "ens-qa-0d47";
const SEC_KEY: &str = "ens-sec-e611";
const RELEASER_KEY: &str = "ens-releaser-2f78";

/// Five service accounts: `dev` (developer, and qa so that only separation of duties stops it
/// approving its own request), `lead` (tech_lead), `qa`, `sec` (security) and `releaser`
/// (release, who may also read the audit log).
fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("dev", DEV_KEY, &["developer", "qa"]),
        ("lead", LEAD_KEY, &["tech_lead"]),
        ("qa", QA_KEY, &["qa"]),
        ("sec", SEC_KEY, &["security"]),
        ("releaser", RELEASER_KEY, &["release"]),
    ]);
    format!(
        r#"
[[governance.roles]]
name = "developer"
tools = ["registry_*", "handoff_*", "promotion_*"]

[[governance.roles]]
name = "tech_lead"
tools = ["promotion_*", "handoff_get"]

[[governance.roles]]
name = "qa"
tools = ["promotion_*", "handoff_get"]

[[governance.roles]]
name = "security"
tools = ["promotion_*", "handoff_get"]

[[governance.roles]]
name = "release"
tools = ["promotion_*", "handoff_get", "audit_query"]

[governance.audit]
node_id = "promotion-test"
{accounts}"#
    )
}

/// The sessions of the five identities.
struct Team {
    dev: Client,
    lead: Client,
    qa: Client,
    sec: Client,
    releaser: Client,
}

impl Team {
    async fn connect(url: &str) -> Self {
        let key = |k| common::keys::connect_with_key(url, k);
        Self {
            dev: key(DEV_KEY).await,
            lead: key(LEAD_KEY).await,
            qa: key(QA_KEY).await,
            sec: key(SEC_KEY).await,
            releaser: key(RELEASER_KEY).await,
        }
    }

    async fn close(self) {
        for c in [self.dev, self.lead, self.qa, self.sec, self.releaser] {
            c.cancel().await.ok();
        }
    }
}

/// `svc/*`: `dev` with no gates, then `staging` signed off by a tech lead, QA and security.
async fn svc_pipeline(releaser: &Client) {
    let p = call(
        releaser,
        "promotion_pipeline_set",
        json!({"name": "svc", "pattern": "svc/*", "stages": [
            {"name": "dev"},
            {"name": "staging", "gates": {"signoffs": {"roles": ["tech_lead", "qa", "security"]}}}
        ]}),
    )
    .await;
    assert_eq!(p["version"], 1, "{p}");
    assert_eq!(p["created_by"], "apikey:releaser", "{p}");
    // A sign-off role that is no governance role could never be signed in.
    let why = refusal(
        releaser,
        "promotion_pipeline_set",
        json!({"name": "typo", "pattern": "typo/*", "stages": [
            {"name": "dev", "gates": {"signoffs": {"roles": ["qa", "qa_lead"]}}}
        ]}),
    )
    .await;
    assert!(
        why.contains("`qa_lead` is not a governance role") && why.contains("tech_lead"),
        "{why}"
    );
}

/// `dev` puts `name@version` in the registry and writes and submits a hand-off report for it;
/// answers the report's id.
async fn artifact_with_report(dev: &Client, name: &str, version: &str) -> String {
    let put = call(
        dev,
        "registry_put",
        json!({"name": name, "version": version, "content": {"image": format!("{name}:{version}")}}),
    )
    .await;
    assert!(put["digest"].is_string(), "{put}");
    let report = call(
        dev,
        "handoff_create",
        json!({
            "title": format!("{name} {version}"),
            "summary": "Ready for the next stage.",
            "components": [{"name": "server", "status": "done", "percent_complete": 100}],
            "evidence": [{"kind": "artifact", "reference": format!("{name}@{version}")}]
        }),
    )
    .await;
    let id = report["id"].as_str().expect("a report id").to_string();
    assert_eq!(report["state"], "draft", "{report}");
    let submitted = call(dev, "handoff_submit", json!({"id": id})).await;
    assert_eq!(submitted["state"], "submitted", "{submitted}");
    id
}

/// `dev` asks for `name@version` to enter `stage`; answers the request's id.
async fn request(dev: &Client, name: &str, version: &str, report: &str, stage: &str) -> String {
    let r = call(
        dev,
        "promotion_request",
        json!({"artifact": name, "version": version, "handoff_id": report, "stage": stage}),
    )
    .await;
    assert_eq!(r["state"], "open", "{r}");
    assert_eq!(r["stage"], stage, "{r}");
    assert_eq!(r["requested_by"], "apikey:dev", "{r}");
    r["request_id"].as_str().expect("a request id").to_string()
}

fn sign(request_id: &str, role: &str, decision: &str) -> Value {
    json!({"request_id": request_id, "role": role, "decision": decision,
           "comment": format!("{decision} as {role}")})
}

/// `svc/api@1.0.0` in `dev` (no gates, promoted by `dev` itself) and a request by `dev` to enter
/// `staging`; answers the staging request's id.
async fn in_dev_asking_for_staging(team: &Team, name: &str) -> String {
    let report = artifact_with_report(&team.dev, name, "1.0.0").await;
    let to_dev = request(&team.dev, name, "1.0.0", &report, "dev").await;
    let promoted = call(
        &team.dev,
        "promotion_promote",
        json!({"request_id": to_dev}),
    )
    .await;
    assert_eq!(promoted["state"], "promoted", "{promoted}");
    request(&team.dev, name, "1.0.0", &report, "staging").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separation_of_duties_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let team = Team::connect(&server.url).await;
    svc_pipeline(&team.releaser).await;
    let id = in_dev_asking_for_staging(&team, "svc/api").await;

    // A role the signer does not hold.
    let why = refusal(
        &team.qa,
        "promotion_sign",
        sign(&id, "tech_lead", "approve"),
    )
    .await;
    assert!(
        why.contains("`apikey:qa` does not hold role `tech_lead`"),
        "{why}"
    );
    // The requester holds `qa`, but opened the request.
    let why = refusal(&team.dev, "promotion_sign", sign(&id, "qa", "approve")).await;
    assert!(why.contains("separation of duties"), "{why}");
    assert!(why.contains("`apikey:dev` opened"), "{why}");
    // A role the stage does not ask for.
    let why = refusal(
        &team.lead,
        "promotion_sign",
        sign(&id, "release", "approve"),
    )
    .await;
    assert!(why.contains("does not ask for role `release`"), "{why}");

    // Once per role.
    let signed = call(
        &team.lead,
        "promotion_sign",
        sign(&id, "tech_lead", "approve"),
    )
    .await;
    assert_eq!(
        signed["signoffs"].as_array().map(Vec::len),
        Some(1),
        "{signed}"
    );
    let why = refusal(
        &team.lead,
        "promotion_sign",
        sign(&id, "tech_lead", "approve"),
    )
    .await;
    assert!(why.contains("already signed"), "{why}");
    assert!(why.contains("`apikey:lead`"), "{why}");

    // Too early: the failing gate is named with the roles still missing, and nothing moved.
    let why = refusal(
        &team.releaser,
        "promotion_promote",
        json!({"request_id": id}),
    )
    .await;
    assert!(why.contains("signoffs"), "{why}");
    assert!(why.contains("1 of 3 approvals"), "{why}");
    assert!(why.contains("waiting for: qa, security"), "{why}");
    let status = call(
        &team.releaser,
        "promotion_status",
        json!({"request_id": id}),
    )
    .await;
    assert_eq!(status["state"], "open", "{status}");
    let gate = status["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["gate"] == "signoffs"))
        .unwrap_or_else(|| panic!("a signoffs gate: {status}"));
    assert_eq!(gate["passed"], false, "{status}");

    // Every role in: the releaser promotes.
    call(&team.qa, "promotion_sign", sign(&id, "qa", "approve")).await;
    call(
        &team.sec,
        "promotion_sign",
        sign(&id, "security", "approve"),
    )
    .await;
    let promoted = call(
        &team.releaser,
        "promotion_promote",
        json!({"request_id": id}),
    )
    .await;
    assert_eq!(promoted["state"], "promoted", "{promoted}");
    assert_eq!(promoted["promoted_by"], "apikey:releaser", "{promoted}");
    assert!(
        promoted["gates"]
            .as_array()
            .is_some_and(|g| g.iter().all(|g| g["passed"] == true)),
        "{promoted}"
    );

    let history = call(
        &team.releaser,
        "promotion_history",
        json!({"artifact": "svc/api"}),
    )
    .await;
    let holds = |stage: &str| {
        history["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stage"] == stage))
            .map(|s| s["version"].clone())
    };
    assert_eq!(holds("dev"), Some(json!("1.0.0")), "{history}");
    assert_eq!(holds("staging"), Some(json!("1.0.0")), "{history}");
    let event = history["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["stage"] == "staging"))
        .unwrap_or_else(|| panic!("a staging event: {history}"));
    assert_eq!(event["kind"], "promoted", "{history}");
    assert_eq!(event["by"], "apikey:releaser", "{history}");
    assert_eq!(event["request_id"], id.as_str(), "{history}");
    let mut signers: Vec<(String, String, String)> = event["signoffs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("by"), text("role"), text("decision"))
        })
        .collect();
    signers.sort();
    let expect = |by: &str, role: &str| (by.to_string(), role.to_string(), "approve".to_string());
    assert_eq!(
        signers,
        [
            expect("apikey:lead", "tech_lead"),
            expect("apikey:qa", "qa"),
            expect("apikey:sec", "security"),
        ],
        "{history}"
    );
    team.close().await;
}

/// The `promotion/…` audit records about `target`, oldest first, as (action, identity, detail).
async fn transitions(reader: &Client, target: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut args = json!({"tool": target, "limit": 1000});
        if !after.is_null() {
            args["after"] = after.clone();
        }
        let page = call(reader, "audit_query", args).await;
        for e in page["entries"].as_array().expect("entries") {
            let r = &e["record"];
            let action = r["action"].as_str().unwrap_or_default();
            if action.starts_with("promotion/") {
                assert_eq!(r["kind"], "change", "{r}");
                out.push((
                    action.to_string(),
                    r["identity"].as_str().unwrap_or_default().to_string(),
                    r["detail"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        match page.get("next") {
            Some(next) if !next.is_null() => after = next.clone(),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[]);
    let team = Team::connect(&server.url).await;
    svc_pipeline(&team.releaser).await;
    let id = in_dev_asking_for_staging(&team, "svc/web").await;
    // Refusals change nothing and leave no transition behind.
    refusal(&team.dev, "promotion_sign", sign(&id, "qa", "approve")).await;
    refusal(
        &team.releaser,
        "promotion_promote",
        json!({"request_id": id}),
    )
    .await;
    for (who, role) in [
        (&team.lead, "tech_lead"),
        (&team.qa, "qa"),
        (&team.sec, "security"),
    ] {
        call(who, "promotion_sign", sign(&id, role, "approve")).await;
    }
    let promoted = call(
        &team.releaser,
        "promotion_promote",
        json!({"request_id": id}),
    )
    .await;
    assert_eq!(promoted["state"], "promoted", "{promoted}");

    // Answered means logged: no waiting.
    let seen = transitions(&team.releaser, "svc/web@1.0.0").await;
    let shape: Vec<(&str, &str)> = seen
        .iter()
        .map(|(a, i, _)| (a.as_str(), i.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            ("promotion/request", "apikey:dev"),
            ("promotion/promote", "apikey:dev"),
            ("promotion/request", "apikey:dev"),
            ("promotion/sign", "apikey:lead"),
            ("promotion/sign", "apikey:qa"),
            ("promotion/sign", "apikey:sec"),
            ("promotion/promote", "apikey:releaser"),
        ],
        "{seen:#?}"
    );
    let detail = |i: usize| seen[i].2.as_str();
    assert!(
        detail(2).contains(&id) && detail(2).contains("`staging`"),
        "{seen:#?}"
    );
    assert!(detail(3).contains("`tech_lead`"), "{seen:#?}");
    assert!(detail(4).contains("`qa`"), "{seen:#?}");
    assert!(detail(5).contains("`security`"), "{seen:#?}");
    let last = detail(6);
    assert!(last.contains(&id), "{last}");
    assert!(last.contains("entered `staging`"), "{last}");
    for signer in ["apikey:lead", "apikey:qa", "apikey:sec"] {
        assert!(last.contains(signer), "{last}");
    }

    // The pipeline and the report are audited under their own targets.
    let pipeline = transitions(&team.releaser, "pipeline:svc").await;
    assert_eq!(pipeline.len(), 1, "{pipeline:#?}");
    assert_eq!(pipeline[0].0, "promotion/pipeline_set");
    assert_eq!(pipeline[0].1, "apikey:releaser");
    let report_id = promoted["handoff_id"].as_str().expect("a report id");
    let report = transitions(&team.releaser, &format!("handoff:{report_id}")).await;
    let actions: Vec<&str> = report.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["promotion/handoff_create", "promotion/handoff_submit"],
        "{report:#?}"
    );
    assert!(report.iter().all(|(_, who, _)| who == "apikey:dev"));
    team.close().await;
}

const ARTIFACTS: usize = 20;

fn load(i: usize) -> String {
    format!("load/a{i:02}")
}

/// `ensemble audit verify --data-dir DATA`, which must find the log intact.
fn audit_verifies(data: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .env_remove("ENSEMBLE_CONFIG")
        .output()
        .expect("ensemble audit verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_promotions_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::serve_http(dir.path(), &config(), &[]);
    let team = Team::connect(&server.url).await;
    call(
        &team.releaser,
        "promotion_pipeline_set",
        json!({"name": "load", "pattern": "load/*", "stages": [{"name": "dev"}, {"name": "staging"}]}),
    )
    .await;
    let mut requests = Vec::new();
    for i in 0..ARTIFACTS {
        let report = artifact_with_report(&team.dev, &load(i), "1.0.0").await;
        requests.push(request(&team.dev, &load(i), "1.0.0", &report, "dev").await);
    }

    // Every promotion at once, from sessions of their own; kill -9 at the first answer.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(common::keys::connect_with_key(&server.url, RELEASER_KEY).await);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut calls = Vec::new();
    for (i, id) in requests.iter().enumerate() {
        let peer = sessions[i % sessions.len()].peer().clone();
        let (tx, id) = (tx.clone(), id.clone());
        calls.push(tokio::spawn(async move {
            let answer = peer
                .call_tool(
                    CallToolRequestParams::new("promotion_promote")
                        .with_arguments(object(json!({"request_id": id}))),
                )
                .await;
            // Acknowledged as promoted: it must survive the kill.
            let promoted = answer.is_ok_and(|r| {
                r.is_error != Some(true)
                    && r.structured_content
                        .is_some_and(|s| s["state"] == "promoted")
            });
            let _ = tx.send((i, promoted));
        }));
    }
    drop(tx);
    let sent = Instant::now();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an answer to a promotion");
    server.child.kill().expect("kill -9");
    server.child.wait().expect("the server is gone");
    let killed_after = sent.elapsed();
    let mut acknowledged = Vec::new();
    if let Some((i, true)) = first {
        acknowledged.push(i);
    }
    // Answers sent before the kill arrive at once; the other calls never end (abandoned).
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some((i, promoted)) = rx.recv().await {
            if promoted {
                acknowledged.push(i);
            }
        }
    })
    .await;
    for c in calls {
        c.abort();
    }
    drop(sessions);
    drop(team);
    drop(server);

    // The same data directory, the same configuration.
    let server = common::serve_http(dir.path(), &config(), &[]);
    let releaser = common::keys::connect_with_key(&server.url, RELEASER_KEY).await;
    let mut promoted = 0;
    for (i, id) in requests.iter().enumerate() {
        let name = load(i);
        let status = call(&releaser, "promotion_status", json!({"request_id": id})).await;
        let state = status["state"].as_str().unwrap_or_default().to_string();
        let history = releaser
            .call_tool(
                CallToolRequestParams::new("promotion_history")
                    .with_arguments(object(json!({"artifact": name}))),
            )
            .await;
        // Never promoted: `promotion_history` says so (an error).
        let in_dev = history.as_ref().is_ok_and(|h| {
            h.is_error != Some(true)
                && h.structured_content.as_ref().is_some_and(|h| {
                    h["stages"].as_array().is_some_and(|s| {
                        s.iter()
                            .any(|s| s["stage"] == "dev" && s["version"] == "1.0.0")
                    })
                })
        });
        let audited: Vec<_> = transitions(&releaser, &format!("{name}@1.0.0"))
            .await
            .into_iter()
            .filter(|(action, _, _)| action == "promotion/promote")
            .collect();
        let what = format!(
            "{name} ({id}): state {state}, in dev {in_dev}, promote records {audited:#?}, \
             history {history:?}"
        );
        if state == "promoted" {
            promoted += 1;
            assert!(in_dev, "promoted but not in dev: {what}");
            assert_eq!(audited.len(), 1, "promoted, audited once: {what}");
            assert_eq!(audited[0].1, "apikey:releaser", "{what}");
            assert!(audited[0].2.contains(id.as_str()), "{what}");
        } else {
            assert_eq!(state, "open", "{what}");
            assert!(!in_dev, "in dev but the request is open: {what}");
            assert!(audited.is_empty(), "audited but not promoted: {what}");
            assert!(
                !acknowledged.contains(&i),
                "answered as promoted before the kill, lost after it: {what}"
            );
            // Nothing is stuck: it can still be promoted, once.
            let now = call(&releaser, "promotion_promote", json!({"request_id": id})).await;
            assert_eq!(now["state"], "promoted", "{what}: {now}");
            let audited = transitions(&releaser, &format!("{name}@1.0.0"))
                .await
                .into_iter()
                .filter(|(action, _, _)| action == "promotion/promote")
                .count();
            assert_eq!(audited, 1, "{what}");
        }
    }
    eprintln!(
        "kill -9 {killed_after:?} after sending {ARTIFACTS} promotions: {promoted} had \
         entered dev, {} acknowledged",
        acknowledged.len()
    );
    releaser.cancel().await.ok();
    drop(server);
    audit_verifies(&dir.path().join("data"));
}

/// The whole path over MCP against the real binary, ungoverned (the local owner holds every
/// role): dev behind a schema gate, staging behind a workflow gate, production behind three
/// sign-offs; the resources render the request and the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_to_production_over_mcp_with_schema_workflow_and_signoff_gates() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), "", &[]);
    let client = common::connect(&server.url).await;
    call(
        &client,
        "validation_register_schema",
        json!({"name": "service", "version": "1.0.0", "schema": {
            "type": "object", "required": ["image", "replicas"],
            "properties": {"replicas": {"type": "integer", "minimum": 1}}}}),
    )
    .await;
    call(
        &client,
        "template_register",
        json!({"template": {"name": "smoke", "version": "1.0.0",
            "parameters": [{"name": "artifact", "type": "string"}, {"name": "version", "type": "string"}],
            "steps": [{"id": "read", "tool": "registry_get",
                       "arguments": {"name": "${artifact}", "version": "${version}"}}]}}),
    )
    .await;
    call(
        &client,
        "promotion_pipeline_set",
        json!({"name": "svc", "pattern": "svc/*", "stages": [
            {"name": "dev", "gates": {"schema": "service@1.0.0"}},
            {"name": "staging", "gates": {"workflow": {"template": "smoke",
                "params": {"artifact": "${artifact}", "version": "${version}"}}}},
            {"name": "production", "gates": {"signoffs": {"roles": ["tech_lead", "qa", "security"]}}}]}),
    )
    .await;
    for (version, replicas) in [("1.0.0", 2), ("0.9.0", 0)] {
        call(
            &client,
            "registry_put",
            json!({"name": "svc/api", "version": version,
                   "content": {"image": "api", "replicas": replicas}}),
        )
        .await;
    }
    let ho = call(&client, "handoff_create", json!({"title": "api 1.0.0"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(&client, "handoff_submit", json!({"id": ho})).await;
    let open = |version: &str| {
        let args = json!({"artifact": "svc/api", "version": version, "handoff_id": ho});
        let client = &client;
        async move {
            call(client, "promotion_request", args).await["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // The schema gate refuses the bad version, naming the field.
    let bad = open("0.9.0").await;
    let e = refusal(&client, "promotion_promote", json!({"request_id": bad})).await;
    assert!(e.contains("schema") && e.contains("replicas"), "{e}");
    let dev = open("1.0.0").await;
    assert_eq!(
        call(&client, "promotion_promote", json!({"request_id": dev})).await["state"],
        "promoted"
    );
    // The workflow gate's run started with the request; promote once it completed.
    let staging = open("1.0.0").await;
    let started = Instant::now();
    let promoted = loop {
        let r = client
            .call_tool(
                CallToolRequestParams::new("promotion_promote")
                    .with_arguments(object(json!({"request_id": staging}))),
            )
            .await
            .unwrap();
        if r.is_error != Some(true) {
            break r.structured_content.unwrap();
        }
        let text = format!("{:?}", r.content);
        assert!(text.contains("still running"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(10), "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(promoted["stage"], "staging");
    let prod = open("1.0.0").await;
    for role in ["tech_lead", "qa", "security"] {
        call(
            &client,
            "promotion_sign",
            json!({"request_id": prod, "role": role, "decision": "approve"}),
        )
        .await;
    }
    assert_eq!(
        call(&client, "promotion_promote", json!({"request_id": prod})).await["state"],
        "promoted"
    );
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "ensemble://promotions/{prod}"
        )))
        .await
        .unwrap();
    let text = format!("{read:?}");
    assert!(
        text.contains("text/markdown") && text.contains("→ production"),
        "{text}"
    );
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "ensemble://handoffs/{ho}"
        )))
        .await
        .unwrap();
    assert!(format!("{read:?}").contains("# api 1.0.0"), "{read:?}");
    let history = call(&client, "promotion_history", json!({"artifact": "svc/api"})).await;
    assert_eq!(history["stages"].as_array().unwrap().len(), 3, "{history}");
    // Three promotions and one schema gate failure, in the server's metrics.
    let metrics = reqwest::get(format!("{}/metrics", server.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |name: &str, label: &str| common::metric(&metrics, name, label);
    assert_eq!(
        count("ensemble_promotion_transitions_total", "action=\"promote\""),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        count("ensemble_promotion_gate_failures_total", "gate=\"schema\""),
        1.0,
        "{metrics}"
    );
    client.cancel().await.unwrap();
}
