//! Mandelbox assignment and, later, fleet sizing: the business logic between the HTTP
//! layer and the database.

pub mod assign;
pub mod hook;
pub mod hosts;
pub mod lifecycle;
pub mod neighbours;
pub mod request;

pub use assign::{AssignError, AssignPolicy, Assigner, Assignment, Failure};
pub use hook::{NoScaling, ScaleCheck, ScalingHook};
pub use neighbours::RegionNeighbours;
pub use request::{AssignRequest, InvalidRequest, RegionChoice};
