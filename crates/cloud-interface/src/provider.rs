//! The provisioning trait (SPEC §8): what the scaling layer needs from a cloud. Backends
//! (AWS, the local simulation) implement it; tests mock it (`mock` feature).

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use async_trait::async_trait;
use domain::{AmiId, InstanceName, Region};
use secrecy::SecretString;

/// An instance's id as this system stores it (`cloud_provider_id`): the backend's prefix
/// and the cloud's own id, e.g. `aws-i-0abc…`. Only the backend that made an id knows its
/// cloud's part ([`CloudInstanceId::native`]); everyone else keeps it whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudInstanceId(String);

impl CloudInstanceId {
    /// The id of the cloud's instance `native`, for a backend whose ids start with `prefix`.
    pub fn new(prefix: &str, native: &str) -> Self {
        Self(format!("{prefix}{native}"))
    }

    /// An id as stored, whoever made it.
    pub fn stored(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The cloud's own id, if this id was made by a backend whose ids start with `prefix`.
    pub fn native(&self, prefix: &str) -> Option<&str> {
        self.0.strip_prefix(prefix).filter(|id| !id.is_empty())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CloudInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names one intended instance across the retries of its launch: a backend started again
/// with a token it has seen returns the instance it started then, instead of starting
/// another (EC2's client token). A timeout after the cloud started an instance must not
/// start a second paid one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaunchToken(String);

impl LaunchToken {
    /// A fresh token: one per intended instance.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// At most 64 ASCII characters (EC2's limit).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LaunchToken {
    fn default() -> Self {
        Self::new()
    }
}

/// What to start: one instance.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub region: Region,
    pub image: AmiId,
    /// The `Name` tag: the instance name of `hardware.instance_info`.
    pub name: InstanceName,
    pub instance_type: String,
    /// Handed to the instance at boot; carries the bootstrap secret, so it is secret.
    pub user_data: SecretString,
    /// Which deployment launches it (the fleet uses its database's deployment id):
    /// tagged [`OWNER_TAG`], so that [`CloudProvider::list_instances`] finds what this
    /// deployment started.
    pub owner: String,
    /// Reused by every retry of this launch.
    pub launch_token: LaunchToken,
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

/// Why a cloud call failed, with the backend's error as the source.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Worth retrying with backoff: insufficient capacity, throttling, a timeout.
    #[error("temporary cloud failure: {what}")]
    Temporary {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Retrying will not help: bad image, no permission, invalid request.
    #[error("cloud failure: {what}")]
    Permanent {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl CloudError {
    /// A temporary failure described by `what`, caused by `source` if given.
    pub fn temporary(
        what: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Temporary {
            what: what.into(),
            source,
        }
    }

    /// A permanent failure described by `what`, caused by `source` if given.
    pub fn permanent(
        what: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Permanent {
            what: what.into(),
            source,
        }
    }

    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary { .. })
    }
}

/// A cloud that starts and ends instances.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// Starts the instance `request` describes and returns its id, or, for a
    /// [`LaunchToken`] it has seen, the id of the instance it started for it then.
    async fn start_instance(&self, request: &LaunchRequest) -> Result<CloudInstanceId, CloudError>;

    /// Terminates instances. Ones already gone, ones the cloud does not know, and ids
    /// another backend made are not an error: there is nothing of this cloud's to end.
    async fn terminate_instances(
        &self,
        region: &Region,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError>;

    /// The instances launched for `owner` in `region` that are not terminated or on
    /// their way there (pending, running, stopping or stopped ones).
    async fn list_instances(
        &self,
        region: &Region,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError>;

    /// How many mandelboxes an instance of `instance_type` this backend launches holds,
    /// so that a launch counts what it brings before its host registers (the host's own
    /// `mandelbox_capacity` wins then); `None` when this backend cannot say.
    fn mandelbox_capacity(&self, instance_type: &str) -> Option<i64>;

    /// The addresses the cloud gives instance `id` in `region` (public ones first), so
    /// that a registering host's address can be checked against them; `Ok(None)` when
    /// this backend cannot say, or does not know the id (the default).
    async fn instance_addresses(
        &self,
        region: &Region,
        id: &CloudInstanceId,
    ) -> Result<Option<Vec<IpAddr>>, CloudError> {
        let _ = (region, id);
        Ok(None)
    }
}
