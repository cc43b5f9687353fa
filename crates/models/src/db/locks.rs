//! Advisory locks: transaction-scoped ones, and session-scoped ones held on the lock
//! pool across cloud calls.

use std::time::Duration;

use diesel::PgConnection;

use super::health::Pool;
use super::{Db, DbError, NoAnswer, PgPooled};

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
        let Some(pool) = self.locks.clone() else {
            return Err(DbError::Unavailable(
                "this pool was built without lock connections".into(),
            ));
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut held = None;
        loop {
            let pool = pool.clone();
            let key = name.to_owned();
            let checkout_wait = self.checkout_wait;
            let task = tokio::task::spawn_blocking(move || {
                let mut conn = match held {
                    Some(conn) => conn,
                    None => pool.get_timeout(checkout_wait)?,
                };
                let locked = try_lock_named(&mut conn, &key)?;
                Ok::<_, DbError>((conn, locked))
            });
            let attempt = match tokio::time::timeout(self.deadline, task).await {
                Ok(joined) => joined.map_err(DbError::Task).and_then(|result| result),
                Err(_) => Err(DbError::Unavailable(Box::new(NoAnswer(self.deadline)))),
            };
            self.health.observe(Pool::Locks, &attempt);
            let (conn, locked) = attempt?;
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
