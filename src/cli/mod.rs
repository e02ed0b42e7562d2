//! The command-line interface: one file per subcommand. Data goes to stdout, logs to stderr.

pub mod classify;
pub mod eval;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bounced: read bounce messages, classify them, keep a suppression list.
#[derive(Debug, Parser)]
#[command(name = "bounced", version, about)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify message files and print one result per recipient.
    Classify(classify::Args),
    /// Measure the classifier on a corpus with expected results.
    Eval(eval::Args),
}

/// Starts the tracing subscriber on stderr.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one subcommand; the exit code is the subcommand's.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
