//! `bounced stats`: totals, or bounce counts grouped by reason, domain, type or day.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::db::{
    DbArgs, OutputFormat, parse_time, print_rows, quiet_broken_pipe, runtime, stdout_for,
};
use bounced::store::query::StatsBy;

/// Show totals (messages by kind, bounces by type, suppressions by type) or, with --by, bounce
/// counts per group. --since and --until bound both: messages by arrival, bounces by failure time,
/// suppressions by when they happened.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Group bounces by this.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// From this time on (2026-03-01, 2026-03-01T09:00:00Z, or an age such as 7d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub db: DbArgs,
}

/// A grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// The reason (userunknown, mailboxfull, ...).
    Reason,
    /// The recipient's domain.
    Domain,
    /// hard, soft, complaint, none.
    Type,
    /// The UTC day of the failure.
    Day,
}

/// Runs `bounced stats`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    quiet_broken_pipe(rt.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let mut out = stdout_for(args.format);
        match args.by {
            Some(by) => {
                let by = match by {
                    By::Reason => StatsBy::Reason,
                    By::Domain => StatsBy::Domain,
                    By::Type => StatsBy::Type,
                    By::Day => StatsBy::Day,
                };
                let rows = store.stats(by, args.since, args.until).await?;
                print_rows(
                    &mut out,
                    args.format,
                    &[
                        "key",
                        "bounces",
                        "hard",
                        "soft",
                        "complaint",
                        "none",
                        "recipients",
                    ],
                    &rows,
                    |r| {
                        vec![
                            r.key.clone(),
                            r.bounces.to_string(),
                            r.hard.to_string(),
                            r.soft.to_string(),
                            r.complaint.to_string(),
                            r.none.to_string(),
                            r.recipients.to_string(),
                        ]
                    },
                )?;
            }
            None => {
                let s = store.summary_between(args.since, args.until).await?;
                if args.format == OutputFormat::Jsonl {
                    serde_json::to_writer(&mut out, &s)?;
                    writeln!(out)?;
                } else {
                    // One (group, key, count) row per figure, for the table and CSV alike.
                    let mut rows: Vec<(String, String, i64)> =
                        vec![("messages".into(), "total".into(), s.messages)];
                    rows.extend(
                        s.kinds
                            .iter()
                            .map(|(k, n)| ("messages".into(), k.clone(), *n)),
                    );
                    rows.push(("bounces".into(), "total".into(), s.bounces));
                    rows.extend(
                        s.bounce_types
                            .iter()
                            .map(|(k, n)| ("bounces".into(), k.clone(), *n)),
                    );
                    rows.push(("bounces".into(), "verp_mismatch".into(), s.verp_mismatches));
                    rows.push(("bounces".into(), "untrusted".into(), s.untrusted));
                    rows.push(("recipients".into(), "total".into(), s.recipients));
                    rows.extend(
                        s.suppressed
                            .iter()
                            .map(|(k, n)| ("suppressed".into(), k.clone(), *n)),
                    );
                    print_rows(
                        &mut out,
                        args.format,
                        &["group", "key", "count"],
                        &rows,
                        |r| vec![r.0.clone(), r.1.clone(), r.2.to_string()],
                    )?;
                }
            }
        }
        out.flush()?;
        drop(out);
        store.close().await;
        Ok(ExitCode::SUCCESS)
    }))
}
