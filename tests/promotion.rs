//! The promotion engine end to end in an embedded runtime (ungoverned: the local owner holds
//! every role): pipelines with schema, workflow and sign-off gates; each gate failing alone and
//! named in the refusal; rejections and new report revisions; the race for one stage;
//! rollbacks; a digest mismatch; reports checked with every problem listed at once.

mod common;

use ensemble::runtime::Runtime;
use serde_json::{Value, json};

async fn runtime() -> Runtime {
    Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime")
}

async fn ok(rt: &Runtime, tool: &str, args: Value) -> Value {
    common::checked(rt, tool, args).await
}

async fn refused(rt: &Runtime, tool: &str, args: Value) -> String {
    common::router_refusal(rt, tool, args).await
}

/// A JSON artifact `name@version`.
async fn put(rt: &Runtime, name: &str, version: &str, content: Value) {
    ok(
        rt,
        "registry_put",
        json!({"name": name, "version": version, "content": content}),
    )
    .await;
}

/// A submitted report with `findings`.
async fn report(rt: &Runtime, title: &str, findings: Value) -> String {
    let h = ok(
        rt,
        "handoff_create",
        json!({
            "title": title,
            "summary": "what was done",
            "components": [{"name": "api", "status": "done", "percent_complete": 100}],
            "metrics": [{"name": "p99_ms", "value": 180.0, "target": 200.0, "lower_is_better": true}],
            "evidence": [{"kind": "link", "reference": "https://ci.example/run/1"}],
            "findings": findings,
        }),
    )
    .await;
    let id = h["id"].as_str().expect("id").to_string();
    ok(rt, "handoff_submit", json!({"id": id})).await;
    id
}

async fn request(rt: &Runtime, artifact: &str, version: &str, handoff: &str) -> String {
    let r = ok(
        rt,
        "promotion_request",
        json!({"artifact": artifact, "version": version, "handoff_id": handoff}),
    )
    .await;
    r["request_id"].as_str().expect("request id").to_string()
}

async fn promote(rt: &Runtime, id: &str) -> Value {
    ok(rt, "promotion_promote", json!({"request_id": id})).await
}

