//! The cloud side of the control plane, for the scaling layer and for internal tools
//! that link the trait alone (nothing here runs a server).
//!
//! - [`provider`]: the provisioning trait backends implement (SPEC §8), mockable with
//!   the `mock` feature.
//! - [`boot`]: what an instance is told at launch (its user data).
//! - `conformance` (feature `conformance`): the behaviour suite every backend passes.
//!
//! The backends are crates of their own: `aws-impl` (EC2) and `local-cloud` (instances
//! simulated on this machine).

pub mod boot;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod provider;

pub use boot::{BootConfig, BootConfigError};
pub use provider::{
    CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest, LaunchToken,
    OWNER_TAG,
};
