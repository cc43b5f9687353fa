//! Building the application from settings, and running it until told to stop.
//!
//! Every step that can fail runs first (pools, migrations, keys, clients, the listener);
//! the background work (lifecycle and scaling passes, the JWKS refresh) is spawned last,
//! so a start-up that fails leaves nothing running.

mod parts;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use api::{ApiMetrics, ApiState, HttpMetrics, HttpOptions, ShutdownFlag};
use app_metrics::Registry;
use assignment::ScalingHook;
use assignment::{AssignMetrics, AssignPolicy, Assigner, Waiting};
use auth::KeyError;
use cloud_interface::CloudProvider;
use host_protocol::{HostService, KnownHosts};
use models::instance::PlacementRule;
use models::notify::{Channel, Notifications};
use models::region_to_ami::EnabledRegions;
use models::{DbError, migrations};
use scaling::lifecycle::{self, LifecyclePolicy};
use scaling::{FleetGauges, FleetMetrics, FleetScaler, Predictions};
use secrecy::ExposeSecret;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub use parts::verifier;

use crate::settings::{Environment, Settings};

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the database")]
    Database(#[from] DbError),
    #[error(
        "the database is {} migration(s) behind this binary ({}): run `webserver migrate` first, \
         or start with `webserver serve --migrate`",
        .0.len(),
        .0.join(", ")
    )]
    MigrationsPending(Vec<String>),
    #[error(transparent)]
    Migrations(#[from] migrations::MigrationError),
    #[error("development signing key")]
    DevKey(#[from] KeyError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Mail(&'static str, #[source] Cause),
    #[error("{0}")]
    Cloud(&'static str),
    #[error(
        "MANDELBOXES_PER_INSTANCE must be set: the cloud provider cannot say how many \
         mandelboxes an instance of type {0:?} holds"
    )]
    LaunchCapacity(String),
    #[error("cannot build an HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot start listening for database notifications")]
    Listen(#[source] std::io::Error),
    #[error("cannot start the HTTP server")]
    Server(#[source] std::io::Error),
}

/// Parts of the application to replace.
#[derive(Default)]
pub struct Overrides {
    pub scaling: Option<Arc<dyn ScalingHook>>,
    /// A cloud provider instead of `CLOUD_PROVIDER`'s.
    pub cloud: Option<Arc<dyn CloudProvider>>,
    /// A mail transport instead of `SMTP_URL`'s or SendGrid.
    pub mail: Option<Arc<dyn mail::Transport>>,
}

/// The background work, spawned once everything else stands.
struct Jobs {
    /// Every pool probed while idle, so each reconnects by itself after an outage.
    keep_warm: [models::Db; 3],
    lifecycle: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    scaling: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The prediction job of `PLACEMENT=lifetime` (nothing with `packed`).
    predictions: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Keeps the host credentials known in memory (see `host_protocol::known`).
    known_hosts: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    verifier: Arc<auth::TokenVerifier>,
}

/// The server, bound and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    shutdown: ShutdownFlag,
    /// The periodic lifecycle and scaling passes, and the JWKS refresh; stopped with the
    /// server.
    jobs: tokio::task::JoinHandle<()>,
    metrics: Arc<ApiMetrics>,
    fleet_metrics: FleetMetrics,
    /// The capacity checks assignments ask for.
    scaling: Arc<dyn ScalingHook>,
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
        let pools = parts::pools(settings);
        let auto_migrate = settings.auto_migrate;
        let pending = pools
            .db
            .run(move |conn| Ok(check_migrations(conn, auto_migrate)))
            .await??;
        if !pending.is_empty() {
            return Err(StartupError::MigrationsPending(pending));
        }
        let verifier = Arc::new(parts::verifier(&settings.auth)?);
        let addr = settings.http.bind_addr;
        let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();
        // WEBSERVER_URL defaults to BIND_ADDR; with port 0 there, to the port bound.
        let mut webserver_url = settings.cloud.webserver_url.clone();
        if webserver_url.port() == Some(0) {
            let _ = webserver_url.set_port(Some(port));
        }
        let registry = Registry::new();
        let fleet_metrics = FleetMetrics::new(&registry);
        let fleet = Arc::new(crate::cloud::fleet(
            settings,
            pools.db.clone(),
            overrides.cloud,
            webserver_url,
            fleet_metrics.clone(),
        )?);
        let scaling = overrides
            .scaling
            .unwrap_or_else(|| Arc::new(FleetScaler::new(fleet.clone())) as Arc<dyn ScalingHook>);
        let mailer = parts::mailer(settings, &pools.db, overrides.mail)?;
        let notifications = Notifications::listen(settings.database.url.expose_secret())
            .map_err(StartupError::Listen)?;
        let backends = Backends {
            scaling: scaling.clone(),
            mailer,
            verifier: verifier.clone(),
            fleet: fleet.clone(),
        };
        let known_hosts = KnownHosts::new();
        let state = api_state(
            settings,
            &pools,
            &registry,
            &notifications,
            backends,
            known_hosts.clone(),
        )?;
        let (shutdown, metrics) = (state.shutdown.clone(), state.metrics.clone());
        let options = HttpOptions {
            max_body_bytes: settings.http.max_body_bytes,
            cors_origins: settings.http.cors_origins.clone(),
            workers: settings.http.workers,
            shutdown_timeout: settings.http.shutdown_timeout,
        };
        let server = api::server(listener, state, options).map_err(StartupError::Server)?;
        let jobs = Jobs {
            keep_warm: [
                pools.db.clone(),
                pools.heartbeats.clone(),
                pools.ops.clone(),
            ],
            predictions: match settings.scaling.placement {
                PlacementRule::Packed => Box::pin(std::future::ready(())),
                PlacementRule::Lifetime => Box::pin(
                    Arc::new(Predictions::new(
                        pools.db.clone(),
                        settings.scaling.session_history_kept,
                    ))
                    .run_every(settings.scaling.prediction_interval, fleet_metrics.clone()),
                ),
            },
            lifecycle: Box::pin(lifecycle::apply_rules_every(
                pools.db,
                lifecycle_policy(settings),
                fleet.clone(),
                settings.scaling.lifecycle_interval,
                fleet_metrics.clone(),
            )),
            scaling: Box::pin(fleet.run_periodically(settings.scaling.scale_down_interval)),
            known_hosts: Box::pin(known_hosts.keep_loaded(
                pools.heartbeats.clone(),
                notifications.watch(Channel::Hosts),
            )),
            verifier,
        };
        Ok(Self {
            server,
            port,
            shutdown,
            jobs: spawn(jobs),
            metrics,
            fleet_metrics,
            scaling,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the application is shutting down (readiness answers 503 once it is).
    pub fn shutdown_flag(&self) -> ShutdownFlag {
        self.shutdown.clone()
    }

    /// The capacity checks assignments ask for (its `idle` tells when they are done).
    pub fn scaling(&self) -> Arc<dyn ScalingHook> {
        self.scaling.clone()
    }

    /// The application's metrics registry.
    pub fn registry(&self) -> &Registry {
        &self.metrics.registry
    }

    /// The fleet's counters (job runs among them).
    pub fn fleet_metrics(&self) -> &FleetMetrics {
        &self.fleet_metrics
    }

    /// Begins a graceful shutdown: readiness turns false, the listener closes, and
    /// in-flight requests finish (up to `SHUTDOWN_TIMEOUT_SECS`).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.server.handle(),
            shutdown: self.shutdown.clone(),
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

/// The parts of the API state built before it.
struct Backends {
    scaling: Arc<dyn ScalingHook>,
    mailer: Option<Arc<mail::Mailer>>,
    verifier: Arc<auth::TokenVerifier>,
    fleet: Arc<scaling::Fleet>,
}

/// What the handlers share: assignment, the host protocol, payments, mail, metrics.
fn api_state(
    settings: &Settings,
    pools: &parts::Pools,
    registry: &Registry,
    notifications: &Notifications,
    backends: Backends,
    known_hosts: Arc<KnownHosts>,
) -> Result<ApiState, StartupError> {
    let Backends {
        scaling,
        mailer,
        verifier,
        fleet,
    } = backends;
    let (payments, portal) = parts::payments(settings)?;
    let policy = AssignPolicy {
        rate_limit_per_minute: settings.limits.rate_limit_per_minute,
        mandelbox_limit_per_user: settings.limits.mandelbox_limit_per_user,
        local_dev_commit_hash: matches!(
            settings.environment,
            Environment::Development | Environment::Local
        ),
        neighbours: settings.neighbours.clone(),
        refusal_counts_for: settings.scaling.refusal_counts_for,
        placement: settings.scaling.placement,
    };
    let assigner = Assigner::new(
        pools.db.clone(),
        payments,
        scaling,
        policy,
        AssignMetrics::new(registry),
        Waiting::new(notifications.watch(Channel::Capacity), registry),
    );
    Ok(ApiState {
        assigner: Arc::new(assigner),
        hosts: HostService::with_batch_sizes(
            pools.db.clone(),
            pools.heartbeats.clone(),
            app_metrics::histogram(
                registry,
                "webserver_heartbeat_batch_size",
                "Heartbeats written together in one statement.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            ),
        )
        .with_address_rule(host_protocol::AddressRule {
            allow_private: settings.scaling.host_private_addresses,
        })
        .with_known_hosts(known_hosts)
        .with_cloud(fleet.cloud()),
        fleet: Some(fleet),
        portal,
        mailer,
        db: pools.db.clone(),
        fleet_reads: Arc::default(),
        ops_db: pools.ops.clone(),
        readiness: Arc::new(models::db::Readiness::new(pools.db.clone())),
        regions: Arc::new(EnabledRegions::new(
            pools.db.clone(),
            notifications,
            Duration::from_secs(5),
        )),
        verifier,
        shutdown: ShutdownFlag::default(),
        trusted_proxy_hops: settings.limits.trusted_proxy_hops,
        metrics: Arc::new(ApiMetrics {
            http: HttpMetrics::new(registry),
            gauges: FleetGauges::new(registry, Duration::from_secs(5)),
            registry: registry.clone(),
        }),
    })
}

/// The migrations still to apply, after applying them when `auto_migrate` is set.
fn check_migrations(
    conn: &mut diesel::PgConnection,
    auto_migrate: bool,
) -> Result<Vec<String>, migrations::MigrationError> {
    if auto_migrate {
        let applied = migrations::run_pending(conn)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations");
        }
    }
    migrations::pending(conn)
}

fn lifecycle_policy(settings: &Settings) -> LifecyclePolicy {
    let scaling = &settings.scaling;
    LifecyclePolicy {
        heartbeat_timeout: scaling.heartbeat_timeout,
        pre_connection_timeout: scaling.pre_connection_timeout,
        lingering_timeout: scaling.lingering_timeout,
        allocation_timeout: scaling.allocation_timeout,
        drain_max_age: scaling.drain_max_age,
        outage_gap: LifecyclePolicy::outage_gap_for(scaling.lifecycle_interval),
        arrivals_kept: scaling.learning.long_span,
        session_history_kept: scaling.session_history_kept,
    }
}

/// How often an idle pool is probed.
const KEEP_WARM: Duration = Duration::from_millis(500);

/// Spawns the background work: the periodic passes, and keeping the JWKS fresh (fetched
/// at once, then refreshed, and retried with a short backoff while none is usable).
fn spawn(jobs: Jobs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let refresh = async {
            match jobs.verifier.prefetch().await {
                Ok(keys) if keys > 0 => {
                    tracing::info!(keys, "fetched the identity provider's keys")
                }
                _ => {}
            }
            jobs.verifier.refresh_keys_periodically().await;
        };
        let [requests, heartbeats, ops] = jobs.keep_warm;
        tokio::join!(
            jobs.lifecycle,
            jobs.scaling,
            jobs.predictions,
            jobs.known_hosts,
            refresh,
            requests.keep_warm(KEEP_WARM),
            heartbeats.keep_warm(KEEP_WARM),
            ops.keep_warm(KEEP_WARM),
        );
    })
}

#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    shutdown: ShutdownFlag,
}

impl Stopper {
    pub async fn stop(&self) {
        self.shutdown.begin_shutdown();
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
