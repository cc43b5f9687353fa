//! The fleet simulator: replays a trace of users against the real server (a scratch
//! database, the local cloud provider and its simulated hosts) with every duration
//! divided by a speed-up, and measures what users got and what the fleet cost.
//!
//! Each user asks once with `wait_secs` 0 (a first try); if refused for lack of
//! capacity, asks once more willing to wait the client's wait. A served user connects
//! to its host, which holds the session for its length and reports its end through the
//! host protocol. Paid capacity is what the cloud runs: every launched instance until it
//! shuts down or is terminated, booting and draining ones included; where its idle slots
//! were (booting, on empty instances, beside sessions, draining) comes from the hosts'
//! own accounts ([`local_cloud::LocalProvider::hosts`]), as the fleet model reports it.

pub mod cli;
mod client;
mod server;
mod table;
pub mod trace;

use std::time::Duration;

use serde::Serialize;

pub use server::SimServer;
pub use table::{Spread, print_spread, print_table, spreads};
pub use trace::{Arrival, Past};

/// The scaling policy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Fixed,
    Adaptive,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Adaptive => "adaptive",
        }
    }
}

/// Where sessions are placed (`PLACEMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// The fullest instance with a free slot (`PLACEMENT=packed`).
    #[default]
    Packed,
    /// By expected end, learned from users' histories (`PLACEMENT=lifetime`).
    Lifetime,
    /// Knowing every session's length: a bound no server reaches (the model only).
    KnownLengths,
    /// Knowing each user's lengths (all their sessions, in the trace and the history)
    /// but not which comes next, placed as `Lifetime` is: the bound of any prediction
    /// from users' histories (the model only).
    KnownHabits,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::Lifetime => "lifetime",
            Self::KnownLengths => "known-lengths",
            Self::KnownHabits => "known-habits",
        }
    }
}

/// How a simulation runs (durations in trace time).
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Trace seconds per wall second.
    pub speed: f64,
    /// From launch to the host's registration.
    pub boot: Duration,
    /// Slots per instance.
    pub capacity: i64,
    /// How long a refused user is willing to wait on the second try.
    pub client_wait: Duration,
    /// `DESIRED_FREE_MANDELBOXES` (the fixed policy).
    pub desired_free: u32,
    /// `DESIRED_FREE_MANDELBOXES_MIN` and `_MAX` (the adaptive policy).
    pub adaptive_min: u32,
    pub adaptive_max: u32,
    /// `ADAPTIVE_SAFETY_SIGMAS` (the adaptive policy).
    pub safety_sigmas: scaling::adaptive::Sigmas,
    /// `PLACEMENT`.
    pub placement: Placement,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            speed: 240.0,
            boot: Duration::from_secs(90),
            capacity: 8,
            client_wait: Duration::from_secs(120),
            desired_free: 10,
            adaptive_min: 2,
            adaptive_max: 100,
            safety_sigmas: scaling::adaptive::Sigmas::DEFAULT,
            placement: Placement::Packed,
        }
    }
}

impl SimOptions {
    /// A trace duration in wall time.
    pub fn wall(&self, trace: Duration) -> Duration {
        trace.div_f64(self.speed)
    }
}

/// What one policy did on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub policy: &'static str,
    pub placement: &'static str,
    /// Users in the trace.
    pub sessions: usize,
    /// Served on the first try.
    pub first_try_ratio: f64,
    /// Served on the first try or after waiting.
    pub served_ratio: f64,
    /// The 95th percentile of the time from arrival to a session, in trace seconds, of
    /// the users served.
    pub p95_wait_secs: f64,
    /// Paid slots serving no session, on average over the trace.
    pub mean_idle_slots: f64,
    pub idle_slot_hours: f64,
    pub instance_hours: f64,
    pub launches: usize,
    pub peak_instances: usize,
    /// Answers the protocol does not allow for (should be 0).
    #[serde(skip)]
    pub errors: usize,
    /// Users not served on the first try, by hour of the trace.
    #[serde(skip)]
    pub misses_by_hour: Vec<usize>,
    /// Users the server had a prediction for at the end (`PLACEMENT=lifetime`), and
    /// sessions in its history; the model leaves them 0.
    #[serde(skip)]
    pub users_predicted: i64,
    #[serde(skip)]
    pub sessions_remembered: i64,
    /// Where the idle slot-hours were.
    pub idle: IdleBreakdown,
    /// The median time from launch to registration, in trace seconds: what a boot took
    /// (the server's latest boots, as the adaptive buffer learns them; the model's
    /// `--boot-secs`). Through the server it runs over `--boot-secs` by the
    /// wall time of launching and registering, times the speed-up.
    pub boot_secs: Option<f64>,
}

/// Where the paid slots that served no session were, in slot-hours.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct IdleBreakdown {
    /// On instances launched and not yet registered.
    pub booting: f64,
    /// On active instances without a session.
    pub empty: f64,
    /// Free slots of active instances with sessions.
    pub in_use: f64,
    /// Free slots of draining instances, paid until their last session ends.
    pub draining: f64,
}

impl IdleBreakdown {
    /// Every idle slot-hour, wherever it was.
    pub fn total(&self) -> f64 {
        self.booting + self.empty + self.in_use + self.draining
    }
}

/// Replays `arrivals` under `policy`, `history` already in the database: starts a server
/// on a scratch database, drives it, stops it.
pub async fn simulate(
    arrivals: &[Arrival],
    history: &[Past],
    policy: Policy,
    options: &SimOptions,
) -> PolicyReport {
    let server = SimServer::start(arrivals, history, policy, options).await;
    let mut report = client::replay(&server, arrivals, options).await;
    report.users_predicted = server.count("hardware.session_prediction");
    report.sessions_remembered = server.count("hardware.session_history");
    report.boot_secs = server
        .learned_boot()
        .map(|wall| wall.as_secs_f64() * options.speed);
    report.policy = policy.name();
    report.placement = options.placement.name();
    server.stop().await;
    report
}
