//! The provisioning trait (SPEC §8): what the scaling layer needs from a cloud. Backends
//! (AWS, the local simulation) implement it; tests mock it (`mock` feature).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::SecretString;

/// The cloud's id for an instance, e.g. `i-0abc…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudInstanceId(pub String);

impl fmt::Display for CloudInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The cloud region to start them in, e.g. `us-east-1`.
    pub region: String,
    /// The machine image, e.g. `ami-0abc…`.
    pub image: String,
    /// The `Name` tag: the instance name of `hardware.instance_info`.
    pub name: String,
    pub count: u32,
    pub instance_type: String,
    /// Handed to the instance at boot; carries the bootstrap secret, so it is secret.
    pub user_data: SecretString,
    /// Which deployment launches it (the fleet uses its database's deployment id):
    /// tagged [`OWNER_TAG`], so that [`CloudProvider::list_instances`] finds what this
    /// deployment started.
    pub owner: String,
}

/// The tag that carries [`LaunchRequest::owner`].
pub const OWNER_TAG: &str = "webserver-fleet";

/// An instance the cloud runs, or is starting, for an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudInstance {
    pub id: CloudInstanceId,
    /// Its `Name` tag.
    pub name: String,
    pub launched_at: SystemTime,
}

/// Why a cloud call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Worth retrying with backoff: insufficient capacity, throttling, a timeout.
    #[error("temporary cloud failure: {0}")]
    Temporary(String),
    /// Retrying will not help: bad image, no permission, invalid request.
    #[error("cloud failure: {0}")]
    Permanent(String),
}

impl CloudError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary(_))
    }
}

/// A cloud that starts and ends instances.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// Starts `request.count` instances and returns their ids.
    async fn start_instances(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<CloudInstanceId>, CloudError>;

    /// Terminates instances; ones already gone are not an error.
    async fn terminate_instances(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError>;

    /// The public IPs of instances, `None` for one that has none (yet). An id the cloud
    /// does not know is a permanent error.
    async fn instance_ips(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<HashMap<CloudInstanceId, Option<IpAddr>>, CloudError>;

    /// The instances launched for `owner` in `region` that are not terminated or on
    /// their way there (pending, running, stopping or stopped ones).
    async fn list_instances(
        &self,
        region: &str,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError>;

    /// Waits until every instance runs, or fails after `timeout`.
    async fn wait_until_running(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError>;

    /// Waits until every instance is terminated, or fails after `timeout`.
    async fn wait_until_terminated(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError>;
}
