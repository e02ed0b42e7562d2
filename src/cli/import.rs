//! `bounced import PATH...`: classify message files, Maildirs and mbox files and record the results.
//!
//! The work is a pipeline with bounded queues, so memory stays flat however many files there are:
//! one thread walks the paths and reads messages; a few worker threads hash, compress and classify
//! them (the CPU work); one writer records them in batches, one transaction per batch.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::db::{DbArgs, runtime};
use crate::error::ReadError;
use crate::report::ReadOptions;
use crate::store::{Outcome, Prepared, Store, deflate, sha256_hex};
use crate::{Analysis, BounceType, Classifier};

/// Import message files, directories, Maildirs (new/ and cur/) or mbox files into the database.
///
/// Re-importing the same messages adds nothing: each message is keyed by the SHA-256 of its bytes.
/// Prints a summary on stdout. Exit code 0 when every input was read, 1 when some could not be read
/// (they are named on stderr), 2 on an error that stopped the import (nothing of the failing batch
/// is written).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, directories, Maildirs or mbox files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Classifier threads [default: half the CPUs, at least 1]; each needs tens of MB of memory.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Messages per transaction [default: `[store] batch_size`, 500].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// A rule file (TOML) merged over the built-in classification rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
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

/// How [`import`] runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Classifier threads. Each holds its own regex caches (tens of MB), and one more thread reads,
    /// hashes and compresses, so the default is half the CPUs, at least one.
    pub jobs: usize,
    /// Messages per transaction.
    pub batch_size: usize,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Reader options (size limit, VERP separator).
    pub read: ReadOptions,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            batch_size: 500,
            progress: false,
            read: ReadOptions::default(),
        }
    }
}

/// One message as read from disk, hashed and compressed, before classification.
enum Item {
    /// The whole message.
    Bytes {
        source: String,
        received_at: DateTime<Utc>,
        bytes: Vec<u8>,
        sha256: String,
        raw_deflate: Vec<u8>,
    },
    /// Over the size limit: hashed while streaming, not kept.
    TooLarge {
        source: String,
        received_at: DateTime<Utc>,
        sha256: String,
        size: usize,
    },
}

/// Runs `bounced import`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let classifier = match &args.rules {
        Some(path) => Classifier::with_rules_file(path)?,
        None => Classifier::new(),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let (store, cfg) = args.db.open(true).await?;
        let mut opts = ImportOptions {
            batch_size: args.batch_size.unwrap_or(cfg.store.batch_size).max(1),
            progress: true,
            ..ImportOptions::default()
        };
        if let Some(j) = args.jobs {
            opts.jobs = j.max(1);
        }
        let summary = import(&store, &args.paths, Arc::new(classifier), opts).await;
        store.close().await;
        let summary = summary?;
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

