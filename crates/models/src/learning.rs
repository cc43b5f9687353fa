//! What the adaptive scaling policy learns per region (SPEC §7): recent arrivals and
//! departures (`hardware.arrivals`, one row per mandelbox assigned, and
//! `hardware.departures`, one per mandelbox ended) and measured boot times
//! (`hardware.boot_samples`, launch to registration). Both are filled by triggers, so
//! every server process, and psql, contributes; the lifecycle job purges old rows.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::UnixMillis;

use crate::Region;
use crate::schema::hardware::boot_samples;

/// How many of a region's latest boots its boot time is learned from.
pub const BOOT_SAMPLES: i64 = 10;

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A region's recent traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Traffic {
    /// Mandelboxes assigned during the short span.
    #[diesel(sql_type = BigInt)]
    pub arrivals_short: i64,
    /// Mandelboxes assigned during the long span.
    #[diesel(sql_type = BigInt)]
    pub arrivals_long: i64,
    /// Mandelboxes ended during the long span.
    #[diesel(sql_type = BigInt)]
    pub departures_long: i64,
}

/// What `region` saw during the `short` and the `long` span before `now` (the long
/// span should be the longer).
pub fn traffic(
    conn: &mut PgConnection,
    region: &Region,
    now: UnixMillis,
    short: Duration,
    long: Duration,
) -> QueryResult<Traffic> {
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE at_utc_unix_ms > $2) AS arrivals_short, \
                count(*) AS arrivals_long, \
                (SELECT count(*) FROM hardware.departures \
                 WHERE region_name = $1 AND at_utc_unix_ms > $3) AS departures_long \
         FROM hardware.arrivals WHERE region_name = $1 AND at_utc_unix_ms > $3",
    )
    .bind::<Text, _>(region.as_str())
    .bind::<BigInt, _>(now.as_millis() - millis(short))
    .bind::<BigInt, _>(now.as_millis() - millis(long))
    .get_result(conn)
}

/// The median of the region's last [`BOOT_SAMPLES`] boot times; `None` before its first.
pub fn boot_time(conn: &mut PgConnection, region: &Region) -> QueryResult<Option<Duration>> {
    let mut samples: Vec<i64> = boot_samples::table
        .filter(boot_samples::region_name.eq(region.as_str()))
        .order(boot_samples::booted_utc_unix_ms.desc())
        .limit(BOOT_SAMPLES)
        .select(boot_samples::boot_ms)
        .load(conn)?;
    samples.sort_unstable();
    Ok(samples
        .get(samples.len() / 2)
        .map(|ms| Duration::from_millis(u64::try_from(*ms).unwrap_or(0))))
}

/// Forgets arrivals and departures older than `keep` before `now`, and boot samples
/// beyond each region's latest [`BOOT_SAMPLES`]; returns how many rows went.
pub fn purge(conn: &mut PgConnection, now: UnixMillis, keep: Duration) -> QueryResult<usize> {
    let before = now.as_millis() - millis(keep);
    let mut gone = 0;
    for table in ["arrivals", "departures"] {
        gone += diesel::sql_query(format!(
            "DELETE FROM hardware.{table} WHERE at_utc_unix_ms <= $1"
        ))
        .bind::<BigInt, _>(before)
        .execute(conn)?;
    }
    let boots = diesel::sql_query(
        "DELETE FROM hardware.boot_samples WHERE instance_name IN (\
           SELECT instance_name FROM (\
             SELECT instance_name, row_number() OVER (\
               PARTITION BY region_name ORDER BY booted_utc_unix_ms DESC) AS n \
             FROM hardware.boot_samples) ranked \
           WHERE n > $1)",
    )
    .bind::<BigInt, _>(BOOT_SAMPLES)
    .execute(conn)?;
    Ok(gone + boots)
}
