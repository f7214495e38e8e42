//! Resource updates reach only a subscriber who may read the resource when it changes: a
//! subscription made before a suspension sends nothing after it (the same check as a read).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{call_ok as call, eventually};
use rmcp::model::{ResourceUpdatedNotificationParam, SubscribeRequestParams};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::json;

const ADMIN_KEY: &str = "ens-admin-77c1";
const WATCHER_KEY: &str = "ens-watcher-2d9e";

fn config() -> String {
    let accounts = common::keys::api_keys(&[
        ("admin", ADMIN_KEY, &["admin"]),
        ("watcher", WATCHER_KEY, &["watcher"]),
    ]);
    format!(
        r#"
[governance]
all_work_roles = ["admin"]

[[governance.roles]]
name = "admin"
tools = ["*"]
resources = ["*"]

[[governance.roles]]
name = "watcher"
tools = ["workflow_*", "debug_sleep"]
resources = ["ensemble://workflows/runs/*"]

{accounts}"#
    )
}

/// A client that keeps the URIs of the updates it is sent.
#[derive(Clone, Default)]
struct Updates(Arc<Mutex<Vec<String>>>);

impl Updates {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl ClientHandler for Updates {
    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.0.lock().unwrap().push(p.uri);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_subscriber_is_sent_no_more_updates() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_http(dir.path(), &config(), &[("ENSEMBLE_TEST_TOOLS", "1")]);
    let seen_by_watcher = Updates::default();
    let seen_by_admin = Updates::default();
    let watcher =
        common::keys::connect_with_key_as(&server.url, WATCHER_KEY, seen_by_watcher.clone()).await;
    let admin =
        common::keys::connect_with_key_as(&server.url, ADMIN_KEY, seen_by_admin.clone()).await;

    // Three steps one after another: each one's end updates the run's resource.
    let sleep = |id: &str, after: Option<&str>| {
        json!({"id": id, "tool": "debug_sleep", "arguments": {"ms": 300},
               "depends_on": after.map(|a| vec![a]).unwrap_or_default()})
    };
    let run = call(
        &watcher,
        "workflow_run",
        json!({"definition": {"steps": [
            sleep("a", None), sleep("b", Some("a")), sleep("c", Some("b"))
        ]}}),
    )
    .await;
    let run_id = run["run_id"].as_str().expect("a run id").to_string();
    let uri = format!("ensemble://workflows/runs/{run_id}");
    // `resources/subscribe` (a 2025-11-25 session); 2026-07-28 listeners get the same check.
    for client in [&watcher.peer().clone(), &admin.peer().clone()] {
        #[allow(deprecated)]
        client
            .subscribe(SubscribeRequestParams::new(uri.clone()))
            .await
            .expect("resources/subscribe");
    }
    eventually("the watcher's first update", || seen_by_watcher.count() > 0).await;

    call(
        &admin,
        "governance_suspend",
        json!({"subject": "apikey:watcher", "reason": "test"}),
    )
    .await;
    let at_suspension = seen_by_watcher.count();
    let admin_at_suspension = seen_by_admin.count();

    // The run goes on (its steps run as the watcher, who is now suspended: they fail), and the
    // admin, who may read it, still hears of every change.
    for _ in 0..200 {
        let status = call(&admin, "workflow_status", json!({"run_id": run_id})).await;
        if status["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the admin's update after the suspension", || {
        seen_by_admin.count() > admin_at_suspension
    })
    .await;
    // The same broadcast went to both sessions; give the watcher's a moment to arrive if it
    // were (wrongly) sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen_by_watcher.count(),
        at_suspension,
        "updates sent after the suspension: {:?}",
        seen_by_watcher.0.lock().unwrap()
    );
    assert!(seen_by_watcher.0.lock().unwrap().iter().all(|u| *u == uri));
}