/// Waits until `promote` stops failing only on a running workflow.
async fn promote_after_run(rt: &Runtime, id: &str) -> Result<Value, String> {
    for _ in 0..400 {
        match rt
            .router()
            .call("promotion_promote", json!({"request_id": id}), None)
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) if e.to_string().contains("still running") => {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the workflow never finished".into())
}

/// The `svc/*` pipeline: dev (a schema gate), staging (a workflow gate), production (three
/// sign-offs and no blockers).
async fn pipeline(rt: &Runtime) {
    ok(
        rt,
        "validation_register_schema",
        json!({"name": "service", "version": "1.0.0", "schema": {
            "type": "object", "required": ["image", "replicas"],
            "properties": {"image": {"type": "string"}, "replicas": {"type": "integer", "minimum": 1}}
        }}),
    )
    .await;
    ok(
        rt,
        "template_register",
        json!({"template": {
            "name": "smoke", "version": "1.0.0",
            "parameters": [{"name": "artifact", "type": "string"}, {"name": "version", "type": "string"}],
            "steps": [{"id": "read", "tool": "registry_get",
                       "arguments": {"name": "${artifact}", "version": "${version}"}}]
        }}),
    )
    .await;
    let p = ok(
        rt,
        "promotion_pipeline_set",
        json!({"name": "services", "pattern": "svc/*", "stages": [
            {"name": "dev", "gates": {"schema": "service@1.0.0"}},
            {"name": "staging", "gates": {"workflow": {"template": "smoke",
                "params": {"artifact": "${artifact}", "version": "${version}"}}}},
            {"name": "production", "gates": {"signoffs": {"roles": ["tech_lead", "qa", "security"]}}}
        ]}),
    )
    .await;
    assert_eq!(p["version"], 1);
}

fn good() -> Value {
    json!({"image": "api:1", "replicas": 2})
}

#[tokio::test]
async fn an_artifact_moves_from_dev_to_production_through_every_gate() {
    let rt = runtime().await;
    pipeline(&rt).await;
    put(&rt, "svc/api", "1.0.0", good()).await;
    let ho = report(&rt, "api 1.0.0", json!([])).await;

    let dev = request(&rt, "svc/api", "1.0.0", &ho).await;
    let info = promote(&rt, &dev).await;
    assert_eq!(info["state"], "promoted", "{info}");
    assert_eq!(info["stage"], "dev");
    assert!(
        info["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["gate"] == "schema" && g["passed"] == true),
        "{info}"
    );
    // Idempotent by request id.
    assert_eq!(promote(&rt, &dev).await["state"], "promoted");

    let staging = request(&rt, "svc/api", "1.0.0", &ho).await;
    let info = promote_after_run(&rt, &staging).await.expect("staging");
    assert_eq!(info["stage"], "staging");
    assert!(info["workflow_run"].is_string(), "{info}");

    let prod = request(&rt, "svc/api", "1.0.0", &ho).await;
    let early = refused(&rt, "promotion_promote", json!({"request_id": prod})).await;
    assert!(
        early.contains("signoffs") && early.contains("tech_lead, qa, security"),
        "{early}"
    );
    for role in ["tech_lead", "qa", "security"] {
        ok(
            &rt,
            "promotion_sign",
            json!({"request_id": prod, "role": role, "decision": "approve", "comment": "fine"}),
        )
        .await;
    }
    let h = ok(&rt, "handoff_get", json!({"id": ho})).await;
    assert_eq!(h["state"], "approved", "{h}");
    assert_eq!(h["signoffs"][&prod].as_array().unwrap().len(), 3, "{h}");
    let info = promote(&rt, &prod).await;
    assert_eq!(info["state"], "promoted", "{info}");

    let history = ok(&rt, "promotion_history", json!({"artifact": "svc/api"})).await;
    let stages: Vec<&str> = history["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dev", "staging", "production"], "{history}");
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["signoffs"].as_array().unwrap().len(), 3);
    // The last stage has no next one.
    let last = refused(
        &rt,
        "promotion_request",
        json!({"artifact": "svc/api", "version": "1.0.0", "handoff_id": ho}),
    )
    .await;
    assert!(last.contains("last stage"), "{last}");
    // The resources render the request and the report for a person.
    let read = rt
        .router()
        .read_resource(&format!("ensemble://promotions/{prod}"), Default::default())
        .await
        .expect("resource");
    let text = format!("{read:?}");
    assert!(
        text.contains("# Promotion") && text.contains("production"),
        "{text}"
    );
    let read = rt
        .router()
        .read_resource(&format!("ensemble://handoffs/{ho}"), Default::default())
        .await
        .expect("resource");
    let text = format!("{read:?}");
    // p99 180 ms against a ceiling of 200 ms: met.
    let row = text
        .split("\\n")
        .find(|l| l.contains("p99_ms"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("yes"), "{row}");
}

#[tokio::test]
async fn each_gate_failing_alone_is_named_in_the_refusal() {
    let rt = runtime().await;
    pipeline(&rt).await;
    // Schema: a document missing `replicas`.
    put(&rt, "svc/bad", "1.0.0", json!({"image": "x"})).await;
    let ho = report(&rt, "bad", json!([])).await;
    let r = request(&rt, "svc/bad", "1.0.0", &ho).await;
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(
        e.contains("1 gate(s) failed") && e.contains("schema") && e.contains("replicas"),
        "{e}"
    );

    // Workflow: a template whose run fails.
    ok(
        &rt,
        "template_register",
        json!({"template": {"name": "broken", "version": "1.0.0",
            "steps": [{"id": "read", "tool": "registry_get", "arguments": {"name": "svc/none"}}]}}),
    )
    .await;
    ok(
        &rt,
        "promotion_pipeline_set",
        json!({"name": "wf", "pattern": "wf/*", "stages": [
            {"name": "dev", "gates": {"workflow": {"template": "broken"}}}]}),
    )
    .await;
    put(&rt, "wf/a", "1.0.0", good()).await;
    let r = request(&rt, "wf/a", "1.0.0", &ho).await;
    let e = promote_after_run(&rt, &r).await.unwrap_err();
    assert!(
        e.contains("1 gate(s) failed") && e.contains("workflow") && e.contains("failed"),
        "{e}"
    );

    // Soak: a minimum time in the previous stage.
    ok(
        &rt,
        "promotion_pipeline_set",
        json!({"name": "soak", "pattern": "soak/*", "stages": [
            {"name": "dev"}, {"name": "staging", "gates": {"soak_seconds": 3600}}]}),
    )
    .await;
    put(&rt, "soak/a", "1.0.0", good()).await;
    let r = request(&rt, "soak/a", "1.0.0", &ho).await;
    promote(&rt, &r).await;
    let r = request(&rt, "soak/a", "1.0.0", &ho).await;
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(
        e.contains("1 gate(s) failed") && e.contains("soak") && e.contains("3600 s required"),
        "{e}"
    );

    // Findings: an open blocker on the report (the default pipeline has no other gate).
    put(&rt, "plain/a", "1.0.0", good()).await;
    let blocked = report(
        &rt,
        "blocked",
        json!([{"title": "data loss on restart", "severity": "blocker"}]),
    )
    .await;
    let r = request(&rt, "plain/a", "1.0.0", &blocked).await;
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(
        e.contains("1 gate(s) failed") && e.contains("findings") && e.contains("data loss"),
        "{e}"
    );
    // The status shows the same without changing anything.
    let status = ok(&rt, "promotion_status", json!({"request_id": r})).await;
    assert_eq!(status["state"], "open");
    assert!(
        status["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["gate"] == "findings" && g["passed"] == false),
        "{status}"
    );
}

#[tokio::test]
async fn a_rejection_stops_the_request_until_a_new_revision() {
    let rt = runtime().await;
    ok(
        &rt,
        "promotion_pipeline_set",
        json!({"name": "two", "pattern": "two/*", "stages": [
            {"name": "dev", "gates": {"signoffs": {"roles": ["qa", "security"], "min": 1}}}]}),
    )
    .await;
    put(&rt, "two/a", "1.0.0", good()).await;
    let ho = report(&rt, "r1", json!([])).await;
    let r = request(&rt, "two/a", "1.0.0", &ho).await;
    // A second request for another version carries the same revision.
    put(&rt, "two/a", "1.1.0", good()).await;
    let sibling = request(&rt, "two/a", "1.1.0", &ho).await;
    let twice = refused(
        &rt,
        "promotion_request",
        json!({"artifact": "two/a", "version": "1.0.0", "handoff_id": ho}),
    )
    .await;
    assert!(twice.contains(&format!("`{r}` already asks")), "{twice}");
    ok(
        &rt,
        "promotion_sign",
        json!({"request_id": r, "role": "qa", "decision": "reject", "comment": "no rollback plan"}),
    )
    .await;
    // The rejection is of the revision: no request carrying it goes on, and no new one opens.
    let e = refused(
        &rt,
        "promotion_sign",
        json!({"request_id": sibling, "role": "security", "decision": "approve"}),
    )
    .await;
    assert!(e.contains("changes requested"), "{e}");
    put(&rt, "two/a", "1.2.0", good()).await;
    let e = refused(
        &rt,
        "promotion_request",
        json!({"artifact": "two/a", "version": "1.2.0", "handoff_id": ho}),
    )
    .await;
    assert!(e.contains("changes requested"), "{e}");
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(
        e.contains("rejected") && e.contains("no rollback plan"),
        "{e}"
    );
    let e = refused(
        &rt,
        "promotion_sign",
        json!({"request_id": r, "role": "security", "decision": "approve"}),
    )
    .await;
    assert!(e.contains("new revision"), "{e}");
    assert_eq!(
        ok(&rt, "handoff_get", json!({"id": ho})).await["state"],
        "changes_requested"
    );
    // A submitted revision is immutable; a new one supersedes it and reopens the request.
    let e = refused(&rt, "handoff_update", json!({"id": ho, "summary": "x"})).await;
    assert!(e.contains("new_revision"), "{e}");
    let h = ok(
        &rt,
        "handoff_update",
        json!({"id": ho, "new_revision": true, "risks": [
            {"description": "rollback untested", "severity": "medium", "mitigation": "drill"}]}),
    )
    .await;
    assert_eq!(h["revision"], 2);
    assert_eq!(h["state"], "draft");
    ok(&rt, "handoff_submit", json!({"id": ho})).await;
    assert_eq!(
        ok(&rt, "handoff_get", json!({"id": ho, "revision": 1})).await["state"],
        "superseded"
    );
    let status = ok(&rt, "promotion_status", json!({"request_id": r})).await;
    assert_eq!(status["state"], "open", "{status}");
    assert_eq!(status["handoff_revision"], 2);
    assert!(
        status["signoffs"].as_array().unwrap().is_empty(),
        "{status}"
    );
    ok(
        &rt,
        "promotion_sign",
        json!({"request_id": r, "role": "security", "decision": "approve"}),
    )
    .await;
    assert_eq!(promote(&rt, &r).await["state"], "promoted");
}

#[tokio::test]
async fn of_many_requests_racing_for_one_stage_exactly_one_wins() {
    let rt = runtime().await;
    let ho = report(&rt, "race", json!([])).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let v = format!("1.0.{i}");
        put(&rt, "race/a", &v, good()).await;
        ids.push(request(&rt, "race/a", &v, &ho).await);
    }
    let mut calls = tokio::task::JoinSet::new();
    for id in &ids {
        let (router, id) = (rt.router().clone(), id.clone());
        calls.spawn(async move {
            router
                .call("promotion_promote", json!({"request_id": id}), None)
                .await
        });
    }
    let answers = calls.join_all().await;
    let wins = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(wins, 1, "{answers:?}");
    for lost in answers.iter().filter_map(|a| a.as_ref().err()) {
        let lost = lost.to_string();
        assert!(
            lost.contains("superseded") && lost.contains("first"),
            "{lost}"
        );
    }
    let listed = ok(
        &rt,
        "promotion_list",
        json!({"artifact": "race/a", "state": "superseded"}),
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 11);
}

#[tokio::test]
async fn a_rollback_returns_the_stage_to_its_previous_version() {
    let rt = runtime().await;
    let ho = report(&rt, "rb", json!([])).await;
    for v in ["1.0.0", "1.1.0"] {
        put(&rt, "rb/a", v, good()).await;
        let r = request(&rt, "rb/a", v, &ho).await;
        promote(&rt, &r).await;
    }
    let e = refused(
        &rt,
        "promotion_rollback",
        json!({"artifact": "rb/a", "stage": "dev", "reason": " "}),
    )
    .await;
    assert!(e.contains("reason"), "{e}");
    let rb = ok(
        &rt,
        "promotion_rollback",
        json!({"artifact": "rb/a", "stage": "dev", "reason": "p99 regression"}),
    )
    .await;
    assert_eq!(rb["from_version"], "1.1.0");
    assert_eq!(rb["to_version"], "1.0.0");
    let history = ok(&rt, "promotion_history", json!({"artifact": "rb/a"})).await;
    assert_eq!(history["stages"][0]["version"], "1.0.0", "{history}");
    let last = history["events"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["kind"], "rolled_back");
    assert_eq!(last["reason"], "p99 regression");
}

#[tokio::test]
async fn a_digest_mismatch_aborts_the_request() {
    let rt = runtime().await;
    let ho = report(&rt, "dm", json!([])).await;
    put(&rt, "dm/a", "1.0.0", good()).await;
    let r = request(&rt, "dm/a", "1.0.0", &ho).await;
    // The stored content changes behind the registry's back (a damaged disk, an edit).
    let tree = rt.store().tree("registry.artifacts").unwrap();
    let key = ensemble::actors::versioned::version_key("dm/a", "1.0.0");
    let mut raw = tree.get_raw(&key).unwrap().expect("the artifact's record");
    let at = raw
        .windows(5)
        .position(|w| w == b"api:1")
        .expect("the content in the record");
    raw[at + 4] = b'9';
    tree.insert_raw(&key, &raw).unwrap();
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(e.contains("integrity") && e.contains("aborted"), "{e}");
    let status = ok(&rt, "promotion_status", json!({"request_id": r})).await;
    assert_eq!(status["state"], "aborted", "{status}");
    let e = refused(&rt, "promotion_promote", json!({"request_id": r})).await;
    assert!(e.contains("aborted"), "{e}");
}

#[tokio::test]
async fn reports_are_checked_with_every_problem_listed_at_once() {
    let rt = runtime().await;
    let e = refused(
        &rt,
        "handoff_create",
        json!({
            "title": "r",
            "components": [{"name": "api", "status": "done", "percent_complete": 140}],
            "findings": [{"title": "x", "severity": "urgent"}],
            "colour": "blue",
        }),
    )
    .await;
    for needle in ["percent_complete", "urgent", "colour"] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let e = refused(
        &rt,
        "handoff_create",
        json!({
            "title": "r",
            "components": [{"name": "api", "status": "done", "percent_complete": 40},
                           {"name": "api", "status": "in_progress", "percent_complete": 10}],
            "evidence": [{"kind": "link", "reference": "ftp://x"}],
        }),
    )
    .await;
    for needle in ["`api`", "40%", "ftp://x"] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // A draft cannot carry a request.
    let h = ok(&rt, "handoff_create", json!({"title": "draft"})).await;
    put(&rt, "d/a", "1.0.0", good()).await;
    let e = refused(
        &rt,
        "promotion_request",
        json!({"artifact": "d/a", "version": "1.0.0", "handoff_id": h["id"]}),
    )
    .await;
    assert!(e.contains("no submitted revision"), "{e}");
}
