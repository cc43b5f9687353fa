use std::process::ExitCode;

use clap::Parser;
use webserver::Vars;
use webserver::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("error: .env: {err}");
        return ExitCode::FAILURE;
    }
    match cli.run(&Vars::from_env()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", webserver::settings::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
