//! The database: schema, typed identifiers and units, row types and every query.
//!
//! All SQL lives here. Each table has its own module holding its row type, its
//! insertable and its queries, which take a connection and return `QueryResult`.

pub mod db;
pub mod demand;
pub mod deployment;
pub mod email_template;
pub mod history;
pub mod instance;
pub mod invariants;
pub mod learning;
pub mod lifecycle_clock;
pub mod mandelbox;
pub mod migrations;
pub mod notify;
pub mod overview;
mod prepared;
pub mod rate_limit;
pub mod region_to_ami;
pub mod schema;

pub use db::{Db, DbError, PoolOptions};
pub use domain::{
    AmiId, CommitHash, InstanceName, InstanceStatus, InvalidValue, MandelboxId, MandelboxStatus,
    Region, UnixMillis, UserId,
};
pub use mandelbox::Mandelbox;
