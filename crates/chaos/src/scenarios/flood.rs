//! 6. Strangers flood the host protocol: forged heartbeats (well-formed host
//!    credentials nobody was issued) from many connections, while real hosts heartbeat
//!    and clients assign.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;

use super::outage::{HOST_METRICS, registered_host};
use super::{Timing, invariants};
use crate::cluster::{COMMIT, Cluster, REGION};
use crate::report::Row;

/// How hard strangers push, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Forged heartbeats a second, in all.
    pub rate: u64,
    /// Connections they come from.
    pub connections: usize,
    /// How long the baseline and the flood each last.
    pub phase: Duration,
}

impl Flood {
    pub fn of(timing: Timing) -> Self {
        Self {
            rate: timing.flood_rate,
            connections: timing.flood_connections,
            phase: timing.load,
        }
    }
}

/// The heartbeat timeout of the flood run: a real host whose heartbeats go unanswered
/// this long under the flood is found unresponsive, and the run fails.
const FLOOD_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Assign latencies of `clients` clients until `until`, and how many were answered 202.
async fn assign_latencies(
    server: String,
    token: String,
    clients: usize,
    until: Instant,
) -> (Vec<Duration>, usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, server, token, next) =
                (http.clone(), server.clone(), token.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut assigned = 0;
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let answer = http
                        .post(format!("{server}/mandelbox/assign"))
                        .bearer_auth(&token)
                        .json(&json!({
                            "region": REGION,
                            "username": format!("flood-user-{n}"),
                            "dpi": 96,
                            "client_commit_hash": COMMIT,
                        }))
                        .send()
                        .await;
                    if let Ok(response) = answer {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        seen.push(started.elapsed());
                        assigned += usize::from(status == 202);
                    }
                }
                (seen, assigned)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut assigned = 0;
    for task in futures_util::future::join_all(tasks).await {
        let (seen, ok) = task.unwrap_or_default();
        all.extend(seen);
        assigned += ok;
    }
    all.sort();
    (all, assigned)
}

