//! The cloud side of the control plane.
//!
//! - [`host_agent`]: the host service agent's half of the host protocol (SPEC §6), for
//!   simulated hosts and for a real host service to link.
//! - The provisioning trait and the local provider come with fleet scaling.

pub mod host_agent;
