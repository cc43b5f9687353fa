//! Keeping the fleet sized and its records true (SPEC §6, §7): per (region, image) the
//! sizing decision, launches, drains and terminations through the cloud provider, the
//! orphan pass, image upgrades, and the lifecycle jobs.
//!
//! - [`sizing`]: the decision, a pure function of a snapshot;
//! - [`adaptive`]: the learned buffer of `SCALING_POLICY=adaptive`, a pure function too;
//! - [`fleet`]: applying it through the cloud ([`Fleet`]);
//! - [`scaler`]: the capacity checks assignment asks for ([`FleetScaler`]);
//! - [`FleetScaler`] implements assignment's [`assignment::ScalingHook`];
//! - [`lifecycle`]: unresponsive hosts, expired allocations, terminations;
//! - [`upgrade`]: rolling a region onto a new image;
//! - [`jobs`]: periodic jobs that never stop silently;
//! - [`lifetime`]: how long a session will last, from its user's history;
//! - [`predictions`]: the job that writes what `PLACEMENT=lifetime` places by;
//! - [`metrics`]: the fleet's counters and gauges.

pub mod adaptive;
pub mod fleet;
pub mod jobs;
pub mod lifecycle;
pub mod lifetime;
pub mod metrics;
pub mod predictions;
pub mod scaler;
pub mod settings;
pub mod sizing;
pub mod upgrade;

pub use fleet::{
    CheckReport, DrainOutcome, Fleet, FleetError, OperatorDrainOutcome, PassReport, Terminated,
};
pub use metrics::{FleetGauges, FleetMetrics, JobOutcome};
pub use predictions::Predictions;
pub use scaler::FleetScaler;
pub use settings::{FleetSettings, Learning, ScalingPolicy};
