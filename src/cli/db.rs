//! What the database subcommands share (`--db`/`--config`, opening the store, dates, output
//! formats), and `bounced db`: checking and repairing the database, and copying it to another
//! (across engines).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use bounced::config::{Config, HumanDuration};
use bounced::export::spreadsheet_cell;
use bounced::store::{Difference, Store};

/// Check the bounce database: every recipient's state, counts, soft score and history must be
/// what its stored bounces and the operator's decisions give.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: DbCommand,
    #[command(flatten)]
    pub db: DbArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: OutputFormat,
}

/// What to do with the database.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Recompute every recipient from its stored bounces and manual decisions, in date order, and
    /// report each difference (state, counts, score, times, suppression, counted flags, history).
    /// Exit code 1 when a difference is found and not repaired.
    Check {
        /// Write what the bounces and decisions give over each recipient that differs.
        #[arg(long)]
        repair: bool,
    },
    /// Copy every table of one database into another, empty one, ids kept: SQLite to PostgreSQL,
    /// PostgreSQL to SQLite, or within one engine.
    ///
    /// Read in batches from one snapshot of the source,
    /// written in one transaction that commits only when every table's row count matches the
    /// source's. Stop the daemons writing the source first: rows recorded during the copy are
    /// not in it.
    Copy {
        /// The database to read: a SQLite file, `sqlite://PATH` or `postgres://user@host/db`.
        #[arg(long, value_name = "URL")]
        from: PathBuf,
        /// The empty database to write (a new SQLite file is created; a PostgreSQL database must
        /// exist, empty or with only the schema).
        #[arg(long, value_name = "URL")]
        to: PathBuf,
        /// A file whose first line is the source's PostgreSQL password.
        #[arg(long, value_name = "FILE")]
        from_password_file: Option<PathBuf>,
        /// A file whose first line is the target's PostgreSQL password.
        #[arg(long, value_name = "FILE")]
        to_password_file: Option<PathBuf>,
    },
}

