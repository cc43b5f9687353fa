//! The signing keys of the identity provider, fetched from its JWKS URL and cached.
//!
//! - While no key set is usable (the provider has not answered yet), a lookup fetches
//!   again after a short backoff (from 100 ms, doubling, at most 5 s), so tokens verify
//!   within moments of the provider's return; lookups within the backoff fail at once.
//! - While keys are cached, a token naming an unknown key id triggers a refetch (key
//!   rotation), but at most one per `min_refresh`, so garbage key ids cannot turn into a
//!   flood of requests to the provider.
//! - [`Jwks::refresh_periodically`] refreshes cached keys in the background, so a
//!   rotation never waits on a user's request.
//! - Concurrent misses wait for one fetch instead of each making their own.
//! - An outage is logged when it starts and when it ends, never once per request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use url::Url;

/// The first wait before fetching again after a failure; doubled after each.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between fetches while no key set is usable.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Why the key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot reach the identity provider")]
    Unreachable(#[source] reqwest::Error),
    #[error("the identity provider answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the identity provider's answer is not a JWKS")]
    NotAJwks(#[source] reqwest::Error),
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    /// Fetches that failed in a row.
    failures: u32,
}

impl Cache {
    /// How long after the last attempt the next may be made: the backoff while nothing
    /// usable is cached, else the floor for unknown key ids.
    fn wait_before_fetching(&self, min_refresh: Duration) -> Duration {
        if self.fetched_at.is_none() || self.keys.is_empty() {
            backoff(self.failures)
        } else {
            min_refresh
        }
    }
}

/// The wait after `failures` failed fetches in a row.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_RETRY
            .saturating_mul(1 << (n - 1).min(16))
            .min(LAST_RETRY),
    }
}

pub(crate) struct Jwks {
    url: Url,
    client: reqwest::Client,
    min_refresh: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    refresh: tokio::sync::Mutex<()>,
}

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<DecodingKey>),
    /// The provider's current key set does not have that key id.
    Unknown,
    /// No key set could be fetched at all.
    Unavailable,
}

impl Jwks {
    /// Fails only if the HTTP client cannot be built (no TLS backend).
    pub(crate) fn new(
        url: Url,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            url,
            client,
            min_refresh,
            max_age,
            cache: RwLock::new(Cache::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.fresh_key(kid) {
            return Lookup::Found(key);
        }
        let _one_fetch_at_a_time = self.refresh.lock().await;
        if let Some(key) = self.fresh_key(kid) {
            return Lookup::Found(key);
        }
        let may_fetch = {
            let cache = self.read();
            let wait = cache.wait_before_fetching(self.min_refresh);
            cache.attempted_at.is_none_or(|at| at.elapsed() >= wait)
        };
        if may_fetch {
            // Failures are logged by `fetch`, once per outage.
            let _ = self.fetch().await;
        }
        let cache = self.read();
        match cache.keys.get(kid) {
            // A stale key is still better than none while the provider is unreachable.
            Some(key) => Lookup::Found(key.clone()),
            None if cache.fetched_at.is_none() => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    /// Fetches the key set now. Lookups that arrive meanwhile wait for this fetch.
    pub(crate) async fn refresh(&self) -> Result<usize, JwksError> {
        let _one_fetch_at_a_time = self.refresh.lock().await;
        self.fetch().await
    }

    /// Refreshes the key set every `every`, and while none is usable, again after the
    /// backoff; never returns (run it as a task of its own).
    pub(crate) async fn refresh_periodically(&self, every: Duration) {
        loop {
            let wait = {
                let cache = self.read();
                if cache.fetched_at.is_none() {
                    backoff(cache.failures)
                } else if cache.failures > 0 {
                    backoff(cache.failures).max(Duration::from_secs(1))
                } else {
                    every
                }
            };
            tokio::time::sleep(wait).await;
            let _ = self.refresh().await;
        }
    }

    /// Fetches the key set, replacing the cached one (dropped keys stop working). The
    /// first failure of an outage and the recovery after one are logged. Callers hold
    /// the refresh lock.
    async fn fetch(&self) -> Result<usize, JwksError> {
        self.write().attempted_at = Some(Instant::now());
        match self.fetch_set().await {
            Ok(keys) => {
                let count = keys.len();
                let mut cache = self.write();
                if cache.failures > 0 {
                    tracing::warn!(url = %self.url, failed_fetches = cache.failures, keys = count, "the identity provider answers again");
                }
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.failures = 0;
                Ok(count)
            }
            Err(err) => {
                let mut cache = self.write();
                cache.failures = cache.failures.saturating_add(1);
                if cache.failures == 1 {
                    tracing::error!(
                        url = %self.url,
                        error = &err as &dyn std::error::Error,
                        keys_cached = cache.keys.len(),
                        "cannot fetch the identity provider's keys; retrying with backoff"
                    );
                } else {
                    tracing::debug!(url = %self.url, failures = cache.failures, error = %err, "JWKS fetch failed again");
                }
                Err(err)
            }
        }
    }

    async fn fetch_set(&self) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(JwksError::Unreachable)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        let set: JwkSet = response.json().await.map_err(JwksError::NotAJwks)?;
        Ok(signing_keys(&set))
    }

    fn fresh_key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let cache = self.read();
        let fresh = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.max_age);
        if fresh {
            cache.keys.get(kid).cloned()
        } else {
            None
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The RSA signature keys of a key set, by key id. Keys for other algorithms, for
/// encryption, or without a key id are left out.
fn signing_keys(set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|alg| alg == KeyAlgorithm::RS256)
        })
        .filter(|jwk| {
            jwk.common
                .public_key_use
                .as_ref()
                .is_none_or(|usage| *usage == PublicKeyUse::Signature)
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_short_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(7), LAST_RETRY);
        assert_eq!(backoff(1000), LAST_RETRY);
    }
}
