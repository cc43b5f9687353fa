//! The host service protocol (SPEC §6), the webserver's side: registration with a
//! single-use bootstrap secret, heartbeats, and mandelbox status reports, each only for
//! the caller's own instance.
//!
//! - [`requests`]: the bodies hosts send, parsed into domain values;
//! - [`address`]: which addresses a host may register with;
//! - [`HostService`]: the operations;
//! - [`coalesce`]: heartbeats written in batches;
//! - [`known`]: the host credentials known in memory, so strangers are refused first.

pub mod address;
pub mod coalesce;
pub mod known;
pub mod requests;
mod service;

pub use address::AddressRule;
pub use known::KnownHosts;
pub use requests::{BootstrapSecret, HeartbeatRequest, RegisterRequest, StatusReport};
pub use service::{HostError, HostService};
