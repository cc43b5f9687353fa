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
///
/// The generator must cost little beside the server it floods (they share the
/// machine's cores): it runs on a thread and runtime of its own, away from the clients
/// whose latency is measured, and writes requests built once per connection over plain
/// kept-alive HTTP/1.1, reading no more of each answer than its status and length.
async fn forged(server: String, flood: Flood, until: Instant) -> (u64, u64) {
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("flood runtime: {err}"));
        let counts = runtime.block_on(forged_from_here(&server, flood, until));
        let _ = done.send(counts);
    });
    answer.await.unwrap_or((0, 0))
}

async fn forged_from_here(server: &str, flood: Flood, until: Instant) -> (u64, u64) {
    let address = server
        .strip_prefix("http://")
        .unwrap_or(server)
        .trim_end_matches('/')
        .to_owned();
    let sent = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let every = Duration::from_secs_f64(flood.connections as f64 / flood.rate.max(1) as f64);
    let tasks: Vec<_> = (0..flood.connections)
        .map(|n| {
            let (address, sent, wrong) = (address.clone(), sent.clone(), wrong.clone());
            tokio::spawn(async move {
                let (token, _) = auth::host::new_host_token().unwrap_or_else(|err| panic!("{err}"));
                let body = json!({
                    "memory_remaining_kb": 1,
                    "nanocpus_remaining": 1,
                    "gpu_vram_remaining_kb": 1,
                    "dying": n % 10 == 0,
                })
                .to_string();
                let request = format!(
                    "POST /host_service/heartbeat HTTP/1.1\r\nHost: {address}\r\n\
                     Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    token.expose_secret(),
                    body.len()
                )
                .into_bytes();
                // Spread the connections over the first interval.
                let offset = every.mul_f64((n % 1000) as f64 / 1000.0);
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut connection: Option<RawConnection> = None;
                while Instant::now() < until {
                    ticks.tick().await;
                    if connection.is_none() {
                        connection = RawConnection::open(&address).await;
                    }
                    let Some(open) = connection.as_mut() else {
                        // Refused under the flood: not an answer of another kind, and
                        // not a request sent.
                        continue;
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    match open.exchange(&request).await {
                        Ok((status, keep)) => {
                            if status != 401 {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                            if !keep {
                                connection = None;
                            }
                        }
                        // Reset under the flood: not an answer of another kind.
                        Err(_) => connection = None,
                    }
                }
            })
        })
        .collect();
    futures_util::future::join_all(tasks).await;
    (sent.load(Ordering::Relaxed), wrong.load(Ordering::Relaxed))
}

/// A kept-alive HTTP/1.1 connection that sends whole requests and reads answers' heads
/// and bodies, no more.
struct RawConnection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl RawConnection {
    async fn open(address: &str) -> Option<Self> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(address),
        )
        .await
        .ok()?
        .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Self {
            stream,
            buffer: Vec::with_capacity(1024),
        })
    }

    /// Sends `request`; the answer's status, and whether the connection stays open.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        tokio::time::timeout(Duration::from_secs(10), self.exchange_now(request))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    async fn exchange_now(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.read_more().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while self.buffer.len() < head_end + length {
            self.read_more().await?;
        }
        Ok((status, !head.contains("connection: close")))
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0_u8; 1024];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
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
