//! `assign-bench`: seeds a fleet of N instances into a scratch database, drives the real
//! server with C concurrent clients for T seconds, and prints assigns/s, latency
//! percentiles and the invariant check; then runs pgbench against the same database
//! sending the one statement the server sends (`hardware.place_mandelbox`): the ceiling
//! PostgreSQL sets for an assignment.
//!
//! `scripts/bench.sh` runs it in release mode on the project's PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{BenchServer, percentile};
use clap::Parser;
use serde_json::json;
use test_support::{Fleet, TempDir, TestDatabase};

const HASH: &str = "bench";

#[derive(Debug, Parser)]
#[command(about = "Benchmarks POST /mandelbox/assign against a seeded fleet")]
struct Args {
    /// Fleet sizes to run, e.g. `--instances 100 --instances 100000`.
    #[arg(long, default_values_t = [100, 10_000, 100_000])]
    instances: Vec<u32>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds each run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Skip the pgbench comparison.
    #[arg(long)]
    no_pgbench: bool,
    /// Follow every assignment with its capacity check (AUTOSCALE=true), as in production.
    #[arg(long)]
    autoscale: bool,
    /// PLACEMENT to run each fleet size with, e.g. `--placement packed --placement
    /// lifetime`. With `lifetime`, every instance is given an expected end within the
    /// next two hours and the region a distribution, so that every assignment places by
    /// expected end.
    #[arg(long, value_parser = ["packed", "lifetime"], default_values_t = ["packed".to_owned()])]
    placement: Vec<String>,
}

struct Run {
    instances: u32,
    placement: String,
    existing_mandelboxes: i64,
    requests: usize,
    accepted: usize,
    assigns_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// pgbench sending the server's own statement: (transactions/s, average ms).
    pgbench: Option<(f64, f64)>,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for &instances in &args.instances {
        for placement in &args.placement {
            runs.push(runtime.block_on(run(&args, instances, placement)));
        }
    }
    println!();
    println!(
        "{:>9} {:>9} {:>11} {:>9} {:>10} {:>7} {:>7} {:>8} {:>8}",
        "instances",
        "placement",
        "mandelboxes",
        "assigns",
        "assigns/s",
        "p50 ms",
        "p99 ms",
        "pgbench",
        "server %",
    );
    for run in &runs {
        let (one, one_share) = run
            .pgbench
            .map_or(("-".to_owned(), "-".to_owned()), |(tps, _)| {
                (
                    format!("{tps:.0}"),
                    format!("{:.0}%", 100.0 * run.assigns_per_sec / tps),
                )
            });
        println!(
            "{:>9} {:>9} {:>11} {:>9} {:>10.0} {:>7.2} {:>7.2} {:>8} {:>8}",
            run.instances,
            run.placement,
            run.existing_mandelboxes,
            run.accepted,
            run.assigns_per_sec,
            run.p50.as_secs_f64() * 1000.0,
            run.p99.as_secs_f64() * 1000.0,
            one,
            one_share,
        );
        assert_eq!(
            run.requests, run.accepted,
            "every request should have been assigned"
        );
    }
    if let (Some(small), Some(large)) = (runs.first(), runs.last()) {
        println!(
            "p50 at {} instances is {:.2}x p50 at {}",
            large.instances,
            large.p50.as_secs_f64() / small.p50.as_secs_f64(),
            small.instances
        );
    }
}

/// Seeds `instances` instances, each already holding some mandelboxes; how many
/// mandelboxes there are.
fn seed(db: &TestDatabase, instances: u32) -> i64 {
    // Enough slots for the server run and the pgbench run together.
    let capacity = (300_000 / i64::from(instances)).max(10);
    let prefill = (capacity / 2).min(5);
    println!("seeding {instances} instances of capacity {capacity}, {prefill} mandelboxes each");
    let seeding = Instant::now();
    db.seed_fleet(&Fleet {
        region: "us-east-1",
        commit_hash: HASH,
        prefix: "bench",
        instances,
        capacity,
        mandelboxes_each: prefill,
    });
    // Measure the steady state, not autovacuum catching up with the bulk load.
    db.execute("VACUUM ANALYZE");
    let existing = db.number("SELECT count(*) AS n FROM hardware.mandelbox_info");
    println!("seeded in {:.1} s", seeding.elapsed().as_secs_f64());

    existing
}

