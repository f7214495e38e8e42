//! The execution engine with real ractor actors and an in-process tool set.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::Tools;
use ensemble_actors::execution::{ExecArgs, ExecConfig, ExecMsg, ExecutionActor, Reply};
use ensemble_actors::store::Store;
use ensemble_protocol::execution::{
    CacheInvalidateRequest, ExecError, QueueStatsRequest, SchedulingPolicy, SetPolicyRequest,
    SetPriorityRequest, SubmitRequest, SubmitResponse, TaskInfo, TaskRef, TaskState,
};
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorRef, rpc::CallResult};
use serde_json::json;

async fn engine(tools: &Tools, store: Store, config: ExecConfig) -> ActorRef<ExecMsg> {
    let (actor, _) = Actor::spawn(
        None,
        ExecutionActor,
        ExecArgs {
            store,
            invoker: Arc::new(tools.clone()),
            config,
        },
    )
    .await
    .expect("engine starts");
    actor
}

async fn ask<T: Send + 'static>(
    a: &ActorRef<ExecMsg>,
    make: impl FnOnce(Reply<T>) -> ExecMsg,
) -> Result<T, ExecError> {
    match a.call(make, None).await.expect("engine alive") {
        CallResult::Success(r) => r,
        _ => panic!("the engine did not answer"),
    }
}

fn ct() -> CancellationToken {
    CancellationToken::new()
}

async fn submit(a: &ActorRef<ExecMsg>, req: SubmitRequest) -> Result<SubmitResponse, ExecError> {
    ask(a, |r| ExecMsg::Submit(req, ct(), r)).await
}

