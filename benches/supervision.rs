//! (a) One call through slot + bulkhead + breaker + timeout (+ retry bookkeeping) against a bare
//!     ractor `call` and a bare tokio mpsc + oneshot round trip, in one run.
//! (b) Time from a child's panic to its replacement answering, with zero backoff.
//!
//! Run: `cargo bench --bench supervision`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use ensemble::supervision::*;
use tokio::sync::{mpsc, oneshot};

#[path = "common/echo.rs"]
mod echo;
use echo::{Echo, Msg};

fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    }
    .enable_all()
    .build()
    .expect("tokio runtime")
}

/// Runs `iters` calls in a task on the runtime's workers, as a server's handlers run, and
/// returns the time they took.
fn timed_on<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..iters {
                one().await;
            }
            started.elapsed()
        })
        .await
        .expect("benchmark task")
    })
}

/// On one thread the round trip is pure CPU work, so the policy stack's own cost shows; on two
/// worker threads it is dominated by waking the other thread, as in a server.
const FLAVORS: [&str; 2] = ["current_thread", "multi_thread"];

fn call_overhead(c: &mut Criterion) {
    for flavor in FLAVORS {
        call_overhead_on(c, flavor);
    }
}

fn call_overhead_on(c: &mut Criterion, flavor: &str) {
    let rt = runtime(flavor);
    let (tx, slot, policy, sup) = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, oneshot::Sender<u64>)>();
        tokio::spawn(async move {
            while let Some((x, reply)) = rx.recv().await {
                let _ = reply.send(x + 1);
            }
        });
        let slot = ActorSlot::new("echo");
        let spec = SupervisorSpec::new("bench").child(ChildSpec::actor(&slot, || (Echo, ())));
        let (sup, _) = Supervisor::start(spec).await.expect("supervisor");
        let policy = RoutePolicy::builder("echo")
            .bulkhead(1024)
            .breaker(BreakerConfig::default())
            .timeout(Duration::from_secs(30))
            .retry(RetryPolicy::default())
            .build();
        (tx, slot, policy, sup)
    });
    let actor = slot.get().expect("running");

    let mut g = c.benchmark_group(format!("call_round_trip_{flavor}"));
    g.bench_function("tokio_mpsc_oneshot", |b| {
        b.iter_custom(|iters| {
            let tx = tx.clone();
            timed_on(&rt, iters, move || {
                let tx = tx.clone();
                async move {
                    let (reply, answer) = oneshot::channel();
                    tx.send((black_box(1), reply)).expect("echo task alive");
                    black_box(answer.await.expect("answer"));
                }
            })
        })
    });
    g.bench_function("ractor_call", |b| {
        b.iter_custom(|iters| {
            let actor = actor.clone();
            timed_on(&rt, iters, move || {
                let actor = actor.clone();
                async move {
                    let token = CancellationToken::new();
                    let r = actor
                        .call(|reply| Msg::Work(black_box(1), token, reply), None)
                        .await
                        .expect("sent");
                    black_box(r);
                }
            })
        })
    });
    g.bench_function("slot_bulkhead_breaker_timeout_retry", |b| {
        b.iter_custom(|iters| {
            let (policy, slot) = (policy.clone(), slot.clone());
            timed_on(&rt, iters, move || {
                let (policy, slot) = (policy.clone(), slot.clone());
                async move {
                    let r: Result<u64, PolicyError<String>> = policy
                        .call(CallOptions::idempotent(), |ctx| {
                            let slot = &slot;
                            async move {
                                Ok(slot
                                    .call_with_cancel(ctx, |token, reply| {
                                        Msg::Work(black_box(1), token, reply)
                                    })
                                    .await?)
                            }
                        })
                        .await;
                    black_box(r.expect("answer"));
                }
            })
        })
    });
    g.finish();
    rt.block_on(async { sup.stop_and_wait(None, None).await.expect("stop") });
}

fn restart_to_answer(c: &mut Criterion) {
    // Thousands of deliberate panics: keep the report readable.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime("multi_thread");
    let (slot, sup) = rt.block_on(async {
        let slot = ActorSlot::new("crashy");
        let spec = SupervisorSpec::new("bench")
            .backoff(Backoff::ZERO)
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(ChildSpec::actor(&slot, || (Echo, ())));
        let (sup, _) = Supervisor::start(spec).await.expect("supervisor");
        (slot, sup)
    });
    let slot = Arc::new(slot);
    let mut g = c.benchmark_group("restart");
    g.bench_function("panic_to_replacement_answering", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let slot = slot.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let generation = slot.generation().expect("running");
                    let actor = slot.get().expect("running");
                    let started = Instant::now();
                    actor.cast(Msg::Panic).expect("sent");
                    let fresh = slot.next_generation(generation).await;
                    let token = CancellationToken::new();
                    let r = fresh.call(|reply| Msg::Work(1, token, reply), None).await;
                    total += started.elapsed();
                    black_box(r.expect("answer"));
                }
                total
            }
        })
    });
    g.finish();
    rt.block_on(async { sup.stop_and_wait(None, None).await.expect("stop") });
    let _ = std::panic::take_hook();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = call_overhead, restart_to_answer
}

/// Prints the medians side by side with the ratio the target is about.
fn summary() {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion");
    let median = |group: &str, id: &str| -> Option<f64> {
        let text =
            std::fs::read_to_string(dir.join(group).join(id).join("new/estimates.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(v["median"]["point_estimate"].as_f64()? / 1000.0)
    };
    println!(
        "\n| runtime | tokio mpsc+oneshot | bare ractor call | slot+policy stack | stack / ractor |"
    );
    println!("|---|---|---|---|---|");
    for flavor in FLAVORS {
        let g = format!("call_round_trip_{flavor}");
        if let (Some(m), Some(r), Some(s)) = (
            median(&g, "tokio_mpsc_oneshot"),
            median(&g, "ractor_call"),
            median(&g, "slot_bulkhead_breaker_timeout_retry"),
        ) {
            println!(
                "| {flavor} | {m:.2} µs | {r:.2} µs | {s:.2} µs | {:.2} |",
                s / r
            );
        }
    }
    if let Some(t) = median("restart", "panic_to_replacement_answering") {
        println!("\npanic → replacement answering (zero backoff): {t:.1} µs median");
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
