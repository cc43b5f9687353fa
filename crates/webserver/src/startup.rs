//! Building the application from settings, and running it until told to stop.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use api::{ApiState, HttpOptions, Lifecycle};
use auth::{KeyError, TokenVerifier, VerifierConfig};
use models::{Db, DbError, PoolOptions, migrations};
use secrecy::ExposeSecret;
use tokio::signal::unix::{Signal, SignalKind, signal};

use auth::payments::{BillingPortal, CachedSubscriptions, NoPayments, StripeClient, Subscriptions};
use cloud_interface::CloudProvider;
use scaling::hosts::HostService;
use scaling::lifecycle::{self, LifecyclePolicy};
use scaling::{AssignPolicy, Assigner, FleetScaler, ScalingHook};

use crate::settings::{AuthSettings, Environment, Settings};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the database: {0}")]
    Database(String),
    #[error(
        "the database is {} migration(s) behind this binary ({}): run `webserver migrate` first, \
         or start with `webserver serve --migrate`",
        .0.len(),
        .0.join(", ")
    )]
    MigrationsPending(Vec<String>),
    #[error("{0}")]
    Migrations(#[from] migrations::MigrationError),
    #[error("development signing key: {0}")]
    DevKey(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Mail(String),
    #[error("{0}")]
    Cloud(String),
    #[error("cannot start the HTTP server: {0}")]
    Server(std::io::Error),
}

impl From<DbError> for StartupError {
    fn from(err: DbError) -> Self {
        Self::Database(err.to_string())
    }
}

/// The token verifier the settings call for: the identity provider's JWKS, and the
/// local development key where it is allowed.
pub fn verifier(settings: &AuthSettings) -> Result<TokenVerifier, KeyError> {
    let config = VerifierConfig {
        jwks_url: settings.jwks_url.clone(),
        audience: settings.audience.clone(),
        issuer: settings.issuer.clone(),
        jwks_min_refresh: settings.jwks_min_refresh,
        stripe_customer_id_claim: settings.stripe_customer_id_claim.clone(),
        ..VerifierConfig::new(settings.audience.clone())
    };
    let verifier = TokenVerifier::new(&config);
    if settings.accept_dev_tokens {
        let key = auth::load_or_create_dev_key(&settings.local_data_dir)?;
        tracing::info!(
            kid = key.kid(),
            "accepting tokens signed by the local development key"
        );
        return Ok(verifier.trust_key(&key));
    }
    Ok(verifier)
}

/// The mailer of the settings: SMTP if `SMTP_URL` is set, else SendGrid if
/// `SENDGRID_API_KEY` is, else (outside production and staging) an outbox that only logs.
fn mailer(
    settings: &Settings,
    db: &Db,
    transport: Option<Arc<dyn mail::Transport>>,
) -> Result<Option<Arc<mail::Mailer>>, StartupError> {
    let mail_settings = &settings.mail;
    let transport: Arc<dyn mail::Transport> = match transport {
        Some(transport) => transport,
        None => match (&mail_settings.smtp_url, &mail_settings.sendgrid_api_key) {
            (Some(url), _) => Arc::new(
                mail::SmtpTransport::from_url(url.expose_secret())
                    .map_err(|err| StartupError::Mail(format!("SMTP_URL: {err}")))?,
            ),
            (None, Some(key)) => Arc::new(mail::SendGrid::new(
                mail_settings.sendgrid_api_base.clone(),
                key.clone(),
            )),
            (None, None) if settings.environment.is_deployed() => {
                tracing::warn!("no SMTP_URL or SENDGRID_API_KEY: POST /mail answers 503");
                return Ok(None);
            }
            (None, None) => Arc::new(mail::Outbox::default()),
        },
    };
    let from = mail::Address::parse(&mail_settings.default_from)
        .map_err(|err| StartupError::Mail(format!("MAIL_DEFAULT_FROM: {err}")))?;
    Ok(Some(Arc::new(mail::Mailer::new(
        mail::TemplateSource::new(db.clone()),
        transport,
        from,
    ))))
}

/// Parts of the application to replace.
#[derive(Default)]
pub struct Overrides {
    pub scaling: Option<Arc<dyn ScalingHook>>,
    /// A cloud provider, and the prefix of its ids, instead of `CLOUD_PROVIDER`'s.
    pub cloud: Option<(Arc<dyn CloudProvider>, String)>,
    /// A mail transport instead of `SMTP_URL`'s or SendGrid.
    pub mail: Option<Arc<dyn mail::Transport>>,
}

/// The server, bound and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    lifecycle: Lifecycle,
    /// The periodic lifecycle and scaling passes; stopped with the server.
    jobs: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects to the database (whose migrations must be current, or are applied when
    /// `auto_migrate` is set), binds the listener and builds the HTTP server. With
    /// port 0 in `BIND_ADDR` the system picks a free port: see [`Application::port`].
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, Overrides::default()).await
    }

    /// [`Application::build`] with some parts replaced (tests observe scaling this way).
    pub async fn build_with(
        settings: &Settings,
        overrides: Overrides,
    ) -> Result<Self, StartupError> {
        let db = Db::new(
            settings.database.url.expose_secret(),
            PoolOptions {
                max_size: settings.database.pool_size,
                connection_timeout: settings.database.connect_timeout,
                ..PoolOptions::default()
            },
        );
        // Heartbeats: loss-tolerant, so their commits need not wait for the disk.
        let heartbeats = Db::new(
            settings.database.url.expose_secret(),
            PoolOptions {
                max_size: settings.database.pool_size.div_ceil(2),
                connection_timeout: settings.database.connect_timeout,
                synchronous_commit: false,
                ..PoolOptions::default()
            },
        );
        let auto_migrate = settings.auto_migrate;
        let pending = db
            .run(move |conn| {
                if auto_migrate {
                    let applied = migrations::run_pending(conn)
                        .map_err(|err| DbError::Task(err.to_string()))?;
                    if !applied.is_empty() {
                        tracing::info!(?applied, "applied migrations");
                    }
                }
                migrations::pending(conn).map_err(|err| DbError::Task(err.to_string()))
            })
            .await?;
        if !pending.is_empty() {
            return Err(StartupError::MigrationsPending(pending));
        }

        let verifier = Arc::new(verifier(&settings.auth)?);
        if settings.auth.jwks_url.is_some() {
            let verifier = verifier.clone();
            tokio::spawn(async move {
                match verifier.prefetch().await {
                    Ok(keys) => tracing::info!(keys, "fetched the identity provider's keys"),
                    Err(err) => tracing::warn!(error = %err, "cannot fetch the JWKS yet"),
                }
            });
        }

        let addr = settings.http.bind_addr;
        let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();
        let (payments, portal): (Arc<dyn Subscriptions>, Arc<dyn BillingPortal>) =
            match &settings.stripe.secret {
                Some(secret) => (
                    Arc::new(CachedSubscriptions::new(
                        StripeClient::new(settings.stripe.api_base.clone(), secret.clone()),
                        settings.stripe.cache_ttl,
                    )),
                    Arc::new(StripeClient::new(
                        settings.stripe.api_base.clone(),
                        secret.clone(),
                    )),
                ),
                None => (Arc::new(NoPayments), Arc::new(NoPayments)),
            };
        // WEBSERVER_URL defaults to BIND_ADDR; with port 0 there, to the port bound.
        let mut webserver_url = settings.cloud.webserver_url.clone();
        if webserver_url.port() == Some(0) {
            let _ = webserver_url.set_port(Some(port));
        }
        let fleet = Arc::new(
            crate::cloud::fleet(settings, db.clone(), overrides.cloud, webserver_url)
                .map_err(StartupError::Cloud)?,
        );
        let scaling = overrides
            .scaling
            .unwrap_or_else(|| Arc::new(FleetScaler::new(fleet.clone())) as Arc<dyn ScalingHook>);
        let policy = AssignPolicy {
            rate_limit_per_minute: settings.limits.rate_limit_per_minute,
            mandelbox_limit_per_user: settings.limits.mandelbox_limit_per_user,
            local_dev_commit_hash: matches!(
                settings.environment,
                Environment::Development | Environment::Local
            ),
            neighbours: settings.neighbours.clone(),
        };
        let lifecycle_pass = lifecycle::run_periodically(
            db.clone(),
            LifecyclePolicy {
                heartbeat_timeout: settings.scaling.heartbeat_timeout,
                pre_connection_timeout: settings.scaling.pre_connection_timeout,
                lingering_timeout: settings.scaling.lingering_timeout,
                allocation_timeout: settings.scaling.allocation_timeout,
            },
            fleet.clone(),
            settings.scaling.lifecycle_interval,
        );
        let scaling_pass = fleet.run_periodically(settings.scaling.scale_down_interval);
        let jobs = tokio::spawn(async move {
            tokio::join!(lifecycle_pass, scaling_pass);
        });
        let mailer = mailer(settings, &db, overrides.mail)?;
        let lifecycle = Lifecycle::default();
        let state = ApiState {
            assigner: Arc::new(Assigner::new(db.clone(), payments, scaling, policy)),
            hosts: HostService::new(db.clone(), heartbeats),
            portal,
            mailer,
            db,
            verifier,
            lifecycle: lifecycle.clone(),
            trust_forwarded_for: settings.limits.trust_forwarded_for,
        };
        let options = HttpOptions {
            max_body_bytes: settings.http.max_body_bytes,
            cors_origins: settings.http.cors_origins.clone(),
            workers: settings.http.workers,
            shutdown_timeout: settings.http.shutdown_timeout,
        };
        let server = api::server(listener, state, options).map_err(StartupError::Server)?;
        Ok(Self {
            server,
            port,
            lifecycle,
            jobs,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the application is shutting down (readiness answers 503 once it is).
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Begins a graceful shutdown: readiness turns false, the listener closes, and
    /// in-flight requests finish (up to `SHUTDOWN_TIMEOUT_SECS`).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.server.handle(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// Runs until stopped through a [`Stopper`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.jobs.abort();
        result
    }

    /// Runs until `shutdown` completes (see [`ShutdownSignals`]), then shuts down
    /// gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopper = self.stopper();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("signal received: finishing in-flight requests, then exiting");
            stopper.stop().await;
        });
        self.run_until_stopped().await
    }
}

#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    lifecycle: Lifecycle,
}

impl Stopper {
    pub async fn stop(&self) {
        self.lifecycle.begin_shutdown();
        self.handle.stop(true).await;
    }
}

/// SIGTERM and SIGINT, caught from the moment this is installed: install it before the
/// server starts listening, so that no signal arriving early kills the process.
pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes at the first SIGTERM or SIGINT.
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
