//! EC2 and Auto Scaling implementation of the cloud interface.
//!
//! Empty until its issue lands; it builds so the workspace shape is in place.
