//! The fault matrix: every fault of [`Fault::ALL`] under loads of 8, 32 and 128
//! concurrent clients (assigns mixed with heartbeats and `GET /regions`), each run
//! several times against one server, through [`FaultProxy`] where the fault is the
//! network's. A run passes when the server recovers by itself within 5 s of the
//! database answering again (its pools within 2 s), answers nothing but 202/503 to
//! assigns (200/503 to the rest), loses no 202, keeps the invariants, and `/readyz`
//! tells the truth: 503 within 2 s of assigns failing for the database, 200 again within
//! 2 s of them succeeding.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use test_support::OwnPostgres;

use crate::cluster::{Cluster, Server};
use crate::load::{self, Op, Outcomes, Until};
use crate::proxy::{FaultProxy, Mode};

/// The faults of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `pg_ctl restart -m fast`: connections are ended, a checkpoint, a start.
    RestartFast,
    /// `pg_ctl restart -m immediate`: processes killed, crash recovery at start.
    RestartImmediate,
    /// Stopped (`-m fast`) for the outage, then started.
    StopStart,
    /// Every connection of the server ended with `pg_terminate_backend`.
    Terminate,
    /// Every connection reset by the proxy.
    Cut,
    /// The proxy accepts and never answers, and open connections stall, for the outage.
    Blackhole,
    /// 300 ms more on every round trip, for the latency period.
    Latency,
    /// Another client holds every connection slot for the outage.
    MaxConnections,
    /// Every connection reset, and new ones refused, for the outage.
    Refused,
    /// A streaming standby promoted while the primary stops; the proxy switched to it.
    Failover,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Self::RestartFast,
        Self::RestartImmediate,
        Self::StopStart,
        Self::Terminate,
        Self::Cut,
        Self::Blackhole,
        Self::Latency,
        Self::MaxConnections,
        Self::Refused,
        Self::Failover,
    ];

    /// The name `--fault` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::RestartFast => "restart-fast",
            Self::RestartImmediate => "restart-immediate",
            Self::StopStart => "stop-start",
            Self::Terminate => "terminate",
            Self::Cut => "cut",
            Self::Blackhole => "blackhole",
            Self::Latency => "latency",
            Self::MaxConnections => "max-connections",
            Self::Refused => "refused",
            Self::Failover => "failover",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|fault| fault.name() == name)
    }

    /// What the table calls it.
    pub fn describe(self, timing: &MatrixTiming) -> String {
        let outage = timing.outage.as_secs();
        match self {
            Self::RestartFast => "PostgreSQL restarted (-m fast)".to_owned(),
            Self::RestartImmediate => "PostgreSQL restarted (-m immediate)".to_owned(),
            Self::StopStart => format!("PostgreSQL stopped {outage} s, then started"),
            Self::Terminate => "every connection pg_terminate_backend'ed".to_owned(),
            Self::Cut => "every connection reset by the proxy".to_owned(),
            Self::Blackhole => format!("blackholed {outage} s"),
            Self::Latency => format!(
                "+{} ms a round trip for {} s",
                LATENCY.as_millis(),
                timing.latency_for.as_secs()
            ),
            Self::MaxConnections => format!("max_connections taken by another client {outage} s"),
            Self::Refused => format!("connections reset and refused {outage} s"),
            Self::Failover => "failover to a promoted standby".to_owned(),
        }
    }
}

/// The latency the [`Fault::Latency`] adds.
const LATENCY: Duration = Duration::from_millis(300);
/// The targets.
const RECOVERY: Duration = Duration::from_secs(5);
const POOLS: Duration = Duration::from_secs(2);
const READINESS: Duration = Duration::from_secs(2);

/// How long each run's phases last, and how many there are.
#[derive(Debug, Clone)]
pub struct MatrixTiming {
    pub runs: usize,
    pub loads: Vec<usize>,
    /// How long a stopped, blackholed, refused or full database stays so.
    pub outage: Duration,
    /// How long [`Fault::Latency`] lasts.
    pub latency_for: Duration,
    /// Load before the fault.
    pub lead: Duration,
    /// Load after the first 202 that follows the database's return.
    pub after: Duration,
    /// A run that has no 202 this long after the database answers again has failed.
    pub give_up: Duration,
}

impl MatrixTiming {
    /// The test command's: every fault and load twice, short outages.
    pub fn short() -> Self {
        Self {
            runs: 2,
            loads: vec![8, 32, 128],
            outage: Duration::from_secs(3),
            latency_for: Duration::from_secs(4),
            lead: Duration::from_millis(800),
            after: Duration::from_millis(800),
            give_up: Duration::from_secs(10),
        }
    }

