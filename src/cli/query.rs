//! `bounced query`: a recipient's state and history, or stored bounces.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;

use super::db::{
    DbArgs, OutputFormat, opt, parse_time, print_rows, quiet_broken_pipe, runtime, short,
};
use crate::address::Address;
use crate::store::query::{BounceFilter, BounceRow, EventRow, RecipientInfo};
use crate::{BounceType, Reason};

/// Look up a recipient or list stored bounces. Exit code 1 when the recipient is unknown.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
    #[command(flatten)]
    pub db: DbArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: OutputFormat,
}

/// What to query.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// A recipient's state, why it is in that state (each change with its bounce and rule), and
    /// its latest bounces.
    Recipient {
        /// The address (the domain is matched case-insensitively, the local part as written).
        address: String,
        /// How many of its latest bounces to show.
        #[arg(long, default_value_t = 20)]
        bounces: u64,
    },
    /// Stored bounces, newest first.
    Bounces {
        /// Failures at or after this time (2026-03-01, 2026-03-01T09:00:00Z, or an age such as 7d).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Failures before this time.
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// Only this reason (userunknown, mailboxfull, ...).
        #[arg(long)]
        reason: Option<Reason>,
        /// Only this type: hard, soft, complaint or none.
        #[arg(long = "type", value_parser = parse_type)]
        bounce_type: Option<BounceType>,
        /// Only recipients in this domain.
        #[arg(long)]
        domain: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

fn parse_type(s: &str) -> Result<BounceType, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "hard" => Ok(BounceType::Hard),
        "soft" => Ok(BounceType::Soft),
        "complaint" => Ok(BounceType::Complaint),
        "none" => Ok(BounceType::None),
        _ => Err(format!(
            "unknown type `{s}` (expected hard, soft, complaint or none)"
        )),
    }
}

#[derive(Serialize)]
struct RecipientReport<'a> {
    recipient: &'a RecipientInfo,
    history: &'a [EventRow],
    bounces: &'a [BounceRow],
}

const BOUNCE_HEADERS: [&str; 9] = [
    "at",
    "recipient",
    "type",
    "reason",
    "status",
    "replycode",
    "rule",
    "source",
    "diagnostic",
];

fn bounce_cells(b: &BounceRow, table: bool) -> Vec<String> {
    let diag = opt(&b.diagnostic);
    vec![
        b.at.to_string(),
        opt(&b.recipient),
        b.bounce_type.clone(),
        b.reason.clone(),
        opt(&b.status),
        opt(&b.replycode),
        b.rule.clone(),
        b.source.clone(),
        if table { short(&diag, 60) } else { diag },
    ]
}

