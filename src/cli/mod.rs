//! The command-line interface: one file per subcommand. Data goes to stdout, logs to stderr.

pub mod classify;
pub mod eval;

// The bounce database subcommands.
pub mod db;
pub mod export;
pub mod import;
pub mod query;
pub mod reclassify;
pub mod stats;
pub mod suppress;

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
    // The bounce database.
    /// Classify files, directories, Maildirs or mbox files and record the results.
    Import(import::Args),
    /// Look up a recipient (state, history, why) or list stored bounces.
    Query(query::Args),
    /// Totals, or bounce counts by reason, domain, type or day.
    Stats(stats::Args),
    /// Write the suppression list (txt, csv, jsonl, listmonk, postfix, ses, mailgun).
    Export(export::Args),
    /// Suppress an address by hand.
    Suppress(suppress::SuppressArgs),
    /// Take an address off the suppression list by hand.
    Unsuppress(suppress::UnsuppressArgs),
    /// Re-run the current rules over stored messages and update bounces and states.
    Reclassify(reclassify::Args),
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
        // The bounce database.
        Command::Import(args) => import::run(args),
        Command::Query(args) => query::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Export(args) => export::run(args),
        Command::Suppress(args) => suppress::run_suppress(args),
        Command::Unsuppress(args) => suppress::run_unsuppress(args),
        Command::Reclassify(args) => reclassify::run(args),
    }
}
