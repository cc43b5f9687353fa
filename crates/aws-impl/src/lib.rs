//! The AWS backend of the cloud interface (SPEC §8).
//!
//! - [`AwsProvider`]: EC2 instances through aws-sdk-ec2 (RunInstances with the `Name`
//!   tag, user data, instance profile and client token; TerminateInstances;
//!   DescribeInstances); what an instance type holds ([`mandelboxes_of`]).
//! - [`AutoScalingGroups`]: fleets kept as Auto Scaling groups, one per (region, image),
//!   sized by their desired capacity through aws-sdk-autoscaling.
//!
//! Credentials come from the standard AWS chain unless given; `endpoint_url` points both
//! clients at another endpoint (a local emulator in tests). Every call has a connect and
//! an operation timeout, so nothing waits forever on an unreachable endpoint.

mod asg;
mod capacity;
mod config;
mod ec2;
mod errors;

pub use asg::{AutoScalingGroups, GroupSpec};
pub use capacity::mandelboxes_of;
pub use config::{AwsOptions, StaticCredentials};
pub use ec2::{AwsProvider, ID_PREFIX};
