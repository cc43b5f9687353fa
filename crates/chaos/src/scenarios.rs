//! The five scenarios of the chaos run. Each returns a [`Row`] of the table, and whether
//! it passed: what it asks of the server is written in `passed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{InstanceName, MandelboxId};
use host_agent::{HostAgent, HostMetrics, MandelboxState, Registration};
use models::instance::NewInstance;
use models::{AmiId, CommitHash, InstanceStatus, Region, UnixMillis};
use serde_json::{Value, json};

use crate::cluster::{AMI, COMMIT, Cluster, REGION};
use crate::load;
use crate::report::Row;

/// How long each scenario's phases last.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load around a database restart or a killed replica.
    pub load: Duration,
    /// `HEARTBEAT_TIMEOUT_SECS` of the outage scenario; the outage lasts three of them.
    pub heartbeat_timeout: Duration,
    /// How long the identity provider stays away.
    pub idp_away: Duration,
    /// Hostile requests sent.
    pub hostile_requests: usize,
}

impl Timing {
    /// The short version the test command runs.
    pub fn short() -> Self {
        Self {
            load: Duration::from_secs(6),
            heartbeat_timeout: Duration::from_secs(2),
            idp_away: Duration::from_secs(3),
            hostile_requests: 2_000,
        }
    }

    /// The full run of `scripts/chaos.sh`.
    pub fn full() -> Self {
        Self {
            load: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            idp_away: Duration::from_secs(60),
            hostile_requests: 10_000,
        }
    }
}

/// Every 202's mandelbox, looked for in the database: how many are missing.
fn missing(cluster: &Cluster, assigned: &[String]) -> usize {
    if assigned.is_empty() {
        return 0;
    }
    let list = assigned
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let found = cluster.number(&format!(
        "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE mandelbox_id IN ({list})"
    ));
    assigned.len() - usize::try_from(found).unwrap_or(0)
}

fn invariants(cluster: &Cluster) -> (bool, String) {
    match models::audit::violations(&mut cluster.connect(), 1) {
        Ok(violations) if violations.is_clean() => (true, "held".to_owned()),
        Ok(violations) => (false, format!("{violations:?}")),
        Err(err) => (false, format!("unchecked: {err}")),
    }
}

fn keeps_every_session_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ALLOCATION_TIMEOUT_SECS", "3600"),
        ("HEARTBEAT_TIMEOUT_SECS", "3600"),
        ("LIFECYCLE_INTERVAL_SECS", "1"),
        ("MANDELBOX_LIMIT_PER_USER", "1"),
    ]
}

/// 1. PostgreSQL restarted mid-load: only 202 and 503, assigns back within 5 s, the
///    server process never restarts, every 202's mandelbox in the database.
pub async fn database_restart(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &keeps_every_session_vars());
    let mut server = cluster.start_server();
    cluster.seed(20, 100_000);
    let pid = server.pid();
    let token = cluster.admin_token("chaos-admin");
    let until = Instant::now() + timing.load;
    let servers = vec![server.address.clone()];
    let load = {
        let token = token.clone();
        tokio::spawn(async move { load::assigns(&servers, &token, 16, until).await })
    };
    tokio::time::sleep(timing.load / 3).await;
    let postgres = &cluster.postgres;
    let restarted = tokio::task::block_in_place(|| {
        postgres.restart();
        Instant::now()
    });
    let outcomes = load.await.unwrap_or_default();
    let recovery = outcomes
        .first_assigned_after(restarted)
        .map(|at| at.duration_since(restarted));
    let lost = missing(&cluster, &outcomes.assigned());
    let (held, invariants) = invariants(&cluster);
    let same_process = server.is_running() && server.pid() == pid;
    let unexpected = outcomes.unexpected(&[]).len();
    Row {
        scenario: "PostgreSQL restarted mid-load",
        outcomes: outcomes.summary(),
        recovery: recovery.map_or("never".to_owned(), |d| {
            format!("{:.2} s to a 202", d.as_secs_f64())
        }),
        invariants,
        lost: format!("{lost} of {} 202s", outcomes.assigned().len()),
        notes: format!(
            "server process {}",
            if same_process {
                "never restarted"
            } else {
                "RESTARTED"
            }
        ),
        passed: unexpected == 0
            && lost == 0
            && held
            && same_process
            && recovery.is_some_and(|d| d <= Duration::from_secs(5)),
    }
}

/// 2. Three replicas under load, one killed with SIGKILL: the others keep serving, no
///    invariant broken, every 202 recorded.
pub async fn replica_killed(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &keeps_every_session_vars());
    let mut servers: Vec<_> = (0..3).map(|_| cluster.start_server()).collect();
    cluster.seed(20, 100_000);
    let token = cluster.admin_token("chaos-admin");
    let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let until = Instant::now() + timing.load;
    let load = tokio::spawn(async move { load::assigns(&addresses, &token, 24, until).await });
    tokio::time::sleep(timing.load / 3).await;
    servers[1].kill();
    let killed = Instant::now();
    let outcomes = load.await.unwrap_or_default();
    let served_after: Vec<u64> = [0, 2]
        .iter()
        .map(|i| {
            outcomes
                .answers
                .iter()
                .filter(|a| a.server == *i && a.at > killed && a.status == Some(202))
                .count() as u64
        })
        .collect();
    let lost = missing(&cluster, &outcomes.assigned());
    let (held, invariants) = invariants(&cluster);
    let others_alive = servers[0].is_running() && servers[2].is_running();
    Row {
        scenario: "3 replicas, one SIGKILLed",
        outcomes: outcomes.summary(),
        recovery: format!(
            "survivors: {} and {} 202s after the kill",
            served_after[0], served_after[1]
        ),
        invariants,
        lost: format!("{lost} of {} 202s", outcomes.assigned().len()),
        notes: "no answer only from the killed one".to_owned(),
        passed: outcomes.unexpected(&[1]).is_empty()
            && served_after.iter().all(|n| *n > 0)
            && others_alive
            && lost == 0
            && held,
    }
}

