//! The payment gate: whether a Stripe customer has a subscription that is `active` or
//! `trialing`. Answers are cached for a short time, and concurrent questions about one
//! customer share one call, so a burst of requests is not a burst of Stripe calls.
//! Stripe being unreachable is an error, never a yes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("payments are not configured")]
    NotConfigured,
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// Subscription lookups.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Whether `customer` has a subscription in status `active` or `trialing`.
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError>;
}

/// Stripe's REST API.
pub struct StripeClient {
    base: Url,
    secret: SecretString,
    http: reqwest::Client,
}

impl StripeClient {
    pub fn new(base: Url, secret: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { base, secret, http }
    }
}

#[derive(Deserialize)]
struct SubscriptionList {
    data: Vec<Subscription>,
}

#[derive(Deserialize)]
struct Subscription {
    status: String,
}

#[async_trait]
impl Subscriptions for StripeClient {
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError> {
        let mut url = self
            .base
            .join("v1/subscriptions")
            .map_err(|err| PaymentError::Unavailable(err.to_string()))?;
        url.query_pairs_mut()
            .append_pair("customer", customer)
            .append_pair("status", "all")
            .append_pair("limit", "100");
        let response = self
            .http
            .get(url)
            .bearer_auth(self.secret.expose_secret())
            .send()
            .await
            .map_err(|err| PaymentError::Unavailable(format!("request failed: {err}")))?;
        let status = response.status();
        // Stripe answers 400/404 "No such customer" for a customer it does not know.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::BAD_REQUEST {
            tracing::info!(%customer, %status, "Stripe does not know this customer");
            return Ok(false);
        }
        if !status.is_success() {
            return Err(PaymentError::Unavailable(format!(
                "Stripe answered {status}"
            )));
        }
        let list: SubscriptionList = response
            .json()
            .await
            .map_err(|err| PaymentError::Unavailable(format!("unexpected answer: {err}")))?;
        Ok(list
            .data
            .iter()
            .any(|subscription| matches!(subscription.status.as_str(), "active" | "trialing")))
    }
}

/// Refuses every lookup: for deployments without a Stripe key (admins still pass).
pub struct NoPayments;

#[async_trait]
impl Subscriptions for NoPayments {
    async fn is_paying(&self, _customer: &str) -> Result<bool, PaymentError> {
        Err(PaymentError::NotConfigured)
    }
}

type Answer = Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>;

/// Caches another lookup's answers (not its errors) for `ttl`.
pub struct CachedSubscriptions<S> {
    inner: S,
    ttl: Duration,
    answers: Mutex<HashMap<String, Answer>>,
}

impl<S> CachedSubscriptions<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, customer: &str) -> Answer {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() > 10_000 {
            // Keep memory bounded: forget customers nobody is asking about.
            let ttl = self.ttl;
            answers.retain(|_, answer| {
                answer.try_lock().map_or(true, |answer| {
                    answer.is_some_and(|(at, _)| at.elapsed() < ttl)
                })
            });
        }
        answers.entry(customer.to_owned()).or_default().clone()
    }
}

#[async_trait]
impl<S: Subscriptions> Subscriptions for CachedSubscriptions<S> {
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError> {
        let slot = self.slot(customer);
        let mut answer = slot.lock().await;
        if let Some((at, paying)) = *answer
            && at.elapsed() < self.ttl
        {
            return Ok(paying);
        }
        let paying = self.inner.is_paying(customer).await?;
        *answer = Some((Instant::now(), paying));
        Ok(paying)
    }
}

/// Why a billing-portal session was not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    #[error("payments are not configured")]
    NotConfigured,
    /// Stripe said no (unknown customer, a return URL it does not accept, …).
    #[error("Stripe refused: {0}")]
    Refused(String),
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// Stripe's customer portal: a session URL where a customer manages their billing.
#[async_trait]
pub trait BillingPortal: Send + Sync {
    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, PortalError>;
}

#[derive(Deserialize)]
struct PortalSession {
    url: String,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: StripeErrorDetail,
}

#[derive(Deserialize)]
struct StripeErrorDetail {
    message: String,
}

#[async_trait]
impl BillingPortal for StripeClient {
    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, PortalError> {
        let url = self
            .base
            .join("v1/billing_portal/sessions")
            .map_err(|err| PortalError::Unavailable(err.to_string()))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("customer", customer)
            .append_pair("return_url", return_url.as_str())
            .finish();
        let response = self
            .http
            .post(url)
            .bearer_auth(self.secret.expose_secret())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|err| PortalError::Unavailable(format!("request failed: {err}")))?;
        let status = response.status();
        if status.is_client_error() {
            let message = response
                .json::<StripeErrorBody>()
                .await
                .map(|body| body.error.message)
                .unwrap_or_else(|_| format!("Stripe answered {status}"));
            tracing::info!(%customer, %status, %message, "Stripe refused a portal session");
            return Err(PortalError::Refused(message));
        }
        if !status.is_success() {
            return Err(PortalError::Unavailable(format!(
                "Stripe answered {status}"
            )));
        }
        let session: PortalSession = response
            .json()
            .await
            .map_err(|err| PortalError::Unavailable(format!("unexpected answer: {err}")))?;
        Url::parse(&session.url)
            .map_err(|err| PortalError::Unavailable(format!("unexpected session URL: {err}")))
    }
}

#[async_trait]
impl BillingPortal for NoPayments {
    async fn portal_session(&self, _customer: &str, _return_url: &Url) -> Result<Url, PortalError> {
        Err(PortalError::NotConfigured)
    }
}
