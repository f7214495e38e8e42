//! Load generator for the orchestration engines; prints tables.
//!
//! 1. Scheduler throughput: no-op tasks submitted and completed per second through the
//!    execution engine at `max_concurrent` 1, 8 and 64, against a tokio `JoinSet` running the
//!    same no-op work with the same concurrency limit (a semaphore), in the same run.
//! 2. DAG per-step overhead: a 1,000-step chain and a 1,000-step fan-out (one root, 999
//!    dependents) of no-op steps, in memory and with the durable journal (with its flush
//!    count), against a `JoinSet` running the same work in the same dependency order.
//! 3. Memory per in-flight workflow: heap bytes held per run of a 10-step workflow whose first
//!    step is still running (a counting allocator).
//!
//! `cargo bench --bench orchestration` (`-- --tasks N` to change the task count, default
//! 200000). `MEM_ONLY=1` runs only the memory figure; `DAG_ONLY=1` runs only the in-memory DAGs, on a 2-thread and a current-thread
//! runtime.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ensemble::actors::execution::{ExecConfig, ExecMsg};
use ensemble::actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble::actors::store::Store;
use ensemble::actors::workflow::{WorkflowConfig, WorkflowMsg};
use ensemble::protocol::execution::{QueueStatsRequest, SchedulingPolicy, SubmitRequest};
use ensemble::protocol::run::{RunRequest, RunState};
use ensemble::protocol::workflow::Definition;
use ensemble::runtime::engines::EngineConfig;
use ensemble::supervision::{ActorSlot, CancellationToken, EventBus, Supervisor};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `noop` answers at once; `block` waits until the bench releases it.
#[derive(Clone)]
struct Tools {
    release: Arc<Notify>,
}

impl ToolInvoker for Tools {
    fn traits(&self, tool: &str) -> Option<ToolTraits> {
        matches!(tool, "noop" | "block").then_some(ToolTraits {
            read_only: true,
            idempotent: true,
        })
    }

    fn invoke(&self, tool: &str, _args: Value, _cancel: CancellationToken) -> InvokeFuture {
        if tool == "block" {
            let release = self.release.clone();
            Box::pin(async move {
                release.notified().await;
                Ok(Value::Null)
            })
        } else {
            Box::pin(async { Ok(Value::Null) })
        }
    }
}

struct Engines {
    exec: ActorSlot<ExecMsg>,
    workflow: ActorSlot<WorkflowMsg>,
    store: Store,
    _sup: ractor::ActorRef<ensemble::supervision::SupervisorMsg>,
    _dir: Option<tempfile::TempDir>,
}

async fn engines(tools: &Tools, max_concurrent: usize, durable: bool) -> Engines {
    let dir = durable.then(|| tempfile::tempdir().expect("temp dir"));
    let store = match &dir {
        Some(d) => Store::open(d.path()).expect("store"),
        None => Store::temporary().expect("store"),
    };
    // The runtime's own engines supervisor, with the bench's tools behind the invoker.
    let config = EngineConfig {
        execution: ExecConfig {
            policy: SchedulingPolicy::Fifo,
            max_concurrent,
            capacity: 10_000_000,
            retain_finished: 10_000,
            ..ExecConfig::default()
        },
        workflow: WorkflowConfig {
            durable,
            max_parallel: 64,
            retain_finished: 16,
        },
        ..EngineConfig::default()
    };
    let (spec, slots) = ensemble::runtime::engines::engines(
        &store,
        &EventBus::default(),
        Arc::new(tools.clone()),
        Arc::new(|_: &str| {}),
        &config,
    );
    let (sup, _) = Supervisor::start(spec).await.expect("engines");
    Engines {
        exec: slots.execution,
        workflow: slots.workflow,
        store,
        _sup: sup,
        _dir: dir,
    }
}