/// `clients` clients assigning for `length`: the latencies, the assignments, the time.
async fn drive(
    url: String,
    token: String,
    clients: usize,
    length: Duration,
) -> (Vec<Duration>, usize, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let deadline = Instant::now() + length;
    let token = Arc::new(token);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0;
                let mut sequence = 0u64;
                while Instant::now() < deadline {
                    sequence += 1;
                    let body = json!({
                        "region": "us-east-1",
                        "username": format!("user-{worker}-{sequence}"),
                        "dpi": 96,
                        "client_commit_hash": HASH,
                    });
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(token.as_str())
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let _ = response.bytes().await;
                    latencies.push(sent.elapsed());
                    if status == reqwest::StatusCode::ACCEPTED {
                        accepted += 1;
                    } else {
                        eprintln!("unexpected answer {status}");
                    }
                }
                (latencies, accepted)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut accepted = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (worker_latencies, worker_accepted) = worker.unwrap();
        latencies.extend(worker_latencies);
        accepted += worker_accepted;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, accepted, elapsed)
}

async fn run(args: &Args, instances: u32, placement: &str) -> Run {
    let db = TestDatabase::new();
    let existing = seed(&db, instances);
    let lifetime = placement == "lifetime";
    if lifetime {
        // Instances expected to end within two hours; new users last the region's 30 min.
        db.execute(
            "UPDATE hardware.instance_info SET expected_end_utc_unix_ms =
                 (extract(epoch FROM now()) * 1000)::bigint + (random() * 7200000)::bigint",
        );
        db.execute(
            "INSERT INTO hardware.region_session_lengths
                 (region_name, points, expected_secs, computed_utc_unix_ms)
             VALUES ('us-east-1', array_fill(1800.0::float8, ARRAY[20]), 1800, 0)",
        );
        db.execute("VACUUM ANALYZE");
    }
    let server = BenchServer::start_placing(&db, args.autoscale, placement).await;
    let url = format!("{}/mandelbox/assign", server.base_url);
    let token = server.admin_token();

    let (latencies, accepted, elapsed) =
        drive(url, token, args.clients, Duration::from_secs(args.seconds)).await;
    server.stop().await;

    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    println!(
        "invariants after {} assigns: {} ({violations:?})",
        accepted,
        if violations.is_clean() {
            "hold"
        } else {
            "BROKEN"
        }
    );
    assert!(violations.is_clean());

    let pgbench = (!args.no_pgbench).then(|| {
        let script = ONE_STATEMENT
            .1
            .replace(":by_end", if lifetime { "true" } else { "false" });
        pgbench(&db, ONE_STATEMENT.0, &script, args.clients, args.seconds)
    });
    Run {
        instances,
        placement: placement.to_owned(),
        existing_mandelboxes: existing,
        requests: latencies.len(),
        accepted,
        assigns_per_sec: accepted as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        pgbench,
    }
}

/// The same work as the server sends it: one statement (`models::instance::place`);
/// `:by_end` is the placement's.
const ONE_STATEMENT: (&str, &str) = (
    "one statement",
    "\\set n random(1, 1000000000)
SELECT * FROM hardware.place_mandelbox('pgbench-' || :client_id || '-' || :n, ARRAY['us-east-1', 'us-east-2'], ARRAY['bench', 'bench'], true, 1, gen_random_uuid()::text, (extract(epoch FROM now()) * 1000)::bigint, :by_end);
",
);

/// Runs `script` (`name`) with pgbench and prepared statements, as the server uses
/// them: (transactions/s, average latency in ms).
fn pgbench(
    db: &TestDatabase,
    name: &str,
    script: &str,
    clients: usize,
    seconds: u64,
) -> (f64, f64) {
    let dir = TempDir::new();
    let path = dir.path().join("assign.sql");
    std::fs::write(&path, script).unwrap();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&path)
        .arg(db.url())
        .output()
        .expect("run pgbench");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| -> f64 {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let tps = number_after("tps = ");
    let latency = number_after("latency average = ");
    println!("pgbench, {name}: {tps:.0} tps, {latency:.2} ms average");
    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    assert!(violations.is_clean(), "{violations:?}");
    (tps, latency)
}