    /// `scripts/chaos.sh`'s: 20 runs of each.
    pub fn full() -> Self {
        Self {
            runs: 20,
            loads: vec![8, 32, 128],
            outage: Duration::from_secs(10),
            latency_for: Duration::from_secs(20),
            lead: Duration::from_secs(2),
            after: Duration::from_secs(2),
            give_up: Duration::from_secs(15),
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// From the database answering again to the first 202 (`None`: none came).
    pub recovery: Option<Duration>,
    /// From the database answering again until every pool, and the listening
    /// connection, had a connection (`None`: not within the run).
    pub pools: Option<Duration>,
    pub answers: BTreeMap<(&'static str, u16), u64>,
    /// Answers other than 202/503 to assigns, 200/503 to the rest (or none at all).
    pub unexpected: usize,
    pub assigned: usize,
    /// 202s whose mandelbox is not in the database afterwards.
    pub lost: usize,
    /// What broke the invariants after the run, if anything did.
    pub broken: Option<String>,
    /// From assigns starting to fail for the database (for 2 s or more) to `/readyz`
    /// answering 503: `Some(None)` if it never did while they failed; `None` if assigns
    /// never failed that long.
    pub readiness_down: Option<Option<Duration>>,
    /// From the first 202 after the return to `/readyz` answering 200 (`None`: never).
    pub readiness_back: Option<Duration>,
    /// `/readyz` answers while the database was away, and at the end.
    pub readiness_during: BTreeMap<u16, u64>,
    pub readiness_after: u16,
    pub server_restarted: bool,
}

impl Run {
    /// Whether the run met every target (`lost` aside for a failover: an asynchronous
    /// standby may lack the last commits).
    pub fn passed(&self, fault: Fault) -> bool {
        self.recovery.is_some_and(|d| d <= RECOVERY)
            && self.pools.is_some_and(|d| d <= POOLS)
            && self.unexpected == 0
            && (self.lost == 0 || fault == Fault::Failover)
            && self.broken.is_none()
            && self
                .readiness_down
                .is_none_or(|down| down.is_some_and(|d| d <= READINESS))
            && self.readiness_back.is_some_and(|d| d <= READINESS)
            && self.readiness_after == 200
            && !self.server_restarted
    }
}

/// The runs of one fault under one load.
#[derive(Debug, Clone)]
pub struct Cell {
    pub fault: Fault,
    pub clients: usize,
    pub runs: Vec<Run>,
}

impl Cell {
    pub fn passed(&self) -> bool {
        self.runs.iter().all(|run| run.passed(self.fault))
    }
}

/// The database, the proxy in front of it, one server, the seeded fleet.
struct Bench {
    cluster: Cluster,
    proxy: FaultProxy,
    server: Server,
    pid: u32,
    token: String,
    host_tokens: Vec<String>,
    standby: Option<OwnPostgres>,
}

/// The application names each pool shows in `pg_stat_activity`.
const POOL_NAMES: [&str; 5] = [
    "webserver-requests",
    "webserver-requests-locks",
    "webserver-heartbeats",
    "webserver-ops",
    "webserver-listen",
];

/// Hosts seeded with a credential, for heartbeats.
const HOSTS: u32 = 20;

fn host_token(n: u32) -> String {
    format!("host_chaos{n:0>38}")
}

fn direct_url(postgres: &OwnPostgres, user: &str) -> String {
    format!(
        "postgres://{user}@127.0.0.1:{}/chaos?sslmode=disable",
        postgres.port()
    )
}

fn upstream_of(postgres: &OwnPostgres) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], postgres.port()))
}

impl Bench {
    async fn new(binary: &std::path::Path) -> Self {
        let mut vars = super::scenarios::keeps_every_session_vars();
        vars.push(("DATABASE_STATEMENT_TIMEOUT_SECS", "5"));
        let mut cluster = Cluster::new(binary.to_path_buf(), &vars);
        // The server is an ordinary role: a full server refuses it, not the superuser.
        cluster.execute("CREATE ROLE webserver LOGIN; ALTER DATABASE chaos OWNER TO webserver;");
        let proxy = FaultProxy::start(upstream_of(&cluster.postgres)).await;
        cluster.server_database_url = format!(
            "postgres://webserver@127.0.0.1:{}/chaos?sslmode=disable",
            proxy.port()
        );
        let server = cluster.start_server();
        cluster.seed(HOSTS, 100_000);
        for n in 1..=HOSTS {
            let digest = auth::host::host_token_digest(&host_token(n)).expect("a host token");
            cluster.execute(&format!(
                "UPDATE hardware.instance_info SET host_token_sha256 = '{digest}'
                 WHERE instance_name = 'chaos-{n}'"
            ));
        }
        Self {
            pid: server.pid(),
            token: cluster.admin_token("chaos-admin"),
            host_tokens: (1..=HOSTS).map(host_token).collect(),
            cluster,
            proxy,
            server,
            standby: None,
        }
    }

