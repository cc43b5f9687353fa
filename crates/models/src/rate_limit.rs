//! `hardware.rate_limit_windows`: requests per client and minute, shared by every
//! server process, for a sliding-window limit.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::prepared::Prepared;
use crate::schema::hardware::rate_limit_windows;
use domain::UnixMillis;

/// A window's length.
pub const WINDOW_MILLIS: i64 = 60_000;

/// A client's hits in the current window (this one included) and the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hits {
    pub current: i64,
    pub previous: i64,
    /// How far into the current window `now` is.
    pub elapsed_millis: i64,
}

impl Hits {
    /// The sliding-window estimate of the hits in the last minute: the previous
    /// window's hits weighted by how much of it the last minute still covers.
    pub fn in_last_minute(&self) -> f64 {
        let overlap = (WINDOW_MILLIS - self.elapsed_millis) as f64 / WINDOW_MILLIS as f64;
        self.previous as f64 * overlap + self.current as f64
    }
}

/// Counts a hit for `client` at `now`, in one statement.
pub fn hit(conn: &mut PgConnection, client: &str, now: UnixMillis) -> QueryResult<Hits> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        current: i64,
        #[diesel(sql_type = BigInt)]
        previous: i64,
    }
    let now = now.as_millis();
    let start = now - now.rem_euclid(WINDOW_MILLIS);
    // The previous window is never written by this statement, so its snapshot sees it
    // as committed.
    let row: Row = Prepared::default()
        .sql(
            "WITH hit AS (
                 INSERT INTO hardware.rate_limit_windows (client, window_start, hits)
                 VALUES (",
        )
        .text(client)
        .sql(", ")
        .bigint(start)
        .sql(
            ", 1)
                 ON CONFLICT (client, window_start)
                 DO UPDATE SET hits = hardware.rate_limit_windows.hits + 1
                 RETURNING hits
             )
             SELECT (SELECT hits FROM hit)::bigint AS current,
                    coalesce((SELECT hits FROM hardware.rate_limit_windows
                              WHERE client = ",
        )
        .text(client)
        .sql(" AND window_start = ")
        .bigint(start - WINDOW_MILLIS)
        .sql("), 0)::bigint AS previous")
        .get_result(conn)?;
    Ok(Hits {
        current: row.current,
        previous: row.previous,
        elapsed_millis: now - start,
    })
}

/// Forgets windows that no longer count at `now` (all but the current and the previous
/// one); returns how many.
pub fn purge_stale(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<usize> {
    let now = now.as_millis();
    let previous_start = now - now.rem_euclid(WINDOW_MILLIS) - WINDOW_MILLIS;
    diesel::delete(
        rate_limit_windows::table.filter(rate_limit_windows::window_start.lt(previous_start)),
    )
    .execute(conn)
}
