//! `CLOUD_PROVIDER=local`: instances simulated on this machine, so the whole flow of
//! SPEC §5–§7 runs without a cloud.
//!
//! Each instance gets its own loopback address (`127.x.y.z`, all routed to `lo` on
//! Linux), where its simulated host agent serves `POST /drain_and_shutdown` on the host
//! service port. After a boot delay the agent reads its user data, registers with the
//! webserver named there (retrying while the launcher has not yet recorded the instance),
//! heartbeats, and on a drain request sends its dying heartbeat and shuts down once its
//! last session ended (clients connect to it as to a real host, with
//! `POST /mandelbox/{id}/session` `{"secs": …}`: it holds the session that long).
//! Terminating an instance stops its agent at once. Instances live as long as the
//! provider that started them.

mod sessions;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cloud_interface::{
    BootConfig, CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest,
    LaunchToken,
};
use domain::Region;
use host_agent::{DYING_RETRY_FOR, DrainEndpoint, HostAgent, HostMetrics, Registration};
use secrecy::ExposeSecret;
use sessions::Sessions;
use tokio::sync::watch;
use tokio::time::Instant;

/// What this backend's ids start with.
pub const ID_PREFIX: &str = "local-";

/// How the simulated hosts behave.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// `HOST_SERVICE_PORT`: where each host serves `/drain_and_shutdown`.
    pub host_port: u16,
    /// From launch to the host's first registration attempt.
    pub boot_delay: Duration,
    /// How long a booted host keeps trying to register before it gives up and stops.
    pub register_for: Duration,
    pub heartbeat_interval: Duration,
    pub mandelbox_capacity: i64,
    pub metrics: HostMetrics,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            host_port: 4678,
            boot_delay: Duration::from_secs(2),
            register_for: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(10),
            mandelbox_capacity: 8,
            metrics: HostMetrics {
                memory_remaining_kb: 16_000_000,
                nanocpus_remaining: 4_000_000_000,
                gpu_vram_remaining_kb: 15_000_000,
            },
        }
    }
}

/// One running instance, as [`LocalProvider::hosts`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLoad {
    /// Its host registered with the webserver (else it is still booting).
    pub registered: bool,
    /// Its host was asked to drain: it shuts down after its last session.
    pub draining: bool,
    /// Sessions its clients hold on it now.
    pub sessions: usize,
}

struct Simulated {
    region: Region,
    owner: String,
    name: String,
    launched_at: SystemTime,
    /// The loopback address its host listens on.
    ip: IpAddr,
    /// Set when the host shut down, by itself after a drain or when terminated.
    stopped: watch::Receiver<bool>,
    /// Tells the host it was terminated.
    terminate: watch::Sender<bool>,
    sessions: Arc<Sessions>,
}

impl Simulated {
    fn is_running(&self) -> bool {
        !*self.stopped.borrow() && !*self.terminate.borrow()
    }
}

#[derive(Default)]
struct Instances {
    by_id: HashMap<CloudInstanceId, Simulated>,
    /// The instance each launch token started.
    by_token: HashMap<LaunchToken, CloudInstanceId>,
}

/// The simulated cloud.
pub struct LocalProvider {
    options: LocalOptions,
    instances: Mutex<Instances>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG does not fail on Linux; a zeroed value would still be usable.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes
}

/// A loopback address other than 127.0.0.1, so each host has an IP of its own.
fn random_loopback() -> IpAddr {
    let [a, b, c] = random_bytes::<3>();
    IpAddr::V4(Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254)))
}

fn new_id() -> CloudInstanceId {
    let hex: String = random_bytes::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    CloudInstanceId::new(ID_PREFIX, &hex)
}

impl LocalProvider {
    pub fn new(options: LocalOptions) -> Self {
        Self {
            options,
            instances: Mutex::new(Instances::default()),
        }
    }

    fn instances(&self) -> MutexGuard<'_, Instances> {
        // A panic while holding the lock leaves the maps themselves consistent.
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Instances started and still running (not shut down, not terminated): what the
    /// cloud would bill now.
    pub fn running(&self) -> usize {
        self.instances()
            .by_id
            .values()
            .filter(|i| i.is_running())
            .count()
    }

    /// What every running instance is doing now (in no particular order): where the
    /// slots the cloud bills are, for a simulation's accounts.
    pub fn hosts(&self) -> Vec<HostLoad> {
        self.instances()
            .by_id
            .values()
            .filter(|i| i.is_running())
            .map(|i| HostLoad {
                registered: i.sessions.is_registered(),
                draining: i.sessions.is_draining(),
                sessions: i.sessions.live(),
            })
            .collect()
    }

    /// Terminates every instance this provider started.
    pub fn terminate_all(&self) {
        for instance in self.instances().by_id.values() {
            let _ = instance.terminate.send(true);
        }
    }

    /// Instances started since this provider was made.
    pub fn launched(&self) -> usize {
        self.instances().by_id.len()
    }

    /// Binds a host's endpoint (drain requests and its clients' sessions) on a free
    /// loopback address.
    fn bind(&self, sessions: &Arc<Sessions>) -> Result<(IpAddr, DrainEndpoint), CloudError> {
        let mut last = None;
        for _ in 0..32 {
            let ip = random_loopback();
            let addr = SocketAddr::new(ip, self.options.host_port);
            match DrainEndpoint::start_with(addr, sessions.routes()) {
                Ok(endpoint) => return Ok((ip, endpoint)),
                Err(err) => last = Some(err),
            }
        }
        Err(CloudError::temporary(
            format!(
                "no free loopback address for port {}",
                self.options.host_port
            ),
            last.map(|err| Box::new(err) as _),
        ))
    }
}

