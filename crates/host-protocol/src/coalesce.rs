//! Heartbeats coalesced: those that arrive while the previous batch is being written,
//! or within [`GATHER_FOR`] of the first, are written together in one statement
//! (`models::instance::heartbeats`), and each caller is answered once its batch is
//! written. One batch is written at a time per process, so batches never wait on each
//! other's row locks. Dying heartbeats never come here: each is written at once, durably.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use models::instance::{self, Beat, Metrics};
use models::{Db, DbError, InstanceName, UnixMillis};
use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot};

/// How long the first heartbeat of a batch waits for others.
pub const GATHER_FOR: Duration = Duration::from_millis(2);
/// The most heartbeats one statement writes.
pub const MOST_PER_BATCH: usize = 512;
/// Heartbeats waiting for a batch before callers are turned away (503).
const MOST_WAITING: usize = 8192;

/// What a caller is told: the instance heard from, `None` for an unknown credential.
type Answer = Result<Option<InstanceName>, BatchError>;

/// Why a batch was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error("the heartbeats' batch could not be written")]
    Failed(#[source] Arc<DbError>),
    #[error("too many heartbeats are waiting to be written")]
    Busy,
}

struct Pending {
    beat: Beat,
    answer: oneshot::Sender<Answer>,
}

/// Coalesces heartbeats onto `db`. Its writer task starts with it (on the runtime it is
/// made in, at start-up), or with the first heartbeat if it was made outside one; a
/// writer that is gone (its runtime stopped, or it panicked) is started again by the
/// next heartbeat, so it never turns every later heartbeat into a 503.
#[derive(Clone)]
pub(crate) struct Coalescer {
    db: Db,
    sizes: Option<Histogram>,
    queue: Arc<Mutex<Option<mpsc::Sender<Pending>>>>,
}

impl Coalescer {
    pub(crate) fn new(db: Db, sizes: Option<Histogram>) -> Self {
        let coalescer = Self {
            db,
            sizes,
            queue: Arc::default(),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(coalescer.queue());
        }
        coalescer
    }

    /// The writer's queue, starting a writer if none is running.
    fn queue(&self) -> mpsc::Sender<Pending> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*queue {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, receiver) = mpsc::channel(MOST_WAITING);
                tokio::spawn(write_batches(self.db.clone(), receiver, self.sizes.clone()));
                *queue = Some(sender.clone());
                sender
            }
        }
    }

    /// Records one heartbeat with the next batch.
    pub(crate) async fn beat(&self, host_token_sha256: String, metrics: Metrics) -> Answer {
        let queue = self.queue();
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            beat: Beat {
                host_token_sha256,
                metrics,
            },
            answer,
        };
        if queue.try_send(pending).is_err() {
            return Err(BatchError::Busy);
        }
        answered.await.unwrap_or(Err(BatchError::Busy))
    }
}

/// Writes batches until every sender is gone.
async fn write_batches(db: Db, mut queue: mpsc::Receiver<Pending>, sizes: Option<Histogram>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + GATHER_FOR;
        while batch.len() < MOST_PER_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(pending)) => batch.push(pending),
                    _ => break,
                },
            }
        }
        if let Some(sizes) = &sizes {
            sizes.observe(batch.len() as f64);
        }
        write(&db, batch).await;
    }
}

async fn write(db: &Db, batch: Vec<Pending>) {
    let beats: Arc<Vec<Beat>> = Arc::new(batch.iter().map(|p| p.beat.clone()).collect());
    let mut written = Err(BatchError::Busy);
    // Once more on failure: a deadlock with a sweep over the same rows is retried.
    for _ in 0..2 {
        let beats = beats.clone();
        written = db
            .run(move |conn| Ok(instance::heartbeats(conn, &beats, UnixMillis::now())?))
            .await
            .map_err(|err| BatchError::Failed(Arc::new(err)));
        if written.is_ok() {
            break;
        }
    }
    match written {
        Ok(heard) => {
            let heard: HashMap<String, InstanceName> = heard.into_iter().collect();
            for pending in batch {
                let instance = heard.get(&pending.beat.host_token_sha256).cloned();
                let _ = pending.answer.send(Ok(instance));
            }
        }
        Err(err) => {
            tracing::warn!(heartbeats = batch.len(), error = %err, "a batch of heartbeats failed");
            for pending in batch {
                let _ = pending.answer.send(Err(err.clone()));
            }
        }
    }
}
