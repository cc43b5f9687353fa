//! The connection pool, and running database work off the async executor.

use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// Why a database call failed. `Display` says what failed; the source says why.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had: the server is down, unreachable or refusing us.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Waited longer than `lock_timeout` for rows or locks other transactions hold.
    #[error("database busy: a lock stayed held past the lock timeout")]
    Busy(#[source] diesel::result::Error),
    #[error("database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("database task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl DbError {
    /// Whether the database, not the request, is at fault: unavailable or busy. Callers
    /// answer 503 for these, and 500 for the rest.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Busy(_))
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            // The server went away under a pooled connection.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Self::Unavailable(Box::new(err)),
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if lock_timeout::is_lock_not_available(info.message()) =>
            {
                Self::Busy(err)
            }
            _ => Self::Query(err),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(Box::new(err))
    }
}

/// Pool sizing and per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a caller waits for a connection before the database counts as unavailable.
    pub connection_timeout: Duration,
    /// How long a statement may wait for a lock before failing with [`DbError::Busy`];
    /// zero waits forever.
    pub lock_timeout: Duration,
    /// Whether commits wait for the write-ahead log to reach disk. Off only for
    /// loss-tolerant writes (heartbeats): a crash may forget the last fraction of a
    /// second of them, never corrupt anything.
    pub synchronous_commit: bool,
    /// Connections kept apart for session advisory locks ([`Db::advisory_lock`]), which
    /// are held across cloud calls: work under such a lock never waits for, nor holds,
    /// a connection of the main pool while it waits on the cloud.
    pub lock_connections: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            synchronous_commit: true,
            lock_connections: 8,
        }
    }
}

/// Sets `lock_timeout` once per connection, rather than once per transaction.
#[derive(Debug)]
struct SessionSettings {
    lock_timeout: Duration,
    synchronous_commit: bool,
    /// To learn how the server words a lock timeout (see [`lock_timeout`]).
    url: String,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        let millis = self.lock_timeout.as_millis();
        let commit = if self.synchronous_commit { "on" } else { "off" };
        conn.batch_execute(&format!(
            "SET lock_timeout = {millis}; SET synchronous_commit = {commit}"
        ))
        .map_err(diesel::r2d2::Error::QueryError)?;
        lock_timeout::learn_once(conn, &self.url);
        Ok(())
    }
}

fn new_pool(url: &str, max_size: u32, timeout: Duration, settings: SessionSettings) -> PgPool {
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(settings))
        .build_unchecked(ConnectionManager::new(url))
}

/// A cheaply cloneable handle to the pool. Every query runs on tokio's blocking
/// thread pool so that diesel's synchronous calls never stall the async executor.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    /// For session advisory locks only.
    locks: PgPool,
    /// Whether the last call found the database unavailable: an outage is logged when
    /// it starts and when it ends, not once per request.
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's manager holds the database URL, which may carry a password.
        f.debug_struct("Db")
            .field("state", &self.pool.state())
            .field("locks", &self.locks.state())
            .finish()
    }
}

impl Db {
    /// A pool for `database_url`. No connection is opened yet: a server can start,
    /// and answer `/readyz` with 503, while the database is down.
    pub fn new(database_url: &str, options: PoolOptions) -> Self {
        let settings = |lock_timeout| SessionSettings {
            lock_timeout,
            synchronous_commit: options.synchronous_commit,
            url: database_url.to_owned(),
        };
        let pool = new_pool(
            database_url,
            options.max_size,
            options.connection_timeout,
            settings(options.lock_timeout),
        );
        // Only advisory locks are taken there, and waiting for them is async.
        let locks = new_pool(
            database_url,
            options.lock_connections.max(1),
            options.connection_timeout,
            settings(Duration::ZERO),
        );
        Self {
            pool,
            locks,
            down: std::sync::Arc::default(),
        }
    }

    /// Logs the start and the end of an outage, from the outcome of a call.
    fn observe<T>(&self, result: &Result<T, DbError>) {
        use std::sync::atomic::Ordering;
        match result {
            Err(err @ DbError::Unavailable(_)) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = err as &dyn std::error::Error,
                        "the database is unavailable"
                    );
                }
            }
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::warn!("the database answers again");
                }
            }
            Err(_) => {}
        }
    }

    /// A connection for synchronous callers (command-line tools, tests).
    pub fn get(&self) -> Result<PgPooled, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await
        .map_err(DbError::Task)
        .and_then(|result| result);
        self.observe(&result);
        result
    }

    /// `SELECT 1`: does the database answer?
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
    }
}

/// Takes the advisory lock `key` until the end of the current transaction, if no other
/// session holds it; returns whether it did. A lock taken this way cannot outlive its
/// transaction, even if the process dies.
pub fn try_lock_for_transaction(conn: &mut PgConnection, key: i64) -> diesel::QueryResult<bool> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .get_result::<Locked>(conn)
        .map(|row| row.locked)
}

