//! `hardware.lifecycle_clock`: when the lifecycle passes ran, so that only silence while
//! the control plane was up counts against a host.

use std::time::Duration;

use diesel::prelude::*;

use crate::schema::hardware::lifecycle_clock;
use domain::UnixMillis;

/// Records a pass at `now` and returns since when passes have run without a gap longer
/// than `outage_gap`: the start of the control plane's current stretch of uptime. The
/// first pass ever, and the first after a gap, start a new stretch at `now`.
///
/// Call it in the pass's transaction, under the pass's lock: it locks the one row.
pub fn record_pass(
    conn: &mut PgConnection,
    now: UnixMillis,
    outage_gap: Duration,
) -> QueryResult<UnixMillis> {
    let last: Option<(UnixMillis, UnixMillis)> = lifecycle_clock::table
        .select((
            lifecycle_clock::last_pass_utc_unix_ms,
            lifecycle_clock::up_since_utc_unix_ms,
        ))
        .for_update()
        .first(conn)
        .optional()?;
    let up_since = match last {
        // Another process's clock may run a little ahead: that is no gap.
        Some((last_pass, up_since)) if now.minus(outage_gap) <= last_pass => up_since.min(now),
        _ => now,
    };
    diesel::insert_into(lifecycle_clock::table)
        .values((
            lifecycle_clock::last_pass_utc_unix_ms.eq(now),
            lifecycle_clock::up_since_utc_unix_ms.eq(up_since),
        ))
        .on_conflict(lifecycle_clock::one_row)
        .do_update()
        .set((
            lifecycle_clock::last_pass_utc_unix_ms.eq(now),
            lifecycle_clock::up_since_utc_unix_ms.eq(up_since),
        ))
        .execute(conn)?;
    Ok(up_since)
}

/// Since when the control plane has been up, as the last pass recorded it.
pub fn up_since(conn: &mut PgConnection) -> QueryResult<Option<UnixMillis>> {
    lifecycle_clock::table
        .select(lifecycle_clock::up_since_utc_unix_ms)
        .first(conn)
        .optional()
}
