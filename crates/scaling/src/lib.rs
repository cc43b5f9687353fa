//! Mandelbox assignment and fleet sizing.
//!
//! Empty until its issue lands; it builds so the workspace shape is in place.
