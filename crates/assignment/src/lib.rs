//! Assigning a mandelbox to an instance (SPEC §5): the request, who it comes from, the
//! rate limit, the payment gate, the per-user limit, and choosing the instance in one
//! transaction that holds with any number of server processes on one database.

mod assigner;
pub mod client;
pub mod neighbours;
pub mod request;

pub use assigner::{
    AssignError, AssignMetrics, AssignPolicy, Assigner, Assignment, Failure, LOCAL_DEV_COMMIT_HASH,
};
pub use client::ClientAddress;
pub use neighbours::RegionNeighbours;
pub use request::{AssignBody, AssignRequest, InvalidRequest, RegionChoice};
