//! Load: concurrent clients asking for mandelboxes, every answer recorded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{COMMIT, REGION};

/// One answer: when, from which server, what.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at: Instant,
    pub server: usize,
    /// The HTTP status, or `None` when no answer came (connection refused, reset).
    pub status: Option<u16>,
    pub mandelbox_id: Option<String>,
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

    /// Answers other than 202 and 503 (and, with `dead` servers, besides no answer from
    /// them).
    pub fn unexpected(&self, dead: &[usize]) -> Vec<&Answer> {
        self.answers
            .iter()
            .filter(|a| match a.status {
                Some(202 | 503) => false,
                None => !dead.contains(&a.server),
                Some(_) => true,
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
    let until = until.into();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    let next = Arc::new(AtomicU64::new(0));
    let servers = Arc::new(servers.to_vec());
    let tasks = (0..clients).map(|_| {
        let (http, next, servers, token, until) = (
            http.clone(),
            next.clone(),
            servers.clone(),
            token.to_owned(),
            until.clone(),
        );
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !until.passed() {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let server = usize::try_from(n).unwrap_or(0) % servers.len();
                let body = json!({
                    "region": REGION,
                    "username": format!("chaos-user-{n}"),
                    "dpi": 96,
                    "client_commit_hash": COMMIT,
                });
                let sent = http
                    .post(format!("{}/mandelbox/assign", servers[server]))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        Answer {
                            at: Instant::now(),
                            server,
                            status: Some(status),
                            mandelbox_id: (status == 202)
                                .then(|| body["mandelbox_id"].as_str().map(str::to_owned))
                                .flatten(),
                        }
                    }
                    Err(_) => {
                        // A server that is gone: do not spin on it.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Answer {
                            at: Instant::now(),
                            server,
                            status: None,
                            mandelbox_id: None,
                        }
                    }
                };
                answers.push(answer);
            }
            answers
        })
    });
    let mut outcomes = Outcomes::default();
    for task in futures_util::future::join_all(tasks).await {
        outcomes.answers.extend(task.unwrap_or_default());
    }
    outcomes
}