/// Imports `paths` into `store`: the pipeline behind `bounced import`, also used by the benchmark.
pub async fn import(
    store: &Store,
    paths: &[PathBuf],
    classifier: Arc<Classifier>,
    opts: ImportOptions,
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let unreadable = Arc::new(AtomicU64::new(0));
    let (item_tx, item_rx) = sync_channel::<Item>(256);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Prepared>(opts.batch_size.max(64));

    let walker = {
        let paths = paths.to_vec();
        let unreadable = Arc::clone(&unreadable);
        let max = opts.read.max_size;
        std::thread::Builder::new()
            .name("import-read".into())
            .spawn(move || {
                for p in &paths {
                    if walk(p, &item_tx, max, &unreadable).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the reader thread")?
    };
    let item_rx = Arc::new(Mutex::new(item_rx));
    let mut workers = Vec::new();
    for i in 0..opts.jobs.max(1) {
        let rx = Arc::clone(&item_rx);
        let tx = done_tx.clone();
        let classifier = Arc::clone(&classifier);
        let read = opts.read.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("import-classify-{i}"))
                .spawn(move || work(&rx, &tx, &classifier, &read))
                .context("cannot start a classifier thread")?,
        );
    }
    drop(done_tx);

    let bar = progress_bar(opts.progress);
    let mut summary = Summary::default();
    let mut batch: Vec<Prepared> = Vec::with_capacity(opts.batch_size);
    let result: anyhow::Result<()> = async {
        loop {
            let next = done_rx.recv().await;
            let end = next.is_none();
            if let Some(p) = next {
                batch.push(p);
            }
            if batch.len() >= opts.batch_size || (end && !batch.is_empty()) {
                write_batch(store, &mut batch, &mut summary).await?;
                if let Some(bar) = &bar {
                    bar.set_position(summary.messages);
                    bar.set_message(format!(
                        "{} new, {} duplicates, {} errors",
                        summary.new, summary.duplicates, summary.errors
                    ));
                }
            }
            if end {
                return Ok(());
            }
        }
    }
    .await;
    // On error, closing the queue stops the workers and the reader.
    drop(done_rx);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for w in workers {
        let _ = w.join();
    }
    let _ = walker.join();
    result?;
    summary.unreadable = unreadable.load(Ordering::Relaxed);
    summary.elapsed_secs = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn progress_bar(wanted: bool) -> Option<indicatif::ProgressBar> {
    if !wanted || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {pos} messages ({per_sec}) {msg} [{elapsed}]",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

async fn write_batch(
    store: &Store,
    batch: &mut Vec<Prepared>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    // Workers finish out of order; keep the batch roughly in arrival order for the policy.
    batch.sort_by_key(|p| p.received_at);
    let outcomes = store.record(batch, Utc::now()).await?;
    for (p, o) in batch.iter().zip(&outcomes) {
        summary.messages += 1;
        match o {
            Outcome::Duplicate { .. } => summary.duplicates += 1,
            Outcome::New { changes, .. } => {
                summary.new += 1;
                match p.analysis.kind {
                    "error" => summary.errors += 1,
                    "not_bounce" => summary.not_bounces += 1,
                    _ => {}
                }
                for b in &p.analysis.bounces {
                    match b.bounce_type {
                        BounceType::Hard => summary.bounces.hard += 1,
                        BounceType::Soft => summary.bounces.soft += 1,
                        BounceType::Complaint => summary.bounces.complaint += 1,
                        BounceType::None => summary.bounces.none += 1,
                    }
                }
                summary.suppressed += changes
                    .iter()
                    .filter(|c| c.to == crate::policy::State::Suppressed)
                    .count() as u64;
            }
        }
    }
    batch.clear();
    Ok(())
}

/// A classifier thread: takes read messages, hands prepared ones to the writer.
fn work(
    rx: &Mutex<Receiver<Item>>,
    tx: &tokio::sync::mpsc::Sender<Prepared>,
    classifier: &Classifier,
    read: &ReadOptions,
) {
    loop {
        let item = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(item) = item else {
            return;
        };
        let prepared = match item {
            Item::Bytes {
                source,
                received_at,
                bytes,
                sha256,
                raw_deflate,
            } => Prepared {
                sha256,
                source,
                received_at,
                raw_size: bytes.len(),
                raw_deflate,
                analysis: crate::analyze(&bytes, classifier, read),
            },
            Item::TooLarge {
                source,
                received_at,
                sha256,
                size,
            } => Prepared {
                sha256,
                source,
                received_at,
                raw_size: size,
                raw_deflate: Vec::new(),
                analysis: Analysis {
                    kind: "error",
                    reader: "none",
                    bounces: Vec::new(),
                    error: Some(ReadError::TooLarge {
                        size,
                        limit: read.max_size,
                    }),
                    original: None,
                    verp: None,
                },
            },
        };
        if tx.blocking_send(prepared).is_err() {
            return;
        }
    }
}

/// The queue to the workers was closed: the import is being abandoned.
struct Stopped;

fn send(tx: &SyncSender<Item>, item: Item) -> Result<(), Stopped> {
    tx.send(item).map_err(|_| Stopped)
}

/// A whole message, hashed and compressed here so the classifier threads only classify.
fn whole(source: String, received_at: DateTime<Utc>, bytes: Vec<u8>) -> Item {
    Item::Bytes {
        sha256: sha256_hex(&bytes),
        raw_deflate: deflate(&bytes),
        source,
        received_at,
        bytes,
    }
}

fn unreadable_input(path: &Path, e: &io::Error, count: &AtomicU64) {
    tracing::warn!("cannot read {}: {e}; skipped", path.display());
    count.fetch_add(1, Ordering::Relaxed);
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

/// Walks one path, streaming: directories are read entry by entry, never listed whole.
fn walk(path: &Path, tx: &SyncSender<Item>, max: usize, bad: &AtomicU64) -> Result<(), Stopped> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            unreadable_input(&path, &e, bad);
            return Ok(());
        }
    };
    if meta.is_file() {
        return read_file(&path, false, tx, max, bad);
    }
    if !meta.is_dir() {
        return Ok(());
    }
    if is_maildir(&path) {
        for sub in ["new", "cur"] {
            let dir = path.join(sub);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    unreadable_input(&dir, &e, bad);
                    continue;
                }
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if !is_hidden(&p) && entry.file_type().is_ok_and(|t| t.is_file()) {
                    read_file(&p, true, tx, max, bad)?;
                }
            }
        }
        return Ok(());
    }
    let entries = match std::fs::read_dir(&path) {
        Ok(e) => e,
        Err(e) => {
            unreadable_input(&path, &e, bad);
            return Ok(());
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if is_hidden(&p) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&p, tx, max, bad)?,
            Ok(t) if t.is_file() => read_file(&p, false, tx, max, bad)?,
            _ => {}
        }
    }
    Ok(())
}