/// One simulated host, from boot to shutdown.
async fn host_life(
    boot: BootConfig,
    ip: IpAddr,
    mut drain: DrainEndpoint,
    sessions: Arc<Sessions>,
    options: LocalOptions,
    mut terminated: watch::Receiver<bool>,
) {
    let name = boot.instance_name.clone();
    tokio::select! {
        () = serve(&boot, ip, &mut drain, &sessions, &options) => {
            tracing::info!(instance = %name, "simulated host shut down");
        }
        _ = terminated.wait_for(|t| *t) => {
            tracing::info!(instance = %name, "simulated instance terminated");
        }
    }
    drain.stop().await;
}

async fn serve(
    boot: &BootConfig,
    ip: IpAddr,
    drain: &mut DrainEndpoint,
    sessions: &Sessions,
    options: &LocalOptions,
) {
    tokio::select! {
        () = tokio::time::sleep(options.boot_delay) => {}
        () = drain.requested() => return,
    }
    let registration = Registration {
        instance_name: boot.instance_name.clone(),
        bootstrap_secret: boot.bootstrap_secret.expose_secret().to_owned().into(),
        ip: Some(ip),
        mandelbox_capacity: options.mandelbox_capacity,
        metrics: options.metrics,
    };
    let deadline = Instant::now() + options.register_for;
    let agent = loop {
        match HostAgent::register(&boot.webserver_url, &registration).await {
            Ok(agent) => break Arc::new(agent),
            // The launcher records the instance after the cloud call returns; until
            // then the webserver does not know the name.
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(instance = %boot.instance_name, error = %err, "registration refused; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = drain.requested() => return,
                }
            }
            Err(err) => {
                tracing::warn!(instance = %boot.instance_name, error = %err, "simulated host could not register");
                return;
            }
        }
    };
    tracing::info!(instance = %boot.instance_name, %ip, "simulated host registered");
    // Drain requests from now on must be signed with this host's credential.
    drain.trust(agent.drain_key());
    sessions.registered(agent.clone());
    let metrics = options.metrics;
    let heartbeats = agent.heartbeat_every(options.heartbeat_interval, move || metrics);
    drain.requested().await;
    sessions.mark_draining();
    // Its sessions go on: the host shuts down after the last one, and a heartbeat
    // interval later still none (a client assigned just before the drain may be on its
    // way).
    loop {
        sessions.ended().await;
        tokio::time::sleep(options.heartbeat_interval).await;
        if sessions.live() == 0 {
            break;
        }
    }
    heartbeats.stop();
    if let Err(err) = agent.send_dying_heartbeat(metrics, DYING_RETRY_FOR).await {
        tracing::warn!(instance = %boot.instance_name, error = %err, "dying heartbeat failed");
    }
}

#[async_trait]
impl CloudProvider for LocalProvider {
    /// Every simulated host holds `LocalOptions::mandelbox_capacity`, whatever the type.
    fn mandelbox_capacity(&self, _instance_type: &str) -> Option<i64> {
        Some(self.options.mandelbox_capacity)
    }

    async fn start_instance(&self, request: &LaunchRequest) -> Result<CloudInstanceId, CloudError> {
        if let Some(id) = self.instances().by_token.get(&request.launch_token) {
            return Ok(id.clone());
        }
        let boot = BootConfig::from_user_data(request.user_data.expose_secret())
            .map_err(|err| CloudError::permanent("unusable user data", Some(Box::new(err))))?;
        let sessions = Sessions::new();
        let (ip, drain) = self.bind(&sessions)?;
        let id = new_id();
        let (stopped_tx, stopped) = watch::channel(false);
        let (terminate, terminated) = watch::channel(false);
        let life = host_life(
            boot,
            ip,
            drain,
            sessions.clone(),
            self.options.clone(),
            terminated,
        );
        tokio::spawn(async move {
            life.await;
            let _ = stopped_tx.send(true);
        });
        tracing::info!(instance = %request.name, cloud_id = %id, %ip, image = %request.image, "simulated instance started");
        let mut instances = self.instances();
        instances
            .by_token
            .insert(request.launch_token.clone(), id.clone());
        instances.by_id.insert(
            id.clone(),
            Simulated {
                region: request.region.clone(),
                owner: request.owner.clone(),
                name: request.name.to_string(),
                launched_at: SystemTime::now(),
                ip,
                stopped,
                terminate,
                sessions,
            },
        );
        Ok(id)
    }

    async fn terminate_instances(
        &self,
        _region: &Region,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError> {
        let instances = self.instances();
        for id in ids {
            // An unknown id belongs to an earlier run of this process, or to another
            // backend: nothing of ours to end.
            if let Some(instance) = instances.by_id.get(id) {
                let _ = instance.terminate.send(true);
            }
        }
        Ok(())
    }

    async fn list_instances(
        &self,
        region: &Region,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError> {
        Ok(self
            .instances()
            .by_id
            .iter()
            .filter(|(_, i)| i.region == *region && i.owner == owner && i.is_running())
            .map(|(id, i)| CloudInstance {
                id: id.clone(),
                name: i.name.clone(),
                launched_at: i.launched_at,
            })
            .collect())
    }

    /// The loopback address the simulated host listens on; `None` for an id this
    /// provider did not start.
    async fn instance_addresses(
        &self,
        _region: &Region,
        id: &CloudInstanceId,
    ) -> Result<Option<Vec<IpAddr>>, CloudError> {
        Ok(self.instances().by_id.get(id).map(|i| vec![i.ip]))
    }
}
