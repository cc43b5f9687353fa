//! The connection pool, and running database work off the async executor.

use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had: the server is down, unreachable or refusing us.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Waited too long for rows other transactions hold.
    #[error("database busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Query(diesel::result::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            // The server went away under a pooled connection.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            // SQLSTATE 55P03, which diesel does not name.
            Error::DatabaseError(_, info)
                if info
                    .message()
                    .starts_with("canceling statement due to lock timeout") =>
            {
                Self::Busy(info.message().to_owned())
            }
            other => Self::Query(other),
        }
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
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            synchronous_commit: true,
        }
    }
}

/// Sets `lock_timeout` once per connection, rather than once per transaction.
#[derive(Debug)]
struct SessionSettings {
    lock_timeout: Duration,
    synchronous_commit: bool,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        let millis = self.lock_timeout.as_millis();
        let commit = if self.synchronous_commit { "on" } else { "off" };
        conn.batch_execute(&format!(
            "SET lock_timeout = {millis}; SET synchronous_commit = {commit}"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A cheaply cloneable handle to the pool. Every query runs on tokio's blocking
/// thread pool so that diesel's synchronous calls never stall the async executor.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's manager holds the database URL, which may carry a password.
        f.debug_struct("Db")
            .field("state", &self.pool.state())
            .finish()
    }
}

impl Db {
    /// A pool for `database_url`. No connection is opened yet: a server can start,
    /// and answer `/readyz` with 503, while the database is down.
    pub fn new(database_url: &str, options: PoolOptions) -> Self {
        let pool = Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(0))
            .connection_timeout(options.connection_timeout)
            .test_on_check_out(false)
            .connection_customizer(Box::new(SessionSettings {
                lock_timeout: options.lock_timeout,
                synchronous_commit: options.synchronous_commit,
            }))
            .build_unchecked(ConnectionManager::new(database_url));
        Self { pool }
    }

    /// A connection for synchronous callers (command-line tools, tests).
    pub fn get(&self) -> Result<PgPooled, DbError> {
        self.pool
            .get()
            .map_err(|err| DbError::Unavailable(err.to_string()))
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|err| DbError::Unavailable(err.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|err| DbError::Task(err.to_string()))?
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

/// A session-level advisory lock, held on a pooled connection of its own until dropped.
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
    /// taken; `wait` zero only tries once.
    pub async fn advisory_lock(
        &self,
        name: &str,
        wait: Duration,
    ) -> Result<Option<AdvisoryLock>, DbError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut held = None;
        loop {
            let pool = self.pool.clone();
            let key = name.to_owned();
            let (conn, locked) = tokio::task::spawn_blocking(move || {
                let mut conn = match held {
                    Some(conn) => conn,
                    None => pool
                        .get()
                        .map_err(|err| DbError::Unavailable(err.to_string()))?,
                };
                let locked = try_lock_named(&mut conn, &key)?;
                Ok::<_, DbError>((conn, locked))
            })
            .await
            .map_err(|err| DbError::Task(err.to_string()))??;
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
