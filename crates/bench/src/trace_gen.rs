//! `trace-gen`: writes the fleet simulator's shipped traces (`crates/bench/traces/`)
//! from fixed seeds, or others from seeds of your choosing.
//!
//! ```text
//! trace-gen diurnal [--seed 1] [--region us-east-1] > day.csv
//! trace-gen burst [--seed 1] [--region us-east-1] > burst.csv
//! ```
#![allow(clippy::unwrap_used, reason = "a generator stops loudly")]

use bench::sim::trace;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    /// 24 hours, 0.4 arrivals a minute at 5:00 to 8 at 17:00.
    Diurnal,
    /// 2 hours at 1 a minute, with 120 users in a minute at 0:10 and 60 at 1:00.
    Burst,
}

#[derive(Debug, Parser)]
#[command(about = "Writes a trace of users for fleet-sim to standard output")]
struct Args {
    #[arg(value_enum)]
    shape: Shape,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

fn main() {
    let args = Args::parse();
    let arrivals = match args.shape {
        Shape::Diurnal => trace::diurnal(args.seed, &args.region),
        Shape::Burst => trace::burst(args.seed, &args.region),
    };
    print!("{}", trace::to_csv(&arrivals));
}
