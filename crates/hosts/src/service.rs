//! The host protocol's operations, for callers holding a parsed request.

use std::net::IpAddr;

use auth::host::{CredentialError, bootstrap_secret_matches, new_host_token};
use models::instance::{self, Registration};
use models::{Db, DbError, InstanceName, MandelboxId, MandelboxStatus, UnixMillis, mandelbox};
use secrecy::{ExposeSecret, SecretString};

use crate::coalesce::{BatchError, Coalescer};
use crate::requests::{HeartbeatRequest, RegisterRequest};
use prometheus::Histogram;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown instance, wrong or used bootstrap secret, or unknown host credential")]
    Unauthorized,
    #[error("no such mandelbox on this instance")]
    NotFound,
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
}

/// The host protocol's operations.
#[derive(Clone)]
pub struct HostService {
    db: Db,
    heartbeats: Coalescer,
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
        }
    }

    /// [`HostService::new`], observing the size of each batch of heartbeats written
    /// into `batch_sizes`.
    pub fn with_batch_sizes(db: Db, heartbeats: Db, batch_sizes: Histogram) -> Self {
        Self {
            db,
            heartbeats: Coalescer::new(heartbeats, Some(batch_sizes)),
        }
    }

    /// Registers the instance's host: checks the bootstrap secret (argon2, off the
    /// executor and without holding a connection), consumes it, makes the instance
    /// `ACTIVE` and returns the host's credential. `peer` is the request's address, the
    /// IP used when the host gives none.
    pub async fn register(
        &self,
        request: RegisterRequest,
        peer: Option<IpAddr>,
    ) -> Result<SecretString, HostError> {
        let name = request.instance_name.clone();
        let hash = self
            .db
            .run(move |conn| Ok(instance::pending_bootstrap_hash(conn, &name)?))
            .await?
            .ok_or(HostError::Unauthorized)?;
        let secret = request.bootstrap_secret.secret().clone();
        let expected = hash.clone();
        let matches = tokio::task::spawn_blocking(move || {
            bootstrap_secret_matches(secret.expose_secret(), &expected)
        })
        .await
        .map_err(HostError::Task)?;
        if !matches {
            return Err(HostError::Unauthorized);
        }
        let (token, digest) = new_host_token().map_err(HostError::Credentials)?;
        let ip = request.ip.or(peer);
        let name = request.instance_name.clone();
        let registration = Registration {
            ip,
            mandelbox_capacity: request.mandelbox_capacity.get(),
            metrics: request.metrics(),
            host_token_sha256: digest,
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
        tracing::info!(instance = %request.instance_name, "host registered");
        Ok(token)
    }

    /// Records a heartbeat, no argon2: with the next batch, or at once and durably if
    /// it is `dying`.
    pub async fn heartbeat(
        &self,
        host_token_sha256: String,
        request: HeartbeatRequest,
    ) -> Result<InstanceName, HostError> {
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
        self.on_own_mandelbox(host_token_sha256, move |conn, instance| {
            mandelbox::set_status_on(conn, &id, instance, status)
        })
        .await
    }

    /// Removes a mandelbox of the caller's instance (its session ended).
    pub async fn delete_mandelbox(
        &self,
        host_token_sha256: String,
        id: MandelboxId,
    ) -> Result<(), HostError> {
        self.on_own_mandelbox(host_token_sha256, move |conn, instance| {
            mandelbox::delete_on(conn, &id, instance)
        })
        .await
    }

    async fn on_own_mandelbox<F>(
        &self,
        host_token_sha256: String,
        change: F,
    ) -> Result<(), HostError>
    where
        F: FnOnce(&mut diesel::PgConnection, &InstanceName) -> diesel::QueryResult<bool>
            + Send
            + 'static,
    {
        self.db
            .run(move |conn| {
                let Some(instance) = instance::by_host_token(conn, &host_token_sha256)? else {
                    return Ok(Err(HostError::Unauthorized));
                };
                Ok(if change(conn, &instance)? {
                    Ok(())
                } else {
                    Err(HostError::NotFound)
                })
            })
            .await?
    }
}
