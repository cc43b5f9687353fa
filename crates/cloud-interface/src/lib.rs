//! The cloud side of the control plane.
//!
//! - [`provider`]: the provisioning trait backends implement (SPEC §8), mockable with
//!   the `mock` feature.
//! - [`boot`]: what an instance is told at launch (its user data).
//! - [`local`]: `CLOUD_PROVIDER=local`, instances simulated on this machine.
//! - [`host_agent`]: the host service agent's half of the host protocol (SPEC §6), for
//!   the simulated hosts and for a real host service to link.
//! - [`conformance`] (feature `conformance`): the behaviour suite every backend passes.

pub mod boot;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod host_agent;
pub mod local;
pub mod provider;

pub use boot::BootConfig;
pub use local::{LocalOptions, LocalProvider};
pub use provider::{
    CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest, OWNER_TAG,
};
