//! The connection pools, and running database work off the async executor.
//!
//! Three promises hold whatever the database does (restarts, failovers, killed
//! connections, a network that drops packets): a dead connection is never handed out
//! twice (`manager`); no call waits longer than its deadline, connection included
//! ([`PoolOptions::deadline`]); and a pool whose server answers again has a working
//! connection within about a second ([`Db::keep_warm`], r2d2's reconnection at most half
//! a second apart).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{Pool, PooledConnection};

pub use manager::{ConnectionParams, connection_url};

pub use manager::Manager;
use manager::SessionSettings;

pub type PgPool = Pool<Manager>;
pub type PgPooled = PooledConnection<Manager>;

/// Why a database call failed. `Display` says what failed; the source says why.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had, or it was lost, or the database did not answer within
    /// the call's deadline: the server is down, unreachable or refusing us.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Waited longer than `lock_timeout` for rows or locks other transactions hold, or a
    /// statement ran past `statement_timeout`.
    #[error("database busy: a lock or a statement ran past its timeout")]
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
        if manager::is_connection_lost(&err) {
            // The server went away under a pooled connection.
            return Self::Unavailable(Box::new(err));
        }
        match &err {
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if timeouts::is_lock_not_available(info.message())
                    || timeouts::is_statement_timeout(info.message()) =>
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

/// The database gave no answer within a call's deadline.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the database within {0:?}")]
pub struct NoAnswer(pub Duration);

/// Pool sizing and per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a caller waits for a connection before the database counts as unavailable.
    pub connection_timeout: Duration,
    /// How long a statement may wait for a lock before failing with [`DbError::Busy`];
    /// zero waits forever.
    pub lock_timeout: Duration,
    /// How long a statement may run before the server cancels it ([`DbError::Busy`]);
    /// zero lets it run forever.
    pub statement_timeout: Duration,
    /// Whether commits wait for the write-ahead log to reach disk. Off only for
    /// loss-tolerant writes (heartbeats): a crash may forget the last fraction of a
    /// second of them, never corrupt anything.
    pub synchronous_commit: bool,
    /// Connections kept apart for session advisory locks ([`Db::advisory_lock`]), which
    /// are held across cloud calls: work under such a lock never waits for, nor holds,
    /// a connection of the main pool while it waits on the cloud. Zero: no lock pool
    /// (taking an advisory lock then fails).
    pub lock_connections: u32,
    /// Connect timeout and keepalives of every connection.
    pub connect: ConnectionParams,
    /// The pool's name in `pg_stat_activity` (`application_name`, unless the URL sets
    /// one): `webserver-<name>`, and `webserver-<name>-locks` for its lock pool.
    pub name: &'static str,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            synchronous_commit: true,
            lock_connections: 8,
            connect: ConnectionParams::default(),
            name: "requests",
        }
    }
}

impl PoolOptions {
    /// The longest a call through [`Db::run`] waits for its answer: a connection, then
    /// the statement timeout, and a second for the answer to travel. Past it the caller
    /// is told the database is unavailable; the work itself may still finish.
    pub fn deadline(&self) -> Duration {
        let statement = if self.statement_timeout.is_zero() {
            Duration::from_secs(60)
        } else {
            self.statement_timeout
        };
        self.connection_timeout + statement + Duration::from_secs(1)
    }
}

/// Connections idle longer than this are pinged before they are handed out.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// r2d2 retries a failed connection attempt after at most half of this.
const RECONNECT: Duration = Duration::from_secs(1);

fn new_pool(
    url: String,
    max_size: u32,
    session: SessionSettings,
    deaths: Arc<AtomicU64>,
) -> PgPool {
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        // Only the pace of reconnection: callers wait with `get_timeout`.
        .connection_timeout(RECONNECT)
        // Cheap: a ping only for connections idle a while, or suspect (see `manager`).
        .test_on_check_out(true)
        .build_unchecked(Manager::new(url, session, IDLE_CHECK, deaths))
}

/// A cheaply cloneable handle to the pool. Every query runs on tokio's blocking
/// thread pool so that diesel's synchronous calls never stall the async executor.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    /// For session advisory locks only.
    locks: Option<PgPool>,
    /// How long a caller waits for a connection.
    checkout_wait: Duration,
    /// How long a call waits for its answer, connection included.
    deadline: Duration,
    health: Arc<health::Health>,
    /// Connections of the request pool found dead.
    deaths: Arc<AtomicU64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's manager holds the database URL, which may carry a password.
        f.debug_struct("Db")
            .field("state", &self.pool.state())
            .field("locks", &self.locks.as_ref().map(Pool::state))
            .finish()
    }
}

impl Db {
    /// A pool for `database_url`. No connection is opened yet: a server can start,
    /// and answer `/readyz` with 503, while the database is down.
    pub fn new(database_url: &str, options: PoolOptions) -> Self {
        let session = SessionSettings {
            lock_timeout: options.lock_timeout,
            statement_timeout: options.statement_timeout,
            synchronous_commit: options.synchronous_commit,
        };
        let url = |suffix: &str| {
            connection_url(
                database_url,
                options.connect,
                &format!("webserver-{}{suffix}", options.name),
            )
        };
        let deaths = Arc::<AtomicU64>::default();
        let pool = new_pool(url(""), options.max_size, session, deaths.clone());
        // Only advisory locks are taken there, and waiting for them is async.
        let locks = (options.lock_connections > 0).then(|| {
            new_pool(
                url("-locks"),
                options.lock_connections,
                SessionSettings {
                    lock_timeout: Duration::ZERO,
                    ..session
                },
                Arc::default(),
            )
        });
        Self {
            pool,
            locks,
            checkout_wait: options.connection_timeout,
            deadline: options.deadline(),
            health: Arc::default(),
            deaths,
        }
    }

    /// A connection for synchronous callers (command-line tools, tests).
    pub fn get(&self) -> Result<PgPooled, DbError> {
        Ok(self.pool.get_timeout(self.checkout_wait)?)
    }

    /// Runs `work` with a pooled connection on the blocking thread pool. The answer
    /// comes within the pool's deadline ([`PoolOptions::deadline`]), or
    /// [`DbError::Unavailable`].
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let wait = self.checkout_wait;
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get_timeout(wait)?;
            work(&mut conn)
        });
        let result = match tokio::time::timeout(self.deadline, task).await {
            Ok(joined) => joined.map_err(DbError::Task).and_then(|result| result),
            Err(_) => Err(DbError::Unavailable(Box::new(NoAnswer(self.deadline)))),
        };
        self.health.observe(health::Pool::Requests, &result);
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

    /// How many connections of the request pool were found dead so far (each was
    /// discarded, and replaced when needed).
    pub fn dead_connections(&self) -> u64 {
        self.deaths.load(std::sync::atomic::Ordering::Relaxed)
    }
}

mod health;
mod locks;
mod manager;
pub mod timeouts;

pub use health::{NotReady, Readiness};
pub use locks::{AdvisoryLock, try_lock_for_transaction};
