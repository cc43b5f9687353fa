//! How the fleet is run: the scaling settings of SPEC §7 and §9.

use std::time::Duration;

/// `SCALING_POLICY`: how many free slots a region keeps, and what is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalingPolicy {
    /// `DESIRED_FREE_MANDELBOXES` free slots; only empty instances are drained.
    Fixed,
    /// A buffer learned per region between `min` and `max`
    /// (`DESIRED_FREE_MANDELBOXES_MIN`/`_MAX`, see [`crate::adaptive`]) with a margin of
    /// `margin` standard deviations (`ADAPTIVE_SAFETY_SIGMAS`); too much room is given
    /// back by draining the least-loaded instance, sessions and all.
    Adaptive {
        min: i64,
        max: i64,
        margin: crate::adaptive::Sigmas,
    },
}

/// The spans the adaptive policy learns over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learning {
    /// Recent arrivals: a rise here over the long span is a ramp.
    pub short_span: Duration,
    /// The steady arrival rate; arrivals older than this are purged.
    pub long_span: Duration,
    /// The boot time assumed before a region's first boot is measured.
    pub default_boot_time: Duration,
}

impl Default for Learning {
    fn default() -> Self {
        Self {
            short_span: Duration::from_secs(300),
            long_span: Duration::from_secs(1800),
            default_boot_time: Duration::from_secs(120),
        }
    }
}

/// The scaling settings.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `SCALING_POLICY`.
    pub policy: ScalingPolicy,
    /// What the adaptive policy learns over.
    pub learning: Learning,
    /// `DESIRED_FREE_MANDELBOXES`: the fixed policy's buffer.
    pub desired_free: i64,
    /// `DEFAULT_INSTANCE_BUFFER`.
    pub buffer: u32,
    /// `MAX_INSTANCES_PER_REGION`.
    pub max_instances_per_region: Option<u32>,
    /// `AUTOSCALE`: `false` freezes automatic launches and drains (not manual ones).
    pub autoscale: bool,
    /// `AWS_INSTANCE_TYPE_TO_LAUNCH`.
    pub instance_type: String,
    /// How many mandelboxes an instance launched holds, as the cloud provider says of
    /// `instance_type` (`CloudProvider::mandelbox_capacity`): what launches count on
    /// while none of the region's hosts has registered (then their mean capacity is).
    /// `None`: 1.
    pub launch_capacity: Option<i64>,
    /// `WEBSERVER_URL`: what hosts register with.
    pub webserver_url: url::Url,
    /// The branch part of instance names.
    pub branch: String,
    /// `HOST_SERVICE_PORT`: where hosts serve `/drain_and_shutdown`.
    pub host_service_port: u16,
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

/// The defaults of the settings that have one, in one place: [`FleetSettings::new`]
/// and the server's configuration (`DESIRED_FREE_MANDELBOXES`, …) both take them.
pub mod defaults {
    /// `DESIRED_FREE_MANDELBOXES`.
    pub const DESIRED_FREE: u32 = 10;
    /// `DEFAULT_INSTANCE_BUFFER`.
    pub const BUFFER: u32 = 1;
    /// `HOST_SERVICE_PORT`.
    pub const HOST_SERVICE_PORT: u16 = 4678;
    /// `ORPHAN_GRACE_SECS`.
    pub const ORPHAN_GRACE_SECS: u64 = 600;
    /// `AWS_INSTANCE_TYPE_TO_LAUNCH`.
    pub const INSTANCE_TYPE: &str = "g4dn.xlarge";
    /// `AUTOSCALE`.
    pub const AUTOSCALE: bool = true;
}

impl FleetSettings {
    /// What every sizing decision of this fleet is made from (see
    /// [`crate::sizing::SizingPolicy::new`]).
    pub fn sizing_rules(&self) -> crate::sizing::SizingRules {
        crate::sizing::SizingRules {
            policy: self.policy,
            desired_free: self.desired_free,
            buffer: self.buffer,
            max_instances: self.max_instances_per_region,
            default_boot_time: self.learning.default_boot_time,
            reaction: self.check_interval,
        }
    }

    /// The settings' defaults for everything but what a deployment must say.
    pub fn new(webserver_url: url::Url) -> Self {
        Self {
            policy: ScalingPolicy::Fixed,
            learning: Learning::default(),
            owner: None,
            orphan_grace: Duration::from_secs(defaults::ORPHAN_GRACE_SECS),
            desired_free: i64::from(defaults::DESIRED_FREE),
            buffer: defaults::BUFFER,
            max_instances_per_region: None,
            autoscale: defaults::AUTOSCALE,
            instance_type: defaults::INSTANCE_TYPE.to_owned(),
            launch_capacity: None,
            webserver_url,
            branch: "main".to_owned(),
            host_service_port: defaults::HOST_SERVICE_PORT,
            launch_attempts: 4,
            launch_backoff: Duration::from_secs(1),
            lock_wait: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            check_interval: Duration::from_secs(1),
        }
    }
}
