//! The host service protocol (SPEC §6): registration with a single-use bootstrap secret,
//! heartbeats, and mandelbox status reports, each only for the caller's own instance.

use std::net::IpAddr;

use auth::host::{bootstrap_secret_matches, new_host_token};
use models::instance::{self, Metrics, Registration};
use models::{Db, DbError, InstanceName, MandelboxId, MandelboxStatus, UnixMillis, mandelbox};
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::request::{InvalidRequest, integer, invalid, kind, object, string};

/// The most mandelboxes one instance may report room for.
pub const MAX_CAPACITY: i64 = 1024;
/// Metrics are non-negative and below 2^50 (a petabyte in kB).
const MAX_METRIC: i64 = 1 << 50;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Invalid(#[from] InvalidRequest),
    #[error("unknown instance, wrong or used bootstrap secret, or unknown host credential")]
    Unauthorized,
    #[error("no such mandelbox on this instance")]
    NotFound,
    #[error("database unavailable")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for HostError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(_) | DbError::Busy(_) => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// `POST /host_service/register`.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub instance_name: InstanceName,
    pub bootstrap_secret: SecretString,
    pub ip: Option<IpAddr>,
    pub mandelbox_capacity: i64,
    pub metrics: Metrics,
}

/// `POST /host_service/heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub metrics: Metrics,
    pub dying: bool,
}

fn metrics(body: &Map<String, Value>) -> Result<Metrics, InvalidRequest> {
    Ok(Metrics {
        memory_remaining_kb: integer(body, "memory_remaining_kb", 0..=MAX_METRIC)?,
        nanocpus_remaining: integer(body, "nanocpus_remaining", 0..=MAX_METRIC)?,
        gpu_vram_remaining_kb: integer(body, "gpu_vram_remaining_kb", 0..=MAX_METRIC)?,
    })
}

impl TryFrom<&Value> for RegisterRequest {
    type Error = InvalidRequest;

    fn try_from(body: &Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let instance_name = InstanceName::parse(string(body, "instance_name")?)
            .map_err(|err| invalid("instance_name", err.to_string()))?;
        let secret = string(body, "bootstrap_secret")?;
        if secret.is_empty() || secret.len() > 256 {
            return Err(invalid("bootstrap_secret", "expected 1 to 256 characters"));
        }
        let ip = match body.get("ip") {
            None | Some(Value::Null) => None,
            Some(Value::String(ip)) => Some(
                ip.parse()
                    .map_err(|_| invalid("ip", format!("not an IP address: {ip:?}")))?,
            ),
            Some(other) => {
                return Err(invalid(
                    "ip",
                    format!("expected a string, not {}", kind(other)),
                ));
            }
        };
        Ok(Self {
            instance_name,
            bootstrap_secret: SecretString::from(secret.to_owned()),
            ip,
            mandelbox_capacity: integer(body, "mandelbox_capacity", 0..=MAX_CAPACITY)?,
            metrics: metrics(body)?,
        })
    }
}

impl TryFrom<&Value> for HeartbeatRequest {
    type Error = InvalidRequest;

    fn try_from(body: &Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let dying = match body.get("dying") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(dying)) => *dying,
            Some(other) => {
                return Err(invalid(
                    "dying",
                    format!("expected a boolean, not {}", kind(other)),
                ));
            }
        };
        Ok(Self {
            metrics: metrics(body)?,
            dying,
        })
    }
}

/// The status a host may report for a mandelbox: `{"status": "CONNECTING" | "RUNNING"}`.
pub fn reported_status(body: &Value) -> Result<MandelboxStatus, InvalidRequest> {
    let body = object(body)?;
    match MandelboxStatus::parse(string(body, "status")?) {
        Ok(status @ (MandelboxStatus::Connecting | MandelboxStatus::Running)) => Ok(status),
        _ => Err(invalid("status", "expected CONNECTING or RUNNING")),
    }
}

/// The host protocol's operations, for callers already holding a parsed request.
#[derive(Clone)]
pub struct HostService {
    db: Db,
    heartbeats: Db,
}

impl HostService {
    /// `heartbeats` may be a pool without synchronous commit: a heartbeat lost in a
    /// crash is repeated seconds later. Registration and mandelbox changes use `db`.
    pub fn new(db: Db, heartbeats: Db) -> Self {
        Self { db, heartbeats }
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
        use secrecy::ExposeSecret;
        let name = request.instance_name.clone();
        let hash = self
            .db
            .run(move |conn| Ok(instance::pending_bootstrap_hash(conn, &name)?))
            .await?
            .ok_or(HostError::Unauthorized)?;
        let secret = request.bootstrap_secret.clone();
        let expected = hash.clone();
        let matches = tokio::task::spawn_blocking(move || {
            bootstrap_secret_matches(secret.expose_secret(), &expected)
        })
        .await
        .map_err(|err| HostError::Internal(err.to_string()))?;
        if !matches {
            return Err(HostError::Unauthorized);
        }
        let (token, digest) =
            new_host_token().map_err(|err| HostError::Internal(err.to_string()))?;
        let ip = request
            .ip
            .or(peer)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let name = request.instance_name.clone();
        let registered = self
            .db
            .run(move |conn| {
                let registration = Registration {
                    ip: &ip,
                    mandelbox_capacity: request.mandelbox_capacity,
                    metrics: request.metrics,
                    host_token_sha256: &digest,
                    now: UnixMillis::now(),
                };
                Ok(instance::register(conn, &name, &hash, &registration)?)
            })
            .await?;
        if !registered {
            // Another registration consumed the secret first.
            return Err(HostError::Unauthorized);
        }
        tracing::info!(instance = %request.instance_name, "host registered");
        Ok(token)
    }

    /// Records a heartbeat: one statement, no argon2.
    pub async fn heartbeat(
        &self,
        host_token_sha256: String,
        request: HeartbeatRequest,
    ) -> Result<InstanceName, HostError> {
        let instance = self
            .heartbeats
            .run(move |conn| {
                Ok(instance::heartbeat(
                    conn,
                    &host_token_sha256,
                    request.metrics,
                    request.dying,
                    UnixMillis::now(),
                )?)
            })
            .await?
            .ok_or(HostError::Unauthorized)?;
        if request.dying {
            tracing::info!(%instance, "host is dying: instance draining");
        }
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
