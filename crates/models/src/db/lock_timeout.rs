//! Telling a lock timeout (SQLSTATE 55P03, `lock_not_available`) from other failures.
//!
//! diesel reports SQLSTATEs it has no kind for as `Unknown`, with only the server's
//! message, which is in the server's language. So each process learns that message from
//! the server once, by provoking SQLSTATE 55P03 itself (a second session waits 1 ms for
//! an advisory lock the first holds), and recognises lock timeouts by it, in any locale.
//! Until it has learned it (or if learning failed), PostgreSQL's English wording counts.
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
