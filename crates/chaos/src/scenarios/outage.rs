//! Every server away while the hosts keep trying.

use std::sync::Arc;
use std::time::Duration;

use domain::{InstanceName, MandelboxId};
use host_agent::{HostAgent, HostMetrics, MandelboxState, Registration};
use models::instance::NewInstance;
use models::{AmiId, CommitHash, InstanceStatus, Region, UnixMillis};
use serde_json::{Value, json};

use super::{Timing, invariants};
use crate::cluster::{AMI, COMMIT, Cluster, REGION};
use crate::report::Row;

pub(crate) const HOST_METRICS: HostMetrics = HostMetrics {
    memory_remaining_kb: 16_000_000,
    nanocpus_remaining: 4_000_000_000,
    gpu_vram_remaining_kb: 15_000_000,
};

/// A host that the cluster launched (its row written as the fleet does) and that
/// registered with `server`.
pub(crate) async fn registered_host(cluster: &Cluster, server: &str, n: usize) -> Arc<HostAgent> {
    let name = InstanceName::parse(&format!("{REGION}-chaos-{n:07}-uid-host{n:06}"))
        .unwrap_or_else(|err| panic!("{err}"));
    // The bootstrap secret and its argon2 hash, as a launcher makes them.
    let (secret, hash) = auth::host::new_bootstrap_secret().unwrap_or_else(|err| panic!("{err}"));
    let new = NewInstance {
        instance_name: name.clone(),
        cloud_provider_id: format!("none-host-{n}"),
        creation_time_utc_unix_ms: UnixMillis::now(),
        aws_ami_id: AmiId::parse(AMI).unwrap_or_else(|err| panic!("{err}")),
        location: Region::parse(REGION).unwrap_or_else(|err| panic!("{err}")),
        status: InstanceStatus::PreConnection,
        commit_hash: CommitHash::parse(COMMIT).unwrap_or_else(|err| panic!("{err}")),
        aws_instance_type: "g4dn.xlarge".to_owned(),
        bootstrap_secret_hash: Some(hash),
    };
    models::instance::insert(&mut cluster.connect(), &new).unwrap_or_else(|err| panic!("{err}"));
    let registration = Registration {
        instance_name: name,
        bootstrap_secret: secret,
        ip: Some(std::net::IpAddr::from([
            10,
            1,
            0,
            u8::try_from(n).unwrap_or(0),
        ])),
        mandelbox_capacity: 1,
        metrics: HOST_METRICS,
    };
    let url = url::Url::parse(server).unwrap_or_else(|err| panic!("{err}"));
    Arc::new(
        HostAgent::register(&url, &registration)
            .await
            .unwrap_or_else(|err| panic!("register: {err}")),
    )
}

/// 3. Every server stopped for three heartbeat timeouts while the hosts keep trying,
///    then started again: no host becomes unresponsive, no session is lost; a host that
///    really stops is still found unresponsive.
pub async fn control_plane_outage(binary: &std::path::Path, timing: Timing) -> Row {
    let timeout = timing.heartbeat_timeout;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    let bind = format!("127.0.0.1:{port}");
    let timeout_secs = timeout.as_secs().to_string();
    let cluster = Cluster::new(
        binary.to_path_buf(),
        &[
            ("BIND_ADDR", bind.as_str()),
            ("HEARTBEAT_TIMEOUT_SECS", timeout_secs.as_str()),
            ("LIFECYCLE_INTERVAL_SECS", "1"),
            ("LINGERING_TIMEOUT_SECS", "3600"),
            ("ALLOCATION_TIMEOUT_SECS", "3600"),
        ],
    );
    let mut server = cluster.start_server();
    cluster.seed(0, 0);
    let hosts = hosts_with_sessions(&cluster, &server.url("/mandelbox/assign"), 4).await;
    let sessions_before = cluster.number("SELECT count(*) AS n FROM hardware.mandelbox_info");
    let beat = timeout / 4;
    let mut beating: Vec<_> = hosts
        .iter()
        .map(|host| Some(host.heartbeat_every(beat, || HOST_METRICS)))
        .collect();
    // The last host really stops.
    if let Some(stopped) = beating.last_mut().and_then(Option::take) {
        stopped.stop();
    }
    tokio::task::block_in_place(|| server.stop());
    tokio::time::sleep(timeout * 3).await;
    let mut server = cluster.start_server();
    // Two timeouts and a pass later, the live hosts must still be ACTIVE.
    tokio::time::sleep(timeout * 2 + Duration::from_secs(2)).await;
    let unresponsive = cluster.number(
        "SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'HOST_SERVICE_UNRESPONSIVE'",
    );
    let stopped_found = cluster.number(&format!(
        "SELECT count(*) AS n FROM hardware.instance_info
         WHERE status = 'HOST_SERVICE_UNRESPONSIVE' AND instance_name = '{}'",
        hosts
            .last()
            .map(|h| h.instance_name().to_string())
            .unwrap_or_default()
    ));
    let sessions_after = cluster.number("SELECT count(*) AS n FROM hardware.mandelbox_info");
    drop(beating);
    Row {
        scenario: "every server down 3 heartbeat timeouts",
        outcomes: format!("{} hosts, {} sessions", hosts.len(), sessions_before),
        recovery: format!(
            "{} live host(s) unresponsive; the stopped one {}",
            unresponsive - stopped_found,
            if stopped_found == 1 {
                "found"
            } else {
                "NOT found"
            }
        ),
        invariants: invariants(&cluster).1,
        lost: format!(
            "{} of {sessions_before} sessions",
            sessions_before - sessions_after
        ),
        notes: format!(
            "outage {} s, timeout {} s",
            (timeout * 3).as_secs(),
            timeout.as_secs()
        ),
        passed: server.is_running()
            && sessions_before == 4
            && sessions_after == sessions_before
            && stopped_found == 1
            && unresponsive == 1,
    }
}

/// `count` registered hosts of one slot each, each with a running session.
async fn hosts_with_sessions(
    cluster: &Cluster,
    assign_url: &str,
    count: usize,
) -> Vec<Arc<HostAgent>> {
    let server = assign_url.trim_end_matches("/mandelbox/assign");
    let mut hosts = Vec::new();
    for n in 0..count {
        hosts.push(registered_host(cluster, server, n).await);
    }
    let token = cluster.admin_token("chaos-admin");
    let http = reqwest::Client::new();
    for (n, host) in hosts.iter().enumerate() {
        let answer: Value = http
            .post(assign_url)
            .bearer_auth(&token)
            .json(&json!({"region": REGION, "username": format!("session-{n}"), "dpi": 96, "client_commit_hash": COMMIT}))
            .send()
            .await
            .unwrap_or_else(|err| panic!("assign: {err}"))
            .json()
            .await
            .unwrap_or(Value::Null);
        let id = answer["mandelbox_id"]
            .as_str()
            .and_then(|id| MandelboxId::parse(id).ok());
        if let Some(id) = id {
            let _ = host
                .set_mandelbox_status(&id, MandelboxState::Running)
                .await;
        }
    }
    hosts
}
