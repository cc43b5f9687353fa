//! The signing keys of the identity provider, fetched from its JWKS URL and cached.
//!
//! A token naming an unknown key id triggers a refetch (key rotation), but at most one
//! fetch per `min_refresh`, so garbage key ids cannot turn into a flood of requests to
//! the provider. Concurrent misses wait for one fetch instead of each making their own.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use url::Url;

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
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
    Unavailable(String),
}

impl Jwks {
    pub(crate) fn new(url: Url, min_refresh: Duration, max_age: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url,
            client,
            min_refresh,
            max_age,
            cache: RwLock::new(Cache::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.fresh_key(kid) {
            return Lookup::Found(key);
        }
        let _one_fetch_at_a_time = self.refresh.lock().await;
        if let Some(key) = self.fresh_key(kid) {
            return Lookup::Found(key);
        }
        let may_fetch = self
            .read()
            .attempted_at
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        let mut failure = None;
        if may_fetch && let Err(err) = self.fetch().await {
            tracing::warn!(url = %self.url, error = %err, "fetching the JWKS failed");
            failure = Some(err);
        }
        let cache = self.read();
        match cache.keys.get(kid) {
            // A stale key is still better than none while the provider is unreachable.
            Some(key) => Lookup::Found(key.clone()),
            None if cache.fetched_at.is_none() => Lookup::Unavailable(
                failure.unwrap_or_else(|| "the JWKS has not been fetched yet".to_owned()),
            ),
            None => Lookup::Unknown,
        }
    }

    /// Fetches the key set now. Lookups that arrive meanwhile wait for this fetch.
    pub(crate) async fn refresh(&self) -> Result<usize, String> {
        let _one_fetch_at_a_time = self.refresh.lock().await;
        self.fetch().await
    }

    /// Fetches the key set, replacing the cached one (dropped keys stop working).
    /// Callers hold the refresh lock.
    async fn fetch(&self) -> Result<usize, String> {
        self.write().attempted_at = Some(Instant::now());
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|err| format!("request failed: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|err| format!("not a JWKS: {err}"))?;
        let keys = signing_keys(&set);
        let count = keys.len();
        let mut cache = self.write();
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(count)
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
