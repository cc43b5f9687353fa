//! Fleet scaling (SPEC §7): per (region, image), launch instances when the buffer of
//! free slots runs low and drain empty ones when there is too much room, through the
//! cloud provider.
//!
//! With several server processes on one database, each (region, image) is decided by
//! one process at a time, under a PostgreSQL advisory lock held across the decision, the
//! cloud calls and the writes: a second process waiting for it then decides on what the
//! first one recorded, so concurrent refusals never launch more than the shortfall.
//! Instance rows are written only for instances the cloud really started.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cloud_interface::{
    BootConfig, CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest,
};
use models::instance::{self, Doomed, DrainTarget, NewInstance};
use models::region_to_ami::{self, RegionAmi};
use models::{AmiId, CommitHash, Db, DbError, InstanceName, InstanceStatus, Region, UnixMillis};

use crate::hook::{ScaleCheck, ScalingHook};
use crate::lifecycle::Terminator;
use crate::metrics;
use crate::sizing::{Decision, FleetView, InstanceLoad, SizingPolicy, decide};

#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `DESIRED_FREE_MANDELBOXES`.
    pub desired_free: i64,
    /// `DEFAULT_INSTANCE_BUFFER`.
    pub buffer: u32,
    /// `MAX_INSTANCES_PER_REGION`.
    pub max_instances_per_region: Option<u32>,
    /// `AUTOSCALE`: `false` freezes automatic launches and drains (not manual ones).
    pub autoscale: bool,
    /// `AWS_INSTANCE_TYPE_TO_LAUNCH`.
    pub instance_type: String,
    /// `WEBSERVER_URL`: what hosts register with.
    pub webserver_url: url::Url,
    /// The branch part of instance names.
    pub branch: String,
    /// `HOST_SERVICE_PORT`: where hosts serve `/drain_and_shutdown`.
    pub host_service_port: u16,
    /// What goes before the cloud's id in `cloud_provider_id` (`aws-` for EC2).
    pub cloud_id_prefix: String,
    /// Tries per instance when the cloud reports a temporary failure.
    pub launch_attempts: u32,
    /// The wait after the first temporary failure; doubled after each.
    pub launch_backoff: Duration,
    /// How long a capacity check waits for another process deciding the same fleet.
    pub lock_wait: Duration,
    /// How long a host has to answer a drain request.
    pub drain_timeout: Duration,
    /// The least time between two capacity checks of one fleet from the assignment hook
    /// in one process: checks asked for meanwhile fold into one at the end of it.
    pub check_interval: Duration,
    /// What launches are tagged with, so that this deployment finds what it started;
    /// `None` for the database's deployment id (`hardware.deployment`), which is one
    /// per deployment whatever its URLs and processes.
    pub owner: Option<String>,
    /// `ORPHAN_GRACE_SECS`: how old an instance of ours that no row records must be
    /// before the periodic pass terminates it. A launch records its row as soon as the
    /// cloud call returns; only a process that died in between leaves one behind.
    pub orphan_grace: Duration,
}

impl FleetSettings {
    /// The settings' defaults for everything but what a deployment must say.
    pub fn new(webserver_url: url::Url, cloud_id_prefix: &str) -> Self {
        Self {
            owner: None,
            orphan_grace: Duration::from_secs(600),
            desired_free: 10,
            buffer: 1,
            max_instances_per_region: None,
            autoscale: true,
            instance_type: "g4dn.xlarge".to_owned(),
            webserver_url,
            branch: "main".to_owned(),
            host_service_port: 4678,
            cloud_id_prefix: cloud_id_prefix.to_owned(),
            launch_attempts: 4,
            launch_backoff: Duration::from_secs(1),
            lock_wait: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            check_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("{0}")]
    Launch(String),
}

impl From<diesel::result::Error> for FleetError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err.into())
    }
}

