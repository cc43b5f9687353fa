//! `fleet-model`: replays traces through the sizing rules in the fleet model (see
//! `bench::model`), in well under a second a day, and prints per trace and policy what
//! users got, what the fleet cost and where its idle slots were; then, over every
//! trace, how much fewer idle slot-hours the adaptive policy paid than the fixed one.
//!
//! ```text
//! cargo run --release -p bench --bin fleet-model -- --diurnal-seeds 10
//! cargo run --release -p bench --bin fleet-model -- --trace crates/bench/traces/burst.csv
//! cargo run --release -p bench --bin fleet-model -- --diurnal-seeds 10 --placement known-lengths
//! cargo run --release -p bench --bin fleet-model -- --returning-seeds 10 --placement lifetime
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::path::PathBuf;

use bench::model::{self, ModelOptions, ModelReport};
use bench::sim::{self, Arrival, Past, SimOptions};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Replays traces through the sizing rules in an event model, per policy")]
struct Args {
    /// CSV with the header `at_secs,region,session_secs[,user]`; may be given more than
    /// once (`--history` is the history of each).
    #[arg(long)]
    trace: Vec<PathBuf>,
    /// Also the diurnal traces of seeds 1 to N (`trace-gen diurnal --seed S`).
    #[arg(long, default_value_t = 0)]
    diurnal_seeds: u64,
    /// Also days of returning users of seeds 1 to N, each with its history
    /// (`trace-gen returning --seed S`).
    #[arg(long, default_value_t = 0)]
    returning_seeds: u64,
    /// `--returning-seeds`: how much a user's sessions vary around their own median.
    #[arg(long, default_value_t = sim::trace::Habits::default().spread)]
    habit_spread: f64,
    /// `--returning-seeds`: the share of sessions that follow no habit.
    #[arg(long, default_value_t = sim::trace::Habits::default().off_habit)]
    off_habit: f64,
    /// The first seed of `--diurnal-seeds` and `--returning-seeds`.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    #[command(flatten)]
    fleet: sim::cli::FleetArgs,
    /// DESIRED_FREE_MANDELBOXES_MIN and _MAX of the adaptive policy.
    #[arg(long, default_value_t = 2)]
    adaptive_min: u32,
    #[arg(long, default_value_t = 100)]
    adaptive_max: u32,
    /// One JSON object per trace and policy per line instead of the table.
    #[arg(long)]
    json: bool,
}

/// A named trace and the history before it.
type Trace = (String, Vec<Arrival>, Vec<Past>);

fn traces(args: &Args) -> Vec<Trace> {
    let history = args.fleet.history();
    let mut traces: Vec<Trace> = args
        .trace
        .iter()
        .map(|path| {
            (
                path.display().to_string(),
                sim::cli::read_trace(path),
                history.clone(),
            )
        })
        .collect();
    let seeds = |n: u64| args.first_seed..args.first_seed + n;
    for seed in seeds(args.diurnal_seeds) {
        traces.push((
            format!("diurnal seed {seed}"),
            sim::trace::diurnal(seed, "us-east-1"),
            Vec::new(),
        ));
    }
    for seed in seeds(args.returning_seeds) {
        let habits = sim::trace::Habits {
            spread: args.habit_spread,
            off_habit: args.off_habit,
        };
        let (arrivals, history) = sim::trace::returning(seed, "us-east-1", 1, habits);
        traces.push((format!("returning seed {seed}"), arrivals, history));
    }
    assert!(!traces.is_empty(), "give --trace FILE or --diurnal-seeds N");
    traces
}

fn main() {
    let args = Args::parse();
    let options = ModelOptions {
        sim: SimOptions {
            adaptive_min: args.adaptive_min,
            adaptive_max: args.adaptive_max,
            ..args.fleet.options()
        },
        ..ModelOptions::default()
    };
    let policies = args.fleet.policy.policies();
    let mut all = Vec::new();
    for (name, arrivals, history) in traces(&args) {
        let reports: Vec<ModelReport> = policies
            .iter()
            .map(|policy| model::run_with_history(&arrivals, &history, *policy, &options))
            .collect();
        if args.json {
            for report in &reports {
                let mut line = serde_json::to_value(report).unwrap();
                line["trace"] = serde_json::Value::String(name.clone());
                println!("{line}");
            }
        } else {
            println!("{name}");
            print_rows(&reports);
        }
        all.push(reports);
    }
    if !args.json {
        print_summary(&all);
    }
}

fn print_rows(reports: &[ModelReport]) {
    let plain: Vec<_> = reports.iter().map(|r| r.report.clone()).collect();
    sim::print_table(&plain);
    for r in reports {
        println!(
            "  {}: users not served on the first try, by hour: {:?}",
            r.report.policy, r.report.misses_by_hour
        );
    }
}

/// Over every trace both policies ran on: the adaptive policy's saving and first-try
/// ratio, mean and worst.
fn print_summary(all: &[Vec<ModelReport>]) {
    let pairs: Vec<(&ModelReport, &ModelReport)> = all
        .iter()
        .filter_map(|reports| match reports.as_slice() {
            [fixed, adaptive] => Some((fixed, adaptive)),
            _ => None,
        })
        .collect();
    if pairs.len() < 2 {
        return;
    }
    let savings: Vec<f64> = pairs
        .iter()
        .map(|(f, a)| {
            100.0
                * (1.0 - a.report.idle_slot_hours / f.report.idle_slot_hours.max(f64::MIN_POSITIVE))
        })
        .collect();
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let least = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
    let first = |pick: fn(&(&ModelReport, &ModelReport)) -> f64| -> Vec<f64> {
        pairs.iter().map(pick).collect()
    };
    let fixed_first = first(|(f, _)| f.report.first_try_ratio * 100.0);
    let adaptive_first = first(|(_, a)| a.report.first_try_ratio * 100.0);
    println!(
        "over {} traces: adaptive pays {:.1}% fewer idle slot-hours than fixed on average \
         (least {:.1}%); first try: fixed {:.2}% on average (least {:.2}%), adaptive {:.2}% \
         (least {:.2}%)",
        pairs.len(),
        mean(&savings),
        least(&savings),
        mean(&fixed_first),
        least(&fixed_first),
        mean(&adaptive_first),
        least(&adaptive_first)
    );
}
