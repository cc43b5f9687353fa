//! `fleet-sim`: replays a trace of users against the real server under each scaling
//! policy and prints what users got and what the fleet cost (see `bench::sim`).
//! `scripts/simulate.sh` runs it in release mode on the project's PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::path::PathBuf;

use bench::sim::{self, SimOptions};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Replays a trace of users against the real server, per scaling policy")]
struct Args {
    /// CSV with the header `at_secs,region,session_secs[,user]`.
    #[arg(long)]
    trace: PathBuf,
    /// Trace seconds per wall second.
    #[arg(long, default_value_t = 240.0)]
    speed: f64,
    #[command(flatten)]
    fleet: sim::cli::FleetArgs,
    /// Replays each policy this many times: the server's figures move from run to run,
    /// so a claim rests on several. Prints every run, then each policy's spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// One JSON object per policy per run per line instead of the table.
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
    let arrivals = sim::cli::read_trace(&args.trace);
    let history = args.fleet.history();
    assert!(
        !matches!(
            args.fleet.placement,
            sim::cli::PlacementArg::KnownLengths | sim::cli::PlacementArg::KnownHabits
        ),
        "--placement known-lengths and known-habits are the model's bounds (fleet-model); the server cannot know"
    );
    let options = SimOptions {
        speed: args.speed,
        ..args.fleet.options()
    };
    let policies = args.fleet.policy.policies();
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
    for run in 1..=args.runs {
        let mut round = Vec::new();
        for &policy in &policies {
            let report = bench::block_on(sim::simulate(&arrivals, &history, policy, &options));
            if args.json {
                let mut line = serde_json::to_value(&report).unwrap();
                line["run"] = run.into();
                println!("{line}");
            } else {
                eprintln!(
                    "{}: users not served on the first try, by hour: {:?}",
                    report.policy, report.misses_by_hour
                );
            }
            round.push(report);
        }
        if !args.json {
            if args.runs > 1 {
                println!("run {run} of {}", args.runs);
            }
            sim::print_table(&round);
        }
        reports.extend(round);
    }
    if !args.json && args.runs > 1 {
        sim::print_spread(&reports);
    }
    for report in reports.iter().filter(|r| r.errors > 0) {
        eprintln!(
            "{}: {} users got an answer the protocol does not allow for, or could not reach \
             their host (counted as not served)",
            report.policy, report.errors
        );
    }
}