/// What one capacity check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub region: Region,
    pub image: Option<AmiId>,
    pub decision: Decision,
    pub launched: Vec<InstanceName>,
    /// Drained through their hosts.
    pub drained: Vec<InstanceName>,
    /// Their hosts could not be reached: terminated through the cloud and removed.
    pub terminated: Vec<InstanceName>,
    /// Another process held the fleet's lock past the wait; it decides instead.
    pub skipped: bool,
}

impl CheckReport {
    fn new(region: &Region, image: Option<&AmiId>) -> Self {
        Self {
            region: region.clone(),
            image: image.cloned(),
            decision: Decision::Nothing,
            launched: Vec::new(),
            drained: Vec::new(),
            terminated: Vec::new(),
            skipped: false,
        }
    }
}

/// What one periodic pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// One per fleet checked.
    pub checks: Vec<CheckReport>,
    /// Instances the cloud ran for this deployment that no row recorded: terminated.
    pub orphans: Vec<CloudInstance>,
}

/// How a drain request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// The host accepted: it finishes, sends its dying heartbeat and shuts down.
    Asked,
    /// The host could not be reached.
    Unreachable,
}

/// The fleet of every region, through one cloud provider.
pub struct Fleet {
    db: Db,
    cloud: Arc<dyn CloudProvider>,
    settings: FleetSettings,
    http: reqwest::Client,
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
    InstanceName::parse(&format!("{region}-{branch}-{commit7}-uid-{uid}"))
        .map_err(|err| FleetError::Launch(err.to_string()))
}

/// The advisory lock under which one (region, image) is decided or upgraded.
pub(crate) fn lock_name(region: &Region, image: &AmiId) -> String {
    format!("fleet:{region}:{image}")
}

const PASS_LOCK: &str = "fleet:periodic-pass";

impl Fleet {
    pub fn new(db: Db, cloud: Arc<dyn CloudProvider>, settings: FleetSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.drain_timeout)
            .timeout(settings.drain_timeout)
            .build()
            .unwrap_or_default();
        Self {
            db,
            cloud,
            settings,
            http,
            owner: OnceLock::new(),
        }
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

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The cloud's id for a stored `cloud_provider_id`, if this fleet wrote it.
    fn cloud_id(&self, stored: &str) -> Option<CloudInstanceId> {
        stored
            .strip_prefix(self.settings.cloud_id_prefix.as_str())
            .filter(|id| !id.is_empty())
            .map(|id| CloudInstanceId(id.to_owned()))
    }

    /// Sizes one fleet: `image` of `region`, or the region's active image for `None`.
    /// Waits up to `wait` for another process deciding the same fleet.
    pub async fn check(
        &self,
        region: &Region,
        image: Option<&AmiId>,
        wait: Duration,
    ) -> Result<CheckReport, FleetError> {
        let mut report = CheckReport::new(region, image);
        let image = match image {
            Some(image) => image.clone(),
            None => {
                let region = region.clone();
                let active = self
                    .db
                    .run(move |conn| Ok(region_to_ami::active(conn, &region)?))
                    .await?;
                match active {
                    Some(row) => row.ami_id,
                    // No active image: nothing to launch; the periodic pass drains.
                    None => return Ok(report),
                }
            }
        };
        report.image = Some(image.clone());
        let Some(lock) = self
            .db
            .advisory_lock(&lock_name(region, &image), wait)
            .await?
        else {
            report.skipped = true;
            return Ok(report);
        };
        let result = self.check_locked(region, &image, report).await;
        lock.release().await;
        result
    }

