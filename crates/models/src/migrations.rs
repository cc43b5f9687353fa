//! The migrations, embedded in every binary that links this crate.

use diesel::PgConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(Debug, thiserror::Error)]
#[error("migrations failed: {0}")]
pub struct MigrationError(String);

fn failed(err: impl std::fmt::Display) -> MigrationError {
    MigrationError(err.to_string())
}

/// Applies every pending migration, each in its own transaction, and returns the
/// versions applied (none when the database is up to date).
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(failed)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// The versions of the migrations this binary has that the database has not applied.
pub fn pending(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    let pending = conn.pending_migrations(MIGRATIONS).map_err(failed)?;
    Ok(pending
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// The versions of every migration embedded in this binary, oldest first.
pub fn embedded_versions() -> Result<Vec<String>, MigrationError> {
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS).map_err(failed)?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}
