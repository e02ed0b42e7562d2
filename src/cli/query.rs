//! `bounced query`: a recipient's whole record, stored bounces, stored messages, or one message.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;

use super::db::{
    DbArgs, OutputFormat, csv_cells, opt, parse_time, print_record_csv, print_rows,
    quiet_broken_pipe, runtime, short, stdout_for,
};
use bounced::address::Address;
use bounced::store::query::{
    BounceFilter, BounceRow, EventRow, MessageFilter, MessageRow, RecipientInfo,
};
use bounced::text::printable;
use bounced::{BounceType, Reason};

/// Look up a recipient or a message, or list stored bounces or messages. Exit code 1 when the
/// recipient or message is unknown.
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
    /// A recipient's whole record: state, counts, why it is in that state (each change with its
    /// bounce and rule), and its bounces, newest first.
    Recipient {
        /// The address (the domain is matched case-insensitively, the local part as written).
        address: String,
        /// How many of its latest bounces to show [default: 20 in a table, all in csv and jsonl].
        #[arg(long)]
        bounces: Option<u64>,
    },
    /// Stored messages, newest first: source, time, kind, reader and, for errors, why.
    Messages {
        /// Only this kind: error, not_bounce, dsn, text, feedback or autoreply.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<String>,
        /// Received at or after this time (2026-03-01, 2026-03-01T09:00:00Z, or an age such as 7d).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Received before this time.
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// One stored message: where it came from, what it was, why it failed, and its bounces; with
    /// --raw, its original bytes as received.
    Message {
        /// The message's id (the first column of `query messages`, `message_id` of a bounce).
        id: i64,
        /// Write the original bytes to standard output instead.
        #[arg(long)]
        raw: bool,
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

/// The kinds a stored message can have.
const KINDS: [&str; 6] = [
    "error",
    "not_bounce",
    "dsn",
    "text",
    "feedback",
    "autoreply",
];

fn parse_kind(s: &str) -> Result<String, String> {
    let k = s.trim().to_ascii_lowercase().replace('-', "_");
    if KINDS.contains(&k.as_str()) {
        Ok(k)
    } else {
        Err(format!(
            "unknown kind `{s}` (expected {})",
            KINDS.join(", ")
        ))
    }
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

#[derive(Serialize)]
struct MessageReport<'a> {
    message: &'a MessageRow,
    bounces: &'a [BounceRow],
}

const MESSAGE_HEADERS: [&str; 7] = [
    "id",
    "received_at",
    "kind",
    "reader",
    "bounces",
    "source",
    "error",
];

fn message_cells(m: &MessageRow, table: bool) -> Vec<String> {
    let error = opt(&m.error);
    vec![
        m.id.to_string(),
        m.received_at.to_string(),
        m.kind.clone(),
        m.reader.clone(),
        m.bounces.to_string(),
        m.source.clone(),
        if table { short(&error, 80) } else { error },
    ]
}

fn print_message(out: &mut dyn Write, m: &MessageRow) -> io::Result<()> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    writeln!(out, "id           {}", m.id)?;
    writeln!(out, "source       {}", printable(&m.source))?;
    writeln!(out, "received     {}", m.received_at)?;
    writeln!(out, "recorded     {}", m.recorded_at)?;
    writeln!(out, "kind         {} (reader {})", m.kind, m.reader)?;
    if let Some(e) = &m.error {
        writeln!(out, "error        {}", printable(e))?;
    }
    writeln!(out, "size         {} bytes", m.raw_size)?;
    writeln!(out, "sha256       {}", m.sha256)?;
    writeln!(
        out,
        "original id  {}",
        printable(&dash(&m.original_message_id))
    )?;
    writeln!(
        out,
        "list id      {}",
        printable(&dash(&m.original_list_id))
    )?;
    writeln!(out, "verp for     {}", printable(&dash(&m.verp_recipient)))
}

const BOUNCE_HEADERS: [&str; 10] = [
    "at",
    "recipient",
    "type",
    "reason",
    "status",
    "replycode",
    "rule",
    "source",
    "verp_mismatch",
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
        if b.verp_mismatch { "yes" } else { "" }.to_owned(),
        if table { short(&diag, 60) } else { diag },
    ]
}

