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

pub mod lock_timeout;
mod locks;

pub use locks::{AdvisoryLock, try_lock_for_transaction};