    /// Waits until the server assigns and says it is ready.
    async fn wait_healthy(&self) -> bool {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ready = http
                .get(self.server.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            let assigned = http
                .post(self.server.url("/mandelbox/assign"))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({
                    "region": crate::cluster::REGION,
                    "username": "chaos-probe",
                    "dpi": 96,
                    "client_commit_hash": crate::cluster::COMMIT,
                }))
                .send()
                .await
                .is_ok_and(|r| r.status() == 202);
            if ready && assigned {
                self.cluster
                    .execute("DELETE FROM hardware.mandelbox_info WHERE user_id = 'chaos-probe'");
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Makes the fault happen; returns when the database answers again.
    async fn inject(&mut self, fault: Fault, timing: &MatrixTiming) -> Instant {
        let postgres = &self.cluster.postgres;
        match fault {
            Fault::RestartFast => block(|| postgres.restart_with("fast")),
            Fault::RestartImmediate => block(|| postgres.restart_with("immediate")),
            Fault::StopStart => {
                block(|| postgres.stop_with("fast"));
                tokio::time::sleep(timing.outage).await;
                block(|| postgres.resume());
            }
            Fault::Terminate => {
                self.cluster.number(
                    "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                     WHERE usename = 'webserver'",
                );
            }
            Fault::Cut => self.proxy.cut_all(),
            Fault::Blackhole => {
                self.proxy.set(Mode::Blackhole);
                tokio::time::sleep(timing.outage).await;
                self.proxy.set(Mode::Pass);
            }
            Fault::Latency => {
                self.proxy.set(Mode::Latency(LATENCY));
                tokio::time::sleep(timing.latency_for).await;
                self.proxy.set(Mode::Pass);
            }
            Fault::MaxConnections => {
                let admin = self.cluster.database_url.clone();
                let held = block(move || {
                    let mut held = Vec::new();
                    while let Ok(conn) = PgConnection::establish(&admin) {
                        held.push(conn);
                        if held.len() > 1000 {
                            break;
                        }
                    }
                    held
                });
                tokio::time::sleep(timing.outage).await;
                drop(held);
            }
            Fault::Refused => {
                self.proxy.set(Mode::Refuse);
                self.proxy.cut_all();
                tokio::time::sleep(timing.outage).await;
                self.proxy.set(Mode::Pass);
            }
            Fault::Failover => {
                let standby = self.standby.take().expect("a standby made before the run");
                block(|| {
                    self.cluster.postgres.stop_with("fast");
                    standby.promote();
                });
                self.proxy.switch_to(upstream_of(&standby));
                // The promoted standby is the database from now on.
                self.cluster.database_url = direct_url(&standby, "postgres");
                let _old = std::mem::replace(&mut self.cluster.postgres, standby);
            }
        }
        Instant::now()
    }

    /// One run: load, the fault, the load on until the server has recovered.
    async fn run(&mut self, fault: Fault, clients: usize, timing: &MatrixTiming) -> Run {
        if fault == Fault::Failover {
            let primary = &self.cluster.postgres;
            let standby = block(|| OwnPostgres::standby_of(primary));
            self.standby = Some(standby);
        }
        if !self.wait_healthy().await {
            return Run {
                broken: Some("the server was not healthy before the run".to_owned()),
                ..Run::default()
            };
        }
        let until = Until::at(Instant::now() + Duration::from_secs(3600));
        let assigned_at = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let load = tokio::spawn({
            let (servers, token, hosts, until) = (
                vec![self.server.address.clone()],
                self.token.clone(),
                self.host_tokens.clone(),
                until.clone(),
            );
            let watch = assigned_at.clone();
            async move { load::mixed_watched(&servers, &token, &hosts, clients, until, watch).await }
        });
        let readiness = Arc::new(Mutex::new(Vec::new()));
        let sampler = tokio::spawn(load::readiness_into(
            self.server.address.clone(),
            until.clone(),
            readiness.clone(),
        ));
        tokio::time::sleep(timing.lead).await;
        let fault_at = Instant::now();
        let answering = self.inject(fault, timing).await;
        let pools = {
            let url = self.cluster.database_url.clone();
            tokio::task::spawn_blocking(move || {
                pools_back(&url, answering, Duration::from_secs(10))
            })
        };
        // The load goes on until a 202 came, `after` more, and readiness said 200 since.
        loop {
            let now = Instant::now();
            if now > answering + timing.give_up {
                break;
            }
            let first = first_at_or_after(&lock(&assigned_at), answering);
            if let Some(first) = first
                && now >= first + timing.after
                && lock(&readiness)
                    .iter()
                    .any(|(at, status)| *at >= first && *status == 200)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        until.set(Instant::now());
        let outcomes = load.await.unwrap_or_default();
        let _ = sampler.await;
        let readiness = lock(&readiness).clone();
        let pools = pools.await.ok().flatten();
        self.judge(fault_at, answering, &outcomes, &readiness, pools)
    }

    fn judge(
        &mut self,
        fault_at: Instant,
        answering: Instant,
        outcomes: &Outcomes,
        readiness: &[(Instant, u16)],
        pools: Option<Duration>,
    ) -> Run {
        let assigned = outcomes.assigned();
        let lost = super::scenarios::missing(&self.cluster, &assigned);
        let (held, invariants) = super::scenarios::invariants(&self.cluster);
        let mut answers = BTreeMap::new();
        for answer in &outcomes.answers {
            let op = match answer.op {
                Op::Assign => "assign",
                Op::Heartbeat => "heartbeat",
                Op::Regions => "regions",
            };
            *answers.entry((op, answer.status.unwrap_or(0))).or_insert(0) += 1;
        }
        let recovery = outcomes
            .first_assigned_after(answering)
            .map(|at| at.duration_since(answering));
        let readiness_back = outcomes.first_assigned_after(answering).and_then(|first| {
            first_state_after(readiness, first, 200).map(|at| at.duration_since(first))
        });
        let mut readiness_during = BTreeMap::new();
        for (_, status) in readiness
            .iter()
            .filter(|(at, _)| *at >= fault_at && *at <= answering)
        {
            *readiness_during.entry(*status).or_insert(0) += 1;
        }
        let running = self.server.is_running() && self.server.pid() == self.pid;
        // Clean for the next run. A run leaves tens of thousands of mandelboxes on 20
        // instances: deleting them row by row costs the count trigger an update of an
        // instance row each (over a minute at 30,000), so they are truncated with what
        // their triggers recorded, and the counts the trigger keeps are reset with them.
        self.cluster.execute(
            "TRUNCATE hardware.mandelbox_info, hardware.arrivals, hardware.departures,
                      hardware.unmet_demand;
             UPDATE hardware.instance_info SET mandelbox_count = 0 WHERE mandelbox_count <> 0;",
        );
        Run {
            recovery,
            pools,
            answers,
            unexpected: outcomes.unexpected(&[]).len(),
            assigned: assigned.len(),
            lost,
            broken: (!held).then_some(invariants),
            readiness_down: sustained_failure(outcomes, fault_at).map(|(start, end)| {
                first_state_after(readiness, start, 503)
                    .filter(|at| *at <= end)
                    .map(|at| at.duration_since(start))
            }),
            readiness_back,
            readiness_during,
            readiness_after: readiness.last().map_or(0, |(_, status)| *status),
            server_restarted: !running,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

fn first_at_or_after(times: &[Instant], since: Instant) -> Option<Instant> {
    times.iter().filter(|at| **at >= since).min().copied()
}

/// When `/readyz` was first seen answering `status` at or after `since` (the answer in
/// force at `since` counts: the last sample before it).
fn first_state_after(samples: &[(Instant, u16)], since: Instant, status: u16) -> Option<Instant> {
    if samples
        .iter()
        .rev()
        .find(|(at, _)| *at <= since)
        .is_some_and(|(_, s)| *s == status)
    {
        return Some(since);
    }
    samples
        .iter()
        .find(|(at, s)| *at >= since && *s == status)
        .map(|(at, _)| *at)
}

/// The first stretch after `since`, of 2 s or more, in which assigns failed for the
/// database and none succeeded: its start, and the next 202 (or the end).
fn sustained_failure(outcomes: &Outcomes, since: Instant) -> Option<(Instant, Instant)> {
    let mut assigns: Vec<_> = outcomes.of(Op::Assign).filter(|a| a.at >= since).collect();
    assigns.sort_by_key(|a| a.at);
    let end_of_load = assigns.last()?.at;
    let mut failing_since = None;
    for answer in &assigns {
        let failed =
            answer.status == Some(503) && answer.error.as_deref() == Some("SERVICE_UNAVAILABLE");
        match (failed, failing_since) {
            (true, None) => failing_since = Some(answer.at),
            (false, Some(start)) if answer.status == Some(202) => {
                if answer.at.duration_since(start) >= READINESS {
                    return Some((start, answer.at));
                }
                failing_since = None;
            }
            _ => {}
        }
    }
    failing_since
        .filter(|start| end_of_load.duration_since(*start) >= READINESS)
        .map(|start| (start, end_of_load))
}

/// Polls `pg_stat_activity` until every pool of the server has a connection.
fn pools_back(url: &str, answering: Instant, limit: Duration) -> Option<Duration> {
    let names = POOL_NAMES
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT count(DISTINCT application_name) AS n FROM pg_stat_activity
         WHERE application_name IN ({names})"
    );
    while answering.elapsed() < limit {
        if let Ok(mut conn) = PgConnection::establish(url)
            && let Ok(n) = test_support::try_number(&mut conn, &sql)
            && n == POOL_NAMES.len() as i64
        {
            return Some(answering.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Every run of `fault`, under each load of `timing`, on one server. `each` is told of
/// every cell as it completes.
pub async fn run_fault(
    binary: &std::path::Path,
    fault: Fault,
    timing: &MatrixTiming,
    mut each: impl FnMut(&Cell),
) -> Vec<Cell> {
    let mut bench = Bench::new(binary).await;
    let mut cells = Vec::new();
    for &clients in &timing.loads {
        let mut cell = Cell {
            fault,
            clients,
            runs: Vec::new(),
        };
        for _ in 0..timing.runs {
            let run = bench.run(fault, clients, timing).await;
            cell.runs.push(run);
        }
        each(&cell);
        cells.push(cell);
    }
    cells
}

fn seconds(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// The header of [`row`]s.
pub const HEADER: &str = "| fault | clients | runs | recovered | worst recovery (s) | worst pools (s) | answers | not 202/503 | lost 202s | invariants | /readyz while away | /readyz 503 after (worst s) | /readyz 200 after (worst s) | passed |\n|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|---:|---:|---|\n";

/// A cell as a row of the table.
pub fn row(cell: &Cell, timing: &MatrixTiming) -> String {
    let runs = &cell.runs;
    let recovered = runs
        .iter()
        .filter(|r| r.recovery.is_some_and(|d| d <= RECOVERY))
        .count();
    let worst = |f: &dyn Fn(&Run) -> Option<Duration>| {
        if runs.iter().any(|r| f(r).is_none()) {
            "never".to_owned()
        } else {
            runs.iter()
                .filter_map(f)
                .max()
                .map_or("-".to_owned(), seconds)
        }
    };
    let mut answers: BTreeMap<(&str, u16), u64> = BTreeMap::new();
    let mut during: BTreeMap<u16, u64> = BTreeMap::new();
    for run in runs {
        for (key, n) in &run.answers {
            *answers.entry(*key).or_insert(0) += n;
        }
        for (status, n) in &run.readiness_during {
            *during.entry(*status).or_insert(0) += n;
        }
    }
    let answers = answers
        .iter()
        .map(|((op, status), n)| format!("{op} {status}×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let during = if during.is_empty() {
        "-".to_owned()
    } else {
        during
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let down: Vec<_> = runs.iter().filter_map(|r| r.readiness_down).collect();
    let down = if down.is_empty() {
        "no sustained failure".to_owned()
    } else if down.iter().any(Option::is_none) {
        "never".to_owned()
    } else {
        down.iter()
            .flatten()
            .max()
            .map_or("-".to_owned(), |d| seconds(*d))
    };
    let lost: usize = runs.iter().map(|r| r.lost).sum();
    let assigned: usize = runs.iter().map(|r| r.assigned).sum();
    let held = runs.iter().filter(|r| r.broken.is_none()).count();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} | {} | {} | {} | {} |\n",
        cell.fault.describe(timing),
        cell.clients,
        runs.len(),
        recovered,
        worst(&|r| r.recovery),
        worst(&|r| r.pools),
        answers,
        runs.iter().map(|r| r.unexpected).sum::<usize>(),
        lost,
        assigned,
        if held == runs.len() {
            "held".to_owned()
        } else {
            let broken: Vec<_> = runs.iter().filter_map(|r| r.broken.clone()).collect();
            format!("BROKEN {}", broken.join("; "))
        },
        during,
        down,
        worst(&|r| r.readiness_back),
        if cell.passed() { "yes" } else { "NO" },
    )
}
