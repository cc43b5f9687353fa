//! The parts of the application that the settings choose: token verification, payments,
//! mail, the database pools.

use std::sync::Arc;
use std::time::Duration;

use auth::{TokenVerifier, VerifierConfig};
use billing::{BillingPortal, CachedSubscriptions, NoPayments, StripeClient, Subscriptions};
use models::{Db, PoolOptions};
use secrecy::ExposeSecret;

use super::StartupError;
use crate::settings::{AuthSettings, Settings};

/// The pools: requests (durable commits, and the lock pool), heartbeats (asynchronous
/// commit: a heartbeat lost in a crash is repeated seconds later), and operations (the
/// fleet document and the gauges: two connections of their own, so that dashboards and
/// scrapes never queue requests). Each shows in `pg_stat_activity` under its name.
pub(super) struct Pools {
    pub db: Db,
    pub heartbeats: Db,
    pub ops: Db,
}

pub(super) fn pools(settings: &Settings) -> Pools {
    let url = settings.database.url.expose_secret();
    let options = PoolOptions {
        max_size: settings.database.pool_size,
        connection_timeout: settings.database.connect_timeout,
        statement_timeout: settings.database.statement_timeout,
        ..PoolOptions::default()
    };
    Pools {
        db: Db::new(url, options),
        heartbeats: Db::new(
            url,
            PoolOptions {
                max_size: settings.database.pool_size.div_ceil(2),
                synchronous_commit: false,
                lock_connections: 0,
                name: "heartbeats",
                ..options
            },
        ),
        ops: Db::new(
            url,
            PoolOptions {
                max_size: 2,
                connection_timeout: Duration::from_secs(1),
                lock_timeout: Duration::from_secs(1),
                lock_connections: 0,
                name: "ops",
                ..options
            },
        ),
    }
}

/// The token verifier the settings call for: the identity provider's JWKS, and the
/// local development key where it is allowed.
pub fn verifier(settings: &AuthSettings) -> Result<TokenVerifier, StartupError> {
    let config = VerifierConfig {
        jwks_url: settings.jwks_url.clone(),
        audience: settings.audience.clone(),
        issuer: settings.issuer.clone(),
        jwks_min_refresh: settings.jwks_min_refresh,
        stripe_customer_id_claim: settings.stripe_customer_id_claim.clone(),
        admin_claim: settings.admin_claim,
        ..VerifierConfig::new(settings.audience.clone())
    };
    let verifier = TokenVerifier::new(&config).map_err(StartupError::HttpClient)?;
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

/// The payment gate and the billing portal.
pub(super) type Payments = (Arc<dyn Subscriptions>, Arc<dyn BillingPortal>);

/// Stripe's subscriptions (cached) and billing portal, or none without a key.
pub(super) fn payments(settings: &Settings) -> Result<Payments, StartupError> {
    let stripe = &settings.stripe;
    let Some(secret) = &stripe.secret else {
        return Ok((Arc::new(NoPayments), Arc::new(NoPayments)));
    };
    let client = || {
        StripeClient::new(stripe.api_base.clone(), secret.clone()).map_err(StartupError::HttpClient)
    };
    Ok((
        Arc::new(CachedSubscriptions::new(client()?, stripe.cache_ttl)),
        Arc::new(client()?),
    ))
}

/// The mailer of the settings: SMTP if `SMTP_URL` is set, else SendGrid if
/// `SENDGRID_API_KEY` is, else (outside production and staging) an outbox that only logs.
pub(super) fn mailer(
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
                    .map_err(|err| StartupError::Mail("SMTP_URL", Box::new(err)))?,
            ),
            (None, Some(key)) => Arc::new(
                mail::SendGrid::new(mail_settings.sendgrid_api_base.clone(), key.clone())
                    .map_err(StartupError::HttpClient)?,
            ),
            (None, None) if settings.environment.is_deployed() => {
                tracing::warn!("no SMTP_URL or SENDGRID_API_KEY: POST /mail answers 503");
                return Ok(None);
            }
            (None, None) => Arc::new(mail::Outbox::default()),
        },
    };
    let from = mail::Address::parse(&mail_settings.default_from)
        .map_err(|err| StartupError::Mail("MAIL_DEFAULT_FROM", Box::new(err)))?;
    let rules = mail::FetchRules {
        allow_http: !settings.environment.is_deployed(),
        file_dir: mail_settings.template_dir.clone(),
    };
    let templates =
        mail::TemplateSource::new(db.clone(), rules).map_err(StartupError::HttpClient)?;
    Ok(Some(Arc::new(mail::Mailer::new(
        templates, transport, from,
    ))))
}
