//! How the pools make, check and discard connections.
//!
//! r2d2 asks its manager whether a connection it gets back is broken, and diesel's own
//! manager says so only for a connection left inside a transaction: a connection whose
//! server went away (a restart, `pg_terminate_backend`, a failover) between two
//! statements went back into the pool, and every later caller got the same dead
//! connection and a 503, for as long as the process lived. This manager watches every
//! statement of its connections ([`Liveness`], a diesel instrumentation): a connection
//! that lost its server is discarded when it comes back, and the pool opens another.
//! Once one connection of a pool is found dead the others are suspect too (they died in
//! the same event): each is pinged before it is handed out again, as is any connection
//! idle for longer than [`Manager::idle_check`].
//!
//! Connections are opened with a connect timeout and TCP keepalives, so that neither a
//! connection attempt nor a connection whose peer vanished can hold a thread forever, and
//! with each pool's session settings (lock and statement timeouts, commit durability).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{Error, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as QueryError};
use diesel::{Connection, PgConnection};

use super::timeouts;

/// What each connection of a pool is set to once opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSettings {
    /// `lock_timeout`; zero waits forever.
    pub lock_timeout: Duration,
    /// `statement_timeout`; zero lets a statement run forever.
    pub statement_timeout: Duration,
    pub synchronous_commit: bool,
}

/// The pools' connection manager: opens connections with their session settings, pings
/// suspect ones as they are handed out, and discards the ones whose server went away.
pub struct Manager {
    /// The database URL with the connection parameters added (see [`connection_url`]).
    url: String,
    session: SessionSettings,
    /// Goes up whenever a connection of this pool is found dead.
    deaths: Arc<AtomicU64>,
    /// Connections idle longer than this are pinged before they are handed out.
    idle_check: Duration,
}

impl Manager {
    /// `deaths` counts the connections found dead.
    pub(crate) fn new(
        url: String,
        session: SessionSettings,
        idle_check: Duration,
        deaths: Arc<AtomicU64>,
    ) -> Self {
        Self {
            url,
            session,
            deaths,
            idle_check,
        }
    }

    fn deaths(&self) -> u64 {
        self.deaths.load(Ordering::Relaxed)
    }
}

impl ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = Error;

    fn connect(&self) -> Result<PgConnection, Error> {
        let mut conn = PgConnection::establish(&self.url).map_err(Error::ConnectionError)?;
        conn.set_instrumentation(Liveness::new(self.deaths.clone()));
        let SessionSettings {
            lock_timeout,
            statement_timeout,
            synchronous_commit,
        } = self.session;
        conn.batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}; SET synchronous_commit = {}",
            lock_timeout.as_millis(),
            statement_timeout.as_millis(),
            if synchronous_commit { "on" } else { "off" },
        ))
        .map_err(Error::QueryError)?;
        timeouts::learn_once(&mut conn, &self.url);
        Ok(conn)
    }

    /// Called as each connection is checked out: free for a connection in use moments
    /// ago while no other died, a `SELECT 1` otherwise.
    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Error> {
        let deaths = self.deaths();
        let Some(state) = liveness(conn) else {
            return conn.ping().map_err(Error::QueryError);
        };
        if state.dead {
            return Err(Error::QueryError(QueryError::BrokenTransactionManager));
        }
        if state.checked_at_deaths == deaths && state.last_ok.elapsed() < self.idle_check {
            return Ok(());
        }
        conn.batch_execute("SELECT 1").map_err(Error::QueryError)?;
        if let Some(state) = liveness(conn) {
            state.checked_at_deaths = deaths;
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        std::thread::panicking()
            || conn.is_broken()
            || liveness(conn).is_none_or(|liveness| liveness.dead)
    }
}

fn liveness(conn: &mut PgConnection) -> Option<&mut Liveness> {
    conn.instrumentation().downcast_mut::<Liveness>()
}

/// Whether `err` means the connection itself is gone (not just the statement failed).
pub(crate) fn is_connection_lost(err: &QueryError) -> bool {
    matches!(
        err,
        QueryError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | QueryError::BrokenTransactionManager
    )
}

