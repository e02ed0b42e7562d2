//! `bounced export`: the suppression list, streamed, in the format a list manager or MTA takes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::db::{DbArgs, parse_time, quiet_broken_pipe, runtime};
use bounced::export::{self, Format};
use bounced::store::query::{ExportFilter, ExportTypes};

/// Write the suppressed addresses: txt (one per line, for Mailman `delmembers -f`), csv, jsonl,
/// listmonk (blocklist import CSV), postfix (access map for `postmap`), ses (account-level
/// suppression import), mailgun (bounce list import).
///
/// With -o, the list is written to a temporary file beside FILE (mode 0640) and renamed over it
/// once complete, so a reader never sees half a list.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format: txt, csv, jsonl, listmonk, postfix, ses or mailgun.
    #[arg(long, default_value = "txt")]
    pub format: Format,
    /// Only addresses suppressed at or after this time (2026-03-01, 2026-03-01T09:00:00Z, or an
    /// age such as 7d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only addresses suppressed before this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Which suppressions: any of hard, complaint, soft-suppressed, manual, comma-separated
    /// [default: all].
    #[arg(long, value_parser = ExportTypes::parse)]
    pub types: Option<ExportTypes>,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Runs `bounced export`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    quiet_broken_pipe(rt.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let filter = ExportFilter {
            types: args.types.unwrap_or_default(),
            since: args.since,
            until: args.until,
        };
        let rows = match &args.output {
            None => {
                let out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
                let (n, _) = export::export(&store, &filter, args.format, out).await?;
                n
            }
            Some(path) => {
                let (tmp, file) = temp_beside(path)?;
                let out = BufWriter::with_capacity(64 * 1024, file);
                let written = async {
                    let (n, out) = export::export(&store, &filter, args.format, out).await?;
                    let file = out.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, path)?;
                    anyhow::Ok(n)
                }
                .await;
                match written {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.context(format!("cannot write {}", path.display())));
                    }
                }
            }
        };
        tracing::info!(rows, format = %args.format, "export written");
        store.close().await;
        Ok(ExitCode::SUCCESS)
    }))
}

/// Creates a new temporary file in the same folder as `path` (so the rename is atomic), mode 0640.
fn temp_beside(path: &Path) -> anyhow::Result<(PathBuf, File)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    for i in 0..100u32 {
        let tmp = dir.join(format!(".{name}.{}.{i}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create a file in {}", dir.display()));
            }
        }
    }
    anyhow::bail!("cannot create a temporary file in {}", dir.display())
}
