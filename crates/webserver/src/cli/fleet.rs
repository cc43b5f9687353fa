//! `webserver fleet [--json]`: the operators' view of the fleet in a terminal.

use std::process::ExitCode;
use std::time::Duration;

use models::{Db, PoolOptions, UnixMillis};
use scaling::overview;
use secrecy::ExposeSecret;

use super::CliError;
use crate::settings::{DatabaseSettings, Vars};

pub(super) fn show(vars: &Vars, json: bool) -> Result<ExitCode, CliError> {
    let database = DatabaseSettings::from_vars(vars)?;
    let db = Db::new(
        database.url.expose_secret(),
        PoolOptions {
            max_size: 1,
            connection_timeout: database.connect_timeout,
            lock_timeout: Duration::from_secs(5),
            statement_timeout: database.statement_timeout,
            lock_connections: 0,
            name: "cli",
            ..PoolOptions::default()
        },
    );
    let mut conn = db.get().map_err(CliError::Database)?;
    let fleet = overview::read(&mut conn, UnixMillis::now())
        .map_err(|err| CliError::Database(err.into()))?;
    if json {
        let text = serde_json::to_string_pretty(&fleet)
            .map_err(|err| CliError::Failed(format!("cannot print the fleet: {err}")))?;
        println!("{text}");
    } else {
        print!("{}", overview::render_text(&fleet));
    }
    Ok(ExitCode::SUCCESS)
}
