//! Requests that wait for a slot (`wait_secs`): they hold no database connection and no
//! transaction while they wait, and are woken when capacity may have appeared, whichever
//! process caused it (a PostgreSQL notification: an instance inserted or becoming
//! `ACTIVE`, a mandelbox ended, even by plain SQL), with a slow poll as a safety net.
//! Within a process they look again one at a time, the longest waiting first, so the
//! first users refused are the first served when a burst's instances come up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app_metrics::Registry;
use prometheus::{HistogramVec, IntCounterVec, IntGauge};
use tokio::sync::{oneshot, watch};

/// The safety net: a waiter looks again this often even without a notification.
const POLL: Duration = Duration::from_secs(2);

/// What waiting requests share in one process.
pub struct Waiting {
    capacity: watch::Receiver<u64>,
    /// Taken to look again, the longest waiting first.
    turns: Turns,
    /// The order waiters began in.
    next_waiter: AtomicU64,
    now: IntGauge,
    seconds: HistogramVec,
    outcomes: IntCounterVec,
}

impl Waiting {
    /// `capacity` goes up when capacity may have appeared (see `models::notify`).
    pub fn new(capacity: watch::Receiver<u64>, registry: &Registry) -> Self {
        Self {
            capacity,
            turns: Turns::default(),
            next_waiter: AtomicU64::new(0),
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
            order: self.next_waiter.fetch_add(1, Ordering::Relaxed),
            capacity,
            since: Instant::now(),
            outcome: None,
        }
    }
}

/// One request waiting for capacity.
pub struct Waiter<'a> {
    waiting: &'a Waiting,
    order: u64,
    capacity: watch::Receiver<u64>,
    since: Instant,
    outcome: Option<&'static str>,
}

/// The turn to look again: held while looking; dropping it hands the turn to the
/// longest-waiting request that asked for one.
pub struct Turn<'a> {
    turns: &'a Turns,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.hand_over();
    }
}

/// One turn at a time, granted in the order the waiters began (lowest first), not the
/// order they asked.
#[derive(Default)]
struct Turns {
    queue: std::sync::Mutex<TurnQueue>,
}

#[derive(Default)]
struct TurnQueue {
    /// Whether a turn is out; while it is, askers queue.
    taken: bool,
    /// Who asks, by the order they began waiting. An entry leaves only under the lock:
    /// removed with its turn sent, or by its asker giving up.
    asking: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Turns {
    fn queue(&self) -> std::sync::MutexGuard<'_, TurnQueue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn take(&self, order: u64) -> Turn<'_> {
        let granted = {
            let mut queue = self.queue();
            if !queue.taken {
                queue.taken = true;
                return Turn { turns: self };
            }
            let (sender, granted) = oneshot::channel();
            queue.asking.insert(order, sender);
            granted
        };
        // Declared after `granted`, so dropped before it if this future is dropped.
        let mut asking = Asking {
            turns: self,
            order,
            answered: false,
        };
        // The sender is only ever dropped after sending.
        let _ = granted.await;
        asking.answered = true;
        Turn { turns: self }
    }

    /// Gives the turn to the lowest asker, or frees it.
    fn hand_over(&self) {
        let mut queue = self.queue();
        while let Some((_, next)) = queue.asking.pop_first() {
            if next.send(()).is_ok() {
                return;
            }
        }
        queue.taken = false;
    }
}

/// An asker still waiting for its turn: if it gives up (its client went away), it
/// leaves the queue, or passes on the turn it was sent meanwhile.
struct Asking<'a> {
    turns: &'a Turns,
    order: u64,
    answered: bool,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let was_asking = self.turns.queue().asking.remove(&self.order).is_some();
        if !was_asking {
            self.turns.hand_over();
        }
    }
}

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
        Some(self.waiting.turns.take(self.order).await)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Polls once: whether the future is still pending.
    fn pending<F: Future>(future: std::pin::Pin<&mut F>) -> bool {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut context).is_pending()
    }

    /// Askers queued behind a taken turn, in the order (`asks`) they ask; the order
    /// they are served in.
    async fn served_in(asks: &[u64]) -> Vec<u64> {
        let turns = Arc::new(Turns::default());
        let served = Arc::new(Mutex::new(Vec::new()));
        let first = turns.take(u64::MAX).await;
        let mut tasks = Vec::new();
        for &order in asks {
            let (shared, record) = (turns.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = shared.take(order).await;
                record.lock().unwrap().push(order);
                tokio::task::yield_now().await;
            }));
            // Each asker is queued before the next asks.
            while turns.queue().asking.len() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        let order = served.lock().unwrap();
        order.clone()
    }

    #[tokio::test]
    async fn the_longest_waiting_asker_looks_first_whatever_order_they_asked_in() {
        assert_eq!(served_in(&[3, 1, 2, 0]).await, vec![0, 1, 2, 3]);
        assert_eq!(served_in(&[0, 1, 2]).await, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn askers_that_give_up_neither_take_nor_keep_the_turn() {
        let turns = Turns::default();
        let held = turns.take(5).await;
        // One gives up while queued: it leaves the queue.
        {
            let mut asking = std::pin::pin!(turns.take(1));
            assert!(pending(asking.as_mut()));
            assert_eq!(turns.queue().asking.len(), 1);
        }
        assert!(turns.queue().asking.is_empty());
        // One is sent the turn, then gives up before it looks: the turn goes on.
        let mut sent = Box::pin(turns.take(2));
        assert!(pending(sent.as_mut()));
        let mut next = Box::pin(turns.take(3));
        assert!(pending(next.as_mut()));
        drop(held);
        drop(sent);
        let turn = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the turn passed on");
        drop(turn);
        // And the turn is free again.
        assert!(!turns.queue().taken);
        drop(turns.take(9).await);
    }
}
