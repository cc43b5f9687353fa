//! `heartbeat-bench`: how many host heartbeats one server process sustains. Seeds N
//! registered instances (each with its own host credential) into a scratch database,
//! drives the real server with C concurrent hosts for T seconds, and prints
//! heartbeats/s and latency percentiles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{BenchServer, percentile};
use clap::Parser;
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::{Fleet, TestDatabase};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks POST /host_service/heartbeat")]
struct Args {
    /// Registered instances (each client heartbeats for its share of them).
    #[arg(long, default_value_t = 10_000)]
    instances: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds the run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    bench::block_on(run(&args));
}

async fn run(args: &Args) {
    let db = TestDatabase::new();
    let tokens = registered_fleet(&db, args.instances);
    let server = BenchServer::start(&db, false).await;
    let url = format!("{}/host_service/heartbeat", server.base_url);
    let started = Instant::now();
    let mut latencies = beat(url, tokens, args.clients, Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed();
    let metrics = reqwest::get(format!("{}/metrics", server.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.stop().await;
    print_batch_sizes(&metrics);
    latencies.sort();
    let heard = db.number(
        "SELECT count(*) AS n FROM hardware.instance_info WHERE last_updated_utc_unix_ms > 1700000000000",
    );
    println!(
        "{} heartbeats in {:.1} s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} instances heard from)",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        heard
    );
}

/// The sizes of the batches heartbeats were written in, from the server's
/// `webserver_heartbeat_batch_size` histogram.
fn print_batch_sizes(metrics: &str) {
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (count, sum) = (
        value("webserver_heartbeat_batch_size_count"),
        value("webserver_heartbeat_batch_size_sum"),
    );
    let buckets: Vec<String> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("webserver_heartbeat_batch_size_bucket{le=\""))
        .filter_map(|rest| {
            let (le, n) = rest.split_once("\"} ")?;
            Some(format!("≤{le}: {n}"))
        })
        .collect();
    println!(
        "{count:.0} batches, {:.1} heartbeats each on average; cumulative: {}",
        sum / count.max(1.0),
        buckets.join(", ")
    );
}

/// Seeds `instances` registered instances; their hosts' credentials.
fn registered_fleet(db: &TestDatabase, instances: u32) -> Vec<String> {
    db.seed_fleet(&Fleet {
        region: "us-east-1",
        commit_hash: "bench",
        prefix: "hb",
        instances,
        capacity: 4,
        mandelboxes_each: 0,
    });
    // Give every instance a host credential, as registration would.
    let credentials: Vec<(String, String)> = (1..=instances)
        .map(|n| {
            let (token, digest) = auth::host::new_host_token().unwrap();
            (
                token.expose_secret().to_owned(),
                format!("('hb-{n}', '{digest}')"),
            )
        })
        .collect();
    let values: Vec<&str> = credentials.iter().map(|(_, row)| row.as_str()).collect();
    db.execute(&format!(
        "UPDATE hardware.instance_info SET host_token_sha256 = credential.digest
         FROM (VALUES {}) AS credential (name, digest)
         WHERE instance_name = credential.name",
        values.join(", ")
    ));
    let tokens: Vec<String> = credentials.into_iter().map(|(token, _)| token).collect();
    db.execute("VACUUM ANALYZE");
    println!("seeded {instances} registered instances");
    tokens
}

/// `clients` hosts' worth of heartbeats for `length`, round the tokens: the latencies.
async fn beat(url: String, tokens: Vec<String>, clients: usize, length: Duration) -> Vec<Duration> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let tokens = Arc::new(tokens);
    let deadline = Instant::now() + length;
    // The same body every time, serialised once: the client's work is not what is measured.
    let body = bytes_of(&json!({
        "memory_remaining_kb": 1_000_000,
        "nanocpus_remaining": 2_000_000,
        "gpu_vram_remaining_kb": 3_000_000,
        "dying": false,
    }));
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            let body = body.clone();
            let (client, url, tokens) = (client.clone(), url.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut next = worker;
                while Instant::now() < deadline {
                    let token = &tokens[next % tokens.len()];
                    next += clients;
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let _ = response.bytes().await;
                    assert_eq!(status, reqwest::StatusCode::OK);
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        latencies.extend(worker.unwrap());
    }
    latencies
}

fn bytes_of(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}