const HOST_METRICS: HostMetrics = HostMetrics {
    memory_remaining_kb: 16_000_000,
    nanocpus_remaining: 4_000_000_000,
    gpu_vram_remaining_kb: 15_000_000,
};

/// A host that the cluster launched (its row written as the fleet does) and that
/// registered with `server`.
async fn registered_host(cluster: &Cluster, server: &str, n: usize) -> Arc<HostAgent> {
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
    let mut hosts = Vec::new();
    for n in 0..4 {
        hosts.push(registered_host(&cluster, &server.address, n).await);
    }
    // One session per host, running.
    let token = cluster.admin_token("chaos-admin");
    let http = reqwest::Client::new();
    for (n, host) in hosts.iter().enumerate() {
        let answer: Value = http
            .post(server.url("/mandelbox/assign"))
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
    let alive = server.is_running();
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
        passed: alive
            && sessions_before == 4
            && sessions_after == sessions_before
            && stopped_found == 1
            && unresponsive == 1,
    }
}

/// 4. The identity provider unreachable, then back: 503s while it is away, tokens
///    verified again within seconds of its return.
pub async fn identity_provider_outage(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &[]);
    cluster.identity.jwks.set_status(503);
    let server = cluster.start_server();
    let token = cluster.identity.token("chaos-user");
    let http = reqwest::Client::new();
    let mut away = std::collections::BTreeMap::new();
    let until = Instant::now() + timing.idp_away;
    while Instant::now() < until {
        let status = regions_status(&http, &server.url("/regions"), &token).await;
        *away.entry(status).or_insert(0u64) += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.identity.jwks.set_status(200);
    let back = Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(30) {
        if regions_status(&http, &server.url("/regions"), &token).await == 200 {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Away again, with keys cached: tokens keep verifying.
    cluster.identity.jwks.set_status(503);
    let cached = regions_status(&http, &server.url("/regions"), &token).await;
    let summary = away
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        scenario: "identity provider away, then back",
        outcomes: format!("while away: {summary}"),
        recovery: recovered.map_or("never".to_owned(), |d| {
            format!("{:.2} s to a 200", d.as_secs_f64())
        }),
        invariants: "-".to_owned(),
        lost: "-".to_owned(),
        notes: format!("away again with keys cached: {cached}"),
        passed: away.keys().all(|status| *status == 503)
            && recovered.is_some_and(|d| d <= Duration::from_secs(6))
            && cached == 200,
    }
}

async fn regions_status(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

/// 5. Hostile requests: invented methods, malformed and oversized bodies, forged and
///    expired tokens, huge headers. No 5xx, no panic, memory and `/metrics` bounded.
pub async fn hostile_requests(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &[]);
    let mut server = cluster.start_server();
    cluster.seed(2, 10);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|err| panic!("{err}"));
    let metrics_before = metrics_bytes(&http, &server.url("/metrics")).await;
    let rss_before = server.rss_kb();
    let expired = {
        let mut claims = cluster.identity.claims("mallory");
        claims.insert("exp".into(), json!(1_000_000_000));
        cluster.identity.sign(&claims)
    };
    let foreign = test_support::TestIdentity::new().token("mallory");
    let counts = crate::hostile::send(
        &http,
        &server.address,
        timing.hostile_requests,
        &expired,
        &foreign,
    )
    .await;
    let metrics_after = metrics_bytes(&http, &server.url("/metrics")).await;
    let rss_after = server.rss_kb();
    let alive = server.is_running();
    let panicked = server.log().contains("panicked");
    let server_errors: u64 = counts
        .iter()
        .filter(|(status, _)| **status >= 500 || **status == 0)
        .map(|(_, n)| *n)
        .sum();
    let summary = counts
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        scenario: "hostile requests",
        outcomes: summary,
        recovery: format!("RSS {} → {} MB", rss_before / 1024, rss_after / 1024),
        invariants: format!("/metrics {metrics_before} → {metrics_after} bytes"),
        lost: "-".to_owned(),
        notes: format!(
            "{} sent; {}",
            timing.hostile_requests,
            if panicked { "PANICKED" } else { "no panic" }
        ),
        passed: alive
            && !panicked
            && server_errors == 0
            && metrics_after < metrics_before + 64 * 1024
            && rss_after < rss_before.max(20_000) * 4,
    }
}

async fn metrics_bytes(http: &reqwest::Client, url: &str) -> usize {
    match http.get(url).send().await {
        Ok(response) => response.bytes().await.map_or(0, |body| body.len()),
        Err(_) => 0,
    }
}
