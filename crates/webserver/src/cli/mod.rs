//! The command line: `serve`, `migrate`, `ami-upgrade`, `dev-token`, `fleet`.

mod fleet;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use models::{Db, PoolOptions, migrations};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use scaling::upgrade::{self, UpgradeRequest};

use crate::settings::{
    AuthSettings, CloudProviderKind, ConfigError, DatabaseSettings, Environment, Settings, Vars,
    log_format,
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
    after_help = "Settings come from the environment and an optional .env file; see docs/operations.md."
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
    ///
    /// Records the new images inactive, launches DEFAULT_INSTANCE_BUFFER instances of each
    /// and waits until their hosts register, then marks every older instance of the
    /// region DRAINING, asks its host to drain, and makes the new image the active one.
    /// All or nothing per region; exits 1 if any region was not upgraded.
    AmiUpgrade {
        /// The client commit hash the new images serve.
        client_commit_hash: String,
        /// A JSON object from region name to AMI id, e.g. '{"us-east-1": "ami-0abc"}'.
        region_to_ami: String,
        /// How long the new instances may take to register before a region is rolled back.
        #[arg(long, default_value_t = 900, value_name = "SECS")]
        timeout_secs: u64,
    },
    /// Print a user token signed by the local development key (local and testing only).
    /// The fleet, straight from DATABASE_URL (no server needed): one line per region
    /// with capacity, free slots and waiting users, then its instances.
    Fleet {
        /// Print the `GET /fleet` JSON document instead.
        #[arg(long)]
        json: bool,
    },
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
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("ami-upgrade")]
    Upgrade(#[from] upgrade::UpgradeError),
    #[error("ami-upgrade: the request is not valid; nothing was changed")]
    InvalidUpgrade(#[source] upgrade::InvalidUpgrade),
    #[error("cannot reach the database")]
    Database(#[source] models::DbError),
    #[error(transparent)]
    Migrations(#[from] migrations::MigrationError),
    #[error("development signing key")]
    DevKey(#[from] auth::KeyError),
    #[error("{0}")]
    Io(&'static str, #[source] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

impl Cli {
    pub fn run(self, vars: &Vars) -> Result<ExitCode, CliError> {
        match self.command {
            Command::Serve { migrate } => serve(vars, migrate),
            Command::Migrate => migrate(vars),
            Command::AmiUpgrade {
                client_commit_hash,
                region_to_ami,
                timeout_secs,
            } => ami_upgrade(
                vars,
                &client_commit_hash,
                &region_to_ami,
                Duration::from_secs(timeout_secs),
            ),
            Command::Fleet { json } => fleet::show(vars, json),
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
        .map_err(|err| CliError::Io("cannot start the async runtime", err))
}

fn signals() -> Result<ShutdownSignals, CliError> {
    ShutdownSignals::install().map_err(|err| CliError::Io("cannot install signal handlers", err))
}

fn serve(vars: &Vars, migrate: bool) -> Result<ExitCode, CliError> {
    let mut settings = Settings::from_vars(vars)?;
    settings.auto_migrate |= migrate;
    telemetry::init(settings.log_format);
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let signals = signals()?;
        let app = Application::build(&settings).await?;
        tracing::info!(
            environment = settings.environment.as_str(),
            address = %settings.http.bind_addr.ip(),
            port = app.port(),
            "listening"
        );
        app.run_until(signals.received())
            .await
            .map_err(|err| CliError::Io("the server failed", err))?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Background work still running (a capacity check, a simulated host) gets a moment
    // to finish, not a veto over the exit.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn migrate(vars: &Vars) -> Result<ExitCode, CliError> {
    let database = DatabaseSettings::from_vars(vars)?;
    telemetry::init(log_format(vars)?);
    let db = Db::new(
        database.url.expose_secret(),
        PoolOptions {
            max_size: 1,
            connection_timeout: database.connect_timeout,
            // A migration may wait for other processes' locks, and run, as long as it takes.
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            lock_connections: 0,
            name: "migrate",
            ..PoolOptions::default()
        },
    );
    let mut conn = db.get().map_err(CliError::Database)?;
    let applied = migrations::run_pending(&mut conn)?;
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

fn ami_upgrade(
    vars: &Vars,
    commit_hash: &str,
    region_to_ami: &str,
    timeout: Duration,
) -> Result<ExitCode, CliError> {
    let request =
        UpgradeRequest::parse(commit_hash, region_to_ami).map_err(CliError::InvalidUpgrade)?;
    let settings = Settings::from_vars(vars)?;
    telemetry::init(settings.log_format);
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let signals = signals()?;
        let db = Db::new(
            settings.database.url.expose_secret(),
            PoolOptions {
                max_size: 4,
                connection_timeout: settings.database.connect_timeout,
                statement_timeout: settings.database.statement_timeout,
                name: "upgrade",
                ..PoolOptions::default()
            },
        );
        let metrics = scaling::FleetMetrics::new(&app_metrics::Registry::new());
        let fleet = crate::cloud::fleet(
            &settings,
            db,
            None,
            settings.cloud.webserver_url.clone(),
            metrics,
        )?;
        let outcomes = upgrade::upgrade(&fleet, &request, timeout).await?;
        let mut failed = 0;
        for outcome in &outcomes {
            match &outcome.result {
                Ok(done) if done.already_active => println!(
                    "{}: {} is already the active image; nothing to do",
                    outcome.region, outcome.image
                ),
                Ok(done) => println!(
                    "{}: upgraded to {} ({} new instance(s) active, {} old asked to drain, {} unreachable)",
                    outcome.region,
                    outcome.image,
                    done.launched.len(),
                    done.drained.len(),
                    done.unreachable.len()
                ),
                Err(err) => {
                    failed += 1;
                    println!(
                        "{}: NOT upgraded to {}: {}; the region is unchanged",
                        outcome.region,
                        outcome.image,
                        crate::settings::error_chain(err)
                    );
                }
            }
        }
        let launched = outcomes
            .iter()
            .any(|o| o.result.as_ref().is_ok_and(|done| !done.launched.is_empty()));
        if settings.cloud.provider == CloudProviderKind::Local && launched {
            // Simulated instances live in the process that started them.
            println!(
                "the new simulated instances run in this process: serving them until SIGINT or SIGTERM"
            );
            signals.received().await;
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn dev_token(
    vars: &Vars,
    user: &str,
    admin: bool,
    stripe_customer: Option<String>,
    ttl_hours: u64,
) -> Result<ExitCode, CliError> {
    let environment = Environment::from_vars_or_local(vars)?;
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
    let key = auth::load_or_create_dev_key(&auth.local_data_dir)?;
    let mut extra = Map::new();
    if let Some(customer) = stripe_customer {
        extra.insert(auth.stripe_customer_id_claim.clone(), Value::from(customer));
    }
    if admin {
        // Admin in both claims, so the token is an admin's whichever ADMIN_CLAIM says.
        extra.insert(
            "permissions".to_owned(),
            Value::from(vec![auth::ADMIN_SCOPE.to_owned()]),
        );
    }
    let token = key.mint(&auth::NewToken {
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
    })?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
