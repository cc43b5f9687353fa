//! What host agents write: registration and heartbeats.

use std::net::IpAddr;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Text;

use diesel::prelude::*;

use crate::prepared::Prepared;
use crate::schema::hardware::instance_info;
use domain::{InstanceName, InstanceStatus, Region, UnixMillis};

/// What a host agent reports about its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    pub memory_remaining_kb: i64,
    pub nanocpus_remaining: i64,
    pub gpu_vram_remaining_kb: i64,
}

/// A registration that was checked against its bootstrap secret.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Where clients reach the host; stored as text, `""` for none.
    pub ip: Option<IpAddr>,
    pub mandelbox_capacity: i64,
    pub metrics: Metrics,
    /// The digest of the host token handed back.
    pub host_token_sha256: String,
    pub now: UnixMillis,
}

/// An instance's `ip` column as an address: `""` until the host registers (and anything
/// else that is not an address, as older tools may have written) reads as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct StoredIp(pub Option<IpAddr>);

impl FromSql<Text, Pg> for StoredIp {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(Self(text.parse().ok()))
    }
}

impl From<StoredIp> for Option<IpAddr> {
    fn from(ip: StoredIp) -> Self {
        ip.0
    }
}

/// What registration needs of an instance waiting for its host.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct PendingHost {
    pub bootstrap_secret_hash: String,
    pub location: Region,
    pub cloud_provider_id: String,
}

/// The instance `name` if it is `PRE_CONNECTION` with a bootstrap hash: what its
/// registration is checked against.
pub fn pending_host(
    conn: &mut PgConnection,
    name: &InstanceName,
) -> QueryResult<Option<PendingHost>> {
    instance_info::table
        .find(name)
        .filter(instance_info::status.eq(InstanceStatus::PreConnection))
        .filter(instance_info::bootstrap_secret_hash.is_not_null())
        .select((
            instance_info::bootstrap_secret_hash.assume_not_null(),
            instance_info::location,
            instance_info::cloud_provider_id,
        ))
        .first(conn)
        .optional()
}

/// Makes the instance `ACTIVE` with what its host reported, if its bootstrap hash is
/// still `expected_hash`: the secret is consumed, so only one registration wins, even
/// when several race. Returns whether this one did.
pub fn register(
    conn: &mut PgConnection,
    name: &InstanceName,
    expected_hash: &str,
    registration: &Registration,
) -> QueryResult<bool> {
    diesel::update(
        instance_info::table
            .find(name)
            .filter(instance_info::status.eq(InstanceStatus::PreConnection))
            .filter(instance_info::terminating_utc_unix_ms.is_null())
            .filter(instance_info::bootstrap_secret_hash.eq(expected_hash)),
    )
    .set((
        instance_info::status.eq(InstanceStatus::Active),
        instance_info::ip.eq(registration.ip.map(|ip| ip.to_string()).unwrap_or_default()),
        instance_info::mandelbox_capacity.eq(registration.mandelbox_capacity),
        instance_info::memory_remaining_kb.eq(registration.metrics.memory_remaining_kb),
        instance_info::nanocpus_remaining.eq(registration.metrics.nanocpus_remaining),
        instance_info::gpu_vram_remaining_kb.eq(registration.metrics.gpu_vram_remaining_kb),
        instance_info::last_updated_utc_unix_ms.eq(registration.now),
        instance_info::bootstrap_secret_hash.eq(None::<String>),
        instance_info::host_token_sha256.eq(&registration.host_token_sha256),
    ))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// The status a (not dying) heartbeat leaves: an unresponsive host is `ACTIVE` again,
/// unless its instance is being terminated.
const REVIVED_STATUS: &str = "CASE WHEN status = 'HOST_SERVICE_UNRESPONSIVE' \
     AND terminating_utc_unix_ms IS NULL THEN 'ACTIVE' ELSE status END";

/// Records a heartbeat from the host holding the token with this digest, in one
/// statement (a HOT update unless the status changes: no indexed column changes). `dying`
/// marks the instance `DRAINING`, for good (not reclaimable); otherwise an instance found unresponsive becomes
/// `ACTIVE` again, with its mandelboxes (its silence is over), unless it is being
/// terminated. Returns the instance, or `None` for an unknown token.
pub fn heartbeat(
    conn: &mut PgConnection,
    host_token_sha256: &str,
    metrics: Metrics,
    dying: bool,
    now: UnixMillis,
) -> QueryResult<Option<InstanceName>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        instance_name: InstanceName,
    }
    // A dying host's drain is final: a consolidated instance is no longer reclaimable.
    let status = if dying {
        "'DRAINING', reclaimable = false"
    } else {
        REVIVED_STATUS
    };
    Prepared::default()
        .sql("UPDATE hardware.instance_info SET memory_remaining_kb = ")
        .bigint(metrics.memory_remaining_kb)
        .sql(", nanocpus_remaining = ")
        .bigint(metrics.nanocpus_remaining)
        .sql(", gpu_vram_remaining_kb = ")
        .bigint(metrics.gpu_vram_remaining_kb)
        .sql(", last_updated_utc_unix_ms = ")
        .bigint(now.as_millis())
        .sql(", status = ")
        .sql(status)
        .sql(" WHERE host_token_sha256 = ")
        .text(host_token_sha256)
        .sql(" RETURNING instance_name")
        .get_result::<Row>(conn)
        .optional()
        .map(|row| row.map(|row| row.instance_name))
}

