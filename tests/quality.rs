//! The quality learner through its tools: a repository's history and test outcomes teach which
//! tests to run for a change; names and packages speak when there is no history; bad input is
//! refused whole; what was learned survives a restart (and a kill -9 of the binary), stays
//! within its memory budget, and moves to another instance.

mod common;

use std::time::Duration;

use common::{checked, export_snapshot, import_snapshot_twice, router_refusal};
use ensemble::actors::learning::LearnerConfig;
use ensemble::runtime::Runtime;
use serde_json::{Value, json};

const SRC: &str = "src/main/java/org/acme";
const TEST: &str = "src/test/java/org/acme";

/// A history: the parser changes with its test; the string utilities change with a regression
/// suite named after neither; a wide reformatting touches everything.
fn history() -> Vec<Value> {
    let mut commits = Vec::new();
    let mut n = 0;
    let mut commit = |files: Vec<String>| {
        n += 1;
        commits.push(
            json!({"sha": format!("c{n:03}"), "parents": [format!("c{:03}", n - 1)],
            "date": format!("2024-01-{:02} 10:00:00", 1 + n % 28), "files": files}),
        );
    };
    for _ in 0..4 {
        commit(vec![
            format!("{SRC}/parse/Parser.java"),
            format!("{TEST}/parse/ParserTest.java"),
        ]);
        commit(vec![
            format!("{SRC}/util/Strings.java"),
            format!("{TEST}/RegressionSuite.java"),
        ]);
        commit(vec![format!("{SRC}/parse/Lexer.java")]);
        commit(vec![
            format!("{TEST}/other/AlphaTest.java"),
            format!("{SRC}/other/Alpha.java"),
        ]);
    }
    commit(
        (0..60)
            .map(|i| format!("{SRC}/gen/File{i}.java"))
            .chain([format!("{TEST}/other/BetaTest.java")])
            .collect(),
    );
    commits
}

fn candidates() -> Value {
    json!([
        {"id": "org.acme.parse.ParserTest"},
        {"id": "org.acme.RegressionSuite"},
        {"id": "org.acme.other.AlphaTest"},
        {"id": "org.acme.other.BetaTest"},
    ])
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["ranked"]
        .as_array()
        .expect("ranked")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect()
}

async fn select(rt: &Runtime, repo: &str, changed: &str) -> Value {
    checked(
        rt,
        "quality_select_tests",
        json!({"repo": repo, "changed_files": [format!("{SRC}/{changed}")],
               "candidates": candidates(), "budget": 1}),
    )
    .await
}

