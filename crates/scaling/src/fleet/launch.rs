//! Starting instances and recording them.
//!
//! Each intended instance gets one launch token, reused by every retry of its launch, so
//! a retry after a timeout (the cloud started it, the answer was lost) finds the instance
//! the first try started instead of paying for a second one. Its row is written only
//! once the cloud has started it; if the row cannot be written, the instance is ended.

use cloud_interface::{BootConfig, CloudInstanceId, LaunchRequest, LaunchToken};
use models::instance::{self, NewInstance};
use models::region_to_ami::RegionAmi;
use models::{CommitHash, InstanceName, InstanceStatus, Region, UnixMillis};

use futures_util::StreamExt;

use super::{Fleet, FleetError};

/// How many launches of one capacity check run at once.
const CONCURRENT_LAUNCHES: usize = 8;

/// `<region>-<branch>-<commit7>-uid-<10 [a-z0-9]>`, the branch reduced to at most 32
/// letters, digits and hyphens.
fn instance_name(
    region: &Region,
    branch: &str,
    commit: &CommitHash,
) -> Result<InstanceName, FleetError> {
    let commit7: String = commit.as_str().chars().take(7).collect();
    let uid = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let branch: String = branch
        .chars()
        .take(32)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    InstanceName::parse(&format!("{region}-{branch}-{commit7}-uid-{uid}")).map_err(FleetError::Name)
}

impl Fleet {
    /// Launches `count` instances of `row`'s image for its commit hash, up to eight at
    /// a time (a burst's instances boot together instead of
    /// one cloud call after another), and records each as `PRE_CONNECTION` once the
    /// cloud has started it. What started is kept and returned even if others failed; an
    /// error only if nothing started. The caller holds the fleet's lock.
    pub async fn launch(
        &self,
        row: &RegionAmi,
        count: u32,
    ) -> Result<Vec<InstanceName>, FleetError> {
        let mut results = futures_util::stream::iter((0..count).map(|_| self.launch_one(row)))
            .buffer_unordered(CONCURRENT_LAUNCHES)
            .collect::<Vec<_>>()
            .await;
        let mut launched = Vec::new();
        let mut first_error = None;
        for result in results.drain(..) {
            match result {
                Ok(name) => launched.push(name),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if launched.is_empty() => Err(err),
            Some(err) => {
                tracing::warn!(
                    region = %row.region_name,
                    launched = launched.len(),
                    wanted = count,
                    error = &err as &dyn std::error::Error,
                    "some launches failed"
                );
                Ok(launched)
            }
            None => Ok(launched),
        }
    }

    async fn launch_one(&self, row: &RegionAmi) -> Result<InstanceName, FleetError> {
        let name = instance_name(
            &row.region_name,
            &self.settings.branch,
            &row.client_commit_hash,
        )?;
        // argon2, off the executor.
        let (secret, hash) = tokio::task::spawn_blocking(auth::host::new_bootstrap_secret)
            .await
            .map_err(FleetError::Task)?
            .map_err(FleetError::Credentials)?;
        let user_data = BootConfig {
            instance_name: name.clone(),
            webserver_url: self.settings.webserver_url.clone(),
            bootstrap_secret: secret,
        }
        .to_user_data()
        .map_err(FleetError::UserData)?;
        let request = LaunchRequest {
            region: row.region_name.clone(),
            image: row.ami_id.clone(),
            name: name.clone(),
            instance_type: self.settings.instance_type.clone(),
            user_data,
            owner: self.owner().await?,
            launch_token: LaunchToken::new(),
        };
        let id = match self.start_with_retries(&request).await {
            Ok(id) => id,
            Err(err) => {
                self.metrics
                    .action("launch_failed", row.region_name.as_str(), 1);
                return Err(err);
            }
        };
        self.record(row, &name, &id, hash).await?;
        tracing::info!(instance = %name, cloud_id = %id, image = %row.ami_id, "instance launched");
        self.metrics.action("launched", row.region_name.as_str(), 1);
        Ok(name)
    }

    /// Records a started instance as `PRE_CONNECTION`; one that cannot be recorded would
    /// run unseen, so it is ended.
    async fn record(
        &self,
        row: &RegionAmi,
        name: &InstanceName,
        id: &CloudInstanceId,
        bootstrap_secret_hash: String,
    ) -> Result<(), FleetError> {
        let new = NewInstance {
            instance_name: name.clone(),
            cloud_provider_id: id.to_string(),
            creation_time_utc_unix_ms: UnixMillis::now(),
            aws_ami_id: row.ami_id.clone(),
            location: row.region_name.clone(),
            status: InstanceStatus::PreConnection,
            commit_hash: row.client_commit_hash.clone(),
            aws_instance_type: self.settings.instance_type.clone(),
            bootstrap_secret_hash: Some(bootstrap_secret_hash),
        };
        let recorded = self
            .db
            .run(move |conn| Ok(instance::insert(conn, &new)?))
            .await;
        if let Err(err) = recorded {
            tracing::error!(instance = %name, cloud_id = %id, error = &err as &dyn std::error::Error, "could not record a launched instance; terminating it");
            if let Err(cloud) = self
                .cloud
                .terminate_instances(&row.region_name, std::slice::from_ref(id))
                .await
            {
                tracing::error!(instance = %name, cloud_id = %id, error = &cloud as &dyn std::error::Error, "could not terminate it either; the orphan pass will");
            }
            return Err(err.into());
        }
        Ok(())
    }

    /// Starts the instance, trying again with backoff while the cloud says "not now",
    /// always with the request's one launch token.
    async fn start_with_retries(
        &self,
        request: &LaunchRequest,
    ) -> Result<CloudInstanceId, FleetError> {
        let mut backoff = self.settings.launch_backoff;
        let mut attempt = 1;
        loop {
            match self.cloud.start_instance(request).await {
                Ok(id) => return Ok(id),
                Err(err) if err.is_temporary() && attempt < self.settings.launch_attempts => {
                    tracing::warn!(
                        instance = %request.name,
                        attempt,
                        error = &err as &dyn std::error::Error,
                        retry_in = ?backoff,
                        "launch failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}
