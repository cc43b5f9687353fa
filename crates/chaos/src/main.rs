//! `chaos --binary target/release/webserver [--short] [--scenario NAME]`: runs the
//! scenarios and prints the table. Exits 1 if any failed.

use std::path::PathBuf;
use std::process::ExitCode;

use chaos::{Timing, scenarios, table};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Runs the chaos scenarios against the webserver binary and prints the table")]
struct Args {
    /// The webserver binary to run.
    #[arg(long)]
    binary: PathBuf,
    /// The short version (as the test command runs it).
    #[arg(long)]
    short: bool,
    /// Only this scenario: restart, replica, outage, identity, hostile.
    #[arg(long)]
    scenario: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let timing = if args.short {
        Timing::short()
    } else {
        Timing::full()
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("error: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let wanted = |name: &str| args.scenario.as_deref().is_none_or(|s| s == name);
    let binary = args.binary.as_path();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        if wanted("restart") {
            rows.push(scenarios::database_restart(binary, timing).await);
        }
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
        rows
    });
    print!("{}", table(&rows));
    if rows.iter().all(|row| row.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
