//! An in-process tool set for the orchestration engines' tests: tools that record the order
//! they ran in, block until released, fail, or run until cancelled.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_actors::invoke::{InvokeError, InvokeFuture, ToolInvoker, ToolTraits};
use ensemble_supervision::CancellationToken;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Tools:
/// - `noop` (read-only): answers `{"ok": true, "args": <args>}`;
/// - `record` (idempotent): records `args.label` in the run order, answers it;
/// - `gate` (idempotent): records `args.label`, then waits for [`Tools::open_gate`];
/// - `hold` (idempotent): records, waits `args.ms` milliseconds, tracks concurrency;
/// - `fail` (idempotent): fails `args.times` times per label, then answers;
/// - `until_cancelled` (idempotent): runs until cancelled, then records `stopped:<label>`;
/// - `once` (not idempotent): like `gate`, for crash tests.
#[derive(Clone, Default)]
pub struct Tools {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub order: Mutex<Vec<String>>,
    pub runs: Mutex<HashMap<String, usize>>,
    pub gate: Semaphore,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            order: Mutex::default(),
            runs: Mutex::default(),
            gate: Semaphore::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }
}

impl Tools {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn order(&self) -> Vec<String> {
        self.inner.order.lock().unwrap().clone()
    }

    /// How many times `label` ran.
    pub fn runs(&self, label: &str) -> usize {
        self.inner
            .runs
            .lock()
            .unwrap()
            .get(label)
            .copied()
            .unwrap_or(0)
    }

    pub fn open_gate(&self) {
        self.inner.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `n` calls have started.
    pub async fn started(&self, n: usize) {
        for _ in 0..2000 {
            if self.inner.order.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{n} calls did not start: {:?}", self.order());
    }
}

fn label(args: &Value) -> String {
    args.get("label")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl ToolInvoker for Tools {
    fn traits(&self, tool: &str) -> Option<ToolTraits> {
        match tool {
            "noop" => Some(ToolTraits {
                read_only: true,
                idempotent: true,
            }),
            "record" | "gate" | "hold" | "fail" | "until_cancelled" => Some(ToolTraits {
                read_only: false,
                idempotent: true,
            }),
            "once" => Some(ToolTraits::default()),
            _ => None,
        }
    }

    fn invoke(&self, tool: &str, args: Value, cancel: CancellationToken) -> InvokeFuture {
        let (inner, tool) = (self.inner.clone(), tool.to_string());
        Box::pin(async move {
            let l = label(&args);
            if tool != "noop" {
                inner.order.lock().unwrap().push(l.clone());
                *inner.runs.lock().unwrap().entry(l.clone()).or_insert(0) += 1;
            }
            match tool.as_str() {
                "noop" => Ok(json!({"ok": true, "args": args})),
                "record" => Ok(json!({"label": l})),
                "gate" | "once" => {
                    tokio::select! {
                        p = inner.gate.acquire() => { drop(p); Ok(json!({"label": l})) }
                        _ = cancel.cancelled() => Err(InvokeError::Cancelled),
                    }
                }
                "hold" => {
                    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(20);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(json!({"label": l}))
                }
                "fail" => {
                    let times = args
                        .get("times")
                        .and_then(Value::as_u64)
                        .unwrap_or(u64::MAX);
                    let n = inner.runs.lock().unwrap().get(&l).copied().unwrap_or(0) as u64;
                    if n <= times {
                        Err(InvokeError::Failed(format!("{l} failed (attempt {n})")))
                    } else {
                        Ok(json!({"label": l, "attempts": n}))
                    }
                }
                "until_cancelled" => {
                    // Like an actor told to stop: it sees the token even if the caller has
                    // dropped the call.
                    let (seen, token) = (inner.clone(), cancel.clone());
                    tokio::spawn(async move {
                        token.cancelled().await;
                        seen.order.lock().unwrap().push(format!("stopped:{l}"));
                    });
                    cancel.cancelled().await;
                    Err(InvokeError::Cancelled)
                }
                other => Err(InvokeError::UnknownTool(other.to_string())),
            }
        })
    }
}
