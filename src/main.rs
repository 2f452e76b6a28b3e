//! The `sori` binary: parses the command line, then hands over to the libraries.

mod admin;
mod backup;
mod bench;
mod bucket_cors;
mod cli;
mod healthcheck;
mod logging;
mod process;
mod serve;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log levels of the server roles unless `RUST_LOG` says otherwise.
const DEFAULT_LOG: &str = "info,sqlx=warn,symphonia=warn,symphonia_bundle_mp3=warn";

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Local commands print results on stdout and one-line reasons on stderr:
    // only errors are logged unless RUST_LOG asks for more.
    let quiet = matches!(
        cli.command,
        cli::Command::Process(_)
            | cli::Command::Bench(_)
            | cli::Command::Admin(_)
            | cli::Command::Backup(_)
            | cli::Command::BucketCors
            | cli::Command::Healthcheck
    );
    logging::init(
        cli.settings.log_format,
        if quiet { "error" } else { DEFAULT_LOG },
    );
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text an outer
/// message already repeats (sqlx and io errors often embed their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
