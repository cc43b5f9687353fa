//! Fleet scaling (SPEC §7): per (region, image), launch instances when the buffer of
//! free slots runs low and drain empty ones when there is too much room, through the
//! cloud provider.
//!
//! With several server processes on one database, each (region, image) is decided by
//! one process at a time, under a PostgreSQL advisory lock held across the decision, the
//! cloud calls and the writes (on a connection of its own, so the requests' pool is
//! never held while the cloud answers): a second process waiting for it then decides on
//! what the first one recorded, so concurrent refusals never launch more than the
//! shortfall. Instance rows are written only for instances the cloud really started.
//!
//! - `check`: one capacity check of one (region, image);
//! - `launch`: starting instances, idempotently, and recording them;
//! - `drain`: draining and terminating instances;
//! - `orphans`: ending instances of this deployment that no row records;
//! - `pass`: the periodic pass over every fleet.

mod check;
mod drain;
mod launch;
mod orphans;
mod pass;

use std::sync::{Arc, OnceLock};

use cloud_interface::{BootConfigError, CloudError, CloudProvider};
use models::{AmiId, Db, DbError, InvalidValue, Region};

pub use check::CheckReport;
pub use drain::{DrainOutcome, OperatorDrainOutcome, Terminated};
pub use pass::PassReport;

use crate::metrics::FleetMetrics;
use crate::settings::FleetSettings;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the database failed")]
    Database(#[from] DbError),
    #[error("the cloud failed")]
    Cloud(#[from] CloudError),
    #[error("the new instance's name is not valid")]
    Name(#[source] InvalidValue),
    #[error("the new instance's bootstrap secret could not be made")]
    Credentials(#[source] auth::host::CredentialError),
    #[error("the new instance's user data could not be written")]
    UserData(#[source] BootConfigError),
    #[error("a background task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl From<diesel::result::Error> for FleetError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

/// The fleet of every region, through one cloud provider.
pub struct Fleet {
    db: Db,
    cloud: Arc<dyn CloudProvider>,
    settings: FleetSettings,
    http: reqwest::Client,
    metrics: FleetMetrics,
    /// The deployment id, once read.
    owner: OnceLock<String>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The advisory lock under which one (region, image) is decided or upgraded.
pub(crate) fn lock_name(region: &Region, image: &AmiId) -> String {
    format!("fleet:{region}:{image}")
}

impl Fleet {
    /// The fleet on `db` through `cloud`. Fails only if the HTTP client for drain
    /// requests cannot be built (no TLS backend), which start-up reports.
    pub fn new(
        db: Db,
        cloud: Arc<dyn CloudProvider>,
        settings: FleetSettings,
        metrics: FleetMetrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.drain_timeout)
            .timeout(settings.drain_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            db,
            cloud,
            settings,
            http,
            metrics,
            owner: OnceLock::new(),
        })
    }

    /// What this fleet's launches are tagged with: the configured owner, else the
    /// database's deployment id.
    pub async fn owner(&self) -> Result<String, FleetError> {
        if let Some(owner) = self.settings.owner.as_ref().or_else(|| self.owner.get()) {
            return Ok(owner.clone());
        }
        let id = self
            .db
            .run(|conn| Ok(models::deployment::id(conn)?))
            .await?;
        Ok(self.owner.get_or_init(|| id).clone())
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// The cloud this fleet launches in.
    pub fn cloud(&self) -> Arc<dyn CloudProvider> {
        self.cloud.clone()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn metrics(&self) -> &FleetMetrics {
        &self.metrics
    }
}
