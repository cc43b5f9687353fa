//! The host protocol's operations, for callers holding a parsed request.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use auth::host::{CredentialError, bootstrap_secret_matches, new_host_token};
use cloud_interface::{CloudInstanceId, CloudProvider};
use models::instance::{self, Registration};
use models::{Db, DbError, InstanceName, MandelboxId, MandelboxStatus, UnixMillis, mandelbox};
use secrecy::{ExposeSecret, SecretString};

use crate::address::AddressRule;
use crate::coalesce::{BatchError, Coalescer};
use crate::known::KnownHosts;
use crate::requests::{HeartbeatRequest, RegisterRequest};
use prometheus::Histogram;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown instance, wrong or used bootstrap secret, or unknown host credential")]
    Unauthorized,
    #[error("no such mandelbox on this instance")]
    NotFound,
    /// The mandelbox was removed: the host did not report it within the allocation
    /// timeout, so its client has to ask for another.
    #[error(
        "this mandelbox was removed: it was not reported within the allocation timeout; \
         its client must be assigned again"
    )]
    Gone,
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the host credential could not be made")]
    Credentials(#[source] CredentialError),
    #[error("checking the bootstrap secret failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the heartbeats' batch could not be written")]
    Batch(#[source] std::sync::Arc<DbError>),
    #[error("too many heartbeats are waiting to be written")]
    Busy,
    /// The address the host registers with may not be one (see [`AddressRule`]), or
    /// is not one the cloud gives its instance.
    #[error("{0}")]
    Address(String),
    /// The cloud could not say which addresses the instance has; the host may try again.
    #[error("the cloud cannot say this instance's addresses now")]
    Cloud(#[source] cloud_interface::CloudError),
}

/// An argon2 hash of a secret nobody holds: registrations for unknown instances check
/// against it, so that they take as long as for known ones (no timing oracle for
/// which instance names exist).
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    auth::host::new_bootstrap_secret()
        .ok()
        .map(|(_, hash)| hash)
});

/// The host protocol's operations.
#[derive(Clone)]
pub struct HostService {
    db: Db,
    heartbeats: Coalescer,
    addresses: AddressRule,
    known: Option<Arc<KnownHosts>>,
    cloud: Option<Arc<dyn CloudProvider>>,
}

impl HostService {
    /// `heartbeats` may be a pool without synchronous commit: a heartbeat lost in a
    /// crash is repeated seconds later. Registration, mandelbox changes and dying
    /// heartbeats (sent once, and they drain the instance) are durable, through `db`.
    /// Other heartbeats are written in batches (see [`crate::coalesce`]).
    pub fn new(db: Db, heartbeats: Db) -> Self {
        Self {
            db,
            heartbeats: Coalescer::new(heartbeats, None),
            addresses: AddressRule::default(),
            known: None,
            cloud: None,
        }
    }

    /// [`HostService::new`], observing the size of each batch of heartbeats written
    /// into `batch_sizes`.
    pub fn with_batch_sizes(db: Db, heartbeats: Db, batch_sizes: Histogram) -> Self {
        Self {
            db,
            heartbeats: Coalescer::new(heartbeats, Some(batch_sizes)),
            addresses: AddressRule::default(),
            known: None,
            cloud: None,
        }
    }

    /// Accepts host addresses by `rule` (public ones only, by default).
    pub fn with_address_rule(mut self, rule: AddressRule) -> Self {
        self.addresses = rule;
        self
    }

    /// Refuses heartbeats and reports whose credential `known` does not hold before
    /// they queue or touch the database (see [`crate::known`]); keeping `known` loaded
    /// is the caller's ([`KnownHosts::keep_loaded`]).
    pub fn with_known_hosts(mut self, known: Arc<KnownHosts>) -> Self {
        self.known = Some(known);
        self
    }

    /// Checks registering hosts' addresses against those `cloud` reports for their
    /// instances, where it can say; with no `ip` in the request, the cloud's first
    /// address is taken rather than the request's peer (a proxy, behind an ingress).
    pub fn with_cloud(mut self, cloud: Arc<dyn CloudProvider>) -> Self {
        self.cloud = Some(cloud);
        self
    }

    fn stranger(&self, host_token_sha256: &str) -> bool {
        self.known
            .as_ref()
            .and_then(|known| known.knows(host_token_sha256))
            == Some(false)
    }