/// Runs `bounced query`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    quiet_broken_pipe(rt.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let table = args.format == OutputFormat::Table;
        // `--raw` bytes go out as stored, unless to a terminal, which sees them escaped.
        let raw_to_terminal =
            matches!(args.what, What::Message { raw: true, .. }) && io::stdout().is_terminal();
        let mut out = if raw_to_terminal {
            stdout_for(OutputFormat::Table)
        } else {
            stdout_for(args.format)
        };
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
                        "bounced: no recipient {} in {}",
                        printable(address),
                        bounced::text::path(store.path())
                    );
                    return Ok(ExitCode::from(1));
                };
                let history = store.history(address).await?;
                let limit = bounces.or(table.then_some(20));
                let latest: Vec<BounceRow> = store
                    .bounces(&BounceFilter {
                        recipient: Some(address.to_owned()),
                        limit,
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
                    OutputFormat::Csv => print_record_csv(
                        &mut out,
                        &[
                            ("recipient", serde_json::to_value(&info)?),
                            ("history", serde_json::to_value(&history)?),
                            ("bounce", serde_json::to_value(&latest)?),
                        ],
                    )?,
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
            What::Messages {
                kind,
                since,
                until,
                limit,
            } => {
                let filter = MessageFilter {
                    kind: kind.clone(),
                    since: *since,
                    until: *until,
                    limit: Some(*limit),
                };
                let rows: Vec<MessageRow> = store.messages(&filter).try_collect().await?;
                if args.format == OutputFormat::Jsonl {
                    for m in &rows {
                        serde_json::to_writer(&mut out, m)?;
                        writeln!(out)?;
                    }
                } else {
                    print_rows(&mut out, args.format, &MESSAGE_HEADERS, &rows, |m| {
                        message_cells(m, table)
                    })?;
                }
            }
            What::Message { id, raw } => {
                let Some(m) = store.message(*id).await? else {
                    eprintln!(
                        "bounced: no message {id} in {}",
                        bounced::text::path(store.path())
                    );
                    return Ok(ExitCode::from(1));
                };
                if *raw {
                    let bytes = store.message_raw(*id).await?.unwrap_or_default();
                    out.write_all(&bytes)?;
                } else {
                    let bounces = store.message_bounces(*id).await?;
                    match args.format {
                        OutputFormat::Jsonl => {
                            let r = MessageReport {
                                message: &m,
                                bounces: &bounces,
                            };
                            serde_json::to_writer(&mut out, &r)?;
                            writeln!(out)?;
                        }
                        OutputFormat::Csv => print_record_csv(
                            &mut out,
                            &[
                                ("message", serde_json::to_value(&m)?),
                                ("bounce", serde_json::to_value(&bounces)?),
                            ],
                        )?,
                        OutputFormat::Table => {
                            print_message(&mut out, &m)?;
                            writeln!(out)?;
                            writeln!(out, "bounces:")?;
                            print_rows(&mut out, args.format, &BOUNCE_HEADERS, &bounces, |b| {
                                bounce_cells(b, true)
                            })?;
                        }
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
                            w.write_record(csv_cells(bounce_cells(&b, false)))?;
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
    let t = |v: &Option<bounced::store::query::Timestamp>| {
        v.map(|t| t.to_string()).unwrap_or_else(|| "-".to_owned())
    };
    writeln!(out, "address      {}", printable(&r.address))?;
    writeln!(out, "state        {}", r.state)?;
    if r.state == "suppressed" {
        let why = match (opt(&r.suppressed_type), opt(&r.suppressed_why)) {
            (ty, why) if why.is_empty() => ty,
            (ty, why) => format!("{ty}: {why}"),
        };
        writeln!(
            out,
            "suppressed   {} ({})",
            t(&r.suppressed_at),
            printable(&why)
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