#[tokio::test]
async fn history_names_and_past_failures_rank_the_tests_that_fail_first() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    // Asked before any history: the same candidate list, read now, is read again once the
    // history names its tests' files.
    let blind = select(&rt, "acme", "util/Strings.java").await;
    assert_ne!(blind["ranked"][0]["reason"], "co_change", "{blind}");
    let learned = checked(
        &rt,
        "quality_observe_commits",
        json!({"repo": "acme", "commits": history()}),
    )
    .await;
    assert_eq!(learned["learned"], 17, "{learned}");
    assert_eq!(learned["wide_commits"], 1, "{learned}");

    // Co-change finds the suite no name points to; candidates come as ids alone and are found
    // in the history by name and package.
    let a = select(&rt, "acme", "util/Strings.java").await;
    assert_eq!(ids(&a)[0], "org.acme.RegressionSuite", "{a}");
    assert_eq!(a["ranked"][0]["reason"], "co_change", "{a}");
    assert_eq!(a["selected"], json!(["org.acme.RegressionSuite"]), "{a}");
    assert_eq!(a["budget"], 1);
    assert_eq!(a["commits_known"], 17);
    assert!(
        a["ranked"][0]["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("Strings.java")),
        "{a}"
    );
    // The name speaks for the parser's test.
    let b = select(&rt, "acme", "parse/Parser.java").await;
    assert_eq!(ids(&b)[0], "org.acme.parse.ParserTest", "{b}");
    assert_eq!(b["ranked"][0]["reason"], "name_match", "{b}");
    // The wide commit taught no co-change: BetaTest is not tied to the generated files.
    let wide = select(&rt, "acme", "gen/File3.java").await;
    assert_ne!(ids(&wide)[0], "org.acme.other.BetaTest", "{wide}");

    // Nothing ties the lexer to BetaTest until it fails for a lexer change.
    let before = select(&rt, "acme", "parse/Lexer.java").await;
    assert_ne!(ids(&before)[0], "org.acme.other.BetaTest", "{before}");
    for _ in 0..2 {
        checked(
            &rt,
            "quality_observe_results",
            json!({"repo": "acme", "changed_files": [format!("{SRC}/parse/Lexer.java")],
                   "failed_tests": ["org.acme.other.BetaTest"],
                   "passed_tests": ["org.acme.parse.ParserTest"]}),
        )
        .await;
    }
    let after = select(&rt, "acme", "parse/Lexer.java").await;
    assert_eq!(ids(&after)[0], "org.acme.other.BetaTest", "{after}");
    assert_eq!(after["ranked"][0]["reason"], "past_failure", "{after}");
    let stats = checked(&rt, "learning_stats", json!({"learner": "quality"})).await;
    assert_eq!(stats["observations"], 19, "{stats}");

    // A commit sent twice counts once.
    let again = checked(
        &rt,
        "quality_observe_commits",
        json!({"repo": "acme", "commits": history()}),
    )
    .await;
    assert_eq!(again["learned"], 0, "{again}");
    assert_eq!(again["repeated_commits"], 17, "{again}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_history_names_and_packages_rank_and_budgets_cut() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    // An unknown repository: nothing learned, the ranking rests on names and packages.
    let a = select(&rt, "never-seen", "parse/Parser.java").await;
    assert_eq!(a["commits_known"], 0);
    assert_eq!(ids(&a)[0], "org.acme.parse.ParserTest", "{a}");
    assert_eq!(ids(&a).len(), 4);
    // Budgets: a fraction rounds to the nearest count (at least one), a count caps at all.
    let ask = |budget: Value| {
        json!({"repo": "r", "changed_files": ["src/Foo.java"], "candidates": candidates(),
               "budget": budget})
    };
    for (budget, selected) in [
        (json!(0.5), 2),
        (json!(0.01), 1),
        (json!(1.0), 4),
        (json!(3), 3),
        (json!(40), 4),
    ] {
        let r = checked(&rt, "quality_select_tests", ask(budget.clone())).await;
        assert_eq!(
            r["selected"].as_array().unwrap().len(),
            selected,
            "{budget}: {r}"
        );
    }
    let default = checked(
        &rt,
        "quality_select_tests",
        json!({"repo": "r", "changed_files": [], "candidates": candidates()}),
    )
    .await;
    assert_eq!(default["budget"], 1, "a third of 4, rounded: {default}");
    assert_eq!(default["ranked"].as_array().unwrap().len(), 4);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_whole_and_says_what_to_fix() {
    let rt = Runtime::builder().in_memory().build().await.unwrap();
    checked(
        &rt,
        "quality_observe_commits",
        json!({"repo": "acme", "commits": history()}),
    )
    .await;
    let cases = [
        (
            "quality_select_tests",
            json!({"repo": "acme", "changed_files": ["a.java"], "candidates": []}),
            "candidates",
        ),
        (
            "quality_select_tests",
            json!({"repo": "acme", "changed_files": ["a.java"], "candidates": candidates(),
                   "budget": 0}),
            "budget",
        ),
        (
            "quality_select_tests",
            json!({"repo": "acme", "changed_files": ["a.java"], "candidates": candidates(),
                   "budget": 1.5}),
            "fraction",
        ),
        (
            "quality_select_tests",
            json!({"repo": " ", "changed_files": [], "candidates": candidates()}),
            "repo",
        ),
        (
            "quality_observe_commits",
            json!({"repo": "acme", "commits": [
                {"sha": "new1", "files": ["src/A.java"]},
                {"sha": "", "files": ["src/B.java"]}]}),
            "commits[1].sha",
        ),
        (
            "quality_observe_results",
            json!({"repo": "acme", "changed_files": ["a.java"], "failed_tests": ["T"],
                   "passed_tests": ["T"]}),
            "both",
        ),
    ];
    for (tool, args, says) in cases {
        let e = router_refusal(&rt, tool, args.clone()).await;
        assert!(e.contains(says), "{tool} {args}: {e}");
    }
    // The refused batch wrote nothing, not even its good first commit.
    let stats = checked(&rt, "learning_stats", json!({"learner": "quality"})).await;
    assert_eq!(stats["observations"], 17, "{stats}");
    let a = select(&rt, "acme", "util/Strings.java").await;
    assert_eq!(ids(&a)[0], "org.acme.RegressionSuite");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn what_was_learned_survives_a_restart_and_helps_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::builder()
        .data_dir(dir.path())
        .build()
        .await
        .unwrap();
    checked(
        &first,
        "quality_observe_commits",
        json!({"repo": "acme", "commits": history()}),
    )
    .await;
    let before = select(&first, "acme", "util/Strings.java").await;
    let artifact = export_snapshot(&first, "quality").await;
    first.shutdown().await.unwrap();

    let again = Runtime::builder()
        .data_dir(dir.path())
        .build()
        .await
        .unwrap();
    assert_eq!(select(&again, "acme", "util/Strings.java").await, before);
    again.shutdown().await.unwrap();

    // Another instance, without the history, ranks by names alone until it imports.
    let other = Runtime::builder().in_memory().build().await.unwrap();
    let cold = select(&other, "acme", "util/Strings.java").await;
    assert_ne!(ids(&cold)[0], "org.acme.RegressionSuite", "{cold}");
    import_snapshot_twice(&other, "quality", &artifact).await;
    // Imported twice, counted once: the same ranking and scores as the instance that learned.
    assert_eq!(select(&other, "acme", "util/Strings.java").await, before);
    other.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_memory_budget_holds_by_evicting_the_least_worth() {
    let budget = 64 << 10;
    let rt = Runtime::builder()
        .in_memory()
        .quality_learner(LearnerConfig {
            memory_budget_bytes: budget,
            flush_interval: Duration::from_millis(100),
        })
        .build()
        .await
        .unwrap();
    // 3,000 commits of distinct files: far more than the budget holds.
    let commits: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"sha": format!("s{i}"), "files": [
                format!("{SRC}/m{}/Unit{i}.java", i % 50),
                format!("{TEST}/m{}/Unit{i}Test.java", i % 50)]})
        })
        .collect();
    checked(
        &rt,
        "quality_observe_commits",
        json!({"repo": "big", "commits": commits}),
    )
    .await;
    checked(
        &rt,
        "quality_observe_commits",
        json!({"repo": "acme", "commits": history()}),
    )
    .await;
    let stats = checked(&rt, "learning_stats", json!({"learner": "quality"})).await;
    assert!(stats["evicted"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["memory_bytes"].as_u64().unwrap() <= budget as u64,
        "{stats}"
    );
    // What is left still answers, the recent history first.
    let a = select(&rt, "acme", "util/Strings.java").await;
    assert_eq!(ids(&a)[0], "org.acme.RegressionSuite", "{a}");
    rt.shutdown().await.unwrap();
}
