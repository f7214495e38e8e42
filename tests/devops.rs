//! The devops learner through its tools: changes observed, outcomes reported later, risk
//! predicted and explained, recommendations by policy; outcomes never leak into predictions
//! asked as of an earlier time; a new project leans on every project's experience; bad input is
//! refused with what to fix; the budget holds; a snapshot helps another instance.

mod common;

use common::{checked, export_snapshot, import_snapshot_twice, router_refusal};
use ensemble::actors::learning::LearnerConfig;
use ensemble::protocol::devops::RiskPolicy;
use ensemble::runtime::Runtime;
use serde_json::{Value, json};

/// Day `d` of 2024, as text.
fn day(d: u32) -> String {
    let (month, day) = (1 + d / 28, 1 + d % 28);
    format!("2024-{month:02}-{day:02} 12:00:00")
}

/// Change `i`: large changes by newcomers fail, small ones by regulars do not (with a
/// deterministic sprinkle of exceptions).
fn change(i: u32) -> (Value, bool) {
    let lines = f64::from(1 + (i * 37) % 400);
    let exp = f64::from(1 + (i * 53) % 300);
    let noise = f64::from((i * 11) % 7);
    let risky = lines / (exp + 20.0) > 1.5;
    let failed = risky != i.is_multiple_of(13);
    (
        json!({"lines": lines, "files": 1.0 + lines / 50.0, "exp": exp, "noise": noise}),
        failed,
    )
}

async fn learn(rt: &Runtime, project: &str, range: std::ops::Range<u32>, reported_at: Option<u32>) {
    for i in range {
        let (features, failed) = change(i);
        checked(
            rt,
            "devops_observe",
            json!({"project": project, "change_id": format!("c{i}"), "time": day(i % 300),
                   "features": features}),
        )
        .await;
        checked(
            rt,
            "devops_report_outcome",
            json!({"project": project, "change_id": format!("c{i}"),
                   "outcome": if failed { "failure" } else { "success" },
                   "time": day(reported_at.unwrap_or(i % 300))}),
        )
        .await;
    }
}

const RISKY: &str = r#"{"lines": 390, "files": 8.8, "exp": 2, "noise": 3}"#;
const SAFE: &str = r#"{"lines": 4, "files": 1.1, "exp": 250, "noise": 3}"#;

fn features(text: &str) -> Value {
    serde_json::from_str(text).expect("features")
}