fn mtime(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

/// Reads one file: a single message, or (outside a Maildir) an mbox when it starts with `From `.
fn read_file(
    path: &Path,
    in_maildir: bool,
    tx: &SyncSender<Item>,
    max: usize,
    bad: &AtomicU64,
) -> Result<(), Stopped> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            unreadable_input(path, &e, bad);
            return Ok(());
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            unreadable_input(path, &e, bad);
            return Ok(());
        }
    };
    let received_at = mtime(&meta);
    let scheme = if in_maildir { "maildir" } else { "file" };
    let source = format!("{scheme}:{}", path.display());
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    if !in_maildir {
        match reader.fill_buf() {
            Ok(head) if head.starts_with(b"From ") => {
                return read_mbox(path, reader, received_at, tx, max, bad);
            }
            Ok(_) => {}
            Err(e) => {
                unreadable_input(path, &e, bad);
                return Ok(());
            }
        }
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > max {
        let mut hasher = Sha256::new();
        if let Err(e) = io::copy(&mut reader, &mut HashWriter(&mut hasher)) {
            unreadable_input(path, &e, bad);
            return Ok(());
        }
        return send(
            tx,
            Item::TooLarge {
                source,
                received_at,
                sha256: hex(&hasher.finalize()),
                size,
            },
        );
    }
    let mut bytes = Vec::with_capacity(size);
    if let Err(e) = reader.read_to_end(&mut bytes) {
        unreadable_input(path, &e, bad);
        return Ok(());
    }
    send(tx, whole(source, received_at, bytes))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The time on an mbox `From ` line (`From sender Mon Mar  2 09:00:00 2026`), if it has one.
fn from_line_time(line: &[u8]) -> Option<DateTime<Utc>> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace().skip(2);
    let date: Vec<&str> = words.by_ref().take(5).collect();
    if date.len() != 5 {
        return None;
    }
    NaiveDateTime::parse_from_str(&date.join(" "), "%a %b %d %H:%M:%S %Y")
        .ok()
        .map(|t| t.and_utc())
}

/// One message being collected from an mbox.
struct MboxMessage {
    bytes: Vec<u8>,
    /// Set once the message passed the size limit: its bytes are hashed, not kept.
    overflow: Option<(Sha256, usize)>,
    received_at: DateTime<Utc>,
}