/// A session-level advisory lock, held on a connection of the lock pool until dropped.
/// It serialises work that spans cloud calls (seconds), which a transaction should not
/// stay open across. If the process dies, PostgreSQL ends the session and the lock with it.
pub struct AdvisoryLock {
    conn: Option<PgPooled>,
    name: String,
}

impl std::fmt::Debug for AdvisoryLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryLock")
            .field("name", &self.name)
            .finish()
    }
}

const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS locked";

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

fn try_lock_named(conn: &mut PgConnection, name: &str) -> diesel::QueryResult<bool> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Locked>(conn)
        .map(|row| row.locked)
}

fn unlock_named(conn: &mut PgConnection, name: &str) {
    use diesel::RunQueryDsl;
    let unlocked = diesel::sql_query(UNLOCK)
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Locked>(conn);
    if !matches!(unlocked, Ok(Locked { locked: true })) {
        tracing::warn!(lock = %name, "advisory lock was not held at release");
    }
}

impl Db {
    /// Takes the advisory lock called `name` (one lock per name, shared by every process
    /// on the database), waiting up to `wait` for whoever holds it. `None` if it stayed
    /// taken; `wait` zero only tries once. The lock lives on a connection of the lock
    /// pool, never of the main one.
    pub async fn advisory_lock(
        &self,
        name: &str,
        wait: Duration,
    ) -> Result<Option<AdvisoryLock>, DbError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut held = None;
        loop {
            let pool = self.locks.clone();
            let key = name.to_owned();
            let (conn, locked) = tokio::task::spawn_blocking(move || {
                let mut conn = match held {
                    Some(conn) => conn,
                    None => pool.get()?,
                };
                let locked = try_lock_named(&mut conn, &key)?;
                Ok::<_, DbError>((conn, locked))
            })
            .await
            .map_err(DbError::Task)??;
            if locked {
                return Ok(Some(AdvisoryLock {
                    conn: Some(conn),
                    name: name.to_owned(),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            // Waiting is async: a blocking thread is not held while another process works.
            held = Some(conn);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl AdvisoryLock {
    /// Releases the lock now, rather than when dropped.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let name = std::mem::take(&mut self.name);
            let _ = tokio::task::spawn_blocking(move || unlock_named(&mut conn, &name)).await;
        }
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        // The connection goes back to the pool only once unlocked.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || unlock_named(&mut conn, &name));
            }
            Err(_) => unlock_named(&mut conn, &name),
        }
    }
}

/// Telling a lock timeout (SQLSTATE 55P03, `lock_not_available`) from other failures.
///
/// diesel reports SQLSTATEs it has no kind for as `Unknown`, with only the server's
/// message, which is in the server's language. So each process learns that message from
/// the server once, by provoking SQLSTATE 55P03 itself (a second session waits 1 ms for
/// an advisory lock the first holds), and recognises lock timeouts by it, in any locale.
/// Until it has learned it (or if learning failed), PostgreSQL's English wording counts.
pub mod lock_timeout {
    use std::sync::OnceLock;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    /// PostgreSQL's English message for SQLSTATE 55P03 under `lock_timeout`.
    const ENGLISH: &str = "canceling statement due to lock timeout";
    /// An advisory lock key of our own, for the probe only.
    const PROBE_KEY: i64 = 0x7765_6273_7276_0055;

    static LEARNED: OnceLock<String> = OnceLock::new();
    /// Learning is tried once per process.
    static TRIED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Whether `message` is the server's message for a lock timeout.
    pub fn is_lock_not_available(message: &str) -> bool {
        message == ENGLISH || LEARNED.get().is_some_and(|learned| learned == message)
    }

    /// How this process's server words a lock timeout, once learned.
    pub fn learned() -> Option<&'static str> {
        LEARNED.get().map(String::as_str)
    }

    /// Learns the wording with `holder` (a connection of ours) and a second session to
    /// `url`, unless it was learned already.
    pub(crate) fn learn_once(holder: &mut PgConnection, url: &str) {
        if TRIED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match provoke(holder, url) {
            Ok(message) => {
                let _ = LEARNED.set(message);
            }
            Err(err) => {
                tracing::debug!(error = %err, "could not learn the lock timeout wording");
            }
        }
    }

    fn provoke(holder: &mut PgConnection, url: &str) -> QueryResult<String> {
        let mut waiter = PgConnection::establish(url)
            .map_err(|err| diesel::result::Error::QueryBuilderError(Box::new(err)))?;
        waiter.batch_execute("SET lock_timeout = 1")?;
        holder.transaction(|holder| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(PROBE_KEY)
                .execute(holder)?;
            let waited = diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(PROBE_KEY)
                .execute(&mut waiter);
            match waited {
                Err(diesel::result::Error::DatabaseError(_, info)) => Ok(info.message().to_owned()),
                Err(other) => Err(other),
                Ok(_) => Err(diesel::result::Error::NotFound),
            }
        })
    }
}
