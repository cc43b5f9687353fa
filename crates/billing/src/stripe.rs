//! Stripe's REST API.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::{BillingPortal, PaymentError, PortalError, StripeFailure, Subscriptions};

/// Stripe's REST API at `base`, with a secret key.
pub struct StripeClient {
    base: Url,
    secret: SecretString,
    http: reqwest::Client,
    /// Whether the last call found Stripe unavailable: an outage is logged when it
    /// starts and when it ends, not once per request.
    down: std::sync::atomic::AtomicBool,
}

impl StripeClient {
    /// Fails only if the HTTP client cannot be built (no TLS backend).
    pub fn new(base: Url, secret: SecretString) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base,
            secret,
            http,
            down: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Logs the start and the end of an outage, from how a call went.
    fn observe(&self, failure: Option<&StripeFailure>) {
        use std::sync::atomic::Ordering;
        match failure {
            Some(err) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = err as &dyn std::error::Error,
                        "Stripe is unavailable"
                    );
                }
            }
            None => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::warn!("Stripe answers again");
                }
            }
        }
    }

    fn url(&self, path: &str) -> Result<Url, StripeFailure> {
        self.base.join(path).map_err(StripeFailure::BadUrl)
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
impl Subscriptions for StripeClient {
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError> {
        let result = self.subscriptions(customer).await;
        self.observe(match &result {
            Err(PaymentError::Unavailable(err)) => Some(err),
            _ => None,
        });
        result
    }
}

impl StripeClient {
    async fn subscriptions(&self, customer: &str) -> Result<bool, PaymentError> {
        let mut url = self
            .url("v1/subscriptions")
            .map_err(PaymentError::Unavailable)?;
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
            .map_err(|err| PaymentError::Unavailable(StripeFailure::Unreachable(err)))?;
        let status = response.status();
        // Stripe answers 400/404 "No such customer" for a customer it does not know.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::BAD_REQUEST {
            tracing::debug!(%customer, %status, "Stripe does not know this customer");
            return Ok(false);
        }
        if !status.is_success() {
            return Err(PaymentError::Unavailable(StripeFailure::Status(status)));
        }
        let list: SubscriptionList = response
            .json()
            .await
            .map_err(|err| PaymentError::Unavailable(StripeFailure::UnexpectedAnswer(err)))?;
        Ok(list
            .data
            .iter()
            .any(|subscription| matches!(subscription.status.as_str(), "active" | "trialing")))
    }
}

#[async_trait]
impl BillingPortal for StripeClient {
    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, PortalError> {
        let url = self
            .url("v1/billing_portal/sessions")
            .map_err(PortalError::Unavailable)?;
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
            .map_err(|err| PortalError::Unavailable(StripeFailure::Unreachable(err)))?;
        let status = response.status();
        if status.is_client_error() {
            let message = response
                .json::<StripeErrorBody>()
                .await
                .map(|body| body.error.message)
                .unwrap_or_else(|_| format!("Stripe answered {status}"));
            tracing::debug!(%customer, %status, %message, "Stripe refused a portal session");
            return Err(PortalError::Refused(message));
        }
        if !status.is_success() {
            return Err(PortalError::Unavailable(StripeFailure::Status(status)));
        }
        let session: PortalSession = response
            .json()
            .await
            .map_err(|err| PortalError::Unavailable(StripeFailure::UnexpectedAnswer(err)))?;
        Url::parse(&session.url).map_err(|err| PortalError::Unavailable(StripeFailure::BadUrl(err)))
    }
}
