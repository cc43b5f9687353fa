//! Stripe (SPEC §5 step 3, `POST /stripe/customer_portal`).
//!
//! - [`Subscriptions`]: whether a customer has a subscription that is `active` or
//!   `trialing`, the payment gate of assignment; [`CachedSubscriptions`] keeps answers a
//!   short time and shares concurrent questions about one customer.
//! - [`BillingPortal`]: a billing-portal session where a customer manages their billing.
//! - [`StripeClient`] implements both against Stripe's API; [`NoPayments`] refuses both,
//!   for deployments without a Stripe key.
//!
//! Stripe being unreachable is an error, never a yes.

mod cache;
mod portal;
mod stripe;

use async_trait::async_trait;
use url::Url;

pub use cache::CachedSubscriptions;
pub use portal::PortalRequest;
pub use stripe::StripeClient;

/// Why a subscription could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("payments are not configured")]
    NotConfigured,
    #[error("the payment provider is unavailable")]
    Unavailable(#[source] StripeFailure),
}

/// Why Stripe could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StripeFailure {
    #[error("cannot reach Stripe")]
    Unreachable(#[source] reqwest::Error),
    #[error("Stripe answered {0}")]
    Status(reqwest::StatusCode),
    #[error("Stripe's answer is not what its API says")]
    UnexpectedAnswer(#[source] reqwest::Error),
    #[error("Stripe's answer holds a malformed URL")]
    BadUrl(#[source] url::ParseError),
}

/// Subscription lookups.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Whether `customer` has a subscription in status `active` or `trialing`.
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError>;
}

/// Why a billing-portal session was not created.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("payments are not configured")]
    NotConfigured,
    /// Stripe said no (unknown customer, a return URL it does not accept, …): its words.
    #[error("Stripe refused: {0}")]
    Refused(String),
    #[error("the payment provider is unavailable")]
    Unavailable(#[source] StripeFailure),
}

/// Stripe's customer portal: a session URL where a customer manages their billing.
#[async_trait]
pub trait BillingPortal: Send + Sync {
    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, PortalError>;
}

/// Refuses every lookup and session: for deployments without a Stripe key (admins still
/// pass the payment gate).
pub struct NoPayments;

#[async_trait]
impl Subscriptions for NoPayments {
    async fn is_paying(&self, _customer: &str) -> Result<bool, PaymentError> {
        Err(PaymentError::NotConfigured)
    }
}

#[async_trait]
impl BillingPortal for NoPayments {
    async fn portal_session(&self, _customer: &str, _return_url: &Url) -> Result<Url, PortalError> {
        Err(PortalError::NotConfigured)
    }
}