/// Runs `bounced db`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let repair = match args.what {
        DbCommand::Check { repair } => repair,
        DbCommand::Copy {
            ref from,
            ref to,
            ref from_password_file,
            ref to_password_file,
        } => {
            return copy(
                &args,
                (from, from_password_file.as_ref()),
                (to, to_password_file.as_ref()),
            );
        }
    };
    runtime()?.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let mut found: Vec<Difference> = Vec::new();
        let report = store
            .check_recipients(repair, Utc::now(), |d| found.push(d.clone()))
            .await;
        store.close().await;
        let report = report?;
        let mut out = stdout_for(args.format);
        match args.format {
            OutputFormat::Jsonl => {
                for d in &found {
                    serde_json::to_writer(&mut out, d)?;
                    writeln!(out)?;
                }
            }
            OutputFormat::Csv | OutputFormat::Table => {
                if !found.is_empty() || args.format == OutputFormat::Csv {
                    print_rows(
                        &mut out,
                        args.format,
                        &["address", "field", "stored", "expected"],
                        &found,
                        |d| {
                            vec![
                                d.address.clone(),
                                d.field.clone(),
                                d.stored.clone(),
                                d.expected.clone(),
                            ]
                        },
                    )?;
                }
            }
        }
        out.flush()?;
        let verdict = match (report.differing, repair) {
            (0, _) => "every recipient is in step with its bounces",
            (_, true) => "repaired",
            (_, false) => "run `bounced db check --repair` to write what the bounces give",
        };
        eprintln!(
            "bounced: checked {} recipients: {} differ ({} differences); {verdict}",
            report.recipients, report.differing, report.differences
        );
        Ok(if report.differing > 0 && !repair {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// Runs `bounced db copy`: opens both ends (the target created and given the schema), copies,
/// prints each table's rows.
fn copy(
    args: &Args,
    (from, from_pw): (&PathBuf, Option<&PathBuf>),
    (to, to_pw): (&PathBuf, Option<&PathBuf>),
) -> anyhow::Result<ExitCode> {
    let cfg = args.db.config()?;
    runtime()?.block_on(async {
        let mut opts = cfg.store_options(false);
        if from_pw.is_some() {
            opts.password_file = from_pw.cloned();
        }
        let source = Store::open(from, opts).await?;
        let mut opts = cfg.store_options(true);
        if to_pw.is_some() {
            opts.password_file = to_pw.cloned();
        }
        let target = match Store::open(to, opts).await {
            Ok(t) => t,
            Err(e) => {
                source.close().await;
                return Err(e.into());
            }
        };
        let (from_name, to_name) = (source.path().display().to_string(), target.path().display().to_string());
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut last = String::new();
        let result = source
            .copy_to(&target, |table, rows| {
                if tty && (rows % 10_000 == 0 || table != last) {
                    eprint!("\rbounced: copying {table}: {rows} rows   ");
                    last = table.to_owned();
                }
            })
            .await;
        if tty {
            eprintln!();
        }
        source.close().await;
        target.close().await;
        let report = result?;
        let mut out = stdout_for(args.format);
        let rows: Vec<CopiedTable> = report
            .tables
            .iter()
            .map(|(table, rows)| CopiedTable {
                table: table.clone(),
                rows: *rows,
            })
            .collect();
        print_rows(&mut out, args.format, &["table", "rows"], &rows, |r| {
            vec![r.table.clone(), r.rows.to_string()]
        })?;
        out.flush()?;
        eprintln!(
            "bounced: copied {} rows in {} tables from {from_name} to {to_name}; every table's count matches the source",
            report.rows(),
            report.tables.len()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// One table of `bounced db copy`'s report.
#[derive(Debug, serde::Serialize)]
struct CopiedTable {
    table: String,
    rows: i64,
}

/// The database to use and the configuration that names it.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// The bounce database: a SQLite file or a `postgres://user@host/db` URL [default: BOUNCED_DB,
    /// then `[store] path` or `url` from the configuration, then ./bounced.db].
    #[arg(long, value_name = "PATH|URL", global = true)]
    pub db: Option<PathBuf>,
    /// The configuration file (bounced.toml); without one, the documented defaults apply.
    #[arg(
        long = "config",
        env = "BOUNCED_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
}

impl DbArgs {
    /// The configuration: the file when given, else the defaults; then the environment.
    pub fn config(&self) -> anyhow::Result<Config> {
        super::load_config(self.config_file.as_deref())
    }

    /// `--db`, else the configured path.
    pub fn db_path(&self, cfg: &Config) -> PathBuf {
        self.db.clone().unwrap_or_else(|| cfg.store.path.clone())
    }

    /// Opens the store; `create` for commands that write (import, suppress).
    pub async fn open(&self, create: bool) -> anyhow::Result<(Store, Config)> {
        let cfg = self.config()?;
        let path = self.db_path(&cfg);
        let store = Store::open(&path, cfg.store_options(create)).await?;
        Ok((store, cfg))
    }
}

/// Treats a closed stdout (`bounced export | head`) as a normal end, not an error.
pub fn quiet_broken_pipe(r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

/// A runtime for one subcommand.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Parses `--since`/`--until`: `2026-03-01`, `2026-03-01T09:00:00Z`, or an age such as `7d` / `36h`.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("bad date `{s}`"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(age) = HumanDuration::parse(s) {
        let age = chrono::Duration::from_std(age.0).map_err(|_| format!("`{s}` is too long"))?;
        return Ok(Utc::now() - age);
    }
    Err(format!(
        "`{s}` is not a date: use 2026-03-01, 2026-03-01T09:00:00Z, or an age such as 7d"
    ))
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// Standard output for `format`, which may be a terminal: no control character a stored field
/// holds reaches it raw ([`bounced::text::PrintableWriter`]: a table shows it escaped, JSON lines
/// carry it as a `\u` escape of the same value). CSV is data for a program, written as it is.
pub fn stdout_for(format: OutputFormat) -> Box<dyn Write> {
    use bounced::text::PrintableWriter;
    let out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => Box::new(PrintableWriter::new(out)),
        OutputFormat::Jsonl => Box::new(PrintableWriter::json(out)),
        OutputFormat::Csv => Box::new(out),
    }
}

/// Prints rows as an aligned table, JSON lines or CSV.
pub fn print_rows<T: serde::Serialize>(
    out: &mut dyn Write,
    format: OutputFormat,
    headers: &[&str],
    rows: &[T],
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
        }
        OutputFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(&mut *out);
            w.write_record(headers)?;
            for r in rows {
                w.write_record(csv_cells(cells(r)))?;
            }
            w.flush()?;
        }
        OutputFormat::Table => {
            // One row a line: a line break or a control character in a field is shown escaped.
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    cells(r)
                        .into_iter()
                        .map(|c| bounced::text::printable(&c).into_owned())
                        .collect()
                })
                .collect();
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            for row in &body {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cols: &[String]| {
                let mut s = String::new();
                for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
                    if i + 1 == cols.len() {
                        s.push_str(c);
                    } else {
                        s.push_str(&format!("{c:<w$}  "));
                    }
                }
                s.trim_end().to_owned()
            };
            let head: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
            writeln!(out, "{}", line(&head))?;
            for row in &body {
                writeln!(out, "{}", line(row))?;
            }
        }
    }
    Ok(())
}

/// Prints a whole record as CSV rows `section,index,field,value`: an object gives one row per
/// field (index 0), a list one row per field of each element (index 1, 2, ...). One shape holds
/// any record, for a spreadsheet or a script.
pub fn print_record_csv(
    out: &mut dyn Write,
    sections: &[(&str, serde_json::Value)],
) -> anyhow::Result<()> {
    use serde_json::Value;
    fn cell(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(&mut *out);
    w.write_record(["section", "index", "field", "value"])?;
    for (name, value) in sections {
        let items: Vec<(usize, &Value)> = match value {
            Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
            other => vec![(0, other)],
        };
        for (index, item) in items {
            if let Value::Object(fields) = item {
                for (field, v) in fields {
                    w.write_record(csv_cells(vec![
                        (*name).to_owned(),
                        index.to_string(),
                        field.clone(),
                        cell(v),
                    ]))?;
                }
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// The cells of a CSV row, each made safe for spreadsheets (see [`spreadsheet_cell`]).
pub fn csv_cells(cells: Vec<String>) -> Vec<String> {
    cells
        .into_iter()
        .map(|c| spreadsheet_cell(&c).into_owned())
        .collect()
}

/// An optional cell.
pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// Shortens a cell for a table (diagnostics are long), on a character boundary.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            parse_time("2026-03-01").map(|t| t.to_rfc3339()),
            Ok("2026-03-01T00:00:00+00:00".to_owned())
        );
        assert!(parse_time("2026-03-01T09:00:00+02:00").is_ok());
        let week = parse_time("7d").unwrap_or_default();
        assert!(
            (Utc::now() - week - chrono::Duration::days(7))
                .num_seconds()
                .abs()
                < 5
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn short_cells() {
        assert_eq!(short("abcdef", 4), "abc…");
        assert_eq!(short("ab", 4), "ab");
    }
}
