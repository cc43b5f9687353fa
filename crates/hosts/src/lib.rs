//! The host service protocol (SPEC §6), the webserver's side: registration with a
//! single-use bootstrap secret, heartbeats, and mandelbox status reports, each only for
//! the caller's own instance.
//!
//! - [`requests`]: the bodies hosts send, parsed into domain values;
//! - [`HostService`]: the operations;
//! - [`coalesce`]: heartbeats written in batches.

pub mod coalesce;
pub mod requests;
mod service;

pub use requests::{BootstrapSecret, HeartbeatRequest, RegisterRequest, StatusReport};
pub use service::{HostError, HostService};
