//! The chaos run (`scripts/chaos.sh`): the real `webserver` binary, on a PostgreSQL of
//! its own, through a database restart, a killed replica, an outage of every server, an
//! outage of the identity provider, and hostile requests. Each scenario is a function
//! that returns a row of the table; the test command runs short versions of them
//! (`crates/webserver/tests/chaos.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a chaos run stops loudly at the first thing its harness cannot do"
)]

pub mod cluster;
mod hostile;
pub mod load;
pub mod matrix;
pub mod proxy;
pub mod report;
pub mod scenarios;

pub use report::{Row, table};
pub use scenarios::Timing;