    /// Registers the instance's host: checks the bootstrap secret (argon2, off the
    /// executor and without holding a connection; as long for an unknown instance as
    /// for a known one), checks the address, consumes the secret, makes the instance
    /// `ACTIVE` and returns the host's credential. `peer` is the request's address, the
    /// IP used when the host gives none. A refused address consumes nothing: the host
    /// may register again with the right one.
    pub async fn register(
        &self,
        request: RegisterRequest,
        peer: Option<IpAddr>,
    ) -> Result<SecretString, HostError> {
        let name = request.instance_name.clone();
        let pending = self
            .db
            .run(move |conn| Ok(instance::pending_host(conn, &name)?))
            .await?;
        let secret = request.bootstrap_secret.secret().clone();
        let expected = pending
            .as_ref()
            .map(|pending| pending.bootstrap_secret_hash.clone())
            .or_else(|| DECOY_HASH.clone());
        let matches = tokio::task::spawn_blocking(move || {
            expected.is_some_and(|hash| bootstrap_secret_matches(secret.expose_secret(), &hash))
        })
        .await
        .map_err(HostError::Task)?;
        let pending = match pending {
            Some(pending) if matches => pending,
            _ => return Err(HostError::Unauthorized),
        };
        let ip = self.address(&request, &pending, peer).await?;
        if let Some(refusal) = ip.and_then(|ip| self.addresses.refusal(ip)) {
            tracing::warn!(instance = %request.instance_name, %refusal, "registration refused");
            return Err(HostError::Address(refusal));
        }
        let hash = pending.bootstrap_secret_hash;
        let (token, digest) = new_host_token().map_err(HostError::Credentials)?;
        let name = request.instance_name.clone();
        let registration = Registration {
            ip,
            mandelbox_capacity: request.mandelbox_capacity.get(),
            metrics: request.metrics(),
            host_token_sha256: digest.clone(),
            now: UnixMillis::now(),
        };
        let registered = self
            .db
            .run(move |conn| Ok(instance::register(conn, &name, &hash, &registration)?))
            .await?;
        if !registered {
            // Another registration consumed the secret first, or the instance is being
            // terminated.
            return Err(HostError::Unauthorized);
        }
        if let Some(known) = &self.known {
            known.insert(digest);
        }
        tracing::info!(instance = %request.instance_name, "host registered");
        Ok(token)
    }

    /// The address to record for a registering host: the request's `ip`, which must be
    /// one the cloud gives the instance when the cloud can say; else the cloud's first;
    /// else the request's peer.
    async fn address(
        &self,
        request: &RegisterRequest,
        pending: &instance::PendingHost,
        peer: Option<IpAddr>,
    ) -> Result<Option<IpAddr>, HostError> {
        let reported = match &self.cloud {
            Some(cloud) => cloud
                .instance_addresses(
                    &pending.location,
                    &CloudInstanceId::stored(pending.cloud_provider_id.clone()),
                )
                .await
                .map_err(HostError::Cloud)?,
            None => None,
        };
        Ok(match (request.ip, reported) {
            (Some(ip), Some(reported)) if !reported.contains(&ip) => {
                return Err(HostError::Address(format!(
                    "ip {ip} is not an address of this instance (the cloud gives it {})",
                    reported
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            (Some(ip), _) => Some(ip),
            (None, Some(reported)) => reported.first().copied().or(peer),
            (None, None) => peer,
        })
    }

    /// Records a heartbeat, no argon2: with the next batch, or at once and durably if
    /// it is `dying`.
    pub async fn heartbeat(
        &self,
        host_token_sha256: String,
        request: HeartbeatRequest,
    ) -> Result<InstanceName, HostError> {
        if self.stranger(&host_token_sha256) {
            return Err(HostError::Unauthorized);
        }
        if !request.is_dying() {
            return match self
                .heartbeats
                .beat(host_token_sha256, request.metrics())
                .await
            {
                Ok(instance) => instance.ok_or(HostError::Unauthorized),
                Err(BatchError::Failed(err)) => Err(HostError::Batch(err)),
                Err(BatchError::Busy) => Err(HostError::Busy),
            };
        }
        let instance = self
            .db
            .run(move |conn| {
                Ok(instance::heartbeat(
                    conn,
                    &host_token_sha256,
                    request.metrics(),
                    true,
                    UnixMillis::now(),
                )?)
            })
            .await?
            .ok_or(HostError::Unauthorized)?;
        tracing::info!(%instance, "host is dying: instance draining");
        Ok(instance)
    }

    /// Sets the status of a mandelbox on the caller's instance.
    pub async fn set_mandelbox_status(
        &self,
        host_token_sha256: String,
        id: MandelboxId,
        status: MandelboxStatus,
    ) -> Result<(), HostError> {
        self.on_own_mandelbox(host_token_sha256, id, move |conn, id, instance| {
            mandelbox::set_status_on(conn, id, instance, status)
        })
        .await
    }

    /// Removes a mandelbox of the caller's instance (its session ended).
    pub async fn delete_mandelbox(
        &self,
        host_token_sha256: String,
        id: MandelboxId,
    ) -> Result<(), HostError> {
        self.on_own_mandelbox(host_token_sha256, id, mandelbox::delete_on)
            .await
    }

    /// Applies `change` to mandelbox `id` of the caller's instance: 401 for an unknown
    /// credential, [`HostError::Gone`] for a mandelbox the lifecycle removed,
    /// [`HostError::NotFound`] for any other that is not on the instance.
    async fn on_own_mandelbox<F>(
        &self,
        host_token_sha256: String,
        id: MandelboxId,
        change: F,
    ) -> Result<(), HostError>
    where
        F: FnOnce(
                &mut diesel::PgConnection,
                &MandelboxId,
                &InstanceName,
            ) -> diesel::QueryResult<bool>
            + Send
            + 'static,
    {
        if self.stranger(&host_token_sha256) {
            return Err(HostError::Unauthorized);
        }
        self.db
            .run(move |conn| {
                let Some(instance) = instance::by_host_token(conn, &host_token_sha256)? else {
                    return Ok(Err(HostError::Unauthorized));
                };
                Ok(if change(conn, &id, &instance)? {
                    Ok(())
                } else if mandelbox::expired_on(conn, &id, &instance)? {
                    Err(HostError::Gone)
                } else {
                    Err(HostError::NotFound)
                })
            })
            .await?
    }
}
