mod drain;
mod overview;

pub use drain::{__path_drain_instance, drain_instance};
pub use overview::{__path_get_fleet, FleetReads, get_fleet};
