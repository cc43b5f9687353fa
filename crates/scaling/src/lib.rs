//! The business logic between the HTTP layer and the database: mandelbox assignment,
//! the host protocol, the lifecycle jobs, and (as the decision table so far) fleet sizing.

pub mod assign;
pub mod hook;
pub mod hosts;
pub mod lifecycle;
pub mod neighbours;
pub mod request;
pub mod sizing;

pub use assign::{AssignError, AssignPolicy, Assigner, Assignment, Failure};
pub use hook::{NoScaling, ScaleCheck, ScalingHook};
pub use neighbours::RegionNeighbours;
pub use request::{AssignRequest, InvalidRequest, RegionChoice};
