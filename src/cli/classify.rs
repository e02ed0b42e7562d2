//! `bounced classify`.

use std::process::ExitCode;

/// Arguments of `bounced classify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `bounced classify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    Ok(ExitCode::SUCCESS)
}
