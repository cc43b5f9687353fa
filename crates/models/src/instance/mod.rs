//! `hardware.instance_info`: one row per instance, and its queries by who asks them.
//!
//! - `assign`: taking a slot for a mandelbox;
//! - `host`: registration and heartbeats;
//! - `lifecycle`: unresponsive hosts and instances whose time is up;
//! - `fleet`: what fleet sizing reads and writes.

mod assign;
mod fleet;
mod host;
mod lifecycle;

use std::net::IpAddr;

pub use assign::*;
pub use fleet::*;
pub use host::*;
pub use lifecycle::*;

use diesel::prelude::*;

use crate::schema::hardware::instance_info;
use domain::{AmiId, CommitHash, InstanceName, InstanceStatus, Region, UnixMillis};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = instance_info, primary_key(instance_name))]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Instance {
    pub instance_name: InstanceName,
    pub cloud_provider_id: String,
    pub creation_time_utc_unix_ms: UnixMillis,
    pub memory_remaining_kb: i64,
    pub nanocpus_remaining: i64,
    pub gpu_vram_remaining_kb: i64,
    pub mandelbox_capacity: i64,
    /// [`UnixMillis::NEVER`] until the host's first heartbeat.
    pub last_updated_utc_unix_ms: UnixMillis,
    /// `None` until the host registers.
    #[diesel(deserialize_as = StoredIp)]
    pub ip: Option<IpAddr>,
    pub aws_ami_id: AmiId,
    pub location: Region,
    pub status: InstanceStatus,
    pub commit_hash: CommitHash,
    pub aws_instance_type: String,
    /// Kept equal to its rows in `mandelbox_info` by a trigger.
    pub mandelbox_count: i64,
}

/// An instance that was just launched: metrics, capacity, IP and heartbeat time take
/// their column defaults until the host registers.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = instance_info)]
pub struct NewInstance {
    pub instance_name: InstanceName,
    pub cloud_provider_id: String,
    pub creation_time_utc_unix_ms: UnixMillis,
    pub aws_ami_id: AmiId,
    pub location: Region,
    pub status: InstanceStatus,
    pub commit_hash: CommitHash,
    pub aws_instance_type: String,
    /// The argon2 hash of the secret the instance will register with.
    pub bootstrap_secret_hash: Option<String>,
}

pub fn insert(conn: &mut PgConnection, new: &NewInstance) -> QueryResult<Instance> {
    diesel::insert_into(instance_info::table)
        .values(new)
        .returning(Instance::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, name: &InstanceName) -> QueryResult<Option<Instance>> {
    instance_info::table
        .find(name)
        .select(Instance::as_select())
        .first(conn)
        .optional()
}
