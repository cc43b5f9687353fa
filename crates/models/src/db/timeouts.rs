//! Telling the server's timeouts from other failures: a lock timeout (SQLSTATE 55P03,
//! `lock_not_available`) and a statement timeout (57014, `query_canceled`).
//!
//! diesel reports SQLSTATEs it has no kind for as `Unknown`, with only the server's
//! message, which is in the server's language. So each process learns both messages
//! from the server once, by provoking them itself (a second session waits 1 ms for an
//! advisory lock the first holds; a 1 ms statement timeout cuts a sleep), and
//! recognises the timeouts by them, in any locale. Until it has learned them (or if
//! learning failed), PostgreSQL's English wording counts.
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// PostgreSQL's English messages under `lock_timeout` and `statement_timeout`.
const ENGLISH_LOCK: &str = "canceling statement due to lock timeout";
const ENGLISH_STATEMENT: &str = "canceling statement due to statement timeout";
/// An advisory lock key of our own, for the probe only.
const PROBE_KEY: i64 = 0x7765_6273_7276_0055;

/// The messages learned: (lock timeout, statement timeout).
static LEARNED: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
/// Learning is tried once per process.
static TRIED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `message` is the server's message for a lock timeout.
pub fn is_lock_not_available(message: &str) -> bool {
    message == ENGLISH_LOCK || learned().is_some_and(|learned| learned == message)
}

/// Whether `message` is the server's message for a statement timeout.
pub fn is_statement_timeout(message: &str) -> bool {
    message == ENGLISH_STATEMENT
        || LEARNED
            .get()
            .and_then(|(_, statement)| statement.as_deref())
            .is_some_and(|learned| learned == message)
}

/// How this process's server words a lock timeout, once learned.
pub fn learned() -> Option<&'static str> {
    LEARNED.get().and_then(|(lock, _)| lock.as_deref())
}

/// Learns the wordings with `holder` (a connection of ours) and a second session to
/// `url`, unless they were learned already.
pub(crate) fn learn_once(holder: &mut PgConnection, url: &str) {
    if TRIED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let lock = provoke_lock_timeout(holder, url)
        .inspect_err(
            |err| tracing::debug!(error = %err, "could not learn the lock timeout wording"),
        )
        .ok();
    let statement = provoke_statement_timeout(holder)
        .inspect_err(|err| {
            tracing::debug!(error = %err, "could not learn the statement timeout wording");
        })
        .ok();
    let _ = LEARNED.set((lock, statement));
}

fn provoke_lock_timeout(holder: &mut PgConnection, url: &str) -> QueryResult<String> {
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
        message_of(waited)
    })
}

fn provoke_statement_timeout(holder: &mut PgConnection) -> QueryResult<String> {
    let mut message = Err(diesel::result::Error::NotFound);
    let _ = holder.transaction(|holder| {
        holder.batch_execute("SET LOCAL statement_timeout = 1")?;
        message = message_of(diesel::sql_query("SELECT pg_sleep(0.2)").execute(holder));
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    });
    message
}

fn message_of(outcome: QueryResult<usize>) -> QueryResult<String> {
    match outcome {
        Err(diesel::result::Error::DatabaseError(_, info)) => Ok(info.message().to_owned()),
        Err(other) => Err(other),
        Ok(_) => Err(diesel::result::Error::NotFound),
    }
}