#[tokio::test]
async fn learns_the_risk_explains_it_and_recommends_by_policy() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    learn(&rt, "api", 0..300, None).await;
    let risky = checked(
        &rt,
        "devops_predict",
        json!({"project": "api", "features": features(RISKY)}),
    )
    .await;
    let safe = checked(
        &rt,
        "devops_predict",
        json!({"project": "api", "features": features(SAFE)}),
    )
    .await;
    let p = |v: &Value| v["failure_probability"].as_f64().unwrap();
    assert!(p(&risky) > 0.7 && p(&safe) < 0.2, "{risky}\n{safe}");
    assert_eq!(risky["risk"], "high", "{risky}");
    assert_eq!(safe["risk"], "low", "{safe}");
    assert_eq!(risky["project_outcomes"], 300);
    // The factors say why: size and inexperience push up; the noise hardly moves it.
    let factors: Vec<&str> = risky["top_factors"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert!(
        factors
            .iter()
            .all(|f| ["lines", "exp", "files"].contains(f)),
        "{risky}"
    );
    let up = &risky["top_factors"][0];
    assert!(up["contribution"].as_f64().unwrap() > 0.0, "{risky}");

    let hold = checked(
        &rt,
        "devops_recommend",
        json!({"project": "api", "features": features(RISKY)}),
    )
    .await;
    assert_eq!(hold["action"], "hold", "{hold}");
    assert!(
        hold["reason"].as_str().unwrap().contains("hold at"),
        "{hold}"
    );
    let deploy = checked(
        &rt,
        "devops_recommend",
        json!({"project": "api", "features": features(SAFE)}),
    )
    .await;
    assert_eq!(deploy["action"], "deploy", "{deploy}");
    // A lenient policy for this call lets the risky change out as a canary.
    let lenient = checked(
        &rt,
        "devops_recommend",
        json!({"project": "api", "features": features(RISKY),
               "policy": {"canary_at": 1.0, "hold_at": 1000.0}}),
    )
    .await;
    assert_eq!(lenient["action"], "canary", "{lenient}");
    // Its running accuracy is measured on the outcomes it predicted before learning them.
    let stats = checked(&rt, "learning_stats", json!({"learner": "devops"})).await;
    assert_eq!(stats["observations"], 600, "{stats}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_outcome_never_reaches_a_prediction_asked_as_of_before_it_was_known() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    // 200 changes; the first 100 outcomes known on day 150, the rest only on day 250.
    learn(&rt, "web", 0..100, Some(150)).await;
    for i in 100..200 {
        let (features, _) = change(i);
        checked(
            &rt,
            "devops_observe",
            json!({"project": "web", "change_id": format!("c{i}"), "time": day(i),
                   "features": features}),
        )
        .await;
    }
    let ask = |time: u32| json!({"project": "web", "features": features(RISKY), "time": day(time)});
    let before = checked(&rt, "devops_predict", ask(200)).await;
    assert_eq!(before["project_outcomes"], 100, "{before}");
    for i in 100..200 {
        let (_, failed) = change(i);
        // Every late outcome says the opposite of the pattern: if one leaked, it would show.
        checked(
            &rt,
            "devops_report_outcome",
            json!({"project": "web", "change_id": format!("c{i}"),
                   "outcome": if failed { "success" } else { "failure" }, "time": day(250)}),
        )
        .await;
    }
    let as_of_before = checked(&rt, "devops_predict", ask(200)).await;
    assert_eq!(
        before, as_of_before,
        "a prediction as of day 200 must not see outcomes known on day 250"
    );
    let now = checked(
        &rt,
        "devops_predict",
        json!({"project": "web", "features": features(RISKY)}),
    )
    .await;
    assert_eq!(now["project_outcomes"], 200, "{now}");
    assert_ne!(now["failure_probability"], before["failure_probability"]);
    // And as of a time before any outcome, there is nothing to predict from.
    let e = router_refusal(&rt, "devops_predict", ask(100)).await;
    assert!(e.contains("no outcomes"), "{e}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_new_project_leans_on_every_projects_experience() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    // Nothing learned anywhere: no prediction, and a clear way out.
    let e = router_refusal(
        &rt,
        "devops_predict",
        json!({"project": "new", "features": features(RISKY)}),
    )
    .await;
    assert!(e.contains("devops_report_outcome"), "{e}");
    learn(&rt, "api", 0..300, None).await;
    let fresh = checked(
        &rt,
        "devops_predict",
        json!({"project": "brand-new", "features": features(RISKY)}),
    )
    .await;
    assert_eq!(fresh["project_outcomes"], 0, "{fresh}");
    assert_eq!(fresh["prior_outcomes"], 300, "{fresh}");
    assert_eq!(fresh["risk"], "high", "{fresh}");
    // Features no model knows weigh nothing and are named.
    let odd = checked(
        &rt,
        "devops_predict",
        json!({"project": "api", "features": {"lines": 390, "exp": 2, "moon_phase": 3}}),
    )
    .await;
    assert_eq!(odd["ignored_features"], json!(["moon_phase"]), "{odd}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_and_says_what_to_fix() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    learn(&rt, "api", 0..50, None).await;
    let cases = [
        (
            "devops_report_outcome",
            json!({"project": "api", "change_id": "nope", "outcome": "failure",
                   "time": day(1)}),
            "never observed",
        ),
        (
            "devops_report_outcome",
            json!({"project": "api", "change_id": "c1", "outcome": "broken", "time": day(1)}),
            "outcome",
        ),
        (
            "devops_observe",
            json!({"project": "api", "change_id": "x", "time": "soon", "features": {}}),
            "RFC 3339",
        ),
        (
            "devops_observe",
            json!({"project": "", "change_id": "x", "time": day(1), "features": {}}),
            "project",
        ),
        (
            "devops_observe",
            json!({"project": "api", "change_id": "x", "time": day(1),
                   "features": {"lines": "many"}}),
            "many",
        ),
        (
            "devops_recommend",
            json!({"project": "api", "features": {"lines": 3},
                   "policy": {"canary_at": 3.0, "hold_at": 1.0}}),
            "canary_at",
        ),
    ];
    for (tool, args, says) in cases {
        let e = router_refusal(&rt, tool, args.clone()).await;
        assert!(e.contains(says), "{tool} {args}: {e}");
    }
    let stats = checked(&rt, "learning_stats", json!({"learner": "devops"})).await;
    assert_eq!(
        stats["observations"], 100,
        "nothing refused was learned: {stats}"
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_budget_holds_and_a_snapshot_helps_another_instance() {
    let budget = 48 << 10;
    let rt = Runtime::builder()
        .in_memory()
        .devops_learner(
            LearnerConfig {
                memory_budget_bytes: budget,
                ..LearnerConfig::default()
            },
            RiskPolicy::default(),
        )
        .build()
        .await
        .unwrap();
    learn(&rt, "api", 0..400, None).await;
    let stats = checked(&rt, "learning_stats", json!({"learner": "devops"})).await;
    assert!(stats["evicted"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["memory_bytes"].as_u64().unwrap() <= budget as u64,
        "{stats}"
    );
    // What is left still predicts.
    let kept = checked(
        &rt,
        "devops_predict",
        json!({"project": "api", "features": features(RISKY)}),
    )
    .await;
    assert!(kept["project_outcomes"].as_u64().unwrap() < 400, "{kept}");
    rt.shutdown().await.unwrap();

    let first = Runtime::builder().in_memory().build().await.unwrap();
    learn(&first, "api", 0..300, None).await;
    let here = checked(
        &first,
        "devops_predict",
        json!({"project": "api", "features": features(RISKY)}),
    )
    .await;
    let artifact = export_snapshot(&first, "devops").await;
    let other = Runtime::builder().in_memory().build().await.unwrap();
    import_snapshot_twice(&other, "devops", &artifact).await;
    let there = checked(
        &other,
        "devops_predict",
        json!({"project": "api", "features": features(RISKY)}),
    )
    .await;
    // The same changes and outcomes, once each: the same model.
    assert_eq!(there["project_outcomes"], 300, "{there}");
    let (a, b) = (
        here["failure_probability"].as_f64().unwrap(),
        there["failure_probability"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-6, "{here}\n{there}");
    first.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}
