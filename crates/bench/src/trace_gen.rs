//! `trace-gen`: writes the fleet simulator's shipped traces (`crates/bench/traces/`)
//! from fixed seeds, or others from seeds of your choosing.
//!
//! ```text
//! trace-gen diurnal [--seed 1] [--region us-east-1] > day.csv
//! trace-gen burst [--seed 1] [--region us-east-1] > burst.csv
//! trace-gen returning [--seed 1] [--days 1] --history-out history.csv > days.csv
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a generator stops loudly"
)]

use bench::sim::trace;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    /// 24 hours, 0.4 arrivals a minute at 5:00 to 8 at 17:00.
    Diurnal,
    /// 2 hours at 1 a minute, with 120 users in a minute at 0:10 and 60 at 1:00.
    Burst,
    /// Days of returning users, each with a habit of their own, and their history.
    Returning,
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
    /// `returning`: how many days.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// `returning`: how much a user's sessions vary around their own median.
    #[arg(long, default_value_t = trace::Habits::default().spread)]
    habit_spread: f64,
    /// `returning`: the share of sessions that follow no habit.
    #[arg(long, default_value_t = trace::Habits::default().off_habit)]
    off_habit: f64,
    /// `returning`: where to write the users' past sessions (`user,region,session_secs`).
    #[arg(long)]
    history_out: Option<std::path::PathBuf>,
}

fn main() {
    let args = Args::parse();
    let arrivals = match args.shape {
        Shape::Diurnal => trace::diurnal(args.seed, &args.region),
        Shape::Burst => trace::burst(args.seed, &args.region),
        Shape::Returning => {
            let habits = trace::Habits {
                spread: args.habit_spread,
                off_habit: args.off_habit,
            };
            let (arrivals, history) = trace::returning(args.seed, &args.region, args.days, habits);
            let path = args
                .history_out
                .as_ref()
                .expect("returning: give --history-out FILE for the users' history");
            std::fs::write(path, trace::history_to_csv(&history)).unwrap();
            arrivals
        }
    };
    print!("{}", trace::to_csv(&arrivals));
}
