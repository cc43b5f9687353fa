//! RS256 token verification.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

use crate::jwks::{Jwks, JwksError, Lookup};
use crate::{AdminClaim, Caller, SigningKey};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm {0} is not accepted: only RS256 is")]
    Algorithm(String),
    #[error("token header has no key id")]
    NoKeyId,
    #[error("token is signed by an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    Audience,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The identity provider's keys could not be fetched: not the caller's fault (the
    /// cause is logged where the fetch failed, once per outage).
    #[error("token signing keys are unavailable")]
    KeysUnavailable,
}

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Where the identity provider publishes its keys; `None` trusts only `static_keys`.
    pub jwks_url: Option<Url>,
    pub audience: String,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Cached keys are refetched, on a request, once they are this old.
    pub jwks_max_age: Duration,
    /// How often [`TokenVerifier::refresh_keys_periodically`] refreshes cached keys.
    pub jwks_refresh_every: Duration,
    /// The claim naming the caller's Stripe customer.
    pub stripe_customer_id_claim: String,
    /// The claim whose `admin` makes a caller an admin (`scope` by default).
    pub admin_claim: AdminClaim,
}

impl VerifierConfig {
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            jwks_url: None,
            audience: audience.into(),
            issuer: None,
            leeway: Duration::from_secs(30),
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
            jwks_refresh_every: Duration::from_secs(300),
            stripe_customer_id_claim: "https://api.fractal.co/stripe_customer_id".to_owned(),
            admin_claim: AdminClaim::default(),
        }
    }
}

/// Checks user tokens: RS256 only, signed by a key of the JWKS (or a key trusted
/// directly, such as the local development key), with the right audience and issuer,
/// within its validity window.
pub struct TokenVerifier {
    jwks: Option<Jwks>,
    refresh_every: Duration,
    static_keys: HashMap<String, Arc<DecodingKey>>,
    validation: Validation,
    stripe_claim: String,
    admin_claim: AdminClaim,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("jwks", &self.jwks.is_some())
            .field("static_keys", &self.static_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Fails only if the HTTP client for the JWKS cannot be built (no TLS backend).
    pub fn new(config: &VerifierConfig) -> Result<Self, reqwest::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&config.audience]);
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // Without this, audience and issuer are only checked when the token has them.
        validation.set_required_spec_claims(&required);
        let jwks = match &config.jwks_url {
            Some(url) => Some(Jwks::new(
                url.clone(),
                config.jwks_min_refresh,
                config.jwks_max_age,
            )?),
            None => None,
        };
        Ok(Self {
            jwks,
            refresh_every: config.jwks_refresh_every,
            static_keys: HashMap::new(),
            validation,
            stripe_claim: config.stripe_customer_id_claim.clone(),
            admin_claim: config.admin_claim,
        })
    }

    /// Also trusts tokens signed by `key` (the local development key).
    pub fn trust_key(mut self, key: &SigningKey) -> Self {
        self.static_keys
            .insert(key.kid().to_owned(), Arc::new(key.decoding_key()));
        self
    }

    /// Fetches the JWKS now, so the first requests need not wait for it.
    pub async fn prefetch(&self) -> Result<usize, JwksError> {
        match &self.jwks {
            Some(jwks) => jwks.refresh().await,
            None => Ok(0),
        }
    }

    /// Keeps the JWKS fresh in the background: refreshed every `jwks_refresh_every`, and
    /// retried with a short backoff while none is usable. Never returns while there is a
    /// JWKS to keep (run it as a task of its own); at once when there is none.
    pub async fn refresh_keys_periodically(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.refresh_periodically(self.refresh_every).await;
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        // Fails for `alg: none` and every name jsonwebtoken does not know.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|err| refusal(err.kind()))?;
        Caller::from_claims(&data.claims, &self.stripe_claim, self.admin_claim)
    }

    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(key) = self.static_keys.get(kid) {
            return Ok(key.clone());
        }
        match &self.jwks {
            None => Err(AuthError::UnknownKey),
            Some(jwks) => match jwks.key(kid).await {
                Lookup::Found(key) => Ok(key),
                Lookup::Unknown => Err(AuthError::UnknownKey),
                Lookup::Unavailable => Err(AuthError::KeysUnavailable),
            },
        }
    }
}

fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAlgorithm => AuthError::Algorithm("mismatch".to_owned()),
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("missing required claim {claim:?}"))
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed,
        other => AuthError::Invalid(format!("{other:?}")),
    }
}
