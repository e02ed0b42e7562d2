//! `bounced reclassify`: re-run the current rules over stored messages; old data follows new rules.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::db::{DbArgs, OutputFormat, parse_time, print_rows, runtime, stdout_for};
use bounced::report::ReadOptions;
use bounced::store::ReclassifyOptions;
use bounced::{Classifier, pipeline};

/// Re-classify stored raw messages with the current rules, replace the bounces that changed, and
/// re-derive the state of every recipient involved (manual decisions are kept). Reports what
/// changed, including every recipient whose state moved.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only messages received at or after this time (2026-03-01, 2026-03-01T09:00:00Z, or an age
    /// such as 30d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// A rule file (TOML) merged over the built-in classification rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Write nothing: print what would change (the addresses whose state would flip).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Classifier threads [default: one per CPU core]; the result is the same whatever N.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Runs `bounced reclassify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let classifier = match &args.rules {
        Some(path) => Classifier::with_rules_file(path)?,
        None => Classifier::new(),
    };
    let read = ReadOptions::default();
    let jobs = pipeline::jobs(args.jobs.unwrap_or(0));
    // Each batch's messages are classified on the workers, results in the batch's order.
    let analyze_batch = |raws: Vec<Vec<u8>>| {
        let mut out = Vec::with_capacity(raws.len());
        pipeline::map_ordered(
            jobs,
            |raw: Vec<u8>| bounced::analyze(&raw, &classifier, &read),
            |a| out.push(a),
            |push| raws.into_iter().for_each(push),
        );
        out
    };
    runtime()?.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let opts = ReclassifyOptions {
            since: args.since,
            dry_run: args.dry_run,
            ..ReclassifyOptions::default()
        };
        let report = store.reclassify(&opts, analyze_batch, Utc::now()).await;
        store.close().await;
        let report = report?;
        let mut out = stdout_for(args.format);
        match args.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut out, &report)?;
                writeln!(out)?;
            }
            OutputFormat::Table | OutputFormat::Csv => {
                if args.format == OutputFormat::Table {
                    if report.dry_run {
                        writeln!(
                            out,
                            "dry run: nothing was written; a real run would do this"
                        )?;
                    }
                    writeln!(out, "messages examined   {}", report.messages)?;
                    writeln!(out, "messages changed    {}", report.changed)?;
                    writeln!(
                        out,
                        "bounces             {} before, {} after",
                        report.bounces_before, report.bounces_after
                    )?;
                    writeln!(out, "recipients replayed {}", report.recipients_replayed)?;
                    writeln!(out, "state changes       {}", report.shifts.len())?;
                    if report.shifts.is_empty() {
                        return Ok(ExitCode::SUCCESS);
                    }
                    writeln!(out)?;
                }
                print_rows(
                    &mut out,
                    args.format,
                    &["address", "from", "to"],
                    &report.shifts,
                    |s| {
                        vec![
                            s.address.clone(),
                            s.from.as_str().into(),
                            s.to.as_str().into(),
                        ]
                    },
                )?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
