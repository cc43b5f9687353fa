use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use app_metrics::Registry;
use assignment::Assigner;
use auth::TokenVerifier;
use billing::BillingPortal;
use host_protocol::HostService;
use models::Db;
use models::db::Readiness;
use models::region_to_ami::EnabledRegions;
use scaling::{Fleet, FleetGauges};

use crate::metrics::HttpMetrics;

/// What every handler may use.
#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    /// A small pool of its own for the fleet document and gauges, so that neither
    /// queues behind requests, nor requests behind a scrape storm.
    pub ops_db: Db,
    /// `GET /fleet`'s reads, one at a time and shared.
    pub fleet_reads: Arc<crate::fleet::FleetReads>,
    /// Whether the request pool works now (`GET /readyz`).
    pub readiness: Arc<Readiness>,
    /// The enabled regions, kept in memory and refreshed by notifications.
    pub regions: Arc<EnabledRegions>,
    pub verifier: Arc<TokenVerifier>,
    pub assigner: Arc<Assigner>,
    pub hosts: HostService,
    /// The fleet, for operators' drains; `None` where the server manages no fleet.
    pub fleet: Option<Arc<Fleet>>,
    /// `None` where no mail transport is configured.
    pub mailer: Option<Arc<mail::Mailer>>,
    /// Stripe's customer portal.
    pub portal: Arc<dyn BillingPortal>,
    pub shutdown: ShutdownFlag,
    /// `TRUSTED_PROXY_HOPS`: how many proxies that append to `X-Forwarded-For` stand
    /// before this server (0: the connection's peer is the client).
    pub trusted_proxy_hops: u32,
    pub metrics: Arc<ApiMetrics>,
}

/// The application's metrics registry, and what the HTTP layer counts in it.
pub struct ApiMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    /// The fleet's state, read from the database at most every few seconds.
    pub gauges: FleetGauges,
}

/// Whether the process is shutting down, so that readiness turns false first.
#[derive(Debug, Clone, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    pub fn begin_shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
