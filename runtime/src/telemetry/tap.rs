//! A recorder layer in front of the Prometheus recorder that keeps a readable copy of chosen
//! metrics, so the dashboard reads numbers instead of rendering the whole exposition as text and
//! parsing it back each second.
//!
//! Every handle of a tapped metric writes to both the Prometheus handle and a cell of ours (one
//! relaxed atomic per update; a bucket search for a histogram observation). Handles are made
//! once per series and handed out again on later registrations, so a call site that looks its
//! handle up on every update pays one map read, as it would in the Prometheus recorder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// What a tapped series holds now.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A counter's total.
    Counter(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram: observations per bucket of [`super::BUCKETS`] (not cumulative), the last
    /// one past the largest bound (`+Inf`).
    Histogram(&'a [u64]),
}

/// The tapped series, readable at any time.
#[derive(Default)]
pub struct Mirror {
    series: RwLock<HashMap<Key, Tapped>>,
}

impl Mirror {
    /// Calls `f` with every tapped series and its current value. Series are visited in no
    /// particular order; registrations wait while this runs, updates do not.
    pub fn for_each(&self, mut f: impl FnMut(&Key, Value<'_>)) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut buckets = [0u64; BUCKET_CELLS];
        for (key, tapped) in series.iter() {
            match tapped {
                Tapped::Counter(c) => f(key, Value::Counter(c.cell.load(Ordering::Relaxed))),
                Tapped::Gauge(g) => f(key, Value::Gauge(g.get())),
                Tapped::Histogram(h) => {
                    for (out, cell) in buckets.iter_mut().zip(&h.cells) {
                        *out = cell.load(Ordering::Relaxed);
                    }
                    f(key, Value::Histogram(&buckets));
                }
            }
        }
    }
}

const BUCKET_CELLS: usize = super::BUCKETS.len() + 1;

#[derive(Clone)]
enum Tapped {
    Counter(Arc<TapCounter>),
    Gauge(Arc<TapGauge>),
    Histogram(Arc<TapHistogram>),
}

struct TapCounter {
    inner: Counter,
    cell: AtomicU64,
}

impl CounterFn for TapCounter {
    fn increment(&self, value: u64) {
        self.inner.increment(value);
        self.cell.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.inner.absolute(value);
        self.cell.fetch_max(value, Ordering::Relaxed);
    }
}

struct TapGauge {
    inner: Gauge,
    /// The value's `f64` bits.
    bits: AtomicU64,
}

impl TapGauge {
    fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        // The closure never refuses, so the update always lands.
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for TapGauge {
    fn increment(&self, value: f64) {
        self.inner.increment(value);
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.inner.decrement(value);
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.inner.set(value);
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

struct TapHistogram {
    inner: Histogram,
    cells: [AtomicU64; BUCKET_CELLS],
}

impl HistogramFn for TapHistogram {
    fn record(&self, value: f64) {
        self.inner.record(value);
        self.cells[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.inner.record_many(value, count);
        self.cells[bucket_of(value)].fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// The bucket an observation falls in: the first bound `>=` it, as Prometheus's `le` reads.
fn bucket_of(value: f64) -> usize {
    super::BUCKETS.partition_point(|bound| *bound < value)
}

/// The layer: tapped metrics go through [`Mirror`], the rest straight to `inner`.
pub struct Tap<R> {
    inner: R,
    mirror: Arc<Mirror>,
    tapped: fn(&str) -> bool,
}

impl<R: Recorder> Tap<R> {
    /// A layer over `inner` that copies the metrics `tapped` names into `mirror`.
    pub fn new(inner: R, mirror: Arc<Mirror>, tapped: fn(&str) -> bool) -> Self {
        Self {
            inner,
            mirror,
            tapped,
        }
    }

    fn tap(&self, key: &Key, make: impl FnOnce() -> Tapped) -> Option<Tapped> {
        if !(self.tapped)(key.name()) {
            return None;
        }
        if let Some(t) = self
            .mirror
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Some(t.clone());
        }
        let mut series = self
            .mirror
            .series
            .write()
            .unwrap_or_else(|e| e.into_inner());
        Some(series.entry(key.clone()).or_insert_with(make).clone())
    }
}

impl<R: Recorder> Recorder for Tap<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let make = || {
            Tapped::Counter(Arc::new(TapCounter {
                inner: self.inner.register_counter(key, metadata),
                cell: AtomicU64::new(0),
            }))
        };
        match self.tap(key, make) {
            Some(Tapped::Counter(c)) => Counter::from_arc(c),
            // Not tapped, or the same name registered as another kind: Prometheus alone.
            _ => self.inner.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let make = || {
            Tapped::Gauge(Arc::new(TapGauge {
                inner: self.inner.register_gauge(key, metadata),
                bits: AtomicU64::new(0f64.to_bits()),
            }))
        };
        match self.tap(key, make) {
            Some(Tapped::Gauge(g)) => Gauge::from_arc(g),
            _ => self.inner.register_gauge(key, metadata),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let make = || {
            Tapped::Histogram(Arc::new(TapHistogram {
                inner: self.inner.register_histogram(key, metadata),
                cells: std::array::from_fn(|_| AtomicU64::new(0)),
            }))
        };
        match self.tap(key, make) {
            Some(Tapped::Histogram(h)) => Histogram::from_arc(h),
            _ => self.inner.register_histogram(key, metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn values(mirror: &Mirror) -> Vec<(String, String)> {
        let mut out = Vec::new();
        mirror.for_each(|key, value| {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            out.push((
                format!("{}{{{}}}", key.name(), labels.join(",")),
                match value {
                    Value::Counter(c) => c.to_string(),
                    Value::Gauge(g) => g.to_string(),
                    Value::Histogram(b) => format!("{b:?}"),
                },
            ));
        });
        out.sort();
        out
    }

    #[test]
    fn tapped_series_read_the_same_as_the_exposition() {
        let prometheus = PrometheusBuilder::new()
            .set_buckets(&super::super::BUCKETS)
            .expect("buckets")
            .build_recorder();
        let handle = prometheus.handle();
        let mirror = Arc::new(Mirror::default());
        let tap = Tap::new(prometheus, mirror.clone(), |name| name.starts_with("t_"));
        metrics::with_local_recorder(&tap, || {
            let calls = metrics::counter!("t_calls_total", "tool" => "a");
            calls.increment(3);
            // Looked up again: the same series.
            metrics::counter!("t_calls_total", "tool" => "a").increment(2);
            metrics::counter!("t_calls_total", "tool" => "b").absolute(7);
            metrics::counter!("t_calls_total", "tool" => "b").absolute(5);
            let g = metrics::gauge!("t_depth");
            g.set(4.0);
            g.increment(1.5);
            g.decrement(0.5);
            let h = metrics::histogram!("t_seconds");
            // On a bound: that bucket (le is inclusive); past the last: +Inf.
            h.record(0.001);
            h.record(0.000_01);
            h.record(99.0);
            h.record_many(0.02, 3);
            metrics::counter!("other_total").increment(1);
        });
        let got = values(&mirror);
        let mut hist = vec![0u64; BUCKET_CELLS];
        hist[0] = 1; // 10 µs ≤ 50 µs
        hist[4] = 1; // 1 ms, the fifth bound
        hist[8] = 3; // 20 ms ≤ 25 ms
        hist[BUCKET_CELLS - 1] = 1;
        assert_eq!(
            got,
            [
                ("t_calls_total{tool=a}".to_string(), "5".to_string()),
                ("t_calls_total{tool=b}".to_string(), "7".to_string()),
                ("t_depth{}".to_string(), "5".to_string()),
                ("t_seconds{}".to_string(), format!("{hist:?}")),
            ],
            "the untapped counter is not mirrored"
        );
        // Prometheus saw every update too.
        let text = handle.render();
        assert!(text.contains("t_calls_total{tool=\"a\"} 5"), "{text}");
        assert!(text.contains("t_calls_total{tool=\"b\"} 7"), "{text}");
        assert!(text.contains("t_depth 5"), "{text}");
        assert!(text.contains("t_seconds_count 6"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.025\"} 5"), "{text}");
        assert!(text.contains("other_total 1"), "{text}");
    }
}
