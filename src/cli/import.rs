//! `bounced import PATH...`: classify message files, Maildirs, mbox files and standard input and record
//! the results, through the same pipeline as `bounced run` ([`bounced::pipeline::import`]).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::db::DbArgs;
use bounced::pipeline::{self, Metrics, Settings};

/// Import message files, directories, Maildirs (new/ and cur/), mbox files or `-` (standard input)
/// into the database.
///
/// Re-importing the same messages adds nothing: each message is keyed by the SHA-256 of its bytes.
/// The database's own files are skipped wherever they are met. Prints a summary on stdout. Exit
/// code 0 when every input was read, 1 when some could not be read (each is named on stderr with
/// the reason), 2 on an error that stopped the import (nothing of the failing batch is written).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, directories, Maildirs, mbox files, or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Classifier threads [default: `[daemon] workers`, 0 = one per CPU core].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Messages per transaction [default: `[daemon] batch_size`, 500].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// A rule file (TOML) merged over the built-in classification rules [default: `[daemon] rules`].
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also import a Maildir's Maildir++ sub-folders (`.Sent/`, `.Archive/`, ...); without it they
    /// are named in a warning and skipped.
    #[arg(long)]
    pub recursive_maildir: bool,
}

/// Bounce rows recorded, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByType {
    /// Hard bounces.
    pub hard: u64,
    /// Soft bounces.
    pub soft: u64,
    /// Complaints.
    pub complaint: u64,
    /// Delivered and vacation notices.
    pub none: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Messages read.
    pub messages: u64,
    /// Recorded for the first time.
    pub new: u64,
    /// Already in the database.
    pub duplicates: u64,
    /// New messages that could not be parsed (recorded with their error).
    pub errors: u64,
    /// New messages that are not bounces.
    pub not_bounces: u64,
    /// Inputs that could not be read at all (not recorded).
    pub unreadable: u64,
    /// Bounces of the new messages, by type.
    pub bounces: ByType,
    /// Recipients suppressed by this import.
    pub suppressed: u64,
    /// Seconds spent.
    pub elapsed_secs: f64,
}

impl Summary {
    fn of(s: &pipeline::Summary, elapsed: Duration) -> Summary {
        Summary {
            messages: s.recorded + s.duplicates,
            new: s.recorded,
            duplicates: s.duplicates,
            errors: s.errors,
            not_bounces: s.not_bounces,
            unreadable: s.unreadable,
            bounces: ByType {
                hard: s.bounces[0],
                soft: s.bounces[1],
                complaint: s.bounces[2],
                none: s.bounces[3],
            },
            suppressed: s.suppressed,
            elapsed_secs: elapsed.as_secs_f64(),
        }
    }
}

/// Runs `bounced import`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = args.db.config()?;
    let rules = args.rules.clone().or_else(|| cfg.daemon.rules.clone());
    let classifier = super::load_classifier(rules.as_deref())?;
    let mut settings = Settings::from_config(&cfg.daemon);
    if let Some(j) = args.jobs {
        settings.workers = pipeline::jobs(j);
    }
    if let Some(b) = args.batch_size {
        settings.batch_size = b.max(1);
    }
    // A one-shot command does not wait out a lock or a full disk: it stops with the error (after the
    // busy timeout), and a rerun picks up where it stopped, as recording is idempotent.
    settings.retry_for = Some(Duration::ZERO);
    crate::ignore_sigxfsz();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(settings.workers + 4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let path = args.db.db_path(&cfg);
    let start = Instant::now();
    let metrics = Metrics::default();
    let result = rt.block_on(async {
        let store = bounced::store::Store::open(&path, cfg.store_options(true)).await?;
        let bar = progress_bar(&metrics);
        let r = pipeline::import(
            settings,
            store.clone(),
            Arc::new(classifier),
            bounced::source::files::Inputs {
                paths: args.paths.clone(),
                recursive_maildir: args.recursive_maildir,
            },
            std::future::pending(),
            metrics.clone(),
        )
        .await;
        if let Some(bar) = bar {
            bar.abort();
        }
        store.close().await;
        anyhow::Ok(r?)
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let summary = Summary::of(&result?, start.elapsed());
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &summary)?;
    }
    Ok(if summary.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    let rate = if s.elapsed_secs > 0.0 {
        s.messages as f64 / s.elapsed_secs
    } else {
        0.0
    };
    writeln!(out, "messages     {}", s.messages)?;
    writeln!(out, "new          {}", s.new)?;
    writeln!(out, "duplicates   {}", s.duplicates)?;
    writeln!(out, "errors       {}", s.errors)?;
    writeln!(out, "not bounces  {}", s.not_bounces)?;
    writeln!(out, "unreadable   {}", s.unreadable)?;
    writeln!(
        out,
        "bounces      hard {}, soft {}, complaint {}, none {}",
        s.bounces.hard, s.bounces.soft, s.bounces.complaint, s.bounces.none
    )?;
    writeln!(out, "suppressed   {}", s.suppressed)?;
    writeln!(
        out,
        "elapsed      {:.2} s ({rate:.0} msg/s)",
        s.elapsed_secs
    )
}

/// A spinner on stderr fed from the pipeline's metrics (only when stderr is a terminal).
fn progress_bar(metrics: &Metrics) -> Option<tokio::task::JoinHandle<()>> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {pos} messages ({per_sec}) {msg} [{elapsed}]",
    ) {
        bar.set_style(style);
    }
    let metrics = metrics.clone();
    Some(tokio::spawn(async move {
        let _clear = ClearOnDrop(bar.clone());
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let s = metrics.snapshot();
            bar.set_position(s.recorded + s.duplicates);
            bar.set_message(format!(
                "{} new, {} duplicates, {} errors",
                s.recorded, s.duplicates, s.errors
            ));
        }
    }))
}

struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