/// Watches every statement of one connection: when it last worked, and whether the
/// server is gone from under it.
struct Liveness {
    dead: bool,
    last_ok: Instant,
    /// The pool's count of deaths when this connection was last checked.
    checked_at_deaths: u64,
    deaths: Arc<AtomicU64>,
}

impl Liveness {
    fn new(deaths: Arc<AtomicU64>) -> Self {
        Self {
            dead: false,
            last_ok: Instant::now(),
            checked_at_deaths: deaths.load(Ordering::Relaxed),
            deaths,
        }
    }
}

impl Instrumentation for Liveness {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            match error {
                None => self.last_ok = Instant::now(),
                Some(err) if is_connection_lost(err) && !self.dead => {
                    self.dead = true;
                    self.deaths.fetch_add(1, Ordering::Relaxed);
                }
                Some(_) => {}
            }
        }
    }
}

/// libpq parameters every connection of ours gets, unless the URL sets them already:
/// a connect timeout, TCP keepalives and a TCP user timeout (an unanswered connection
/// fails within seconds instead of the kernel's two hours), and the name it shows in
/// `pg_stat_activity`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionParams {
    /// libpq's `connect_timeout` (libpq waits at least 2 s whatever is asked).
    pub connect_timeout: Duration,
    /// Idle time before the first keepalive, between them, and for unacknowledged data.
    pub keepalive: Duration,
}

impl Default for ConnectionParams {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            keepalive: Duration::from_secs(5),
        }
    }
}

/// `url` with [`ConnectionParams`] and `application_name` added where it does not set
/// them. Works for `postgres://` URLs and for `key=value` connection strings.
pub fn connection_url(url: &str, params: ConnectionParams, application_name: &str) -> String {
    let keepalive = params.keepalive.as_secs().max(1);
    let wanted = [
        (
            "connect_timeout",
            params.connect_timeout.as_secs().max(2).to_string(),
        ),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", keepalive.to_string()),
        ("keepalives_interval", keepalive.to_string()),
        ("keepalives_count", "3".to_owned()),
        // Data unacknowledged for this long ends the connection.
        ("tcp_user_timeout", (keepalive * 3 * 1000).to_string()),
        ("application_name", application_name.to_owned()),
    ];
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, query) = match (is_url, url.split_once('?')) {
        (true, Some((base, query))) => (base, query),
        _ => (url, ""),
    };
    let present = |key: &str| {
        if is_url {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(key))
        } else {
            url.split_whitespace()
                .any(|pair| pair.split('=').next() == Some(key))
        }
    };
    let added: Vec<String> = wanted
        .iter()
        .filter(|(key, _)| !present(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if added.is_empty() {
        return url.to_owned();
    }
    if is_url {
        let separator = if query.is_empty() { "" } else { "&" };
        format!("{base}?{query}{separator}{}", added.join("&"))
    } else {
        format!("{url} {}", added.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_added_to_urls_without_them() {
        let url = connection_url(
            "postgres://u:p@h:5432/db",
            ConnectionParams::default(),
            "webserver-requests",
        );
        assert_eq!(
            url,
            "postgres://u:p@h:5432/db?connect_timeout=2&keepalives=1&keepalives_idle=5\
             &keepalives_interval=5&keepalives_count=3&tcp_user_timeout=15000\
             &application_name=webserver-requests"
        );
    }

    #[test]
    fn parameters_the_url_sets_are_kept() {
        let url = connection_url(
            "postgresql://h/db?sslmode=disable&connect_timeout=9&application_name=mine",
            ConnectionParams::default(),
            "webserver-requests",
        );
        assert!(url.starts_with(
            "postgresql://h/db?sslmode=disable&connect_timeout=9&application_name=mine&keepalives=1"
        ));
        assert!(!url.contains("connect_timeout=2"));
        assert!(!url.contains("webserver-requests"));
    }

    #[test]
    fn key_value_strings_get_them_too() {
        let url = connection_url(
            "host=h dbname=db keepalives=0",
            ConnectionParams::default(),
            "x",
        );
        assert!(url.starts_with("host=h dbname=db keepalives=0 connect_timeout=2 "));
        assert!(!url.contains("keepalives=1"));
        assert!(url.ends_with("application_name=x"));
    }
}