/// Submits `n` no-op tasks and waits for all to complete; tasks per second.
async fn engine_throughput(n: u64, max_concurrent: usize) -> f64 {
    let tools = Tools {
        release: Arc::new(Notify::new()),
    };
    let e = engines(&tools, max_concurrent, false).await;
    let exec = e.exec.ready().await;
    let done = Arc::new(AtomicU64::new(0));
    let all = Arc::new(Notify::new());
    let started = Instant::now();
    for _ in 0..n {
        let (done, all) = (done.clone(), all.clone());
        let on_done = Box::new(move |_| {
            if done.fetch_add(1, Ordering::AcqRel) + 1 == n {
                all.notify_one();
            }
        });
        exec.cast(ExecMsg::RunThen(
            SubmitRequest::new("noop", Value::Null),
            CancellationToken::new(),
            on_done,
        ))
        .expect("engine alive");
    }
    all.notified().await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// The same no-op work in a `JoinSet`, at most `limit` at once.
async fn joinset_throughput(n: u64, limit: usize) -> f64 {
    let permits = Arc::new(Semaphore::new(limit));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let permit = permits.clone().acquire_owned().await.expect("open");
        set.spawn(async move {
            let r: Result<Value, InvokeError> = async { Ok(Value::Null) }.await;
            drop(permit);
            r
        });
        // Reap as we go, as the engine forgets finished tasks.
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    n as f64 / started.elapsed().as_secs_f64()
}

fn chain(n: usize) -> Definition {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let mut s = json!({"id": format!("s{i}"), "tool": "noop"});
            if i > 0 {
                // Each step takes its predecessor's output, as a pipeline does.
                s["depends_on"] = json!([format!("s{}", i - 1)]);
                s["arguments"] = json!({"input": format!("${{steps.s{}.output}}", i - 1)});
            }
            s
        })
        .collect();
    serde_json::from_value(json!({ "steps": steps })).expect("definition")
}

fn fan_out(n: usize) -> Definition {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let mut s = json!({"id": format!("s{i}"), "tool": "noop"});
            if i > 0 {
                s["depends_on"] = json!(["s0"]);
            }
            s
        })
        .collect();
    serde_json::from_value(json!({ "steps": steps })).expect("definition")
}

/// Runs `def` to its end; (µs per step, flushes).
async fn dag(def: &Definition, durable: bool) -> (f64, u64) {
    let tools = Tools {
        release: Arc::new(Notify::new()),
    };
    let e = engines(&tools, 64, durable).await;
    let wf = e.workflow.ready().await;
    let flushes = e.store.flush_count();
    let mut req = RunRequest::of(def.clone(), Default::default());
    req.wait = true;
    req.max_parallel = Some(64);
    let started = Instant::now();
    let info = ractor::call!(wf, WorkflowMsg::Run, req, CancellationToken::new())
        .expect("engine alive")
        .expect("run accepted");
    let elapsed = started.elapsed();
    assert_eq!(info.state, RunState::Completed);
    (
        elapsed.as_secs_f64() * 1e6 / def.steps.len() as f64,
        e.store.flush_count() - flushes,
    )
}

/// The same DAG's no-op work in a `JoinSet`: each step a spawned task, started when its
/// dependencies are done.
async fn dag_joinset(def: &Definition) -> f64 {
    let started = Instant::now();
    let chain = def.steps.iter().skip(1).all(|s| s.depends_on.len() == 1)
        && def.steps.get(2).is_some_and(|s| s.depends_on[0] == "s1");
    if chain {
        for _ in &def.steps {
            let mut set = JoinSet::new();
            set.spawn(async { Ok::<Value, InvokeError>(Value::Null) });
            while set.join_next().await.is_some() {}
        }
    } else {
        let mut root = JoinSet::new();
        root.spawn(async { Ok::<Value, InvokeError>(Value::Null) });
        while root.join_next().await.is_some() {}
        let mut set = JoinSet::new();
        for _ in 1..def.steps.len() {
            set.spawn(async { Ok::<Value, InvokeError>(Value::Null) });
        }
        while set.join_next().await.is_some() {}
    }
    started.elapsed().as_secs_f64() * 1e6 / def.steps.len() as f64
}

