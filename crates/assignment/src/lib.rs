//! Assigning a mandelbox to an instance (SPEC §5): the request, who it comes from, the
//! rate limit, the payment gate, the per-user limit, and choosing the instance in one
//! transaction that holds with any number of server processes on one database.

mod assigner;
pub mod client;
pub mod hook;
pub mod neighbours;
mod outcome;
pub mod request;
pub mod waiting;

pub use assigner::{AssignPolicy, Assigner, Assignment, LOCAL_DEV_COMMIT_HASH};
pub use client::ClientAddress;
pub use hook::{NoScaling, ScaleCheck, ScalingHook};
pub use neighbours::RegionNeighbours;
pub use outcome::{AssignError, AssignMetrics, Failure};
pub use request::{AssignBody, AssignRequest, InvalidRequest, RegionChoice};
pub use waiting::Waiting;
