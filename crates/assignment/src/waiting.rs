//! Requests that wait for a slot (`wait_secs`): they hold no database connection and no
//! transaction while they wait, and are woken when capacity may have appeared, whichever
//! process caused it (a PostgreSQL notification: an instance inserted or becoming
//! `ACTIVE`, a mandelbox ended, even by plain SQL), with a slow poll as a safety net.
//! Within a process they look again one at a time, in the order they were woken, so
//! they are served roughly in arrival order.

use std::time::{Duration, Instant};

use app_metrics::Registry;
use prometheus::{HistogramVec, IntCounterVec, IntGauge};
use tokio::sync::watch;

/// The safety net: a waiter looks again this often even without a notification.
const POLL: Duration = Duration::from_secs(2);

/// What waiting requests share in one process.
pub struct Waiting {
    capacity: watch::Receiver<u64>,
    /// Taken to look again: tokio's mutex serves its waiters in order.
    turns: tokio::sync::Mutex<()>,
    now: IntGauge,
    seconds: HistogramVec,
    outcomes: IntCounterVec,
}

impl Waiting {
    /// `capacity` goes up when capacity may have appeared (see `models::notify`).
    pub fn new(capacity: watch::Receiver<u64>, registry: &Registry) -> Self {
        Self {
            capacity,
            turns: tokio::sync::Mutex::new(()),
            now: app_metrics::gauge(
                registry,
                "webserver_assign_waiting",
                "Assignment requests waiting for capacity now.",
            ),
            seconds: app_metrics::histogram_vec(
                registry,
                "webserver_assign_wait_seconds",
                "How long requests waited for capacity, by outcome after waiting.",
                &["outcome"],
                vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
            ),
            outcomes: app_metrics::counter_vec(
                registry,
                "webserver_assign_waited_total",
                "Assignment requests that waited for capacity, by outcome after waiting.",
                &["outcome"],
            ),
        }
    }

    /// A waiter, from now until it is dropped.
    pub fn begin(&self) -> Waiter<'_> {
        self.now.inc();
        let mut capacity = self.capacity.clone();
        capacity.mark_unchanged();
        Waiter {
            waiting: self,
            capacity,
            since: Instant::now(),
            outcome: None,
        }
    }
}

/// One request waiting for capacity.
pub struct Waiter<'a> {
    waiting: &'a Waiting,
    capacity: watch::Receiver<u64>,
    since: Instant,
    outcome: Option<&'static str>,
}

/// The turn to look again: held while looking.
pub type Turn<'a> = tokio::sync::MutexGuard<'a, ()>;

impl<'a> Waiter<'a> {
    /// Waits until capacity may have appeared (or the safety poll), then for this
    /// request's turn to look again. `None` once `deadline` has passed.
    pub async fn next_turn(&mut self, deadline: Instant) -> Option<Turn<'a>> {
        let left = deadline.checked_duration_since(Instant::now())?;
        let pause = left.min(POLL);
        tokio::select! {
            _ = self.capacity.changed() => {}
            () = tokio::time::sleep(pause) => {}
        }
        if Instant::now() >= deadline {
            return None;
        }
        Some(self.waiting.turns.lock().await)
    }

    /// How the wait ended: `ASSIGNED` or the refusal's code.
    pub fn ended(&mut self, outcome: &'static str) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.waiting.now.dec();
        // A waiter dropped without an outcome: its client went away.
        let outcome = self.outcome.unwrap_or("DISCONNECTED");
        self.waiting
            .seconds
            .with_label_values(&[outcome])
            .observe(self.since.elapsed().as_secs_f64());
        self.waiting.outcomes.with_label_values(&[outcome]).inc();
    }
}
