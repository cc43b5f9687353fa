//! `get-bench`: how fast one server process answers GETs. Seeds N instances into a
//! scratch database, then drives `GET /healthz` (the framework's own speed), `GET
//! /regions` (enabled regions, kept in memory) and `GET /fleet` (the operators' whole
//! document) with C concurrent clients for T seconds each, and prints requests/s and
//! latency percentiles for each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::time::{Duration, Instant};

use bench::{BenchServer, percentile};
use clap::Parser;
use test_support::{Fleet, TestDatabase};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks GET /healthz, GET /regions and GET /fleet")]
struct Args {
    /// Instances seeded (what GET /fleet lists).
    #[arg(long, default_value_t = 10_000)]
    instances: u32,
    /// Concurrent clients for /healthz and /regions.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Concurrent clients for /fleet (operators' dashboards, not users).
    #[arg(long, default_value_t = 2)]
    fleet_clients: usize,
    /// Seconds each route is driven.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    bench::block_on(run(&args));
}

async fn run(args: &Args) {
    let db = TestDatabase::new();
    // us-east-1 comes with the seeded fleet.
    for region in ["us-east-2", "us-west-1", "us-west-2"] {
        db.execute(&format!(
            "INSERT INTO hardware.region_to_ami
                 (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
             VALUES ('{region}', 'bench', 'ami-{region}', true, true)"
        ));
    }
    db.seed_fleet(&Fleet {
        region: "us-east-1",
        commit_hash: "bench",
        prefix: "get",
        instances: args.instances,
        capacity: 8,
        mandelboxes_each: 3,
    });
    db.execute("VACUUM ANALYZE");
    let server = BenchServer::start(&db, false).await;
    let token = server.admin_token();
    let length = Duration::from_secs(args.seconds);
    println!(
        "{} instances, {} s per route; /healthz and /regions with {} clients, /fleet with {}",
        args.instances, args.seconds, args.clients, args.fleet_clients
    );
    for (path, clients) in [
        ("/healthz", args.clients),
        ("/regions", args.clients),
        ("/fleet", args.fleet_clients),
    ] {
        let url = format!("{}{path}", server.base_url);
        let started = Instant::now();
        let (mut latencies, bytes) = drive(&url, &token, clients, length).await;
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "GET {path:<9} {:>8.0} requests/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} bytes each)",
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            bytes
        );
    }
    server.stop().await;
}

/// `clients` clients GETting `url` for `length`: the latencies, and one answer's size.
async fn drive(url: &str, token: &str, clients: usize, length: Duration) -> (Vec<Duration>, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let deadline = Instant::now() + length;
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut size = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                    let status = response.status();
                    size = response.bytes().await.unwrap().len();
                    assert_eq!(status, reqwest::StatusCode::OK, "{url}");
                    latencies.push(sent.elapsed());
                }
                (latencies, size)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut size = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (mine, bytes) = worker.unwrap();
        latencies.extend(mine);
        size = bytes;
    }
    (latencies, size)
}
