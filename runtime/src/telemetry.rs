//! The Prometheus recorder behind `/metrics`.
//!
//! The `metrics` facade has one recorder per process, so this one is installed once and shared
//! by every runtime in the process. It must be in place before the routes are built: a metric
//! handle taken before a recorder exists stays a no-op.
//!
//! The recorder keeps each histogram's samples until they are folded into its buckets, which
//! rendering `/metrics` does. A server nobody scrapes would keep every sample of every call
//! (tens of MiB an hour at a few hundred calls a second), so a thread folds them every
//! [`UPKEEP_EVERY`] as well.

mod tap;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use tap::{Mirror, Tap, Value};

/// How often the recorder's histogram samples are folded into their buckets when nothing
/// scrapes `/metrics` (as `metrics-exporter-prometheus` does itself when it serves the route).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The bucket bounds of every histogram, in seconds.
pub const BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

struct Installed {
    handle: PrometheusHandle,
    mirror: Arc<Mirror>,
}

static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();

fn installed() -> Option<&'static Installed> {
    INSTALLED
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let mirror = Arc::new(Mirror::default());
            let tap = tap::Tap::new(recorder, mirror.clone(), crate::dashboard::reads);
            match metrics::set_global_recorder(tap) {
                Ok(()) => {
                    describe();
                    metrics::gauge!("ensemble_build_info", "version" => env!("CARGO_PKG_VERSION"))
                        .set(1.0);
                    let upkeep = handle.clone();
                    if let Err(e) = std::thread::Builder::new()
                        .name("ensemble-metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        })
                    {
                        tracing::warn!(
                            "no thread for the metrics' upkeep ({e}): histogram samples are \
                             folded only when /metrics is scraped"
                        );
                    }
                    Some(Installed { handle, mirror })
                }
                Err(e) => {
                    tracing::warn!("metrics recorder not installed ({e}); /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the process's Prometheus recorder if none is installed yet, and returns its handle
/// (`None` when another recorder was installed by the host application).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    installed().map(|i| &i.handle)
}

/// The live copy of the metrics the dashboard reads (see [`crate::dashboard::reads`]); `None`
/// when another recorder was installed by the host application.
pub fn mirror() -> Option<&'static Mirror> {
    installed().map(|i| &*i.mirror)
}

/// The metrics in Prometheus text format, the process's own (`process_*`) included.
pub fn render() -> String {
    match prometheus() {
        Some(h) => {
            h.run_upkeep();
            let mut text = h.render();
            crate::dashboard::process::write_metrics(&crate::dashboard::process::read(), &mut text);
            text
        }
        None => String::new(),
    }
}

/// HELP text and units of every metric the runtime writes (Prometheus conventions: base units,
/// `_total` counters, `_seconds` and `_bytes` suffixes).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ensemble_tool_calls_total",
        "Tool calls answered, by tool and outcome (ok, invalid_arguments, engine_error, cancelled, runtime_error)."
    );
    describe_histogram!(
        "ensemble_tool_call_duration_seconds",
        Unit::Seconds,
        "Time to answer a tool call, by tool."
    );
    describe_gauge!(
        "ensemble_inflight_calls",
        "Calls in flight on a route (bulkhead occupancy)."
    );
    describe_gauge!(
        "ensemble_circuit_state",
        "Circuit breaker state per route: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        "ensemble_circuit_transitions_total",
        "Circuit breaker transitions, by route, from and to."
    );
    describe_counter!("ensemble_retries_total", "Retried calls, by route.");
    describe_counter!(
        "ensemble_actor_restarts_total",
        "Actor restarts by their supervisor, by actor."
    );
    describe_counter!(
        "ensemble_supervisor_giveups_total",
        "Supervisors that exceeded their restart intensity and gave up, by supervisor."
    );
    describe_gauge!(
        "ensemble_engine_state",
        "Engine state: 0 running, 1 restarting, 2 stopped."
    );
    describe_gauge!(
        "ensemble_task_queue_depth",
        "Tasks waiting in the execution queue."
    );
    describe_gauge!("ensemble_tasks_running", "Tasks running.");
    describe_counter!("ensemble_tasks_total", "Tasks finished, by final state.");
    describe_counter!("ensemble_cache_hits_total", "Task result cache hits.");
    describe_counter!("ensemble_cache_misses_total", "Task result cache misses.");
    describe_gauge!(
        "ensemble_cache_hit_ratio",
        "Task result cache hits over lookups since the start."
    );
    describe_gauge!(
        "ensemble_workflow_runs_active",
        "Workflow runs in progress."
    );
    describe_counter!("ensemble_workflow_steps_total", "Workflow steps finished.");
    describe_counter!(
        "ensemble_workflow_journal_flushes_total",
        "Workflow journal flushes to the store."
    );
    describe_gauge!(
        "ensemble_learner_memory_bytes",
        Unit::Bytes,
        "Memory a learner's model holds, by learner."
    );
    describe_gauge!(
        "ensemble_learner_memory_budget_bytes",
        Unit::Bytes,
        "A learner's memory budget, by learner."
    );
    describe_gauge!(
        "ensemble_learner_patterns",
        "Patterns a learner holds, by learner."
    );
    describe_gauge!(
        "ensemble_learner_accuracy",
        "A learner's running accuracy (0 to 1), by learner."
    );
    describe_counter!(
        "ensemble_learner_observations_total",
        "Observations a learner took, by learner."
    );
    describe_counter!(
        "ensemble_learner_queries_total",
        "Queries a learner answered, by learner."
    );
    describe_counter!(
        "ensemble_learner_evictions_total",
        "Patterns a learner evicted to stay within its budget, by learner."
    );
    describe_gauge!(
        "ensemble_retrieval_documents",
        "Documents in a retrieval collection, by collection."
    );
    describe_counter!(
        "ensemble_retrieval_documents_indexed_total",
        "Documents indexed."
    );
    describe_counter!(
        "ensemble_retrieval_searches_total",
        "Retrieval searches answered."
    );
    describe_histogram!(
        "ensemble_retrieval_search_duration_seconds",
        Unit::Seconds,
        "Time to answer a retrieval search."
    );
    describe_gauge!(
        "ensemble_taxonomy_concepts",
        "Concepts in a taxonomy scheme, by scheme."
    );
    describe_counter!(
        "ensemble_taxonomy_imports_total",
        "Taxonomy imports, by outcome."
    );
    describe_counter!(
        "ensemble_governance_denials_total",
        "Calls refused by policy, by kind (tool, resource) and identity."
    );
    describe_counter!(
        "ensemble_governance_rate_limited_total",
        "Calls refused by a rate limit, by identity."
    );
    describe_counter!(
        "ensemble_governance_auth_failures_total",
        "Refused credentials, by reason."
    );
    describe_gauge!(
        "ensemble_governance_mode",
        "The runtime's mode: 0 normal, 1 read-only, 2 lockdown."
    );
    describe_counter!(
        "ensemble_governance_audit_entries_total",
        "Audit entries made durable."
    );
    describe_counter!(
        "ensemble_governance_audit_flushes_total",
        "Audit log flushes."
    );
    describe_counter!(
        "ensemble_governance_audit_checkpoints_total",
        "Signed audit checkpoints written."
    );
    describe_counter!(
        "ensemble_governance_audit_failures_total",
        "Audit write or checkpoint failures, by stage."
    );
    describe_counter!(
        "ensemble_governance_audit_refusals_total",
        "Calls refused because the audit log could not record them."
    );
    describe_counter!(
        "ensemble_promotion_transitions_total",
        "Promotion transitions, by action."
    );
    describe_counter!(
        "ensemble_promotion_gate_failures_total",
        "Promotion gate failures, by gate."
    );
    describe_counter!(
        "ensemble_http_fast_lane_calls_total",
        "Tool calls answered by the HTTP fast lane."
    );
    describe_gauge!(
        "ensemble_store_size_bytes",
        Unit::Bytes,
        "The store's size on disk."
    );
    describe_gauge!(
        "ensemble_dashboard_subscribers",
        "Dashboard pages subscribed to the live event stream."
    );
    describe_gauge!(
        "ensemble_build_info",
        "Always 1; the runtime's version as a label."
    );
}
