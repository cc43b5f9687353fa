//! `fleet-sim`: replays a trace of users against the real server under each scaling
//! policy and prints what users got and what the fleet cost (see `bench::sim`).
//! `scripts/simulate.sh` runs it in release mode on the project's PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::path::PathBuf;
use std::time::Duration;

use bench::sim::{self, Policy, SimOptions};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policies {
    Fixed,
    Adaptive,
    Both,
}

#[derive(Debug, Parser)]
#[command(about = "Replays a trace of users against the real server, per scaling policy")]
struct Args {
    /// CSV with the header at_secs,region,session_secs.
    #[arg(long)]
    trace: PathBuf,
    /// Trace seconds per wall second.
    #[arg(long, default_value_t = 240.0)]
    speed: f64,
    #[arg(long, value_enum, default_value_t = Policies::Both)]
    policy: Policies,
    /// Seconds from launch to a host's registration (trace time).
    #[arg(long, default_value_t = 90)]
    boot_secs: u64,
    /// Slots per instance.
    #[arg(long, default_value_t = 8)]
    capacity: i64,
    /// How long a refused user waits on the second try (trace seconds).
    #[arg(long, default_value_t = 120)]
    client_wait_secs: u64,
    /// DESIRED_FREE_MANDELBOXES of the fixed policy.
    #[arg(long, default_value_t = 10)]
    desired_free: u32,
    /// One JSON object per policy per line instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    // The server's log, for a look inside: RUST_LOG=info scripts/simulate.sh …
    if std::env::var_os("RUST_LOG").is_some() {
        webserver::telemetry::init(webserver::settings::LogFormat::Text);
    }
    assert!(
        args.speed > 0.0 && args.speed.is_finite(),
        "--speed must be positive"
    );
    let text = std::fs::read_to_string(&args.trace)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", args.trace.display()));
    let arrivals =
        sim::trace::parse(&text).unwrap_or_else(|err| panic!("{}: {err}", args.trace.display()));
    let options = SimOptions {
        speed: args.speed,
        boot: Duration::from_secs(args.boot_secs),
        capacity: args.capacity,
        client_wait: Duration::from_secs(args.client_wait_secs),
        desired_free: args.desired_free,
        ..SimOptions::default()
    };
    let policies = match args.policy {
        Policies::Fixed => vec![Policy::Fixed],
        Policies::Adaptive => vec![Policy::Adaptive],
        Policies::Both => vec![Policy::Fixed, Policy::Adaptive],
    };
    if !args.json {
        let length = arrivals.last().map_or(0.0, |a| a.at_secs);
        eprintln!(
            "{}: {} users over {:.1} h, at {}x: about {:.0} s per policy",
            args.trace.display(),
            arrivals.len(),
            length / 3600.0,
            args.speed,
            length / args.speed
        );
    }
    let mut reports = Vec::new();
    for policy in policies {
        let report = bench::block_on(sim::simulate(&arrivals, policy, &options));
        if args.json {
            println!("{}", serde_json::to_string(&report).unwrap());
        } else {
            eprintln!(
                "{}: users not served on the first try, by hour: {:?}",
                report.policy, report.misses_by_hour
            );
        }
        reports.push(report);
    }
    if !args.json {
        sim::print_table(&reports);
    }
    for report in reports.iter().filter(|r| r.errors > 0) {
        eprintln!(
            "{}: {} users got an answer the protocol does not allow for, or could not reach \
             their host (counted as not served)",
            report.policy, report.errors
        );
    }
}
