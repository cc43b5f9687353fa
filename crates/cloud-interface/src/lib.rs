//! Cloud provisioning trait and the local simulated provider.
//!
//! Empty until its issue lands; it builds so the workspace shape is in place.
