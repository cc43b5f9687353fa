//! Load: concurrent clients asking for mandelboxes, every answer recorded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{COMMIT, REGION};

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /mandelbox/assign`: 202 or 503.
    Assign,
    /// `POST /host_service/heartbeat` of a seeded host: 200 or 503.
    Heartbeat,
    /// `GET /regions`: 200 or 503.
    Regions,
}

impl Op {
    /// Whether `status` is an answer the contract allows for this request under faults.
    pub fn expects(self, status: u16) -> bool {
        match self {
            Self::Assign => matches!(status, 202 | 503),
            Self::Heartbeat | Self::Regions => matches!(status, 200 | 503),
        }
    }
}

/// One answer: when, from which server, to what, what.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at: Instant,
    pub server: usize,
    pub op: Op,
    /// The HTTP status, or `None` when no answer came (connection refused, reset).
    pub status: Option<u16>,
    pub mandelbox_id: Option<String>,
    /// The answer's `error` code, if any.
    pub error: Option<String>,
}

/// Every answer of a load run.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub answers: Vec<Answer>,
}

impl Outcomes {
    /// Answers by status (`0` for no answer).
    pub fn by_status(&self) -> BTreeMap<u16, u64> {
        let mut counts = BTreeMap::new();
        for answer in &self.answers {
            *counts.entry(answer.status.unwrap_or(0)).or_insert(0) += 1;
        }
        counts
    }

    /// `202×n 503×m …`, for the table.
    pub fn summary(&self) -> String {
        self.by_status()
            .iter()
            .map(|(status, count)| match status {
                0 => format!("none×{count}"),
                status => format!("{status}×{count}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The mandelboxes the answers assigned.
    pub fn assigned(&self) -> Vec<String> {
        self.answers
            .iter()
            .filter_map(|a| a.mandelbox_id.clone())
            .collect()
    }

    /// Answers the contract does not allow (202 or 503 to assigns, 200 or 503 to the
    /// rest; and, with `dead` servers, besides no answer from them).
    pub fn unexpected(&self, dead: &[usize]) -> Vec<&Answer> {
        self.answers
            .iter()
            .filter(|a| match a.status {
                Some(status) => !a.op.expects(status),
                None => !dead.contains(&a.server),
            })
            .collect()
    }

    /// The first 202 at or after `since`.
    pub fn first_assigned_after(&self, since: Instant) -> Option<Instant> {
        self.answers
            .iter()
            .filter(|a| a.status == Some(202) && a.at >= since)
            .map(|a| a.at)
            .min()
    }

    /// Answers of one kind.
    pub fn of(&self, op: Op) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(move |a| a.op == op)
    }
}

/// When a load stops: a moment that can be moved later while the load runs, so that a
/// fault that took long to inject still has load after it.
#[derive(Debug, Clone)]
pub struct Until(Arc<Mutex<Instant>>);

impl Until {
    pub fn at(at: Instant) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Moves the end to `at` if that is later.
    pub fn extend_to(&self, at: Instant) {
        let mut until = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *until = (*until).max(at);
    }

    /// Moves the end to `at`, earlier or later.
    pub fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl From<Instant> for Until {
    fn from(at: Instant) -> Self {
        Self::at(at)
    }
}

/// `clients` clients asking `servers` (round robin) for mandelboxes until `until`, each
/// as a user of its own, as an admin (no payment gate). Mandelboxes are left in place.
pub async fn assigns(
    servers: &[String],
    token: &str,
    clients: usize,
    until: impl Into<Until>,
) -> Outcomes {
    mixed(servers, token, &[], clients, until).await
}

/// What a client sends, one request in ten: six assigns, two heartbeats (of the hosts
/// whose tokens are `host_tokens`, when there are some) and two `GET /regions`.
fn op_of(n: u64, with_hosts: bool) -> Op {
    match n % 10 {
        6 | 7 if with_hosts => Op::Heartbeat,
        8 | 9 => Op::Regions,
        _ => Op::Assign,
    }
}

/// [`assigns`] mixed with heartbeats of the seeded hosts and `GET /regions`.
pub async fn mixed(
    servers: &[String],
    token: &str,
    host_tokens: &[String],
    clients: usize,
    until: impl Into<Until>,
) -> Outcomes {
    mixed_watched(
        servers,
        token,
        host_tokens,
        clients,
        until.into(),
        Arc::default(),
    )
    .await
}

/// [`mixed`], noting when each 202 came into `assigned_at` as it comes (to see recovery
/// while the load runs).
pub async fn mixed_watched(
    servers: &[String],
    token: &str,
    host_tokens: &[String],
    clients: usize,
    until: Until,
    assigned_at: Arc<Mutex<Vec<Instant>>>,
) -> Outcomes {
    // Longer than any deadline of the server's: a client that gives up is not an answer.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    let next = Arc::new(AtomicU64::new(0));
    let servers = Arc::new(servers.to_vec());
    let host_tokens = Arc::new(host_tokens.to_vec());
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, next, servers, token, until, host_tokens, assigned_at) = (
                http.clone(),
                next.clone(),
                servers.clone(),
                token.to_owned(),
                until.clone(),
                host_tokens.clone(),
                assigned_at.clone(),
            );
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !until.passed() {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let server = usize::try_from(n).unwrap_or(0) % servers.len();
                    let op = op_of(n, !host_tokens.is_empty());
                    let request = match op {
                        Op::Assign => http
                            .post(format!("{}/mandelbox/assign", servers[server]))
                            .bearer_auth(&token)
                            .json(&json!({
                                "region": REGION,
                                "username": format!("chaos-user-{n}"),
                                "dpi": 96,
                                "client_commit_hash": COMMIT,
                            })),
                        Op::Heartbeat => {
                            let host = usize::try_from(n / 10).unwrap_or(0) % host_tokens.len();
                            http.post(format!("{}/host_service/heartbeat", servers[server]))
                                .bearer_auth(&host_tokens[host])
                                .json(&json!({
                                    "memory_remaining_kb": 16_000_000,
                                    "nanocpus_remaining": 4_000_000_000_i64,
                                    "gpu_vram_remaining_kb": 15_000_000,
                                }))
                        }
                        Op::Regions => http
                            .get(format!("{}/regions", servers[server]))
                            .bearer_auth(&token),
                    };
                    let answer = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            let at = Instant::now();
                            if status == 202 {
                                assigned_at
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(at);
                            }
                            Answer {
                                at,
                                server,
                                op,
                                status: Some(status),
                                mandelbox_id: (status == 202)
                                    .then(|| body["mandelbox_id"].as_str().map(str::to_owned))
                                    .flatten(),
                                error: body["error"].as_str().map(str::to_owned),
                            }
                        }
                        Err(_) => {
                            // A server that is gone: do not spin on it.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Answer {
                                at: Instant::now(),
                                server,
                                op,
                                status: None,
                                mandelbox_id: None,
                                error: None,
                            }
                        }
                    };
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    let mut outcomes = Outcomes::default();
    for task in futures_util::future::join_all(tasks).await {
        outcomes.answers.extend(task.unwrap_or_default());
    }
    outcomes
}

/// `GET /readyz` of `server` every 100 ms until `until`, noting when and the status
/// (0: no answer) into `seen`.
pub async fn readiness_into(server: String, until: Until, seen: Arc<Mutex<Vec<(Instant, u16)>>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    while !until.passed() {
        let status = match http.get(format!("{server}/readyz")).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Instant::now(), status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
