//! `bounced outbox`: the events waiting for, delivered to, or given up by the notify targets.
//!
//! `list` shows deliveries (all, or those matching the filters); `list --counts` shows how many per
//! target and state. `retry` makes dead deliveries pending again (a running daemon sends them at
//! once); `drop` deletes them. Both act on dead deliveries unless `--state` says otherwise.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::db::{DbArgs, OutputFormat, opt, print_rows, quiet_broken_pipe, runtime, short};
use bounced::store::OutboxFilter;

/// Show, retry or drop outbox deliveries.
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

/// The deliveries to act on.
#[derive(Debug, Clone, clap::Args)]
pub struct Filter {
    /// Only this target's.
    #[arg(long)]
    pub target: Option<String>,
    /// Only deliveries in this state.
    #[arg(long, value_parser = ["pending", "delivered", "dead"])]
    pub state: Option<String>,
    /// Only this event (its id).
    #[arg(long)]
    pub id: Option<String>,
    /// Only events about this address.
    #[arg(long)]
    pub address: Option<String>,
}

impl Filter {
    fn to_store(&self, limit: Option<u64>) -> OutboxFilter {
        OutboxFilter {
            target: self.target.clone(),
            state: self.state.clone(),
            id: self.id.clone(),
            address: self.address.clone(),
            limit,
        }
    }
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// List deliveries, oldest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// Only the number of deliveries per target and state.
        #[arg(long)]
        counts: bool,
    },
    /// Make deliveries pending again with their attempts reset (dead ones unless --state is given).
    Retry {
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete deliveries (dead ones unless --state is given); their events stay for other targets.
    Drop {
        #[command(flatten)]
        filter: Filter,
    },
}

fn time_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Runs `bounced outbox`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    quiet_broken_pipe(rt.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let mut out = std::io::stdout().lock();
        match &args.what {
            What::List { counts: true, .. } => {
                let rows = store.outbox_counts().await?;
                print_rows(
                    &mut out,
                    args.format,
                    &["target", "state", "count"],
                    &rows,
                    |r| vec![r.target.clone(), r.state.clone(), r.count.to_string()],
                )?;
            }
            What::List { filter, limit, .. } => {
                let rows = store.outbox_list(&filter.to_store(Some(*limit))).await?;
                print_rows(
                    &mut out,
                    args.format,
                    &[
                        "target",
                        "id",
                        "event",
                        "address",
                        "state",
                        "attempts",
                        "next_attempt",
                        "last_error",
                    ],
                    &rows,
                    |r| {
                        vec![
                            r.target.clone(),
                            r.id.clone(),
                            r.event.clone(),
                            r.address.clone(),
                            r.state.clone(),
                            r.attempts.to_string(),
                            if r.state == "pending" {
                                time_ms(r.next_at)
                            } else {
                                String::new()
                            },
                            if args.format == OutputFormat::Table {
                                short(&opt(&r.last_error), 60)
                            } else {
                                opt(&r.last_error)
                            },
                        ]
                    },
                )?;
            }
            What::Retry { filter } => {
                let n = store.outbox_retry(&filter.to_store(None)).await?;
                writeln!(out, "{n} deliveries pending again")?;
            }
            What::Drop { filter } => {
                let n = store.outbox_drop(&filter.to_store(None)).await?;
                writeln!(out, "{n} deliveries dropped")?;
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    }))
}