/// Heap bytes held per in-flight run of a 10-step workflow.
async fn memory_per_run(runs: usize) -> (f64, f64) {
    let tools = Tools {
        release: Arc::new(Notify::new()),
    };
    let mut steps = vec![json!({"id": "s0", "tool": "block"})];
    for i in 1..10 {
        steps.push(
            json!({"id": format!("s{i}"), "tool": "noop", "depends_on": [format!("s{}", i - 1)],
                          "arguments": {"input": format!("${{steps.s{}.output}}", i - 1)}}),
        );
    }
    let def: Definition = serde_json::from_value(json!({ "steps": steps })).expect("definition");
    let mut out = Vec::new();
    for durable in [false, true] {
        let e = engines(&tools, 100_000, durable).await;
        let wf = e.workflow.ready().await;
        // One run first, so lazily built structures are not counted against the rest.
        let warm = RunRequest::of(def.clone(), Default::default());
        let _ = ractor::call!(wf, WorkflowMsg::Run, warm, CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..runs {
            let req = RunRequest::of(def.clone(), Default::default());
            let _ = ractor::call!(wf, WorkflowMsg::Run, req, CancellationToken::new())
                .expect("engine alive")
                .expect("accepted");
        }
        // Every first step has reached its (blocked) tool: the runs are truly in flight.
        let exec = e.exec.ready().await;
        loop {
            let stats = ractor::call!(
                exec,
                ExecMsg::Stats,
                QueueStatsRequest {},
                CancellationToken::new()
            )
            .expect("engine alive")
            .expect("stats");
            if stats.running > runs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = LIVE.load(Ordering::Relaxed);
        out.push((after - before) as f64 / runs as f64);
        tools.release.notify_waiters();
    }
    (out[0], out[1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n: u64 = 200_000;
    while let Some(a) = args.next() {
        if a == "--tasks" {
            n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var_os("MEM_ONLY").is_some() {
        let (mem, disk) = rt.block_on(memory_per_run(2000));
        println!("heap bytes per in-flight run: in memory {mem:.0}, durable {disk:.0}");
        return;
    }
    if std::env::var_os("DAG_ONLY").is_some() {
        for (label, rt) in [("multi_thread(2)", &rt), ("current_thread", &single)] {
            rt.block_on(async {
                for (name, def) in [("chain", chain(1000)), ("fan-out", fan_out(1000))] {
                    let r = dag(&def, false).await;
                    let b = dag_joinset(&def).await;
                    println!("{label} {name}: {:.1} us/step (JoinSet {b:.2})", r.0);
                }
            });
        }
        return;
    }
    rt.block_on(async {
        println!(
            "## Scheduler throughput ({n} no-op tasks, submit + complete, 2 worker threads)\n"
        );
        println!("| max_concurrent | engine tasks/s | JoinSet tasks/s | engine / JoinSet |");
        println!("|---:|---:|---:|---:|");
        for c in [1usize, 8, 64] {
            // Alternate, best of three each, so neither side gets the warm caches.
            let (mut e, mut j) = (0f64, 0f64);
            for _ in 0..3 {
                e = e.max(engine_throughput(n, c).await);
                j = j.max(joinset_throughput(n, c).await);
            }
            println!("| {c} | {e:.0} | {j:.0} | {:.2} |", e / j);
        }

        println!("\n## DAG per-step overhead (no-op steps, max_parallel 64)\n");
        println!("| shape | mode | µs per step | JoinSet µs per step | journal flushes |");
        println!("|---|---|---:|---:|---:|");
        for (name, def) in [
            ("1,000-step chain", chain(1000)),
            ("1,000-step fan-out", fan_out(1000)),
        ] {
            let base = dag_joinset(&def).await;
            for durable in [false, true] {
                let mut best = (f64::MAX, 0);
                for _ in 0..3 {
                    let r = dag(&def, durable).await;
                    if r.0 < best.0 {
                        best = r;
                    }
                }
                println!(
                    "| {name} | {} | {:.1} | {base:.2} | {} |",
                    if durable {
                        "durable journal"
                    } else {
                        "in memory"
                    },
                    best.0,
                    if durable {
                        best.1.to_string()
                    } else {
                        "-".into()
                    }
                );
            }
        }

        let runs = 2000;
        let (mem, disk) = memory_per_run(runs).await;
        println!(
            "\n## Memory per in-flight workflow ({runs} runs of 10 steps, first step running)\n"
        );
        println!("| mode | heap bytes per run |");
        println!("|---|---:|");
        println!("| in memory | {mem:.0} |");
        println!("| durable journal | {disk:.0} |");
    });
}
