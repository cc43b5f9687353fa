//! `CLOUD_PROVIDER=local`: instances simulated on this machine, so the whole flow of
//! SPEC §5–§7 runs without a cloud.
//!
//! Each instance gets its own loopback address (`127.x.y.z`, all routed to `lo` on
//! Linux), where its simulated host agent serves `POST /drain_and_shutdown` on the host
//! service port. After a boot delay the agent reads its user data, registers with the
//! webserver named there (retrying while the launcher has not yet recorded the instance),
//! heartbeats, and on a drain request sends its dying heartbeat and shuts down.
//! Terminating an instance stops its agent at once. Instances live as long as the
//! provider that started them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::boot::BootConfig;
use crate::host_agent::{DrainEndpoint, HostAgent, HostMetrics, Registration};
use crate::provider::{CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Running,
    Terminated,
}

struct Simulated {
    ip: IpAddr,
    region: String,
    owner: String,
    name: String,
    launched_at: SystemTime,
    /// Set by the host itself when it shuts down after a drain.
    power: watch::Receiver<Power>,
    /// Tells the host it was terminated.
    terminate: watch::Sender<bool>,
}

/// The simulated cloud.
pub struct LocalProvider {
    options: LocalOptions,
    instances: Mutex<HashMap<CloudInstanceId, Simulated>>,
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
    CloudInstanceId(format!("local-{hex}"))
}

impl LocalProvider {
    pub fn new(options: LocalOptions) -> Self {
        Self {
            options,
            instances: Mutex::new(HashMap::new()),
        }
    }

    fn instances(&self) -> MutexGuard<'_, HashMap<CloudInstanceId, Simulated>> {
        // A panic while holding the lock leaves the map itself consistent.
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Binds a drain endpoint on a free loopback address.
    fn bind(&self) -> Result<(IpAddr, DrainEndpoint), CloudError> {
        let mut last = None;
        for _ in 0..32 {
            let ip = random_loopback();
            match DrainEndpoint::start(SocketAddr::new(ip, self.options.host_port)) {
                Ok(endpoint) => return Ok((ip, endpoint)),
                Err(err) => last = Some(err),
            }
        }
        Err(CloudError::Temporary(format!(
            "no free loopback address for port {}: {}",
            self.options.host_port,
            last.map(|err| err.to_string()).unwrap_or_default()
        )))
    }

    fn power(&self, id: &CloudInstanceId) -> Option<Power> {
        self.instances().get(id).map(|i| *i.power.borrow())
    }

    async fn wait_for(
        &self,
        ids: &[CloudInstanceId],
        timeout: Duration,
        done: impl Fn(Option<Power>) -> Result<bool, CloudError>,
    ) -> Result<(), CloudError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for id in ids {
                all &= done(self.power(id))?;
            }
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CloudError::Temporary(format!(
                    "instances not there after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One simulated host, from boot to shutdown.
async fn host_life(
    boot: BootConfig,
    ip: IpAddr,
    mut drain: DrainEndpoint,
    options: LocalOptions,
    mut terminated: watch::Receiver<bool>,
) {
    let name = boot.instance_name.clone();
    tokio::select! {
        () = serve(&boot, ip, &mut drain, &options) => {
            tracing::info!(instance = %name, "simulated host shut down");
        }
        _ = terminated.wait_for(|t| *t) => {
            tracing::info!(instance = %name, "simulated instance terminated");
        }
    }
    drain.stop().await;
}

async fn serve(boot: &BootConfig, ip: IpAddr, drain: &mut DrainEndpoint, options: &LocalOptions) {
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
    let metrics = options.metrics;
    if let Err(err) = agent
        .run_until_drained(drain, options.heartbeat_interval, move || metrics)
        .await
    {
        tracing::warn!(instance = %boot.instance_name, error = %err, "dying heartbeat failed");
    }
}

#[async_trait]
impl CloudProvider for LocalProvider {
    async fn start_instances(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<CloudInstanceId>, CloudError> {
        if request.count == 0 {
            return Err(CloudError::Permanent(
                "at least one instance must be started".to_owned(),
            ));
        }
        let boot = BootConfig::from_user_data(request.user_data.expose_secret())
            .map_err(|err| CloudError::Permanent(err.to_string()))?;
        let mut ids = Vec::new();
        for _ in 0..request.count {
            let (ip, drain) = self.bind()?;
            let id = new_id();
            let (power_tx, power) = watch::channel(Power::Running);
            let (terminate, terminated) = watch::channel(false);
            let life = host_life(boot.clone(), ip, drain, self.options.clone(), terminated);
            tokio::spawn(async move {
                life.await;
                let _ = power_tx.send(Power::Terminated);
            });
            tracing::info!(instance = %request.name, cloud_id = %id, %ip, image = %request.image, "simulated instance started");
            self.instances().insert(
                id.clone(),
                Simulated {
                    ip,
                    region: request.region.clone(),
                    owner: request.owner.clone(),
                    name: request.name.clone(),
                    launched_at: SystemTime::now(),
                    power,
                    terminate,
                },
            );
            ids.push(id);
        }
        Ok(ids)
    }

    async fn terminate_instances(
        &self,
        _region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError> {
        let instances = self.instances();
        for id in ids {
            // An unknown id belongs to an earlier run of this process: long gone.
            if let Some(instance) = instances.get(id) {
                let _ = instance.terminate.send(true);
            }
        }
        Ok(())
    }

    async fn instance_ips(
        &self,
        _region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<HashMap<CloudInstanceId, Option<IpAddr>>, CloudError> {
        let instances = self.instances();
        ids.iter()
            .map(|id| match instances.get(id) {
                Some(instance) => Ok((id.clone(), Some(instance.ip))),
                None => Err(CloudError::Permanent(format!("unknown instance {id}"))),
            })
            .collect()
    }

    async fn list_instances(
        &self,
        region: &str,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError> {
        let instances = self.instances();
        Ok(instances
            .iter()
            .filter(|(_, i)| i.region == region && i.owner == owner)
            .filter(|(_, i)| *i.power.borrow() == Power::Running && !*i.terminate.borrow())
            .map(|(id, i)| CloudInstance {
                id: id.clone(),
                name: i.name.clone(),
                launched_at: i.launched_at,
            })
            .collect())
    }

    async fn wait_until_running(
        &self,
        _region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError> {
        self.wait_for(ids, timeout, |power| match power {
            Some(Power::Running) => Ok(true),
            Some(Power::Terminated) => Err(CloudError::Permanent(
                "an instance was terminated".to_owned(),
            )),
            None => Err(CloudError::Permanent("unknown instance".to_owned())),
        })
        .await
    }

    async fn wait_until_terminated(
        &self,
        _region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError> {
        self.wait_for(ids, timeout, |power| {
            Ok(matches!(power, Some(Power::Terminated) | None))
        })
        .await
    }
}
