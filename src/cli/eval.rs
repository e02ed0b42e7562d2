//! `bounced eval`.

use std::process::ExitCode;

/// Arguments of `bounced eval`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `bounced eval`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    Ok(ExitCode::SUCCESS)
}
