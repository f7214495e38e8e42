//! The shared progress ticker of calls that asked for progress but report none themselves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};

/// One ticker shared by all calls of a service that asked for progress: rmcp's client asks on
/// every request, and a timer per call would cost more than a short call itself. The ticker
/// runs only while such calls are in flight.
#[derive(Debug, Clone)]
pub(super) struct ProgressClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    every: Duration,
    ticks: tokio::sync::watch::Sender<u64>,
    running: Mutex<bool>,
}

impl ProgressClock {
    pub(super) fn new(every: Duration) -> Self {
        Self {
            inner: Arc::new(ClockInner {
                every,
                ticks: tokio::sync::watch::Sender::new(0),
                running: Mutex::new(false),
            }),
        }
    }

    /// The heartbeat of call `tool` started at `started` and asking with `token`, if it has run
    /// a whole period (ticks are shared: a younger call lets this tick pass).
    pub(super) fn heartbeat(
        &self,
        tool: &str,
        token: &ProgressToken,
        started: Instant,
    ) -> Option<ProgressNotificationParam> {
        let elapsed = started.elapsed();
        (elapsed >= self.inner.every).then(|| {
            let secs = elapsed.as_secs_f64();
            ProgressNotificationParam::new(token.clone(), secs)
                .with_message(format!("`{tool}` running for {secs:.1}s"))
        })
    }

    pub(super) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        let rx = self.inner.ticks.subscribe();
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(tick(self.inner.clone()));
        }
        rx
    }
}

/// Clears `running` if the ticker is dropped with its runtime, so a later call restarts it.
struct TickerFlag(Arc<ClockInner>);

impl Drop for TickerFlag {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }
}

async fn tick(inner: Arc<ClockInner>) {
    let flag = TickerFlag(inner);
    loop {
        tokio::time::sleep(flag.0.every).await;
        // Checked under the lock that `subscribe` takes after subscribing: a call that
        // subscribed before this check keeps the ticker alive; one after it starts a new one.
        let running = flag.0.running.lock().unwrap_or_else(|p| p.into_inner());
        if flag.0.ticks.receiver_count() == 0 {
            drop(running);
            return;
        }
        drop(running);
        flag.0.ticks.send_modify(|n| *n = n.wrapping_add(1));
    }
}
