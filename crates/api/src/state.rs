use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use auth::TokenVerifier;
use auth::payments::BillingPortal;
use models::Db;
use scaling::Assigner;
use scaling::hosts::HostService;

/// What every handler may use.
#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub verifier: Arc<TokenVerifier>,
    pub assigner: Arc<Assigner>,
    pub hosts: HostService,
    /// `None` where no mail transport is configured.
    pub mailer: Option<Arc<mail::Mailer>>,
    /// Stripe's customer portal.
    pub portal: Arc<dyn BillingPortal>,
    pub lifecycle: Lifecycle,
    /// Whether the client's address is the first of `X-Forwarded-For` (behind a proxy
    /// that sets it) rather than the connection's peer.
    pub trust_forwarded_for: bool,
}

/// Whether the process is shutting down, so that readiness turns false first.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle(Arc<AtomicBool>);

impl Lifecycle {
    pub fn begin_shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