fn p99(sorted: &[Duration]) -> Duration {
    if sorted.is_empty() {
        return Duration::MAX;
    }
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Forged heartbeats at `flood.rate` a second from `flood.connections` connections
/// until `until`: how many were sent, and how many were answered other than 401.
async fn forged(server: String, flood: Flood, until: Instant) -> (u64, u64) {
    let sent = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let every = Duration::from_secs_f64(flood.connections as f64 / flood.rate.max(1) as f64);
    let tasks: Vec<_> = (0..flood.connections)
        .map(|n| {
            let (server, sent, wrong) = (server.clone(), sent.clone(), wrong.clone());
            tokio::spawn(async move {
                // One connection each: a client of its own, one idle connection kept.
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap_or_else(|err| panic!("HTTP client: {err}"));
                let (token, _) = auth::host::new_host_token().unwrap_or_else(|err| panic!("{err}"));
                let token = token.expose_secret().to_owned();
                // Spread the connections over the first interval.
                let offset = every.mul_f64((n % 1000) as f64 / 1000.0);
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while Instant::now() < until {
                    ticks.tick().await;
                    let dying = n % 10 == 0;
                    let answer = http
                        .post(format!("{server}/host_service/heartbeat"))
                        .bearer_auth(&token)
                        .json(&json!({
                            "memory_remaining_kb": 1,
                            "nanocpus_remaining": 1,
                            "gpu_vram_remaining_kb": 1,
                            "dying": dying,
                        }))
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok(response) if response.status().as_u16() == 401 => {
                            let _ = response.bytes().await;
                        }
                        Ok(_) => {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused or reset under the flood: not an answer of another kind.
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    futures_util::future::join_all(tasks).await;
    (sent.load(Ordering::Relaxed), wrong.load(Ordering::Relaxed))
}

/// What the real hosts' heartbeats got.
#[derive(Debug, Default, Clone, Copy)]
struct Beats {
    sent: u64,
    /// Answered other than 200, or not at all.
    failed: u64,
    /// The longest any host went without a heartbeat answered 200.
    longest_gap: Duration,
}

/// Real hosts heartbeat every `every` until `until`.
async fn real_heartbeats(
    hosts: Vec<Arc<host_agent::HostAgent>>,
    every: Duration,
    until: Instant,
) -> Beats {
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|host| {
            tokio::spawn(async move {
                let mut beats = Beats::default();
                let mut last_heard = Instant::now();
                while Instant::now() < until {
                    beats.sent += 1;
                    if host.heartbeat(HOST_METRICS, false).await.is_ok() {
                        beats.longest_gap = beats.longest_gap.max(last_heard.elapsed());
                        last_heard = Instant::now();
                    } else {
                        beats.failed += 1;
                    }
                    tokio::time::sleep(every).await;
                }
                beats.longest_gap = beats.longest_gap.max(last_heard.elapsed());
                beats
            })
        })
        .collect();
    let mut totals = Beats::default();
    for task in futures_util::future::join_all(tasks).await {
        let beats = task.unwrap_or_default();
        totals.sent += beats.sent;
        totals.failed += beats.failed;
        totals.longest_gap = totals.longest_gap.max(beats.longest_gap);
    }
    totals
}

/// 6. A flood of forged heartbeats: real hosts' heartbeats keep answering 200, no real
///    host becomes unresponsive, and assigns keep their p99 within twice the unloaded one.
pub async fn forged_heartbeat_flood(binary: &std::path::Path, timing: Timing) -> Row {
    let flood = Flood::of(timing);
    // Production's is 120 s; hosts beat every quarter of it.
    let timeout = FLOOD_HEARTBEAT_TIMEOUT;
    let timeout_secs = timeout.as_secs().to_string();
    let cluster = Cluster::new(
        binary.to_path_buf(),
        &[
            ("HEARTBEAT_TIMEOUT_SECS", timeout_secs.as_str()),
            ("LIFECYCLE_INTERVAL_SECS", "1"),
            ("ALLOCATION_TIMEOUT_SECS", "3600"),
            // A log line per request would measure the logger, not the protocol.
            ("RUST_LOG", "info,api::middleware=warn"),
        ],
    );
    let mut server = cluster.start_server();
    cluster.seed(20, 100_000);
    let mut hosts = Vec::new();
    for n in 0..4 {
        hosts.push(registered_host(&cluster, &server.address, n).await);
    }
    let token = cluster.admin_token("flood-admin");
    let beat = timeout / 4;

    // The baseline: the same assigns and heartbeats, no strangers.
    let until = Instant::now() + flood.phase;
    let (baseline, beats) = tokio::join!(
        assign_latencies(server.address.clone(), token.clone(), 8, until),
        real_heartbeats(hosts.clone(), beat, until),
    );
    let baseline_p99 = p99(&baseline.0);
    let rss_before = server.rss_kb();

    let until = Instant::now() + flood.phase;
    let started = Instant::now();
    let (flooded, flood_beats, (sent, wrong)) = tokio::join!(
        assign_latencies(server.address.clone(), token.clone(), 8, until),
        real_heartbeats(hosts.clone(), beat, until),
        forged(server.address.clone(), flood, until),
    );
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    let flooded_p99 = p99(&flooded.0);
    // A lifecycle pass later, every real host must still be ACTIVE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unresponsive = cluster.number(
        "SELECT count(*) AS n FROM hardware.instance_info
         WHERE status <> 'ACTIVE' AND instance_name LIKE '%-chaos-%'",
    );
    let drained_by_strangers = cluster
        .number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'DRAINING'");
    let rss_after = server.rss_kb();
    let (invariants_held, invariants) = invariants(&cluster);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Row {
        scenario: "forged heartbeat flood",
        outcomes: format!(
            "{sent} forged ({achieved:.0}/s from {} connections), {wrong} not 401; real heartbeats {} + {} sent, {} + {} failed, longest gap {:.1} s",
            flood.connections,
            beats.sent,
            flood_beats.sent,
            beats.failed,
            flood_beats.failed,
            flood_beats.longest_gap.as_secs_f64()
        ),
        recovery: format!(
            "assign p99 {:.1} ms unloaded, {:.1} ms flooded ({} and {} assigns)",
            ms(baseline_p99),
            ms(flooded_p99),
            baseline.0.len(),
            flooded.0.len()
        ),
        invariants,
        lost: format!("{unresponsive} real host(s) not ACTIVE, {drained_by_strangers} drained"),
        notes: format!(
            "RSS {} → {} MB; target {} /s{}",
            rss_before / 1024,
            rss_after / 1024,
            flood.rate,
            if timing.flood_judges_latency {
                ""
            } else {
                "; p99 reported, not judged (short run)"
            }
        ),
        passed: server.is_running()
            && wrong == 0
            && beats.failed == 0
            && flood_beats.failed == 0
            // Well within the heartbeat timeout: beats every quarter of it were answered.
            && flood_beats.longest_gap < timeout / 2
            && unresponsive == 0
            && drained_by_strangers == 0
            && invariants_held
            && !flooded.0.is_empty()
            && (!timing.flood_judges_latency || flooded_p99 <= baseline_p99 * 2),
    }
}
