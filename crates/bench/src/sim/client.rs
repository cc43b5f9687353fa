//! The simulated users, and the meter of what the fleet costs while they come and go.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use local_cloud::HostLoad;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::server::COMMIT_HASH;
use super::{Arrival, IdleBreakdown, PolicyReport, SimOptions, SimServer};

/// How a user fared; waits in trace seconds.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    FirstTry(f64),
    AfterWaiting(f64),
    Unserved,
    /// An answer the protocol does not allow for.
    Error,
}

/// What every user shares.
struct Users {
    http: reqwest::Client,
    assign_url: String,
    token: String,
    host_port: u16,
    speed: f64,
    client_wait: Duration,
    /// Sessions running on hosts now.
    live: AtomicI64,
}

/// What a try got: a session's host and id, or a refusal.
enum Answer {
    Assigned { ip: String, mandelbox_id: String },
    Refused,
    Error,
}

impl Users {
    async fn ask(&self, user: &str, region: &str, wait: Option<Duration>) -> Answer {
        let wait_secs = wait.map_or(0, |wait| wait.as_secs_f64().ceil().max(1.0) as u64);
        let request = self
            .http
            .post(&self.assign_url)
            .bearer_auth(&self.token)
            .json(&json!({
                "region": region,
                "username": user,
                "dpi": 96,
                "client_commit_hash": COMMIT_HASH,
                "wait_secs": wait_secs,
            }))
            // The client gives up at its own deadline, which may be shorter than the
            // whole seconds wait_secs takes.
            .timeout(wait.unwrap_or(Duration::from_secs(30)));
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Answer::Refused,
            Err(_) => return Answer::Error,
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(err) if err.is_timeout() => return Answer::Refused,
            Err(_) => return Answer::Error,
        };
        match status {
            StatusCode::ACCEPTED => match (body["ip"].as_str(), body["mandelbox_id"].as_str()) {
                (Some(ip), Some(id)) => Answer::Assigned {
                    ip: ip.to_owned(),
                    mandelbox_id: id.to_owned(),
                },
                _ => Answer::Error,
            },
            StatusCode::SERVICE_UNAVAILABLE
                if matches!(
                    body["error"].as_str(),
                    Some("NO_INSTANCE_AVAILABLE" | "SERVICE_UNAVAILABLE")
                ) =>
            {
                Answer::Refused
            }
            _ => {
                eprintln!("fleet-sim: unexpected answer {status}: {body}");
                Answer::Error
            }
        }
    }

    /// Connects to the host, which holds the session for `length` (wall time).
    async fn connect(&self, ip: &str, mandelbox_id: &str, length: Duration) -> bool {
        let url = format!(
            "http://{ip}:{}/mandelbox/{mandelbox_id}/session",
            self.host_port
        );
        let sent = self
            .http
            .post(url)
            .json(&json!({ "secs": length.as_secs_f64() }))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                eprintln!(
                    "fleet-sim: the host refused a session: {}",
                    response.status()
                );
                false
            }
            Err(err) => {
                eprintln!("fleet-sim: the host could not be reached: {err}");
                false
            }
        }
    }

    /// One user's life: a first try, a second willing to wait, the session.
    async fn live(
        self: Arc<Self>,
        name: String,
        arrival: Arrival,
        done: mpsc::UnboundedSender<(f64, Outcome)>,
    ) {
        let at = arrival.at_secs;
        let done = move |outcome| {
            let _ = done.send((at, outcome));
        };
        let arrived = Instant::now();
        let waited = || arrived.elapsed().as_secs_f64() * self.speed;
        let mut answer = self.ask(&name, &arrival.region, None).await;
        let mut first_try = true;
        if matches!(answer, Answer::Refused) {
            first_try = false;
            let wait = self.client_wait.div_f64(self.speed);
            answer = self.ask(&name, &arrival.region, Some(wait)).await;
        }
        let (ip, mandelbox_id) = match answer {
            Answer::Assigned { ip, mandelbox_id } => (ip, mandelbox_id),
            Answer::Refused => return done(Outcome::Unserved),
            Answer::Error => return done(Outcome::Error),
        };
        let length = Duration::from_secs_f64(arrival.session_secs / self.speed);
        if !self.connect(&ip, &mandelbox_id, length).await {
            return done(Outcome::Error);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        let outcome = if first_try {
            Outcome::FirstTry(waited())
        } else {
            Outcome::AfterWaiting(waited())
        };
        done(outcome);
        tokio::time::sleep(length).await;
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The cost of the fleet, integrated over trace time.
#[derive(Debug, Default)]
struct Meter {
    idle_slot_secs: f64,
    instance_secs: f64,
    peak_instances: usize,
    launches: usize,
    /// Where the idle slots were, from the hosts' own accounts.
    idle: IdleBreakdown,
}

/// Samples what the cloud runs and the sessions on it every few milliseconds until
/// `end` (wall time).
async fn meter(server: &SimServer, users: &Users, capacity: i64, end: Instant) -> Meter {
    let mut meter = Meter::default();
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now().min(end);
        let trace_secs = (now - last).as_secs_f64() * users.speed;
        last = now;
        let hosts = server.provider.hosts();
        let running = hosts.len();
        let paid = i64::try_from(running).unwrap_or(i64::MAX) * capacity;
        let idle = (paid - users.live.load(Ordering::Relaxed)).max(0);
        meter.idle_slot_secs += idle as f64 * trace_secs;
        let hours = trace_secs / 3600.0;
        for host in hosts {
            let free = (capacity - i64::try_from(host.sessions).unwrap_or(i64::MAX)).max(0);
            let slot_hours = free as f64 * hours;
            let part = match host {
                HostLoad {
                    registered: false, ..
                } => &mut meter.idle.booting,
                HostLoad { draining: true, .. } => &mut meter.idle.draining,
                HostLoad { sessions: 0, .. } => &mut meter.idle.empty,
                _ => &mut meter.idle.in_use,
            };
            *part += slot_hours;
        }
        meter.instance_secs += running as f64 * trace_secs;
        meter.peak_instances = meter.peak_instances.max(running);
        if now >= end {
            meter.launches = server.provider.launched();
            return meter;
        }
    }
}

/// How the users fared.
struct Tally {
    /// Of the users served, in trace seconds.
    waits: Vec<f64>,
    first_try: usize,
    errors: usize,
    misses_by_hour: Vec<usize>,
}

/// Collects the outcomes of `users` users of a trace `length` seconds long.
async fn tally(
    outcomes: &mut mpsc::UnboundedReceiver<(f64, Outcome)>,
    users: usize,
    length: f64,
) -> Tally {
    let mut tally = Tally {
        waits: Vec::new(),
        first_try: 0,
        errors: 0,
        misses_by_hour: vec![0; (length / 3600.0).floor() as usize + 1],
    };
    for _ in 0..users {
        let Some((at, outcome)) = outcomes.recv().await else {
            tally.errors += 1;
            continue;
        };
        match outcome {
            Outcome::FirstTry(wait) => {
                tally.first_try += 1;
                tally.waits.push(wait);
                continue;
            }
            Outcome::AfterWaiting(wait) => tally.waits.push(wait),
            Outcome::Unserved => {}
            Outcome::Error => tally.errors += 1,
        }
        if let Some(hour) = tally.misses_by_hour.get_mut((at / 3600.0) as usize) {
            *hour += 1;
        }
    }
    tally
}

/// Replays `arrivals` against `server`.
pub(super) async fn replay(
    server: &SimServer,
    arrivals: &[Arrival],
    options: &SimOptions,
) -> PolicyReport {
    let users = Arc::new(Users {
        http: reqwest::Client::new(),
        assign_url: format!("{}/mandelbox/assign", server.base_url),
        token: server.token.clone(),
        host_port: server.host_port,
        speed: options.speed,
        client_wait: options.client_wait,
        live: AtomicI64::new(0),
    });
    let length = arrivals.last().map_or(0.0, |a| a.at_secs);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(length / options.speed);
    let (done, mut outcomes) = mpsc::unbounded_channel();
    let mut lives = JoinSet::new();
    let spawn_all = async {
        for (n, arrival) in arrivals.iter().enumerate() {
            tokio::time::sleep_until(
                (start + Duration::from_secs_f64(arrival.at_secs / options.speed)).into(),
            )
            .await;
            lives.spawn(users.clone().live(
                super::trace::user_of(arrival, n),
                arrival.clone(),
                done.clone(),
            ));
        }
    };
    let (metered, ()) = tokio::join!(meter(server, &users, options.capacity, end), spawn_all);
    let tally = tally(&mut outcomes, arrivals.len(), length).await;
    lives.abort_all();
    let Tally {
        mut waits,
        first_try,
        errors,
        misses_by_hour,
    } = tally;
    waits.sort_by(f64::total_cmp);
    let sessions = arrivals.len();
    let ratio = |n: usize| {
        if sessions == 0 {
            1.0
        } else {
            n as f64 / sessions as f64
        }
    };
    let p95 = waits
        .get(((waits.len() as f64 * 0.95) as usize).min(waits.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    PolicyReport {
        policy: "",
        placement: "",
        sessions,
        first_try_ratio: ratio(first_try),
        served_ratio: ratio(waits.len()),
        p95_wait_secs: p95,
        mean_idle_slots: if length > 0.0 {
            metered.idle_slot_secs / length
        } else {
            0.0
        },
        idle_slot_hours: metered.idle_slot_secs / 3600.0,
        instance_hours: metered.instance_secs / 3600.0,
        launches: metered.launches,
        peak_instances: metered.peak_instances,
        errors,
        misses_by_hour,
        users_predicted: 0,
        sessions_remembered: 0,
        idle: metered.idle,
        boot_secs: None,
    }
}