/// Runs `bounced query`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    quiet_broken_pipe(rt.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let mut out = io::stdout().lock();
        let table = args.format == OutputFormat::Table;
        match &args.what {
            What::Recipient { address, bounces } => {
                if let Err(e) = Address::parse(address) {
                    store.close().await;
                    anyhow::bail!("`{address}` is not an address: {e}");
                }
                let address = &store
                    .resolve(address)
                    .await?
                    .unwrap_or_else(|| address.clone());
                let Some(info) = store.recipient(address).await? else {
                    eprintln!(
                        "bounced: no recipient {address} in {}",
                        store.path().display()
                    );
                    return Ok(ExitCode::from(1));
                };
                let history = store.history(address).await?;
                let latest: Vec<BounceRow> = store
                    .bounces(&BounceFilter {
                        recipient: Some(address.to_owned()),
                        limit: Some(*bounces),
                        ..BounceFilter::default()
                    })
                    .try_collect()
                    .await?;
                match args.format {
                    OutputFormat::Jsonl => {
                        let r = RecipientReport {
                            recipient: &info,
                            history: &history,
                            bounces: &latest,
                        };
                        serde_json::to_writer(&mut out, &r)?;
                        writeln!(out)?;
                    }
                    OutputFormat::Csv => print_history(&mut out, args.format, &history)?,
                    OutputFormat::Table => {
                        print_recipient(&mut out, &info)?;
                        writeln!(out)?;
                        writeln!(out, "history (why):")?;
                        if history.is_empty() {
                            writeln!(out, "  no state change recorded")?;
                        } else {
                            print_history(&mut out, args.format, &history)?;
                        }
                        writeln!(out)?;
                        writeln!(out, "latest bounces:")?;
                        print_rows(&mut out, args.format, &BOUNCE_HEADERS, &latest, |b| {
                            bounce_cells(b, true)
                        })?;
                    }
                }
            }
            What::Bounces {
                since,
                until,
                reason,
                bounce_type,
                domain,
                limit,
            } => {
                let filter = BounceFilter {
                    since: *since,
                    until: *until,
                    reason: *reason,
                    bounce_type: *bounce_type,
                    domain: domain.clone(),
                    recipient: None,
                    limit: Some(*limit),
                };
                if table {
                    let rows: Vec<BounceRow> = store.bounces(&filter).try_collect().await?;
                    print_rows(&mut out, args.format, &BOUNCE_HEADERS, &rows, |b| {
                        bounce_cells(b, true)
                    })?;
                } else {
                    // Stream: no row is kept once written.
                    let mut rows = store.bounces(&filter);
                    if args.format == OutputFormat::Jsonl {
                        while let Some(b) = rows.try_next().await? {
                            serde_json::to_writer(&mut out, &b)?;
                            writeln!(out)?;
                        }
                    } else {
                        let mut w = csv::WriterBuilder::new()
                            .terminator(csv::Terminator::Any(b'\n'))
                            .from_writer(&mut out);
                        w.write_record(BOUNCE_HEADERS)?;
                        while let Some(b) = rows.try_next().await? {
                            w.write_record(bounce_cells(&b, false))?;
                        }
                        w.flush()?;
                    }
                }
            }
        }
        out.flush().context("cannot write to stdout")?;
        drop(out);
        store.close().await;
        Ok(ExitCode::SUCCESS)
    }))
}

fn print_recipient(out: &mut dyn Write, r: &RecipientInfo) -> io::Result<()> {
    let t = |v: &Option<crate::store::query::Timestamp>| {
        v.map(|t| t.to_string()).unwrap_or_else(|| "-".to_owned())
    };
    writeln!(out, "address      {}", r.address)?;
    writeln!(out, "state        {}", r.state)?;
    if r.state == "suppressed" {
        writeln!(
            out,
            "suppressed   {} ({}: {})",
            t(&r.suppressed_at),
            opt(&r.suppressed_type),
            opt(&r.suppressed_why)
        )?;
    }
    if let Some(m) = &r.manual {
        writeln!(out, "override     manually {m}")?;
    }
    writeln!(
        out,
        "bounces      hard {}, soft {}, complaint {}, other {}",
        r.hard_count, r.soft_count, r.complaint_count, r.other_count
    )?;
    writeln!(
        out,
        "soft score   {} (last counted {})",
        r.soft_score,
        t(&r.soft_last_counted_at)
    )?;
    writeln!(out, "first bounce {}", t(&r.first_bounce_at))?;
    writeln!(out, "last bounce  {}", t(&r.last_bounce_at))
}

fn print_history(out: &mut dyn Write, format: OutputFormat, h: &[EventRow]) -> anyhow::Result<()> {
    let table = format == OutputFormat::Table;
    print_rows(
        out,
        format,
        &[
            "at", "change", "cause", "reason", "status", "rule", "source", "note",
        ],
        h,
        |e| {
            vec![
                e.at.to_string(),
                e.change.clone(),
                e.cause.clone(),
                opt(&e.reason),
                opt(&e.status),
                opt(&e.rule),
                opt(&e.source),
                if table {
                    short(&opt(&e.note), 60)
                } else {
                    opt(&e.note)
                },
            ]
        },
    )
}