impl MboxMessage {
    fn push(&mut self, line: &[u8], max: usize) {
        if let Some((h, n)) = &mut self.overflow {
            h.update(line);
            *n += line.len();
            return;
        }
        if self.bytes.len() + line.len() > max {
            let mut h = Sha256::new();
            h.update(&self.bytes);
            h.update(line);
            self.overflow = Some((h, self.bytes.len() + line.len()));
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(line);
    }

    fn into_item(mut self, source: String) -> Option<Item> {
        // The blank line before the next `From ` line belongs to the separator.
        if self.bytes.ends_with(b"\n\n") {
            self.bytes.pop();
        } else if self.bytes.ends_with(b"\r\n\r\n") {
            self.bytes.truncate(self.bytes.len() - 2);
        }
        match self.overflow {
            Some((h, size)) => Some(Item::TooLarge {
                source,
                received_at: self.received_at,
                sha256: hex(&h.finalize()),
                size,
            }),
            None if self.bytes.iter().all(u8::is_ascii_whitespace) => None,
            None => Some(whole(source, self.received_at, self.bytes)),
        }
    }
}

/// Splits an mbox into messages on `From ` lines (after a blank line) and undoes `>From ` quoting.
fn read_mbox<R: BufRead>(
    path: &Path,
    mut reader: R,
    file_time: DateTime<Utc>,
    tx: &SyncSender<Item>,
    max: usize,
    bad: &AtomicU64,
) -> Result<(), Stopped> {
    let mut line = Vec::with_capacity(1024);
    let mut current: Option<MboxMessage> = None;
    let mut n = 0u64;
    let mut prev_blank = true;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                unreadable_input(path, &e, bad);
                break;
            }
        }
        if prev_blank && line.starts_with(b"From ") {
            if let Some(m) = current.take()
                && let Some(item) = m.into_item(format!("file:{}#{n}", path.display()))
            {
                send(tx, item)?;
            }
            n += 1;
            current = Some(MboxMessage {
                bytes: Vec::new(),
                overflow: None,
                received_at: from_line_time(&line).unwrap_or(file_time),
            });
            prev_blank = false;
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        let Some(m) = current.as_mut() else {
            continue;
        };
        let quoted = line.iter().take_while(|&&b| b == b'>').count();
        if quoted > 0
            && line
                .get(quoted..)
                .is_some_and(|rest| rest.starts_with(b"From "))
        {
            m.push(line.get(1..).unwrap_or_default(), max);
        } else {
            m.push(&line, max);
        }
    }
    if let Some(m) = current
        && let Some(item) = m.into_item(format!("file:{}#{n}", path.display()))
    {
        send(tx, item)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(mbox: &str) -> Vec<(String, String)> {
        let (tx, rx) = sync_channel(16);
        let bad = AtomicU64::new(0);
        let r = read_mbox(
            Path::new("/m"),
            mbox.as_bytes(),
            DateTime::<Utc>::default(),
            &tx,
            1 << 20,
            &bad,
        );
        assert!(r.is_ok());
        drop(tx);
        rx.iter()
            .map(|i| match i {
                Item::Bytes { source, bytes, .. } => {
                    (source, String::from_utf8_lossy(&bytes).into_owned())
                }
                Item::TooLarge { source, .. } => (source, "<too large>".into()),
            })
            .collect()
    }

    #[test]
    fn mbox_splits_on_from_lines_and_unquotes() {
        let got = split(
            "From a@example.org Mon Mar  2 09:00:00 2026\nSubject: one\n\n>From the start\n>>From deeper\nFrom inside a paragraph\n\nFrom b@example.org Tue Mar  3 09:00:00 2026\nSubject: two\n\nbody\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "file:/m#1");
        assert_eq!(
            got[0].1,
            "Subject: one\n\nFrom the start\n>From deeper\nFrom inside a paragraph\n"
        );
        assert_eq!(got[1].1, "Subject: two\n\nbody\n");
    }

    #[test]
    fn mbox_oversized_message_is_hashed_not_kept() {
        let (tx, rx) = sync_channel(16);
        let bad = AtomicU64::new(0);
        let text = format!(
            "From x Mon Mar  2 09:00:00 2026\nSubject: big\n\n{}\n",
            "y".repeat(100)
        );
        assert!(
            read_mbox(
                Path::new("/m"),
                text.as_bytes(),
                DateTime::<Utc>::default(),
                &tx,
                50,
                &bad
            )
            .is_ok()
        );
        drop(tx);
        let items: Vec<Item> = rx.iter().collect();
        assert!(matches!(items.as_slice(), [Item::TooLarge { size, .. }] if *size > 50));
    }

    #[test]
    fn from_line_dates() {
        let t = from_line_time(b"From a@example.org Mon Mar  2 09:00:00 2026\n");
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-03-02T09:00:00+00:00".into())
        );
        assert_eq!(from_line_time(b"From a@example.org\n"), None);
    }
}
