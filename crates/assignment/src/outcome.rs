//! How an assignment ends: the refusal codes, the errors, and their count.

use app_metrics::Registry;
use models::DbError;
use prometheus::IntCounterVec;

/// Why no mandelbox was assigned, as the 503 body's `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    RegionNotEnabled,
    CommitHashMismatch,
    NoInstanceAvailable,
    UserAlreadyActive,
    ServiceUnavailable,
}

impl Failure {
    pub fn code(self) -> &'static str {
        match self {
            Self::RegionNotEnabled => "REGION_NOT_ENABLED",
            Self::CommitHashMismatch => "COMMIT_HASH_MISMATCH",
            Self::NoInstanceAvailable => "NO_INSTANCE_AVAILABLE",
            Self::UserAlreadyActive => "USER_ALREADY_ACTIVE",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("username does not match the token's user")]
    Forbidden,
    #[error("too many requests: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("no subscription: the token names no Stripe customer")]
    NoCustomer,
    #[error("no active or trialing subscription")]
    NotPaying,
    /// No mandelbox: the 503 of the contract, with its code.
    #[error("{}", .0.code())]
    Refused(Failure),
    /// The database or the payment provider is down or busy: 503 `SERVICE_UNAVAILABLE`.
    #[error("a dependency is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected database failure.
    #[error("assignment failed")]
    Internal(#[source] DbError),
    /// The client went away while its request waited: nobody is answered.
    #[error("the client went away while waiting")]
    ClientGone,
}

impl From<DbError> for AssignError {
    fn from(err: DbError) -> Self {
        if err.is_outage() {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Internal(err)
        }
    }
}

impl AssignError {
    /// The outcome label of `webserver_assign_outcomes_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Refused(failure) => failure.code(),
            Self::Unavailable(_) => Failure::ServiceUnavailable.code(),
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::NoCustomer | Self::NotPaying => "PAYMENT_REQUIRED",
            Self::Internal(_) => "ERROR",
            Self::ClientGone => "DISCONNECTED",
        }
    }
}

/// `webserver_assign_outcomes_total{outcome}`: `ASSIGNED`, or the refusal's code.
#[derive(Clone)]
pub struct AssignMetrics {
    outcomes: IntCounterVec,
}

impl AssignMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            outcomes: app_metrics::counter_vec(
                registry,
                "webserver_assign_outcomes_total",
                "Mandelbox assignment requests, by outcome: ASSIGNED or the refusal's code.",
                &["outcome"],
            ),
        }
    }

    /// Counts one request that ended with `outcome`.
    pub(crate) fn count(&self, outcome: &str) {
        self.outcomes.with_label_values(&[outcome]).inc();
    }

    /// How many requests ended with `outcome` (for tests and reports).
    pub fn outcomes(&self, outcome: &str) -> u64 {
        self.outcomes.with_label_values(&[outcome]).get()
    }
}
