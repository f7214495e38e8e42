//! The dashboard in a real browser: headless Chromium driven over WebDriver (`chromedriver`)
//! loads the page of a real `ensemble serve --http`, and the test watches it show tool calls,
//! an engine's crash and restart in the supervision tree, and pause and resume. It saves a
//! screenshot to `target/dashboard.png` and fails on any console error.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them; `CHROMIUM` and
//! `CHROMEDRIVER` point elsewhere). Without them the test fails when `CI_REQUIRE_CHROMIUM`
//! is set (CI sets it) and otherwise says loudly that it did not run.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use serde_json::{Value, json};

fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| {
            v.as_str()
                .and_then(|s| s.trim().replace(',', "").parse().ok())
        })
        .unwrap_or(0)
}

/// Chromium and chromedriver, or `None` (said loudly; a failure when `CI_REQUIRE_CHROMIUM`
/// is set) when they are not installed.
fn browser() -> Option<(String, String)> {
    let (chromium, driver) = webdriver::browser_paths();
    if std::path::Path::new(&chromium).exists() && std::path::Path::new(&driver).exists() {
        return Some((chromium, driver));
    }
    let why = format!(
        "Chromium ({chromium}) or chromedriver ({driver}) is not installed: \
         `apt-get install chromium chromium-driver`"
    );
    assert!(std::env::var_os("CI_REQUIRE_CHROMIUM").is_none(), "{why}");
    eprintln!("\n*** THE DASHBOARD BROWSER TEST DID NOT RUN: {why} ***\n");
    None
}

/// Fails on any error the page's console recorded.
async fn assert_no_console_errors(page: &webdriver::Session) {
    let errors: Vec<(String, String)> = page
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

const FRAMES: &str = "return document.getElementById('conn').dataset.frames;";
const STATE: &str = "return document.getElementById('conn').dataset.state;";

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_calls_a_restart_and_pauses() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve_http(dir.path(), "", &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let base = server.base().to_string();
    let driver = webdriver::Driver::start(&driver_path).await;
    let page = driver.session(&chromium).await;
    page.goto(&format!("{base}/")).await;

    // Live: frames arrive over SSE.
    page.wait_for("the live state", 15, STATE, |v| v == "live")
        .await;
    page.wait_for("two frames", 10, FRAMES, |v| as_u64(v) >= 2)
        .await;
    let version = page
        .run(
            "return document.getElementById('version').textContent;",
            json!([]),
        )
        .await;
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let engines = page
        .run(
            "return [...document.querySelectorAll('#supervision li.sup')].map(e => e.dataset.name);",
            json!([]),
        )
        .await;
    for engine in [
        "registry",
        "validation",
        "execution",
        "workflow",
        "retrieval",
    ] {
        assert!(
            engines
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n == engine)),
            "{engine} in the tree: {engines}"
        );
    }

    // Tool calls: the row appears and its count follows.
    let client = common::connect(&server.url).await;
    for _ in 0..25 {
        common::call_ok(&client, "registry_list", json!({})).await;
    }
    let calls = "const c = document.querySelector('#tools-rows tr[data-tool=\"registry_list\"] td.calls'); \
                 return c ? c.textContent : null;";
    page.wait_for("25 registry_list calls", 10, calls, |v| as_u64(v) >= 25)
        .await;

    // A crash: the restart shows in the supervision tree, with the reason.
    let restarts = "const c = document.querySelector('#supervision li.sup[data-name=\"registry\"] li.child[data-name=\"registry\"]'); \
                    return c ? [c.dataset.restarts, c.dataset.status, c.textContent] : null;";
    let before = page.run(restarts, json!([])).await;
    assert_eq!(as_u64(&before[0]), 0, "{before}");
    common::refusal(
        &client,
        "registry_debug_crash",
        json!({"reason": "browser-test"}),
    )
    .await;
    let after = page
        .wait_for("the registry's restart", 10, restarts, |v| {
            as_u64(&v[0]) >= 1 && v[1] == "running"
        })
        .await;
    assert!(
        after[2]
            .as_str()
            .is_some_and(|t| t.contains("browser-test")),
        "the failure reason is shown: {after}"
    );

    // Pause: nothing moves; resume: it moves again and catches up.
    page.click("#pause").await;
    page.wait_for("the paused state", 5, STATE, |v| v == "paused")
        .await;
    let paused_at = as_u64(&page.run(FRAMES, json!([])).await);
    for _ in 0..10 {
        common::call_ok(&client, "registry_list", json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        as_u64(&page.run(FRAMES, json!([])).await),
        paused_at,
        "no frame is applied while paused"
    );
    let shown = as_u64(&page.run(calls, json!([])).await);
    assert!(shown < 35, "the paused page still shows {shown} calls");
    page.click("#pause").await;
    page.wait_for("the live state again", 5, STATE, |v| v == "live")
        .await;
    page.wait_for("frames after resuming", 10, FRAMES, |v| {
        as_u64(v) > paused_at
    })
    .await;
    page.wait_for("35 calls after resuming", 10, calls, |v| as_u64(v) >= 35)
        .await;

    // A screenshot for the README and the note.
    let png = page.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).expect("target dir");
    let file = target.join("dashboard.png");
    std::fs::write(&file, &png).expect("write the screenshot");
    eprintln!("dashboard screenshot: {}", file.display());

    // No console errors from the page, in any of the above.
    assert_no_console_errors(&page).await;
    page.end().await;
    client.cancel().await.expect("close the session");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_authentication_the_page_takes_its_token_from_the_fragment() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let accounts = common::keys::api_keys(&[("observer", "ens-browser-observer-1", &["observer"])]);
    let config = format!(
        "[[governance.roles]]\nname = \"observer\"\nresources = [\"ensemble://dashboard\"]\n\n{accounts}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::serve_http(dir.path(), &config, &[]);
    let driver = webdriver::Driver::start(&driver_path).await;
    let page = driver.session(&chromium).await;
    page.goto(&format!("{}/#token=ens-browser-observer-1", server.base()))
        .await;
    page.wait_for("the live state", 15, STATE, |v| v == "live")
        .await;
    page.wait_for("two frames", 10, FRAMES, |v| as_u64(v) >= 2)
        .await;
    let url = page.run("return location.href;", json!([])).await;
    assert!(
        url.as_str().is_some_and(|u| !u.contains("token")),
        "the token leaves the address bar: {url}"
    );
    let mode = page
        .run(
            "return document.getElementById('governance-body').textContent;",
            json!([]),
        )
        .await;
    assert!(
        mode.as_str().is_some_and(|t| t.contains("normal")),
        "the governance panel shows the mode: {mode}"
    );
    assert_no_console_errors(&page).await;
    page.end().await;
}
