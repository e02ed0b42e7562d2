//! The command-line interface, the binary's own modules: one file per subcommand. Data goes to stdout,
//! logs to stderr.
//!
//! Exit codes: 0 when all went well; 1 when the run finished but something was wrong (an input file
//! was an `error` result, or `eval` fell below its floor); 2 for a usage error or a failure that
//! stopped the run (bad arguments, unreadable rule or expectation file).

mod check_config;
mod classify;
mod eval;
mod logging;
mod run;
mod serve;

// The bounce database subcommands.
pub mod db;
mod export;
mod import;
mod outbox;
mod query;
mod reclassify;
mod stats;
mod suppress;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use anyhow::Context;

use bounced::Classifier;
use bounced::config::Config;

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
    /// Check (and repair) the bounce database against its bounces, or copy it to another engine.
    Db(db::Args),
    /// Show, retry or drop the events waiting for (or given up by) the notify targets.
    Outbox(outbox::Args),
    /// Run the daemon: watch Maildir folders and IMAP mailboxes, record every message.
    Run(run::Args),
    /// Validate a configuration file and its environment overrides.
    CheckConfig(check_config::Args),
    /// Serve the database over HTTP: JSON API, Prometheus metrics, dashboard.
    Serve(serve::Args),
}

/// Starts the log subscriber of a command other than `run`: warnings, or more with `-v`/`-vv`.
pub fn init_tracing(verbose: u8) {
    logging::init(
        &logging::level_of(verbose, "warn"),
        bounced::config::LogFormat::Human,
    );
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
        Command::Db(args) => db::run(args),
        Command::Outbox(args) => outbox::run(args),
        // The daemon.
        Command::Run(args) => run::run(args, cli.verbose),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// An error for the user: each cause once (a cause whose text is already said, as when a message
/// quotes its source, is not repeated), control characters escaped (line breaks of a parser's
/// message kept).
pub fn explain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    bounced::text::printable_lines(&line).into_owned()
}

/// The configuration of every command, loaded one way: the file when given (else the defaults),
/// then the `BOUNCED_...` environment overrides, validated; deprecation warnings go to stderr.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let shown = path.unwrap_or(Path::new("(defaults)"));
    let mut cfg = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok(), shown)?;
    cfg.resolve_paths()
        .context("cannot resolve the configured paths against the working directory")?;
    for w in &cfg.warnings {
        eprintln!("bounced: warning: {}", bounced::text::printable(w));
    }
    Ok(cfg)
}

/// The classifier of `--rules FILE` (built-in rules with the file merged in), else the built-in one.
pub fn load_classifier(rules: Option<&Path>) -> anyhow::Result<Classifier> {
    match rules {
        // The error names the file.
        Some(path) => Ok(Classifier::with_rules_file(path)?),
        None => Ok(Classifier::new()),
    }
}
