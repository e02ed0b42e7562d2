//! The command-line interface: one file per subcommand. Data goes to stdout, logs to stderr.
//!
//! Exit codes: 0 when all went well; 1 when the run finished but something was wrong (an input file
//! was an `error` result, or `eval` fell below its floor); 2 for a usage error or a failure that
//! stopped the run (bad arguments, unreadable rule or expectation file).

pub mod bench;
pub mod bench_daemon;
pub mod bench_soak;
pub mod check_config;
pub mod classify;
pub mod eval;
pub mod run;

// The bounce database subcommands.
pub mod db;
pub mod export;
pub mod import;
pub mod query;
pub mod reclassify;
pub mod stats;
pub mod suppress;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use anyhow::Context;

use crate::classify::Classifier;
use crate::error::ReadError;

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
    /// Measure parsing and classification speed on a directory of messages.
    Bench(bench::Args),
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
    /// Check (and repair) the bounce database: recipients against their bounces.
    Db(db::Args),
    /// Run the daemon: watch Maildir folders and IMAP mailboxes, record every message.
    Run(run::Args),
    /// Validate a configuration file and its environment overrides.
    CheckConfig(check_config::Args),
    /// Measure the daemon: backlog throughput and idle latency on a Maildir.
    #[command(hide = true)]
    BenchDaemon(bench_daemon::Args),
    /// Soak the real daemon: a million messages over time; throughput, latency, RSS, exactly once.
    #[command(hide = true)]
    BenchSoak(bench_soak::Args),
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs one subcommand; the exit code is the subcommand's.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        // The bounce database.
        Command::Import(args) => import::run(args),
        Command::Query(args) => query::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Export(args) => export::run(args),
        Command::Suppress(args) => suppress::run_suppress(args),
        Command::Unsuppress(args) => suppress::run_unsuppress(args),
        Command::Reclassify(args) => reclassify::run(args),
        Command::Db(args) => db::run(args),
        // The daemon.
        Command::Run(args) => run::run(args, cli.verbose),
        Command::CheckConfig(args) => check_config::run(args),
        Command::BenchDaemon(args) => bench_daemon::run(args),
        Command::BenchSoak(args) => bench_soak::run(args),
    }
}

/// The classifier of `--rules FILE` (built-in rules with the file merged in), else the built-in one.
pub fn load_classifier(rules: Option<&Path>) -> anyhow::Result<Classifier> {
    match rules {
        Some(path) => Classifier::with_rules_file(path)
            .with_context(|| format!("loading rules from {}", path.display())),
        None => Ok(Classifier::new()),
    }
}

/// Why one input could not be turned into bytes.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The operating system refused (permission, vanished file, not a file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Over the size limit, found from metadata (or while reading a stream) before reading it whole.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Reads a file whole, unless its metadata says it is over `max_size` (then it is not read at all).
pub fn read_capped(path: &Path, max_size: usize) -> Result<Vec<u8>, InputError> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file").into());
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > max_size {
        return Err(ReadError::TooLarge {
            size: len,
            limit: max_size,
        }
        .into());
    }
    read_stream_capped(fs::File::open(path)?, max_size)
}

/// Reads a stream to its end, refusing it once it passes `max_size` (a file may grow after `stat`).
pub fn read_stream_capped(reader: impl Read, max_size: usize) -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    let cap = u64::try_from(max_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(cap).read_to_end(&mut buf)?;
    if buf.len() > max_size {
        return Err(ReadError::TooLarge {
            size: buf.len(),
            limit: max_size,
        }
        .into());
    }
    Ok(buf)
}

/// One entry met while walking the inputs: a file to read, or a path that could not be listed.
#[derive(Debug)]
pub enum Entry {
    /// A regular file (or a symbolic link to one).
    File(PathBuf),
    /// A directory that could not be listed, with the reason.
    Unlisted(PathBuf, std::io::Error),
}

/// Calls `visit` for every regular file under `root` (itself, when it is a file), sorted by name within
/// each directory, one directory listing in memory at a time. Symbolic links to directories are not
/// followed (no loops); links to files are.
pub fn walk(root: &Path, visit: &mut dyn FnMut(Entry)) {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => walk_dir(root, visit),
        _ => visit(Entry::File(root.to_path_buf())),
    }
}

fn walk_dir(dir: &Path, visit: &mut dyn FnMut(Entry)) {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => return visit(Entry::Unlisted(dir.to_path_buf(), e)),
    };
    let mut entries: Vec<(std::ffi::OsString, PathBuf, bool)> = Vec::new();
    for item in listing {
        match item {
            Ok(item) => {
                let is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let is_file = match item.file_type() {
                    Ok(t) if t.is_symlink() => fs::metadata(item.path())
                        .map(|m| m.is_file())
                        .unwrap_or(true),
                    Ok(t) => t.is_file(),
                    Err(_) => true,
                };
                if is_dir || is_file {
                    entries.push((item.file_name(), item.path(), is_dir));
                }
            }
            Err(e) => visit(Entry::Unlisted(dir.to_path_buf(), e)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, path, is_dir) in entries {
        if is_dir {
            walk_dir(&path, visit);
        } else {
            visit(Entry::File(path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_recursive_and_sorted() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("b"))?;
        fs::write(dir.path().join("c.eml"), "x")?;
        fs::write(dir.path().join("a.eml"), "x")?;
        fs::write(dir.path().join("b").join("z.eml"), "x")?;
        fs::write(dir.path().join("b").join("m.eml"), "x")?;
        let mut seen = Vec::new();
        walk(dir.path(), &mut |e| {
            if let Entry::File(p) = e
                && let Ok(rel) = p.strip_prefix(dir.path())
            {
                seen.push(rel.to_string_lossy().into_owned());
            }
        });
        assert_eq!(seen, ["a.eml", "b/m.eml", "b/z.eml", "c.eml"]);
        Ok(())
    }

    #[test]
    fn size_cap_is_checked_before_reading() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("big.eml");
        fs::write(&p, vec![b'a'; 100])?;
        assert!(matches!(
            read_capped(&p, 99),
            Err(InputError::Read(ReadError::TooLarge {
                size: 100,
                limit: 99
            }))
        ));
        assert_eq!(read_capped(&p, 100).map(|b| b.len()).ok(), Some(100));
        assert!(matches!(
            read_stream_capped(&[0u8; 10][..], 9),
            Err(InputError::Read(_))
        ));
        assert!(matches!(
            read_capped(&dir.path().join("gone.eml"), 10),
            Err(InputError::Io(_))
        ));
        Ok(())
    }
}
