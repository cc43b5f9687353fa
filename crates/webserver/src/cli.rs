//! The command line: `serve`, `migrate`, `ami-upgrade`, `dev-token`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use models::{Db, PoolOptions, migrations};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::settings::{
    AuthSettings, ConfigError, DatabaseSettings, Environment, Settings, Vars, log_format,
};
use crate::startup::{Application, ShutdownSignals, StartupError};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "webserver",
    version,
    about = "Control plane of the GPU streaming service: assigns mandelboxes to instances, \
             keeps the fleet sized, and speaks to the host agents.",
    long_about = None,
    after_help = "Settings come from the environment and an optional .env file; see README.md."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server until SIGTERM or SIGINT.
    Serve {
        /// Apply pending migrations before starting (for local use; same as AUTO_MIGRATE=true).
        #[arg(long)]
        migrate: bool,
    },
    /// Apply pending database migrations. Safe to run again, and from several processes.
    Migrate,
    /// Roll the fleet onto new images: ami-upgrade <client_commit_hash> '{"region": "ami-id"}'.
    AmiUpgrade {
        /// The client commit hash the new images serve.
        client_commit_hash: String,
        /// A JSON object from region name to AMI id.
        region_to_ami: String,
    },
    /// Print a user token signed by the local development key (local and testing only).
    DevToken {
        /// The user the token is for (its `sub` claim).
        #[arg(long)]
        user: String,
        /// Give the token the admin scope.
        #[arg(long)]
        admin: bool,
        /// The Stripe customer id to put in the token's customer claim.
        #[arg(long, value_name = "ID")]
        stripe_customer: Option<String>,
        /// How long the token is valid, in hours.
        #[arg(long, default_value_t = 24, value_name = "HOURS")]
        ttl_hours: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Failed(String),
}

impl Cli {
    pub fn run(self, vars: &Vars) -> Result<ExitCode, CliError> {
        match self.command {
            Command::Serve { migrate } => serve(vars, migrate),
            Command::Migrate => migrate(vars),
            Command::AmiUpgrade { .. } => {
                eprintln!("ami-upgrade is not implemented yet");
                Ok(ExitCode::from(2))
            }
            Command::DevToken {
                user,
                admin,
                stripe_customer,
                ttl_hours,
            } => dev_token(vars, &user, admin, stripe_customer, ttl_hours),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Failed(format!("cannot start the async runtime: {err}")))
}

fn serve(vars: &Vars, migrate: bool) -> Result<ExitCode, CliError> {
    let mut settings = Settings::from_vars(vars)?;
    settings.auto_migrate |= migrate;
    telemetry::init(settings.log_format);
    runtime()?.block_on(async {
        let signals = ShutdownSignals::install()
            .map_err(|err| CliError::Failed(format!("cannot install signal handlers: {err}")))?;
        let app = Application::build(&settings).await?;
        tracing::info!(
            environment = settings.environment.as_str(),
            address = %settings.http.bind_addr.ip(),
            port = app.port(),
            "listening"
        );
        app.run_until(signals.received())
            .await
            .map_err(|err| CliError::Failed(format!("server failed: {err}")))?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn migrate(vars: &Vars) -> Result<ExitCode, CliError> {
    let database = DatabaseSettings::from_vars(vars)?;
    telemetry::init(log_format(vars)?);
    let db = Db::new(
        database.url.expose_secret(),
        PoolOptions {
            max_size: 1,
            connection_timeout: database.connect_timeout,
            // A migration may wait for other processes' locks as long as it takes.
            lock_timeout: Duration::ZERO,
            ..PoolOptions::default()
        },
    );
    let mut conn = db
        .get()
        .map_err(|err| CliError::Failed(format!("cannot reach the database: {err}")))?;
    let applied =
        migrations::run_pending(&mut conn).map_err(|err| CliError::Failed(err.to_string()))?;
    if applied.is_empty() {
        println!("the database is up to date");
    } else {
        println!(
            "applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn dev_token(
    vars: &Vars,
    user: &str,
    admin: bool,
    stripe_customer: Option<String>,
    ttl_hours: u64,
) -> Result<ExitCode, CliError> {
    let environment = Environment::from_vars(vars)?;
    let auth = AuthSettings::from_vars(vars, environment)?;
    if !auth.accept_dev_tokens {
        return Err(CliError::Failed(format!(
            "dev-token: development tokens are refused in {} (the server would not accept them)",
            environment.as_str()
        )));
    }
    if user.trim().is_empty() {
        return Err(CliError::Failed(
            "dev-token: --user must not be empty".to_owned(),
        ));
    }
    let key = auth::load_or_create_dev_key(&auth.local_data_dir)
        .map_err(|err| CliError::Failed(format!("development signing key: {err}")))?;
    let mut extra = Map::new();
    if let Some(customer) = stripe_customer {
        extra.insert(auth.stripe_customer_id_claim.clone(), Value::from(customer));
    }
    let token = key
        .mint(&auth::NewToken {
            subject: user.to_owned(),
            audience: auth.audience.clone(),
            issuer: auth.issuer.clone(),
            lifetime: Duration::from_secs(ttl_hours.saturating_mul(3600)),
            scopes: if admin {
                vec![auth::ADMIN_SCOPE.to_owned()]
            } else {
                Vec::new()
            },
            extra,
        })
        .map_err(|err| CliError::Failed(err.to_string()))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
