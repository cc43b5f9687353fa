//! The cloud side of the control plane.
//!
//! - [`host_agent`]: the host service agent's half of the host protocol (SPEC §6), for
//!   simulated hosts and for a real host service to link.
//! - [`provider`]: the provisioning trait backends implement, mockable with the `mock`
//!   feature. The AWS backend and the local simulated provider come with fleet scaling.

pub mod host_agent;
pub mod provider;
