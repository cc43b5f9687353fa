//! What the pools' own work says about the database: when each pool last had a working
//! connection, outages logged when they start and end, pools kept warm, and readiness.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use super::{Db, DbError, NoAnswer, PgPool};

/// A pool of a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    Requests,
    Locks,
}

/// What the calls of one [`Db`] found.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Whether the last call found the database unavailable: an outage is logged when
    /// it starts and when it ends, not once per request.
    down: AtomicBool,
    /// Whether the last call ran into a lock or statement timeout: logged, with its
    /// cause, when that starts and when a call succeeds again.
    busy: AtomicBool,
    /// When a connection of each pool last worked ([`since_start`]; 0: never).
    requests_ok: AtomicU64,
    locks_ok: AtomicU64,
}

/// Milliseconds since the first call, plus one (so that 0 means never).
fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

impl Health {
    fn last_ok(&self, pool: Pool) -> &AtomicU64 {
        match pool {
            Pool::Requests => &self.requests_ok,
            Pool::Locks => &self.locks_ok,
        }
    }

    /// Records the outcome of a call on `pool`. Anything but [`DbError::Unavailable`]
    /// means the database answered (a lock timeout or a failed statement included).
    pub(crate) fn observe<T>(&self, pool: Pool, result: &Result<T, DbError>) {
        match result {
            Err(err @ DbError::Unavailable(_)) => {
                if pool == Pool::Requests && !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = err as &dyn std::error::Error,
                        "the database is unavailable"
                    );
                }
            }
            Err(DbError::Task(_)) => {}
            Err(err @ DbError::Busy(_)) => {
                self.answered(pool);
                if pool == Pool::Requests && !self.busy.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = err as &dyn std::error::Error,
                        "the database is busy: requests ran past a lock or statement timeout"
                    );
                }
            }
            Err(DbError::Query(_)) => self.answered(pool),
            Ok(_) => {
                self.answered(pool);
                if pool == Pool::Requests && self.busy.swap(false, Ordering::Relaxed) {
                    tracing::info!("the database is no longer busy");
                }
            }
        }
    }

    /// A connection of `pool` worked: the database answered.
    fn answered(&self, pool: Pool) {
        self.last_ok(pool).store(since_start(), Ordering::Relaxed);
        if pool == Pool::Requests && self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!("the database answers again");
        }
    }

    /// Whether a connection of `pool` worked within `fresh`.
    fn answered_within(&self, pool: Pool, fresh: Duration) -> bool {
        let last = self.last_ok(pool).load(Ordering::Relaxed);
        let fresh = u64::try_from(fresh.as_millis()).unwrap_or(u64::MAX);
        last != 0 && since_start().saturating_sub(last) <= fresh
    }
}

impl Db {
    fn pool_of(&self, pool: Pool) -> Option<&PgPool> {
        match pool {
            Pool::Requests => Some(&self.pool),
            Pool::Locks => self.locks.as_ref(),
        }
    }

    /// A connection of `pool` within `wait`, and `SELECT 1` on it. A connection found
    /// dead is discarded and the probe tried again on another (a ping is safe to
    /// repeat), as long as `wait` lasts.
    async fn probe(&self, which: Pool, wait: Duration) -> Result<(), DbError> {
        let Some(pool) = self.pool_of(which).cloned() else {
            return Ok(());
        };
        let until = Instant::now() + wait;
        let task = tokio::task::spawn_blocking(move || {
            loop {
                let left = until.saturating_duration_since(Instant::now());
                let mut conn = pool.get_timeout(left)?;
                match conn.batch_execute("SELECT 1") {
                    Ok(()) => return Ok(()),
                    Err(err)
                        if super::manager::is_connection_lost(&err) && Instant::now() < until => {}
                    Err(err) => return Err(DbError::from(err)),
                }
            }
        });
        let limit = wait + Duration::from_secs(1);
        let result = match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined.map_err(DbError::Task).and_then(|result| result),
            Err(_) => Err(DbError::Unavailable(Box::new(NoAnswer(limit)))),
        };
        self.health.observe(which, &result);
        result
    }

    /// Forever: every `every`, a pool that had no working connection within the last
    /// `every` is probed. So an idle pool finds its dead connections (a restart while
    /// nobody asked) and reconnects before anyone needs it, and an outage is seen and
    /// logged within `every` of its start and of its end.
    pub async fn keep_warm(self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            for pool in [Pool::Requests, Pool::Locks] {
                if !self.health.answered_within(pool, every) {
                    let _ = self.probe(pool, every).await;
                }
            }
        }
    }
}

/// Why the server is not ready. The cause is logged when readiness changes; the answer
/// to the probe says only which pool.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("database unavailable: the request pool has no working connection")]
    Requests(#[source] DbError),
    #[error("database unavailable: the lock pool has no working connection")]
    Locks(#[source] DbError),
}

impl NotReady {
    /// What the probe's answer says.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Requests(_) => "database unavailable: the request pool has no working connection",
            Self::Locks(_) => "database unavailable: the lock pool has no working connection",
        }
    }
}

/// Readiness of a [`Db`]: its request pool, and its lock pool, can hand out a working
/// connection now. A pool counts as working if one of its connections answered within
/// the last second (under load that is every request, and costs nothing); otherwise it
/// is probed: a connection within half a second, and `SELECT 1`. Answers are kept for
/// a quarter of a second and concurrent checks share one, so a flood of probes costs at
/// most four queries a second.
pub struct Readiness {
    db: Db,
    last: tokio::sync::Mutex<Option<(Instant, Answer)>>,
}

/// A readiness answer, shared by the probes that asked together.
type Answer = Result<(), Arc<NotReady>>;

/// How recent a pool's last working connection must be to skip the probe.
const FRESH: Duration = Duration::from_secs(1);
/// How long a probe waits for a connection.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// How long an answer is kept.
const KEPT: Duration = Duration::from_millis(250);

impl Readiness {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            last: tokio::sync::Mutex::default(),
        }
    }

    /// Whether the database can serve requests now.
    pub async fn check(&self) -> Result<(), Arc<NotReady>> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last
            && at.elapsed() < KEPT
        {
            return answer.clone();
        }
        let answer = self.evaluate().await.map_err(Arc::new);
        let was_ready = last.as_ref().is_none_or(|(_, answer)| answer.is_ok());
        match &answer {
            Err(why) if was_ready => {
                tracing::warn!(
                    error = &**why as &dyn std::error::Error,
                    "not ready: assignments would fail"
                );
            }
            Ok(()) if !was_ready => tracing::info!("ready again"),
            _ => {}
        }
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn evaluate(&self) -> Result<(), NotReady> {
        let health = &self.db.health;
        if !health.answered_within(Pool::Requests, FRESH) {
            self.db
                .probe(Pool::Requests, PROBE_WAIT)
                .await
                .map_err(NotReady::Requests)?;
        }
        if !health.answered_within(Pool::Locks, FRESH) {
            self.db
                .probe(Pool::Locks, PROBE_WAIT)
                .await
                .map_err(NotReady::Locks)?;
        }
        Ok(())
    }
}
