//! `hardware.region_to_ami`: which image each region runs for each client commit.

use diesel::prelude::*;

use crate::schema::hardware::region_to_ami;
use domain::{AmiId, CommitHash, Region};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = region_to_ami, check_for_backend(diesel::pg::Pg))]
pub struct RegionAmi {
    pub region_name: Region,
    pub client_commit_hash: CommitHash,
    pub ami_id: AmiId,
    pub ami_active: bool,
    pub region_enabled: bool,
}

/// The distinct names of the enabled regions, sorted.
pub fn enabled_regions(conn: &mut PgConnection) -> QueryResult<Vec<Region>> {
    region_to_ami::table
        .filter(region_to_ami::region_enabled.eq(true))
        .select(region_to_ami::region_name)
        .distinct()
        .order(region_to_ami::region_name)
        .load(conn)
}

/// Inserts `row`, or does nothing when its (region, commit hash) is already there.
/// Returns whether a row was inserted.
pub fn insert_if_absent(conn: &mut PgConnection, row: &RegionAmi) -> QueryResult<bool> {
    diesel::insert_into(region_to_ami::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|inserted| inserted > 0)
}

/// Every row of `region`, active image first.
/// Every image row, by region then commit hash.
pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<RegionAmi>> {
    region_to_ami::table
        .order((
            region_to_ami::region_name,
            region_to_ami::client_commit_hash,
        ))
        .select(RegionAmi::as_select())
        .load(conn)
}

pub fn for_region(conn: &mut PgConnection, region: &Region) -> QueryResult<Vec<RegionAmi>> {
    region_to_ami::table
        .filter(region_to_ami::region_name.eq(region))
        .order((
            region_to_ami::ami_active.desc(),
            region_to_ami::client_commit_hash,
        ))
        .select(RegionAmi::as_select())
        .load(conn)
}

/// The region's active image, if it has one.
pub fn active(conn: &mut PgConnection, region: &Region) -> QueryResult<Option<RegionAmi>> {
    region_to_ami::table
        .filter(region_to_ami::region_name.eq(region))
        .filter(region_to_ami::ami_active.eq(true))
        .select(RegionAmi::as_select())
        .first(conn)
        .optional()
}

/// Makes `image` the only active image of `region`. Two statements, so the
/// one-active-per-region index never sees two at once.
pub fn activate(conn: &mut PgConnection, region: &Region, image: &AmiId) -> QueryResult<usize> {
    diesel::update(
        region_to_ami::table
            .filter(region_to_ami::region_name.eq(region))
            .filter(region_to_ami::ami_active.eq(true)),
    )
    .set(region_to_ami::ami_active.eq(false))
    .execute(conn)?;
    diesel::update(
        region_to_ami::table
            .filter(region_to_ami::region_name.eq(region))
            .filter(region_to_ami::ami_id.eq(image)),
    )
    .set(region_to_ami::ami_active.eq(true))
    .execute(conn)
}

/// Every distinct region with a row, enabled or not, sorted.
pub fn known_regions(conn: &mut PgConnection) -> QueryResult<Vec<Region>> {
    region_to_ami::table
        .select(region_to_ami::region_name)
        .distinct()
        .order(region_to_ami::region_name)
        .load(conn)
}

/// Removes the (region, commit hash) row if it is not active: the undo of an upgrade
/// that failed before its swap.
pub fn delete_inactive(
    conn: &mut PgConnection,
    region: &Region,
    commit_hash: &CommitHash,
) -> QueryResult<usize> {
    diesel::delete(
        region_to_ami::table
            .filter(region_to_ami::region_name.eq(region))
            .filter(region_to_ami::client_commit_hash.eq(commit_hash))
            .filter(region_to_ami::ami_active.eq(false)),
    )
    .execute(conn)
}

/// The enabled regions, kept in memory: read again when a notification says
/// `hardware.region_to_ami` changed (from any process, or psql), and at least every
/// `max_age` as a safety net. Concurrent readers of a stale copy share one read.
pub struct EnabledRegions {
    db: crate::Db,
    changes: tokio::sync::watch::Receiver<u64>,
    max_age: std::time::Duration,
    cached: tokio::sync::RwLock<Option<Cached>>,
    reload: tokio::sync::Mutex<()>,
}

struct Cached {
    regions: std::sync::Arc<Vec<Region>>,
    /// The notification counter when they were read.
    seen: u64,
    at: std::time::Instant,
}

impl EnabledRegions {
    pub fn new(
        db: crate::Db,
        notifications: &crate::notify::Notifications,
        max_age: std::time::Duration,
    ) -> Self {
        Self {
            db,
            changes: notifications.watch(crate::notify::Channel::Regions),
            max_age,
            cached: tokio::sync::RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The enabled regions, sorted.
    pub async fn get(&self) -> Result<std::sync::Arc<Vec<Region>>, crate::DbError> {
        if let Some(regions) = self.fresh().await {
            return Ok(regions);
        }
        let _one_read_at_a_time = self.reload.lock().await;
        if let Some(regions) = self.fresh().await {
            return Ok(regions);
        }
        // Read the counter first: a change committed after it is seen next time.
        let seen = *self.changes.borrow();
        let regions = std::sync::Arc::new(self.db.run(|conn| Ok(enabled_regions(conn)?)).await?);
        *self.cached.write().await = Some(Cached {
            regions: regions.clone(),
            seen,
            at: std::time::Instant::now(),
        });
        Ok(regions)
    }

    async fn fresh(&self) -> Option<std::sync::Arc<Vec<Region>>> {
        let cached = self.cached.read().await;
        cached
            .as_ref()
            .filter(|c| c.seen == *self.changes.borrow() && c.at.elapsed() < self.max_age)
            .map(|c| c.regions.clone())
    }
}