    async fn check_locked(
        &self,
        region: &Region,
        image: &AmiId,
        mut report: CheckReport,
    ) -> Result<CheckReport, FleetError> {
        let (view, active, average) = {
            let (region, image) = (region.clone(), image.clone());
            self.db
                .run(move |conn| {
                    let rows = region_to_ami::for_region(conn, &region)?;
                    let loads = instance::loads(conn, &region, &image)?;
                    let in_region = instance::count_in_region(conn, &region)?;
                    let average = instance::average_active_capacity(conn, &region)?;
                    let active = rows
                        .iter()
                        .find(|row| row.ami_active && row.region_enabled)
                        .cloned();
                    let view = FleetView {
                        region_enabled: rows.iter().any(|row| row.region_enabled),
                        image_active: active.as_ref().is_some_and(|row| row.ami_id == image),
                        instances: loads
                            .into_iter()
                            .map(|load| InstanceLoad {
                                name: load.instance_name,
                                status: load.status,
                                capacity: load.mandelbox_capacity,
                                mandelboxes: load.mandelbox_count,
                            })
                            .collect(),
                        region_instances: u32::try_from(in_region).unwrap_or(u32::MAX),
                    };
                    Ok((view, active, average))
                })
                .await?
        };
        let policy = SizingPolicy {
            desired_free: self.settings.desired_free,
            buffer: self.settings.buffer,
            max_instances: self.settings.max_instances_per_region,
            expected_capacity: average.unwrap_or(self.settings.desired_free).max(1),
        };
        report.decision = decide(&view, &policy);
        match (&report.decision, active) {
            (Decision::Launch(count), Some(active)) => {
                report.launched = self.launch(&active, *count).await?;
            }
            (Decision::Drain(names), _) => {
                for name in names {
                    match self.drain_if_empty(name).await? {
                        Some(DrainOutcome::Asked) => report.drained.push(name.clone()),
                        Some(DrainOutcome::Unreachable) => report.terminated.push(name.clone()),
                        None => {}
                    }
                }
            }
            _ => {}
        }
        if report.decision != Decision::Nothing {
            tracing::info!(
                region = %region,
                image = %image,
                decision = ?report.decision,
                launched = report.launched.len(),
                drained = report.drained.len(),
                terminated = report.terminated.len(),
                "fleet resized"
            );
        }
        Ok(report)
    }

    /// Launches `count` instances of `row`'s image for its commit hash, one at a time,
    /// and records each as `PRE_CONNECTION` once the cloud has started it. Stops at the
    /// first failure: what started before it is kept and returned; an error only if
    /// nothing started. The caller holds the fleet's lock.
    pub async fn launch(
        &self,
        row: &RegionAmi,
        count: u32,
    ) -> Result<Vec<InstanceName>, FleetError> {
        let mut launched = Vec::new();
        for _ in 0..count {
            match self.launch_one(row).await {
                Ok(name) => launched.push(name),
                Err(err) if launched.is_empty() => return Err(err),
                Err(err) => {
                    tracing::warn!(
                        region = %row.region_name,
                        launched = launched.len(),
                        wanted = count,
                        error = %err,
                        "launch stopped early"
                    );
                    break;
                }
            }
        }
        Ok(launched)
    }

    async fn launch_one(&self, row: &RegionAmi) -> Result<InstanceName, FleetError> {
        let name = instance_name(
            &row.region_name,
            &self.settings.branch,
            &row.client_commit_hash,
        )?;
        let (secret, hash) = auth::host::new_bootstrap_secret()
            .map_err(|err| FleetError::Launch(err.to_string()))?;
        let user_data = BootConfig {
            instance_name: name.as_str().to_owned(),
            webserver_url: self.settings.webserver_url.clone(),
            bootstrap_secret: secret,
        }
        .to_user_data()
        .map_err(|err| FleetError::Launch(err.to_string()))?;
        let request = LaunchRequest {
            region: row.region_name.as_str().to_owned(),
            image: row.ami_id.as_str().to_owned(),
            name: name.as_str().to_owned(),
            count: 1,
            instance_type: self.settings.instance_type.clone(),
            user_data,
            owner: self.owner().await?,
        };
        let ids = match self.start_with_retries(&request).await {
            Ok(ids) => ids,
            Err(err) => {
                metrics::fleet_action("launch_failed", row.region_name.as_str(), 1);
                return Err(err);
            }
        };
        let Some(id) = ids.first().cloned() else {
            return Err(FleetError::Launch(
                "the cloud started no instance".to_owned(),
            ));
        };
        let new = NewInstance {
            instance_name: name.clone(),
            cloud_provider_id: format!("{}{}", self.settings.cloud_id_prefix, id),
            creation_time_utc_unix_ms: UnixMillis::now(),
            aws_ami_id: row.ami_id.clone(),
            location: row.region_name.clone(),
            status: InstanceStatus::PreConnection,
            commit_hash: row.client_commit_hash.clone(),
            aws_instance_type: self.settings.instance_type.clone(),
            bootstrap_secret_hash: Some(hash),
        };
        if let Err(err) = self
            .db
            .run(move |conn| Ok(instance::insert(conn, &new)?))
            .await
        {
            // Unrecorded, it would run unseen: end it.
            tracing::error!(instance = %name, cloud_id = %id, error = %err, "could not record a launched instance; terminating it");
            let _ = self.cloud.terminate_instances(&request.region, &ids).await;
            return Err(err.into());
        }
        tracing::info!(instance = %name, cloud_id = %id, image = %row.ami_id, "instance launched");
        metrics::fleet_action("launched", row.region_name.as_str(), 1);
        Ok(name)
    }

