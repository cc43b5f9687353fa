//! The host service agent's half of the host protocol (SPEC §6), for the simulated hosts
//! of the local cloud and for a real host service to link: registers an instance's host
//! with the webserver, sends its heartbeats (with jitter, so a fleet started together
//! does not beat in step), reports mandelbox status, and serves `POST /drain_and_shutdown`
//! to the control plane alone: a drain request must carry the signature
//! `Authorization: Drain t=<unix secs>, sig=<hex>` (an HMAC-SHA256 keyed with the SHA-256
//! of the host's credential, see [`DrainKey`]); any other caller gets 401.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use domain::{InstanceName, MandelboxId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use url::Url;

/// What a host reports about its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostMetrics {
    pub memory_remaining_kb: i64,
    pub nanocpus_remaining: i64,
    pub gpu_vram_remaining_kb: i64,
}

/// What a host registers with: what the launcher handed it, and what it has.
#[derive(Debug, Clone)]
pub struct Registration {
    pub instance_name: InstanceName,
    pub bootstrap_secret: SecretString,
    /// The address clients reach it at; the webserver uses the request's peer if none.
    pub ip: Option<IpAddr>,
    pub mandelbox_capacity: i64,
    pub metrics: HostMetrics,
}

/// The states a host reports for a mandelbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MandelboxState {
    Connecting,
    Running,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the webserver")]
    Unreachable(#[source] reqwest::Error),
    #[error("the webserver answered {status}: {error}")]
    Refused { status: u16, error: String },
    #[error("the webserver's answer is not what the protocol says")]
    UnexpectedAnswer(#[source] reqwest::Error),
    #[error("bad webserver URL")]
    BadUrl(#[source] url::ParseError),
}

impl AgentError {
    /// Whether trying again later may succeed: the webserver could not be reached, or
    /// answered that it is unavailable (503) or failed (5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Refused { status, .. } => *status >= 500,
            Self::UnexpectedAnswer(_) | Self::BadUrl(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct Registered {
    auth_token: String,
}

/// A registered host.
pub struct HostAgent {
    http: reqwest::Client,
    base: Url,
    instance_name: InstanceName,
    token: SecretString,
}

impl std::fmt::Debug for HostAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAgent")
            .field("base", &self.base.as_str())
            .field("instance_name", &self.instance_name)
            .finish_non_exhaustive()
    }
}

async fn check(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, AgentError> {
    let response = response.map_err(AgentError::Unreachable)?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let error = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Err(AgentError::Refused { status, error })
}

impl HostAgent {
    /// Registers with the webserver at `webserver` and keeps the credential it returns.
    pub async fn register(
        webserver: &Url,
        registration: &Registration,
    ) -> Result<Self, AgentError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(AgentError::Unreachable)?;
        let url = endpoint(webserver, "host_service/register")?;
        let body = json!({
            "instance_name": registration.instance_name,
            "bootstrap_secret": registration.bootstrap_secret.expose_secret(),
            "ip": registration.ip.map(|ip| ip.to_string()),
            "mandelbox_capacity": registration.mandelbox_capacity,
            "memory_remaining_kb": registration.metrics.memory_remaining_kb,
            "nanocpus_remaining": registration.metrics.nanocpus_remaining,
            "gpu_vram_remaining_kb": registration.metrics.gpu_vram_remaining_kb,
        });
        let registered: Registered = check(http.post(url).json(&body).send().await)
            .await?
            .json()
            .await
            .map_err(AgentError::UnexpectedAnswer)?;
        Ok(Self {
            http,
            base: webserver.clone(),
            instance_name: registration.instance_name.clone(),
            token: SecretString::from(registered.auth_token),
        })
    }

    pub fn instance_name(&self) -> &InstanceName {
        &self.instance_name
    }

    /// What this host's [`DrainEndpoint`] checks drain requests with.
    pub fn drain_key(&self) -> DrainKey {
        DrainKey::new(&self.instance_name, &self.token)
    }

    /// One heartbeat; `dying` tells the webserver to drain this instance.
    pub async fn heartbeat(&self, metrics: HostMetrics, dying: bool) -> Result<(), AgentError> {
        #[derive(Serialize)]
        struct Heartbeat {
            #[serde(flatten)]
            metrics: HostMetrics,
            dying: bool,
        }
        let body = Heartbeat { metrics, dying };
        let url = endpoint(&self.base, "host_service/heartbeat")?;
        check(
            self.authorized(self.http.post(url))
                .json(&body)
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    pub async fn set_mandelbox_status(
        &self,
        mandelbox_id: &MandelboxId,
        state: MandelboxState,
    ) -> Result<(), AgentError> {
        let status = match state {
            MandelboxState::Connecting => "CONNECTING",
            MandelboxState::Running => "RUNNING",
        };
        let url = endpoint(
            &self.base,
            &format!("host_service/mandelbox/{mandelbox_id}/status"),
        )?;
        check(
            self.authorized(self.http.put(url))
                .json(&json!({ "status": status }))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    /// Reports that a mandelbox's session ended.
    pub async fn remove_mandelbox(&self, mandelbox_id: &MandelboxId) -> Result<(), AgentError> {
        let url = endpoint(
            &self.base,
            &format!("host_service/mandelbox/{mandelbox_id}"),
        )?;
        check(self.authorized(self.http.delete(url)).send().await).await?;
        Ok(())
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.bearer_auth(self.token.expose_secret())
    }

    /// Heartbeats every `interval` (± 10% jitter) until the returned handle is stopped
    /// or dropped. A failed heartbeat is logged and the next one tried.
    pub fn heartbeat_every(
        self: &Arc<Self>,
        interval: Duration,
        metrics: impl Fn() -> HostMetrics + Send + 'static,
    ) -> Heartbeats {
        let agent = self.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(err) = agent.heartbeat(metrics(), false).await {
                    tracing::warn!(instance = %agent.instance_name, error = %err, "heartbeat failed");
                }
                tokio::time::sleep(jittered(interval)).await;
            }
        });
        Heartbeats(task)
    }

    /// Heartbeats until `drain` reports a drain request, then sends the dying heartbeat
    /// that marks the instance `DRAINING`, and returns.
    pub async fn run_until_drained(
        self: &Arc<Self>,
        drain: &mut DrainEndpoint,
        interval: Duration,
        metrics: impl Fn() -> HostMetrics + Send + Clone + 'static,
    ) -> Result<(), AgentError> {
        drain.trust(self.drain_key());
        let heartbeats = self.heartbeat_every(interval, metrics.clone());
        drain.requested().await;
        heartbeats.stop();
        self.send_dying_heartbeat(metrics(), DYING_RETRY_FOR).await
    }

    /// The dying heartbeat, tried again with backoff while the webserver cannot take it
    /// (unreachable, or answering 5xx), for up to `retry_for`: a host that shuts down
    /// must not be left `ACTIVE` because one request was lost.
    pub async fn send_dying_heartbeat(
        &self,
        metrics: HostMetrics,
        retry_for: Duration,
    ) -> Result<(), AgentError> {
        let deadline = tokio::time::Instant::now() + retry_for;
        let mut pause = Duration::from_millis(200);
        loop {
            match self.heartbeat(metrics, true).await {
                Ok(()) => return Ok(()),
                Err(err)
                    if err.is_transient() && tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::warn!(instance = %self.instance_name, error = %err, retry_in = ?pause, "dying heartbeat failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// How long a draining host keeps trying to deliver its dying heartbeat.
pub const DYING_RETRY_FOR: Duration = Duration::from_secs(120);

/// A running heartbeat loop.
pub struct Heartbeats(tokio::task::JoinHandle<()>);

impl Heartbeats {
    pub fn stop(self) {
        self.0.abort();
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn endpoint(base: &Url, path: &str) -> Result<Url, AgentError> {
    base.join(path).map_err(AgentError::BadUrl)
}

/// `interval` moved by up to 10% either way.
fn jittered(interval: Duration) -> Duration {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut byte = [0u8; 1];
    let _ = SystemRandom::new().fill(&mut byte);
    // byte / 255 in [0, 1] → factor in [0.9, 1.1].
    interval.mul_f64(0.9 + 0.2 * f64::from(byte[0]) / 255.0)
}

/// How long a drain request's signature is good for, either side of its time.
pub const DRAIN_SIGNATURE_WINDOW: Duration = Duration::from_secs(300);

/// What a drain request's signature is checked with: the instance's name and the
/// SHA-256 (lowercase hex) of the host's credential, which the webserver stores.
#[derive(Clone)]
pub struct DrainKey {
    instance: String,
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for DrainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainKey")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl DrainKey {
    /// The key of `instance`'s host holding credential `token`.
    pub fn new(instance: &InstanceName, token: &SecretString) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.expose_secret().as_bytes());
        let hex: String = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            instance: instance.as_str().to_owned(),
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hex.as_bytes()),
        }
    }

    /// Whether `authorization` (`Drain t=<secs>, sig=<hex>`) is a signature by this key
    /// made within [`DRAIN_SIGNATURE_WINDOW`] of `now`.
    pub fn verifies(&self, authorization: &str, now: SystemTime) -> bool {
        let Some(rest) = authorization.strip_prefix("Drain ") else {
            return false;
        };
        let mut time = None;
        let mut signature = None;
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => time = value.parse::<u64>().ok(),
                Some(("sig", value)) => signature = decode_hex(value),
                _ => return false,
            }
        }
        let (Some(time), Some(signature)) = (time, signature) else {
            return false;
        };
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if now.abs_diff(time) > DRAIN_SIGNATURE_WINDOW.as_secs() {
            return false;
        }
        let message = format!("POST /drain_and_shutdown\n{}\n{time}", self.instance);
        aws_lc_rs::hmac::verify(&self.key, message.as_bytes(), &signature).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The keys a [`DrainEndpoint`] accepts drain requests signed with.
type TrustedKeys = Arc<RwLock<Vec<DrainKey>>>;

/// The agent's `POST /drain_and_shutdown` endpoint, which the webserver calls when it
/// scales the instance in. It answers 401 to any request not signed with a key it
/// trusts ([`DrainEndpoint::trust`]; [`HostAgent::run_until_drained`] trusts its own),
/// so before the host registers it refuses every drain request.
pub struct DrainEndpoint {
    port: u16,
    server: ServerHandle,
    requested: watch::Receiver<bool>,
    trusted: TrustedKeys,
}

async fn drain_requested(
    req: HttpRequest,
    tell: web::Data<watch::Sender<bool>>,
    trusted: web::Data<TrustedKeys>,
) -> HttpResponse {
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let now = SystemTime::now();
    let signed = trusted
        .read()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
        .any(|key| key.verifies(authorization, now));
    if !signed {
        tracing::warn!(peer = ?req.peer_addr(), "drain request refused: not signed by the control plane");
        return HttpResponse::Unauthorized()
            .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Drain"))
            .json(json!({ "error": "a drain request must be signed by the control plane" }));
    }
    tracing::info!("drain requested");
    let _ = tell.send(true);
    HttpResponse::Ok().json(json!({ "draining": true }))
}

impl DrainEndpoint {
    /// Listens on `addr` (port 0 for any free one). Call within a tokio runtime.
    pub fn start(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(addr, |_| {})
    }

    /// [`DrainEndpoint::start`], serving the routes `routes` adds too (a simulated host
    /// serves its clients' sessions this way).
    pub fn start_with(
        addr: SocketAddr,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let port = listener.local_addr()?.port();
        let (tell, requested) = watch::channel(false);
        let tell = web::Data::new(tell);
        let trusted = TrustedKeys::default();
        let keys = web::Data::new(trusted.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(tell.clone())
                .app_data(keys.clone())
                .route("/drain_and_shutdown", web::post().to(drain_requested))
                .configure(routes.clone())
        })
        .workers(1)
        .shutdown_timeout(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            port,
            server: handle,
            requested,
            trusted,
        })
    }

    /// Accepts drain requests signed with `key` from now on.
    pub fn trust(&self, key: DrainKey) {
        self.trusted
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(key);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Completes once a drain was requested (at once if one already was).
    pub async fn requested(&mut self) {
        let _ = self.requested.wait_for(|requested| *requested).await;
    }

    /// Stops listening.
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(instance: &str, token: &str) -> DrainKey {
        DrainKey::new(
            &InstanceName::parse(instance).unwrap(),
            &SecretString::from(token.to_owned()),
        )
    }

    /// What the control plane sends (`auth::host::drain_authorization`), computed
    /// here from the same definition.
    fn signed(token: &str, instance: &str, time: u64) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hex.as_bytes());
        let message = format!("POST /drain_and_shutdown\n{instance}\n{time}");
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        let sig: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("Drain t={time}, sig={sig}")
    }

    #[test]
    fn only_fresh_signatures_of_this_host_verify() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mine = key("host-a", "host_secret");
        assert!(mine.verifies(&signed("host_secret", "host-a", 1_700_000_000), now));
        assert!(mine.verifies(&signed("host_secret", "host-a", 1_700_000_299), now));
        for refused in [
            signed("host_secret", "host-a", 1_699_999_000),
            signed("host_secret", "host-b", 1_700_000_000),
            signed("host_other", "host-a", 1_700_000_000),
            signed("host_secret", "host-a", 1_700_000_000).replace("Drain", "Bearer"),
            signed("host_secret", "host-a", 1_700_000_000)[..60].to_owned(),
            "Drain t=1700000000, sig=zz".to_owned(),
            "Drain t=1700000000".to_owned(),
            String::new(),
        ] {
            assert!(!mine.verifies(&refused, now), "{refused}");
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..200 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }
}
