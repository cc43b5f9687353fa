//! The business logic between the HTTP layer and the database: mandelbox assignment,
//! the host protocol, the lifecycle jobs, fleet scaling and image upgrades.

pub mod assign;
pub mod billing;
pub mod fleet;
pub mod hook;
pub mod hosts;
pub mod lifecycle;
pub mod metrics;
pub mod neighbours;
pub mod request;
pub mod sizing;
pub mod upgrade;

pub use assign::{AssignError, AssignPolicy, Assigner, Assignment, Failure};
pub use fleet::{Fleet, FleetError, FleetScaler, FleetSettings, PassReport};
pub use hook::{NoScaling, ScaleCheck, ScalingHook};
pub use neighbours::RegionNeighbours;
pub use request::{AssignRequest, InvalidRequest, RegionChoice};
