//! The `bounced` command: parses the command line, starts logging and hands over to [`bounced::cli`].
//!
//! Exit codes: 0 success; 1 the run finished but an input was an error or a floor was missed; 2 usage
//! error or a failure that stopped the run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bounced::cli::Cli::parse();
    // `run` starts its own subscriber, in the format its configuration asks for.
    if !matches!(cli.command, bounced::cli::Command::Run(_)) {
        bounced::cli::init_tracing(cli.verbose);
    }
    match bounced::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bounced: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
