//! Mail templates and transports.
//!
//! Empty until its issue lands; it builds so the workspace shape is in place.
