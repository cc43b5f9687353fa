//! The migrations, embedded in every binary that links this crate.

use diesel::PgConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(Debug, thiserror::Error)]
#[error("migrations failed")]
pub struct MigrationError(#[source] Box<dyn std::error::Error + Send + Sync>);

fn failed(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> MigrationError {
    MigrationError(err.into())
}

/// Held while migrating, so that processes starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x7765_6273_7276_0000;

/// Applies every pending migration, each in its own transaction, and returns the
/// versions applied (none when the database is up to date). Safe to call from several
/// processes at once: they take turns, and the later ones find nothing to do.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::BigInt;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(failed)?;
    // A pooled connection has a statement timeout; a migration may take longer.
    let timeout = diesel::sql_query("SELECT current_setting('statement_timeout') AS setting")
        .get_result::<Setting>(conn)
        .map_err(failed)?;
    diesel::sql_query("SET statement_timeout = 0")
        .execute(conn)
        .map_err(failed)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| applied.iter().map(ToString::to_string).collect());
    let restored =
        diesel::sql_query("SELECT set_config('statement_timeout', $1, false) AS setting")
            .bind::<diesel::sql_types::Text, _>(&timeout.setting)
            .get_result::<Setting>(conn);
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    let applied = applied.map_err(failed)?;
    unlocked.map_err(failed)?;
    restored.map_err(failed)?;
    Ok(applied)
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    setting: String,
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
