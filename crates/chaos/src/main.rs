//! `chaos --binary target/release/webserver [--short] [--scenario NAME] [--fault NAME]
//! [--runs N] [--clients 8,32,128]`: runs the scenarios and prints the tables. Exits 1
//! if any failed.

use std::path::PathBuf;
use std::process::ExitCode;

use chaos::matrix::{self, Fault, MatrixTiming};
use chaos::{Timing, scenarios, table};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Runs the chaos scenarios against the webserver binary and prints the tables")]
struct Args {
    /// The webserver binary to run.
    #[arg(long)]
    binary: PathBuf,
    /// The short version (as the test command runs it).
    #[arg(long)]
    short: bool,
    /// Only this scenario: faults (the fault matrix), replica, outage, identity, hostile,
    /// flood.
    #[arg(long)]
    scenario: Option<String>,
    /// Only these faults of the matrix (repeatable): restart-fast, restart-immediate,
    /// stop-start, terminate, cut, blackhole, latency, max-connections, refused, failover.
    #[arg(long)]
    fault: Vec<String>,
    /// Runs of each fault and load (20 in the full run, 2 in the short one); with
    /// `--scenario flood`, runs of the flood (1 by default).
    #[arg(long)]
    runs: Option<usize>,
    /// The loads, concurrent clients each.
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (timing, mut matrix_timing) = if args.short {
        (Timing::short(), MatrixTiming::short())
    } else {
        (Timing::full(), MatrixTiming::full())
    };
    if let Some(runs) = args.runs {
        matrix_timing.runs = runs;
    }
    if let Some(clients) = &args.clients {
        matrix_timing.loads.clone_from(clients);
    }
    let mut faults = Vec::new();
    for name in &args.fault {
        match Fault::parse(name) {
            Some(fault) => faults.push(fault),
            None => {
                eprintln!("error: --fault {name}: no such fault");
                return ExitCode::FAILURE;
            }
        }
    }
    if faults.is_empty() {
        faults = Fault::ALL.to_vec();
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("error: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let wanted = |name: &str| args.scenario.as_deref().is_none_or(|s| s == name);
    let binary = args.binary.as_path();
    let (rows, cells) = runtime.block_on(async {
        let mut rows = Vec::new();
        if wanted("replica") {
            rows.push(scenarios::replica_killed(binary, timing).await);
        }
        if wanted("outage") {
            rows.push(scenarios::control_plane_outage(binary, timing).await);
        }
        if wanted("identity") {
            rows.push(scenarios::identity_provider_outage(binary, timing).await);
        }
        if wanted("hostile") {
            rows.push(scenarios::hostile_requests(binary, timing).await);
        }
        if wanted("flood") {
            for _ in 0..args.runs.unwrap_or(1) {
                let row = scenarios::forged_heartbeat_flood(binary, timing).await;
                println!("{}", table(std::slice::from_ref(&row)));
                rows.push(row);
            }
        }
        if !rows.is_empty() {
            print!("{}", table(&rows));
        }
        let mut cells = Vec::new();
        if wanted("faults") {
            println!(
                "\nfault matrix, as each row completes:\n\n{}",
                matrix::HEADER
            );
            for fault in &faults {
                cells.extend(
                    matrix::run_fault(binary, *fault, &matrix_timing, |cell| {
                        print!("{}", matrix::row(cell, &matrix_timing));
                    })
                    .await,
                );
            }
        }
        (rows, cells)
    });
    if rows.iter().all(|row| row.passed) && cells.iter().all(matrix::Cell::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