async fn wait(a: &ActorRef<ExecMsg>, id: u64) -> TaskInfo {
    ask(a, |r| ExecMsg::Wait(TaskRef { task_id: id }, ct(), r))
        .await
        .expect("task known")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn one_worker(policy: SchedulingPolicy) -> ExecConfig {
    ExecConfig {
        policy,
        max_concurrent: 1,
        ..ExecConfig::default()
    }
}

fn task(tool: &str, label: &str, priority: i32, deadline: Option<u64>) -> SubmitRequest {
    SubmitRequest {
        priority,
        deadline,
        ..SubmitRequest::new(tool, json!({ "label": label }))
    }
}

/// Runs a mixed batch behind a blocking task on one worker; returns the order the batch ran in.
async fn order_under(policy: SchedulingPolicy) -> (Vec<String>, TaskState) {
    let tools = Tools::new();
    let a = engine(&tools, Store::temporary().unwrap(), one_worker(policy)).await;
    let blocker = submit(&a, task("gate", "blocker", 0, None)).await.unwrap();
    tools.started(1).await;
    let now = now_ms();
    let batch = [
        task("record", "a", 1, Some(now + 50_000)),
        task("record", "b", 5, Some(now + 40_000)),
        task("record", "c", 5, Some(now + 10_000)),
        task("record", "d", 0, None),
        task("record", "e", 9, Some(now + 30_000)),
        // Past its deadline: it must never run.
        task("record", "late", 100, Some(now.saturating_sub(1))),
    ];
    let mut ids = Vec::new();
    for t in batch {
        ids.push(submit(&a, t).await.unwrap().task_id);
    }
    tools.open_gate();
    wait(&a, blocker.task_id).await;
    let mut late = TaskState::Queued;
    for id in &ids {
        let info = wait(&a, *id).await;
        if info.tool == "record" && info.state == TaskState::Expired {
            late = info.state;
            assert!(info.error.unwrap().contains("deadline"));
        }
    }
    let order = tools.order()[1..].to_vec();
    (order, late)
}

#[tokio::test]
async fn each_policy_orders_a_mixed_batch() {
    let expect = [
        (SchedulingPolicy::Fifo, vec!["a", "b", "c", "d", "e"]),
        (SchedulingPolicy::Priority, vec!["e", "b", "c", "a", "d"]),
        (SchedulingPolicy::Deadline, vec!["c", "e", "b", "a", "d"]),
        (
            SchedulingPolicy::PriorityDeadline,
            vec!["e", "c", "b", "a", "d"],
        ),
    ];
    for (policy, want) in expect {
        let (order, late) = order_under(policy).await;
        assert_eq!(order, want, "{policy:?}");
        assert_eq!(
            late,
            TaskState::Expired,
            "{policy:?}: the late task expires"
        );
    }
}

#[tokio::test]
async fn priority_and_policy_change_while_queued() {
    let tools = Tools::new();
    let a = engine(
        &tools,
        Store::temporary().unwrap(),
        one_worker(SchedulingPolicy::Fifo),
    )
    .await;
    submit(&a, task("gate", "blocker", 0, None)).await.unwrap();
    tools.started(1).await;
    let x = submit(&a, task("record", "x", 1, None)).await.unwrap();
    let y = submit(&a, task("record", "y", 2, None)).await.unwrap();
    let z = submit(&a, task("record", "z", 3, None)).await.unwrap();
    ask(&a, |r| {
        ExecMsg::SetPolicy(
            SetPolicyRequest {
                policy: SchedulingPolicy::Priority,
            },
            ct(),
            r,
        )
    })
    .await
    .unwrap();
    let lifted = ask(&a, |r| {
        ExecMsg::SetPriority(
            SetPriorityRequest {
                task_id: x.task_id,
                priority: 10,
            },
            ct(),
            r,
        )
    })
    .await
    .unwrap();
    assert_eq!(lifted.priority, 10);
    tools.open_gate();
    wait(&a, y.task_id).await;
    wait(&a, z.task_id).await;
    wait(&a, x.task_id).await;
    assert_eq!(tools.order()[1..], ["x", "z", "y"]);
    // Only queued tasks change priority.
    let err = ask(&a, |r| {
        ExecMsg::SetPriority(
            SetPriorityRequest {
                task_id: x.task_id,
                priority: 1,
            },
            ct(),
            r,
        )
    })
    .await
    .unwrap_err();
    assert_eq!(err, ExecError::NotQueued(x.task_id));
}

#[tokio::test]
async fn inheritance_lifts_a_blocker_above_the_middle() {
    let tools = Tools::new();
    let a = engine(
        &tools,
        Store::temporary().unwrap(),
        one_worker(SchedulingPolicy::Priority),
    )
    .await;
    submit(&a, task("gate", "blocker", 0, None)).await.unwrap();
    tools.started(1).await;
    let low = submit(&a, task("record", "low", 1, None)).await.unwrap();
    let m1 = submit(&a, task("record", "mid1", 5, None)).await.unwrap();
    let m2 = submit(&a, task("record", "mid2", 5, None)).await.unwrap();
    let mut high = task("record", "high", 10, None);
    high.wait_for = vec![low.task_id];
    let high = submit(&a, high).await.unwrap();
    let low_info = ask(&a, |r| {
        ExecMsg::Status(
            TaskRef {
                task_id: low.task_id,
            },
            ct(),
            r,
        )
    })
    .await
    .unwrap();
    assert_eq!(low_info.effective_priority, Some(10));
    let stats = ask(&a, |r| ExecMsg::Stats(QueueStatsRequest {}, ct(), r))
        .await
        .unwrap();
    assert_eq!((stats.queued, stats.blocked, stats.running), (3, 1, 1));
    tools.open_gate();
    for id in [low.task_id, m1.task_id, m2.task_id, high.task_id] {
        assert_eq!(wait(&a, id).await.state, TaskState::Completed);
    }
    // Without inheritance `low` would run last; `high` runs as soon as `low` is done.
    assert_eq!(tools.order()[1..], ["low", "high", "mid1", "mid2"]);
}

#[tokio::test]
async fn a_task_whose_blocker_fails_fails_too() {
    let tools = Tools::new();
    let a = engine(&tools, Store::temporary().unwrap(), ExecConfig::default()).await;
    let bad = submit(
        &a,
        SubmitRequest::new("fail", json!({"label": "bad", "times": 99})),
    )
    .await
    .unwrap();
    let mut after = task("record", "after", 0, None);
    after.wait_for = vec![bad.task_id];
    let after = submit(&a, after).await.unwrap();
    assert_eq!(wait(&a, bad.task_id).await.state, TaskState::Failed);
    let info = wait(&a, after.task_id).await;
    assert_eq!(info.state, TaskState::Failed);
    assert!(info.error.unwrap().contains(&bad.task_id.to_string()));
    assert_eq!(tools.runs("after"), 0);
}

#[tokio::test]
async fn a_full_queue_rejects_and_says_so() {
    let tools = Tools::new();
    let a = engine(
        &tools,
        Store::temporary().unwrap(),
        ExecConfig {
            capacity: 2,
            ..one_worker(SchedulingPolicy::Fifo)
        },
    )
    .await;
    submit(&a, task("gate", "running", 0, None)).await.unwrap();
    tools.started(1).await;
    submit(&a, task("record", "q1", 0, None)).await.unwrap();
    submit(&a, task("record", "q2", 0, None)).await.unwrap();
    let err = submit(&a, task("record", "q3", 0, None)).await.unwrap_err();
    assert_eq!(err, ExecError::QueueFull { capacity: 2 });
    assert!(err.to_string().contains("retry later"));
    let stats = ask(&a, |r| ExecMsg::Stats(QueueStatsRequest {}, ct(), r))
        .await
        .unwrap();
    assert_eq!((stats.queued, stats.rejected, stats.submitted), (2, 1, 3));
    // Nothing was dropped: the queued ones still run.
    tools.open_gate();
    let list = ask(&a, |r| ExecMsg::List(Default::default(), ct(), r))
        .await
        .unwrap();
    for t in list.tasks {
        assert_eq!(wait(&a, t.task_id).await.state, TaskState::Completed);
    }
    assert_eq!(tools.order(), ["running", "q1", "q2"]);
}

#[tokio::test]
async fn cancellation_stops_a_running_task_and_unknown_things_are_named() {
    let tools = Tools::new();
    let a = engine(&tools, Store::temporary().unwrap(), ExecConfig::default()).await;
    let t = submit(&a, task("until_cancelled", "long", 0, None))
        .await
        .unwrap();
    tools.started(1).await;
    let info = ask(&a, |r| {
        ExecMsg::Cancel(TaskRef { task_id: t.task_id }, ct(), r)
    })
    .await
    .unwrap();
    assert_eq!(info.state, TaskState::Cancelled);
    tools.started(2).await;
    assert_eq!(tools.order(), ["long", "stopped:long"]);

    let err = submit(&a, SubmitRequest::new("nope", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::UnknownTool("nope".into()));
    let err = ask(&a, |r| ExecMsg::Status(TaskRef { task_id: 7 }, ct(), r))
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::UnknownTask(7));
}

/// A cancelled task whose tool has not returned yet still holds its worker. When the
/// retention limit passes it meanwhile, it is forgotten once the tool returns (it used to stay
/// in the engine's memory for good).
#[tokio::test]
async fn a_cancelled_task_past_retention_is_forgotten_when_its_tool_returns() {
    let tools = Tools::new();
    let config = ExecConfig {
        retain_finished: 2,
        ..ExecConfig::default()
    };
    let a = engine(&tools, Store::temporary().unwrap(), config).await;
    // `hold` does not stop when told to: its worker comes back after the sleep.
    let mut held = task("hold", "held", 0, None);
    held.arguments = json!({"label": "held", "ms": 300});
    let held = submit(&a, held).await.unwrap().task_id;
    tools.started(1).await;
    let info = ask(&a, |r| ExecMsg::Cancel(TaskRef { task_id: held }, ct(), r))
        .await
        .unwrap();
    assert_eq!(info.state, TaskState::Cancelled);
    // Three more finish: the cancelled one is past the limit of two.
    for label in ["a", "b", "c"] {
        let id = submit(&a, task("record", label, 0, None))
            .await
            .unwrap()
            .task_id;
        wait(&a, id).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let listed = ask(&a, |r| {
        ExecMsg::List(
            ensemble_protocol::execution::TaskListRequest::default(),
            ct(),
            r,
        )
    })
    .await
    .unwrap();
    let ids: Vec<u64> = listed.tasks.iter().map(|t| t.task_id).collect();
    assert_eq!(ids.len(), 2, "only the last two finished are kept: {ids:?}");
    assert!(
        !ids.contains(&held),
        "the cancelled task was never forgotten"
    );
    let err = ask(&a, |r| ExecMsg::Status(TaskRef { task_id: held }, ct(), r))
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::UnknownTask(held));
}

#[tokio::test]
async fn a_timeout_fails_the_task_and_stops_the_tool() {
    let tools = Tools::new();
    let a = engine(&tools, Store::temporary().unwrap(), ExecConfig::default()).await;
    let mut req = task("until_cancelled", "slow", 0, None);
    req.timeout_ms = Some(30);
    let t = submit(&a, req).await.unwrap();
    let info = wait(&a, t.task_id).await;
    assert_eq!(info.state, TaskState::Failed);
    assert!(info.error.unwrap().contains("timed out after 30 ms"));
    tools.started(2).await;
    assert_eq!(tools.order()[1], "stopped:slow");
}

#[tokio::test]
async fn results_are_cached_invalidated_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tools = Tools::new();
    let args = json!({"label": "r", "x": [1, 2]});
    let cached = |args: serde_json::Value| SubmitRequest {
        cache_ttl_s: Some(600),
        ..SubmitRequest::new("record", args)
    };
    {
        let store = Store::open(dir.path()).unwrap();
        let a = engine(&tools, store.clone(), ExecConfig::default()).await;
        let first = submit(&a, cached(args.clone())).await.unwrap();
        assert!(!wait(&a, first.task_id).await.cached);
        // Same arguments, keys in another order: a hit, the tool does not run again.
        let again = submit(&a, cached(json!({"x": [1, 2], "label": "r"})))
            .await
            .unwrap();
        assert_eq!(again.state, TaskState::Completed);
        let hit = wait(&a, again.task_id).await;
        assert!(hit.cached);
        assert_eq!(hit.result, Some(json!({"label": "r"})));
        assert_eq!(tools.runs("r"), 1);
        let stats = ask(&a, |r| ExecMsg::Stats(QueueStatsRequest {}, ct(), r))
            .await
            .unwrap();
        assert_eq!((stats.cache.hits, stats.cache.misses), (1, 1));
        assert!((stats.cache.hit_rate - 0.5).abs() < 1e-9);
        // Tools that are neither read-only nor idempotent are never cached.
        let err = submit(
            &a,
            SubmitRequest {
                cache_ttl_s: Some(5),
                ..SubmitRequest::new("once", json!({}))
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("never cached"));
        a.stop_and_wait(None, None).await.unwrap();
        store.flush().await.unwrap();
    }
    {
        // A new process on the same store: the disk tier answers.
        let store = Store::open(dir.path()).unwrap();
        let a = engine(&tools, store, ExecConfig::default()).await;
        let t = submit(&a, cached(args.clone())).await.unwrap();
        assert!(wait(&a, t.task_id).await.cached);
        assert_eq!(tools.runs("r"), 1);
        let gone = ask(&a, |r| {
            ExecMsg::Invalidate(
                CacheInvalidateRequest {
                    tool: Some("record".into()),
                    ..Default::default()
                },
                ct(),
                r,
            )
        })
        .await
        .unwrap();
        assert_eq!(gone.removed, 1);
        let t = submit(&a, cached(args)).await.unwrap();
        assert!(!wait(&a, t.task_id).await.cached);
        assert_eq!(tools.runs("r"), 2);
        let err = ask(&a, |r| ExecMsg::Invalidate(Default::default(), ct(), r))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exactly one"));
    }
}

#[tokio::test]
async fn workers_bound_concurrency() {
    let tools = Tools::new();
    let a = engine(
        &tools,
        Store::temporary().unwrap(),
        ExecConfig {
            max_concurrent: 3,
            ..ExecConfig::default()
        },
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let req = SubmitRequest::new("hold", json!({"label": i.to_string(), "ms": 30}));
        ids.push(submit(&a, req).await.unwrap().task_id);
    }
    for id in ids {
        assert_eq!(wait(&a, id).await.state, TaskState::Completed);
    }
    assert_eq!(tools.max_in_flight(), 3);
}
