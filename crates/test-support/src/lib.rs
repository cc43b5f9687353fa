//! Test harness shared by the workspace's tests.
//!
//! - [`TestDatabase`]: a fresh PostgreSQL database per test, cloned from a migrated
//!   template database, dropped when the test ends.
//! - [`InstanceRow`]: an instance row for a test, with defaults for what it does not
//!   care about ([`TestDatabase::add_instance`]).
//! - [`TestIdentity`]: an RS256 key of the test's own, published by a local JWKS
//!   server ([`JwksServer`]), and tokens signed with it.
//! - [`OwnPostgres`]: a PostgreSQL server of its own, for tests that stop or restart it.
//! - [`Moto`]: moto's server, the local AWS the AWS tests run against; [`SmtpServer`]:
//!   aiosmtpd, a real SMTP server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test harness fails loudly: a panic is the clearest report"
)]

mod database;
mod identity;
mod instance_row;
mod jwks_server;
mod moto;
mod own_postgres;
mod python;
mod smtp_server;
mod stripe_stub;
mod stub_server;
mod temp_dir;

pub use database::{Fleet, TestDatabase, admin_url, number, try_number};
pub use identity::{TEST_AUDIENCE, TEST_ISSUER, TestIdentity, unix_now_secs};
pub use instance_row::InstanceRow;
pub use jwks_server::JwksServer;
pub use moto::{MOTO_ACCESS_KEY_ID, MOTO_INSTANCE_PROFILE, MOTO_SECRET_ACCESS_KEY, Moto};
pub use own_postgres::OwnPostgres;
pub use smtp_server::{ReceivedMail, SmtpServer};
pub use stripe_stub::{STRIPE_TEST_SECRET, StripeStub};
pub use stub_server::{StubRequest, StubServer};
pub use temp_dir::TempDir;
