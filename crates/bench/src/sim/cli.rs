//! What `fleet-sim` and `fleet-model` are asked on their command lines alike: the
//! policies to run, the fleet's shape, and trace files.

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;

use super::{Arrival, Past, Placement, Policy, SimOptions};

/// `--policy`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Policies {
    Fixed,
    Adaptive,
    Both,
}

impl Policies {
    pub fn policies(self) -> Vec<Policy> {
        match self {
            Self::Fixed => vec![Policy::Fixed],
            Self::Adaptive => vec![Policy::Adaptive],
            Self::Both => vec![Policy::Fixed, Policy::Adaptive],
        }
    }
}

/// `--placement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlacementArg {
    /// The fullest instance with a free slot (`PLACEMENT=packed`).
    Packed,
    /// By expected end, from users' histories (`PLACEMENT=lifetime`).
    Lifetime,
    /// Knowing each session's length: a bound (the model only).
    KnownLengths,
    /// Knowing each user's lengths, not which comes next: the bound of prediction from
    /// history (the model only).
    KnownHabits,
}

/// The options both tools share (durations in trace seconds).
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    #[arg(long, value_enum, default_value_t = Policies::Both)]
    pub policy: Policies,
    /// Seconds from launch to a host's registration (trace time).
    #[arg(long, default_value_t = 90)]
    pub boot_secs: u64,
    /// Slots per instance.
    #[arg(long, default_value_t = 8)]
    pub capacity: i64,
    /// How long a refused user waits on the second try (trace seconds).
    #[arg(long, default_value_t = 120)]
    pub client_wait_secs: u64,
    /// DESIRED_FREE_MANDELBOXES of the fixed policy.
    #[arg(long, default_value_t = 10)]
    pub desired_free: u32,
    /// ADAPTIVE_SAFETY_SIGMAS of the adaptive policy.
    #[arg(long, default_value_t = scaling::adaptive::Sigmas::DEFAULT)]
    pub safety_sigmas: scaling::adaptive::Sigmas,
    #[arg(long, value_enum, default_value_t = PlacementArg::Packed)]
    pub placement: PlacementArg,
    /// Past sessions (`user,region,session_secs`, oldest first) the database holds
    /// before the replay starts.
    #[arg(long)]
    pub history: Option<std::path::PathBuf>,
}

impl FleetArgs {
    /// The simulation's options with these; the rest as [`SimOptions::default`].
    pub fn options(&self) -> SimOptions {
        SimOptions {
            boot: Duration::from_secs(self.boot_secs),
            capacity: self.capacity,
            client_wait: Duration::from_secs(self.client_wait_secs),
            desired_free: self.desired_free,
            safety_sigmas: self.safety_sigmas,
            placement: match self.placement {
                PlacementArg::Packed => Placement::Packed,
                PlacementArg::Lifetime => Placement::Lifetime,
                PlacementArg::KnownLengths => Placement::KnownLengths,
                PlacementArg::KnownHabits => Placement::KnownHabits,
            },
            ..SimOptions::default()
        }
    }

    /// The history of `--history`, or none.
    pub fn history(&self) -> Vec<Past> {
        let Some(path) = &self.history else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        super::trace::parse_history(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }
}

/// The trace in `path`; stops loudly, naming the file (and the line), if it cannot be
/// read.
pub fn read_trace(path: &Path) -> Vec<Arrival> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    super::trace::parse(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