    async fn start_with_retries(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<CloudInstanceId>, FleetError> {
        let mut backoff = self.settings.launch_backoff;
        let mut attempt = 1;
        loop {
            match self.cloud.start_instances(request).await {
                Ok(ids) => return Ok(ids),
                Err(err) if err.is_temporary() && attempt < self.settings.launch_attempts => {
                    tracing::warn!(
                        instance = %request.name,
                        attempt,
                        error = %err,
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

    /// Drains `name` if it is still `ACTIVE` and empty: marks it `DRAINING` (so nothing
    /// new lands), asks its host to drain, and if the host cannot be reached terminates
    /// it through the cloud and removes it. `None` if it was no longer empty and active.
    pub async fn drain_if_empty(
        &self,
        name: &InstanceName,
    ) -> Result<Option<DrainOutcome>, FleetError> {
        let target = {
            let name = name.clone();
            self.db
                .run(move |conn| Ok(instance::begin_drain_if_empty(conn, &name)?))
                .await?
        };
        let Some(target) = target else {
            return Ok(None);
        };
        if self.ask_to_drain(&target).await {
            return Ok(Some(DrainOutcome::Asked));
        }
        self.terminate_and_remove(&[Doomed {
            instance_name: target.instance_name,
            location: target.location,
            cloud_provider_id: target.cloud_provider_id,
        }])
        .await?;
        Ok(Some(DrainOutcome::Unreachable))
    }

    /// `POST http://<ip>:<HOST_SERVICE_PORT>/drain_and_shutdown`; whether the host said yes.
    pub async fn ask_to_drain(&self, target: &DrainTarget) -> bool {
        if target.ip.is_empty() {
            return false;
        }
        let host = match target.ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => target.ip.clone(),
        };
        let url = format!(
            "http://{host}:{}/drain_and_shutdown",
            self.settings.host_service_port
        );
        match self.http.post(&url).send().await {
            Ok(response) if response.status().is_success() => {
                tracing::info!(instance = %target.instance_name, "host asked to drain");
                metrics::fleet_action("drained", target.location.as_str(), 1);
                true
            }
            Ok(response) => {
                tracing::warn!(instance = %target.instance_name, status = %response.status(), "host refused to drain");
                false
            }
            Err(err) => {
                tracing::warn!(instance = %target.instance_name, error = %err, "host unreachable for drain");
                false
            }
        }
    }

    /// Terminates these instances through the cloud, then removes their rows.
    pub async fn terminate_and_remove(&self, doomed: &[Doomed]) -> Result<(), FleetError> {
        self.terminate_in_cloud(doomed).await?;
        let names: Vec<InstanceName> = doomed.iter().map(|d| d.instance_name.clone()).collect();
        self.db
            .run(move |conn| Ok(instance::delete(conn, &names)?))
            .await?;
        Ok(())
    }

    /// Terminates instances in the cloud, region by region. Rows whose id this fleet did
    /// not write are only logged: there is nothing of ours to end.
    pub async fn terminate_in_cloud(&self, doomed: &[Doomed]) -> Result<(), CloudError> {
        let mut by_region: HashMap<&str, Vec<CloudInstanceId>> = HashMap::new();
        for instance in doomed {
            match self.cloud_id(&instance.cloud_provider_id) {
                Some(id) => by_region
                    .entry(instance.location.as_str())
                    .or_default()
                    .push(id),
                None => tracing::warn!(
                    instance = %instance.instance_name,
                    cloud_id = %instance.cloud_provider_id,
                    "not an id of this cloud provider; removing the record only"
                ),
            }
        }
        for (region, ids) in by_region {
            self.cloud.terminate_instances(region, &ids).await?;
            tracing::info!(region, ids = ?ids, "instances terminated");
            metrics::fleet_action("terminated", region, ids.len() as u64);
        }
        Ok(())
    }

    /// One periodic pass (every `SCALE_DOWN_INTERVAL_SECS`): every fleet that has
    /// instances, and every enabled region's active image, is checked once; then orphans
    /// are ended ([`Fleet::end_orphans`]). One process at a time runs a pass; a fleet
    /// another process is deciding is skipped. Nothing when `AUTOSCALE` is off, or
    /// another process is running a pass.
    pub async fn run_pass(&self) -> Result<PassReport, FleetError> {
        if !self.settings.autoscale {
            return Ok(PassReport::default());
        }
        let Some(lock) = self.db.advisory_lock(PASS_LOCK, Duration::ZERO).await? else {
            return Ok(PassReport::default());
        };
        let result = self.pass_locked().await;
        lock.release().await;
        result
    }

    async fn pass_locked(&self) -> Result<PassReport, FleetError> {
        let checks = self.check_every_fleet().await?;
        let orphans = self.end_orphans().await?;
        Ok(PassReport { checks, orphans })
    }

    /// Terminates the instances the cloud runs for this deployment (tagged with its
    /// owner) in any region it knows, that no row records and that were launched over
    /// `orphan_grace` ago. A region the cloud cannot list is logged and skipped.
    pub async fn end_orphans(&self) -> Result<Vec<CloudInstance>, FleetError> {
        let regions = self
            .db
            .run(|conn| {
                let mut regions = region_to_ami::known_regions(conn)?;
                regions.extend(
                    instance::fleets(conn)?
                        .into_iter()
                        .map(|(region, _)| region),
                );
                regions.sort();
                regions.dedup();
                Ok(regions)
            })
            .await?;
        let mut ended = Vec::new();
        for region in regions {
            match self.end_orphans_in(&region).await {
                Ok(mut orphans) => ended.append(&mut orphans),
                Err(err) => {
                    tracing::warn!(region = %region, error = %err, "could not look for orphaned instances");
                }
            }
        }
        Ok(ended)
    }

    async fn end_orphans_in(&self, region: &Region) -> Result<Vec<CloudInstance>, FleetError> {
        let owner = self.owner().await?;
        let running = self.cloud.list_instances(region.as_str(), &owner).await?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        // Read after listing: a launch recorded in between is seen as recorded.
        let recorded: HashSet<String> = {
            let region = region.clone();
            self.db
                .run(move |conn| Ok(instance::cloud_provider_ids(conn, &region)?))
                .await?
                .into_iter()
                .collect()
        };
        let cutoff = SystemTime::now()
            .checked_sub(self.settings.orphan_grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let orphans: Vec<CloudInstance> = running
            .into_iter()
            .filter(|instance| instance.launched_at <= cutoff)
            .filter(|instance| {
                !recorded.contains(&format!("{}{}", self.settings.cloud_id_prefix, instance.id))
            })
            .collect();
        if orphans.is_empty() {
            return Ok(orphans);
        }
        for orphan in &orphans {
            tracing::warn!(region = %region, cloud_id = %orphan.id, name = %orphan.name, "terminating an instance no row records");
        }
        let ids: Vec<CloudInstanceId> = orphans.iter().map(|o| o.id.clone()).collect();
        self.cloud
            .terminate_instances(region.as_str(), &ids)
            .await?;
        metrics::fleet_action("orphan_terminated", region.as_str(), ids.len() as u64);
        Ok(orphans)
    }

    async fn check_every_fleet(&self) -> Result<Vec<CheckReport>, FleetError> {
        let fleets = self
            .db
            .run(|conn| {
                let mut fleets = instance::fleets(conn)?;
                for region in region_to_ami::enabled_regions(conn)? {
                    if let Some(active) = region_to_ami::active(conn, &region)? {
                        fleets.push((region, active.ami_id));
                    }
                }
                fleets.sort();
                fleets.dedup();
                Ok(fleets)
            })
            .await?;
        let mut reports = Vec::new();
        for (region, image) in fleets {
            match self.check(&region, Some(&image), Duration::ZERO).await {
                Ok(report) => reports.push(report),
                Err(err) => {
                    tracing::error!(region = %region, image = %image, error = %err, "fleet check failed");
                }
            }
        }
        Ok(reports)
    }

    /// Runs a pass every `interval` until the task is dropped; failures are logged.
    pub async fn run_periodically(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let result = self.run_pass().await;
            metrics::job_run("scaling", result.is_ok());
            if let Err(err) = result {
                tracing::error!(error = %err, "scaling pass failed");
            }
        }
    }
}

#[async_trait]
impl Terminator for Fleet {
    async fn terminate(&self, instances: &[Doomed]) -> Result<(), String> {
        self.terminate_in_cloud(instances)
            .await
            .map_err(|err| err.to_string())
    }
}

/// Fleets with a check running in this process; `true` when another was asked for meanwhile.
type Running = Mutex<HashMap<(Region, Option<AmiId>), bool>>;

fn lock_running(
    running: &Running,
) -> std::sync::MutexGuard<'_, HashMap<(Region, Option<AmiId>), bool>> {
    running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a fleet out of [`Running`] when its check task ends, however it ends: a check
/// that panicked must not stop that fleet's checks in this process for good.
struct Finished {
    running: Arc<Running>,
    key: (Region, Option<AmiId>),
}

impl Drop for Finished {
    fn drop(&mut self) {
        lock_running(&self.running).remove(&self.key);
    }
}

/// The scaling hook assignment calls: each check runs in the background, and checks of
/// a fleet already being checked in this process (or checked less than
/// `check_interval` ago) fold into one more run after it, so a burst of assignments or
/// refusals costs one decision (and one pooled connection) per interval, not one each.
pub struct FleetScaler {
    fleet: Arc<Fleet>,
    running: Arc<Running>,
    runtime: tokio::runtime::Handle,
}

impl FleetScaler {
    /// Call within the runtime the checks should run on.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            running: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Waits until no check is running (tests and shutdown).
    pub async fn idle(&self) {
        while !self.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Region, Option<AmiId>), bool>> {
        lock_running(&self.running)
    }
}

impl ScalingHook for FleetScaler {
    fn check(&self, check: ScaleCheck) {
        if !self.fleet.settings.autoscale {
            tracing::debug!(region = %check.region, "autoscale is off; no capacity check");
            return;
        }
        let key = (check.region, check.ami);
        {
            let mut running = self.lock();
            if let Some(again) = running.get_mut(&key) {
                *again = true;
                return;
            }
            running.insert(key.clone(), false);
        }
        let fleet = self.fleet.clone();
        let running = self.running.clone();
        self.runtime.spawn(async move {
            let finished = Finished { running, key };
            let (region, image) = &finished.key;
            loop {
                let wait = fleet.settings.lock_wait;
                if let Err(err) = fleet.check(region, image.as_ref(), wait).await {
                    tracing::error!(region = %region, error = %err, "capacity check failed");
                }
                // Checks asked for from now on wait for the end of the interval.
                tokio::time::sleep(fleet.settings.check_interval).await;
                let again = match lock_running(&finished.running).get_mut(&finished.key) {
                    Some(again) => std::mem::take(again),
                    None => false,
                };
                if !again {
                    return;
                }
            }
        });
    }
}