/// One host's heartbeat, for [`heartbeats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    pub host_token_sha256: String,
    pub metrics: Metrics,
}

/// Records many (not dying) heartbeats in one statement, as [`heartbeat`] does each:
/// the instances heard from, with the digest each was found by (a digest no instance
/// holds is left out; one given twice counts once).
pub fn heartbeats(
    conn: &mut PgConnection,
    beats: &[Beat],
    now: UnixMillis,
) -> QueryResult<Vec<(String, InstanceName)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        digest: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        instance_name: InstanceName,
    }
    let column = |get: fn(&Metrics) -> i64| beats.iter().map(|b| get(&b.metrics)).collect();
    Prepared::default()
        .sql(
            "UPDATE hardware.instance_info AS i SET memory_remaining_kb = b.memory, \
             nanocpus_remaining = b.cpu, gpu_vram_remaining_kb = b.gpu, \
             last_updated_utc_unix_ms = ",
        )
        .bigint(now.as_millis())
        .sql(", status = ")
        .sql(REVIVED_STATUS)
        .sql(" FROM unnest(")
        .text_array(beats.iter().map(|b| b.host_token_sha256.as_str()).collect())
        .sql("::text[], ")
        .bigint_array(column(|m| m.memory_remaining_kb))
        .sql("::int8[], ")
        .bigint_array(column(|m| m.nanocpus_remaining))
        .sql("::int8[], ")
        .bigint_array(column(|m| m.gpu_vram_remaining_kb))
        .sql(
            "::int8[]) AS b (digest, memory, cpu, gpu) \
             WHERE i.host_token_sha256 = b.digest RETURNING b.digest, i.instance_name",
        )
        .load::<Row>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(|row| (row.digest, row.instance_name))
                .collect()
        })
}

/// The instance whose host holds the token with this digest.
pub fn by_host_token(
    conn: &mut PgConnection,
    host_token_sha256: &str,
) -> QueryResult<Option<InstanceName>> {
    instance_info::table
        .filter(instance_info::host_token_sha256.eq(host_token_sha256))
        .select(instance_info::instance_name)
        .first(conn)
        .optional()
}

/// Every host credential's digest (the instances whose hosts registered and were not
/// removed), for a set of known credentials kept in memory.
pub fn host_token_digests(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    instance_info::table
        .filter(instance_info::host_token_sha256.is_not_null())
        .select(instance_info::host_token_sha256.assume_not_null())
        .load(conn)
}
