//! `bounced run`: sources -> workers -> one writer -> acknowledgements.
//!
//! ```text
//! Maildir / IMAP sources ──Incoming──► bounded queue ──► workers (spawn_blocking: read, hash,
//!   analyze) ──Prepared──► bounded queue ──► writer: one transaction per batch ──► Ack per message
//! ```
//!
//! Every queue is bounded, so a slow database slows the sources down instead of filling memory. A
//! message is acknowledged at its source only after the transaction holding it has committed, and
//! recording is idempotent on the message's SHA-256: a crash anywhere means harmless reprocessing,
//! never loss and never double counting. On shutdown the sources stop taking messages, the workers
//! and the writer drain what is in flight, and the run ends within the grace period.

use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DaemonConfig, ImapConfig, MaildirConfig, Secret};
use crate::error::ReadError;
use crate::report::ReadOptions;
use crate::source::imap::ImapSource;
use crate::source::maildir::{MaildirError, MaildirSource};
use crate::source::{Ack, Disposition, Incoming, Payload};
use crate::store::{Outcome, Prepared, Store, StoreError};
use crate::{Analysis, Classifier};

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most messages per transaction.
    pub batch_size: usize,
    /// Longest wait for more messages before writing a partial batch.
    pub batch_delay: Duration,
    /// Parse-and-classify workers.
    pub workers: usize,
    /// Capacity of the queue between sources and workers.
    pub queue: usize,
    /// Reader options, including the size limit.
    pub read: ReadOptions,
    /// Longest drain after the shutdown signal.
    pub shutdown_grace: Duration,
    /// How often the summary line is logged.
    pub summary_interval: Duration,
}

impl Settings {
    /// The settings a `[daemon]` section describes.
    pub fn from_config(c: &DaemonConfig) -> Settings {
        let workers = match c.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Settings {
            batch_size: c.batch_size,
            batch_delay: c.batch_delay.0,
            workers,
            queue: c.queue,
            read: ReadOptions {
                max_size: c.max_message_size,
                verp_separator: c.verp_separator,
            },
            shutdown_grace: c.shutdown_grace.0,
            summary_interval: c.summary_interval.0,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&DaemonConfig::default())
    }
}

/// The sources of one run.
#[derive(Debug, Default)]
pub struct Sources {
    /// Maildir folders.
    pub maildirs: Vec<MaildirConfig>,
    /// IMAP mailboxes, each with its password already read.
    pub imaps: Vec<(ImapConfig, Secret)>,
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A Maildir source could not start.
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// The database failed in a way retrying cannot fix.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Draining took longer than the grace period; unacknowledged messages will be read again.
    #[error(
        "shutdown took longer than the {0:?} grace period; messages not yet acknowledged will be read again on the next start"
    )]
    GraceExpired(Duration),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages taken from the sources and prepared.
    pub received: u64,
    /// Messages recorded for the first time.
    pub recorded: u64,
    /// Messages found already recorded (a redelivery, or reprocessing after a crash).
    pub duplicates: u64,
    /// Messages recorded with an error and moved to quarantine.
    pub quarantined: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Messages acknowledged at their source.
    pub acked: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    recorded: AtomicU64,
    duplicates: AtomicU64,
    quarantined: AtomicU64,
    commits: AtomicU64,
    acked: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Summary {
        Summary {
            received: self.received.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            quarantined: self.quarantined.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
        }
    }
}

/// A prepared message with what to do with it after the commit.
struct Ready {
    prepared: Prepared,
    disposition: Disposition,
    ack: Ack,
}

/// Live counts of a running daemon, for benchmarks and tests that wait on progress.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counters>);

impl Progress {
    /// The counts so far.
    pub fn snapshot(&self) -> Summary {
        self.0.snapshot()
    }
}

/// Runs the daemon until `shutdown` completes (or a source fails), then drains and returns.
/// `on_ready` is called once every source is watching (systemd's READY=1).
pub async fn run(
    settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    sources: Sources,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<Summary, DaemonError> {
    let progress = Progress::default();
    run_observed(
        settings, store, classifier, sources, shutdown, on_ready, progress,
    )
    .await
}

/// [`run`], counting into `progress` so the caller can watch it.
pub async fn run_observed(
    settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    sources: Sources,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
    progress: Progress,
) -> Result<Summary, DaemonError> {
    let cancel = CancellationToken::new();
    let counters = progress.0;
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(settings.queue.max(1));
    let (out_tx, out_rx) = mpsc::channel::<Ready>(settings.batch_size.max(1) * 2);

    // Sources: a failure to start is an error of the whole run.
    let mut source_tasks: JoinSet<Result<(), DaemonError>> = JoinSet::new();
    let mut readies = Vec::new();
    for m in &sources.maildirs {
        let src = MaildirSource::new(m)?;
        let (r_tx, r_rx) = tokio::sync::oneshot::channel();
        readies.push(r_rx);
        let tx = in_tx.clone();
        let c = cancel.clone();
        source_tasks.spawn(async move { src.run(tx, c, Some(r_tx)).await.map_err(Into::into) });
    }
    for (cfg, secret) in sources.imaps {
        let src = ImapSource::new(cfg, secret, store.clone(), settings.read.max_size);
        let tx = in_tx.clone();
        let c = cancel.clone();
        source_tasks.spawn(async move {
            src.run(tx, c).await;
            Ok(())
        });
    }
    drop(in_tx);

    // Workers share one receiver; each message is prepared on the blocking pool.
    let in_rx = Arc::new(Mutex::new(in_rx));
    let mut workers = JoinSet::new();
    for _ in 0..settings.workers.max(1) {
        let rx = in_rx.clone();
        let tx = out_tx.clone();
        let classifier = classifier.clone();
        let opts = settings.read.clone();
        let counters = counters.clone();
        workers.spawn(async move {
            // Take what is waiting (up to a few dozen) in one go: one hand-off to the blocking
            // pool per chunk rather than per message.
            const CHUNK: usize = 32;
            loop {
                let mut items = Vec::with_capacity(CHUNK);
                {
                    let mut rx = rx.lock().await;
                    let Some(first) = rx.recv().await else { break };
                    items.push(first);
                    while items.len() < CHUNK {
                        match rx.try_recv() {
                            Ok(i) => items.push(i),
                            Err(_) => break,
                        }
                    }
                }
                let classifier = classifier.clone();
                let opts = opts.clone();
                let prepared = tokio::task::spawn_blocking(move || {
                    items
                        .into_iter()
                        .filter_map(|i| prepare(i, &classifier, &opts))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_else(|e| {
                    // Reading never panics by design; if it did, these messages stay unacknowledged
                    // and are read again on the next scan or connection.
                    tracing::error!(error = %e, "a worker failed; its messages will be read again");
                    Vec::new()
                });
                for ready in prepared {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if tx.send(ready).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(out_tx);

    let writer = tokio::spawn(writer(
        store.clone(),
        out_rx,
        settings.batch_size.max(1),
        settings.batch_delay,
        counters.clone(),
    ));

    let summary_task = {
        let counters = counters.clone();
        let every = settings.summary_interval;
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut last = counters.snapshot();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        let now = counters.snapshot();
                        tracing::info!(
                            received = now.received - last.received,
                            recorded = now.recorded - last.recorded,
                            duplicates = now.duplicates - last.duplicates,
                            quarantined = now.quarantined - last.quarantined,
                            total_recorded = now.recorded,
                            "summary for the last {:?}", every
                        );
                        last = now;
                    }
                }
            }
        })
    };

    for r in readies {
        let _ = r.await;
    }
    on_ready();
    tracing::info!(workers = settings.workers, "running");

    let mut failure: Option<DaemonError> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down: draining in-flight messages");
                break;
            }
            done = source_tasks.join_next(), if !source_tasks.is_empty() => {
                if let Some(Ok(Err(e))) = done {
                    tracing::error!(error = %e, "a source failed; stopping");
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    cancel.cancel();
    let drain = async {
        while source_tasks.join_next().await.is_some() {}
        while workers.join_next().await.is_some() {}
        writer.await.ok().and_then(Result::err)
    };
    let grace = settings.shutdown_grace;
    let outcome = tokio::time::timeout(grace, drain).await;
    summary_task.abort();
    let summary = counters.snapshot();
    tracing::info!(
        received = summary.received,
        recorded = summary.recorded,
        duplicates = summary.duplicates,
        quarantined = summary.quarantined,
        acked = summary.acked,
        "stopped"
    );
    if let Some(e) = failure {
        return Err(e);
    }
    match outcome {
        Err(_) => Err(DaemonError::GraceExpired(grace)),
        Ok(Some(e)) => Err(e.into()),
        Ok(None) => Ok(summary),
    }
}

/// Reads (when needed), hashes and analyzes one message; `None` when it vanished or cannot be read.
fn prepare(item: Incoming, classifier: &Classifier, opts: &ReadOptions) -> Option<Ready> {
    let Incoming {
        source,
        received_at,
        payload,
        ack,
    } = item;
    let prepared = match payload {
        Payload::Bytes(bytes) if bytes.len() > opts.max_size => too_large(
            source,
            received_at,
            bytes.len(),
            opts.max_size,
            &hash(&bytes),
        ),
        Payload::Bytes(bytes) => Prepared::analyze(source, received_at, &bytes, classifier, opts),
        Payload::TooLarge { size, key } => {
            let mut h = Sha256::new();
            h.update(b"too-large:");
            h.update(key.as_bytes());
            too_large(
                source,
                received_at,
                size,
                opts.max_size,
                &hex(&h.finalize()),
            )
        }
        Payload::File(path) => match read_file(&path, opts.max_size) {
            Ok(FileRead::Whole(bytes, mtime)) => Prepared::analyze(
                source,
                mtime.unwrap_or(received_at),
                &bytes,
                classifier,
                opts,
            ),
            Ok(FileRead::TooLarge(size, key, mtime)) => too_large(
                source,
                mtime.unwrap_or(received_at),
                size,
                opts.max_size,
                &key,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "gone before it was read");
                return None;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read; will retry on the next scan");
                return None;
            }
        },
    };
    let disposition = match &prepared.analysis.error {
        Some(e) => Disposition::Quarantine(e.to_string()),
        None => Disposition::Processed,
    };
    Some(Ready {
        prepared,
        disposition,
        ack,
    })
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

fn hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A message over the limit: recorded as an error without its content, keyed by `sha256`.
fn too_large(
    source: String,
    received_at: DateTime<Utc>,
    size: usize,
    limit: usize,
    sha256: &str,
) -> Prepared {
    let analysis = Analysis {
        kind: "error",
        reader: "none",
        bounces: Vec::new(),
        error: Some(ReadError::TooLarge { size, limit }),
        original: None,
        verp: None,
    };
    let mut p = Prepared::new(source, received_at, b"", analysis);
    p.sha256 = sha256.to_owned();
    p.raw_size = size;
    p
}

enum FileRead {
    Whole(Vec<u8>, Option<DateTime<Utc>>),
    /// Size, idempotency key, modification time.
    TooLarge(usize, String, Option<DateTime<Utc>>),
}

/// Reads a message file whole when its size (from the metadata, before any byte is read) is within
/// `max`; a larger file is never read: its key is derived from its Maildir name and size, so that an
/// oversized message costs neither memory nor a pass over its bytes.
fn read_file(path: &Path, max: usize) -> std::io::Result<FileRead> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mtime = meta.modified().ok().map(DateTime::<Utc>::from);
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > max {
        return Ok(FileRead::TooLarge(len, oversized_key(path, len), mtime));
    }
    let mut buf = Vec::with_capacity(len);
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    (&mut f).take(cap).read_to_end(&mut buf)?;
    if buf.len() <= max {
        return Ok(FileRead::Whole(buf, mtime));
    }
    // It grew past the limit after the stat: what was read is dropped, the rest never read.
    let size = usize::try_from(f.metadata()?.len())
        .unwrap_or(usize::MAX)
        .max(buf.len());
    Ok(FileRead::TooLarge(size, oversized_key(path, size), mtime))
}

/// The idempotency key of an oversized file: its Maildir unique name (without flags, so the key
/// survives a rename into `cur/`) and its size.
fn oversized_key(path: &Path, size: usize) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.rsplit_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let mut h = Sha256::new();
    h.update(b"too-large:");
    h.update(base.as_bytes());
    h.update(b":");
    h.update(size.to_string().as_bytes());
    hex(&h.finalize())
}

/// Collects prepared messages into batches, records each batch in one transaction, then
/// acknowledges its messages. A failing write is retried (with backoff) and never acknowledged.
async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Ready>,
    batch_size: usize,
    batch_delay: Duration,
    counters: Arc<Counters>,
) -> Result<(), StoreError> {
    let (ack_tx, ack_rx) = mpsc::channel(2);
    let acker = tokio::spawn(acknowledge(ack_rx, counters.clone()));
    let mut batch: Vec<Ready> = Vec::with_capacity(batch_size);
    let mut prepared: Vec<Prepared> = Vec::with_capacity(batch_size);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + batch_delay;
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let mut acks = Vec::with_capacity(batch.len());
        for r in batch.drain(..) {
            prepared.push(r.prepared);
            acks.push((r.ack, r.disposition));
        }
        let started = Instant::now();
        let outcomes = record_with_retry(&store, &prepared).await;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        for ((p, o), (_, d)) in prepared.iter().zip(&outcomes).zip(&acks) {
            let (outcome, bounces) = match o {
                Outcome::New { bounces, .. } => {
                    counters.recorded.fetch_add(1, Ordering::Relaxed);
                    ("new", *bounces)
                }
                Outcome::Duplicate { .. } => {
                    counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    ("duplicate", 0)
                }
            };
            if matches!(d, Disposition::Quarantine(_)) {
                counters.quarantined.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(
                source = %p.source,
                kind = p.analysis.kind,
                outcome,
                bounces,
                quarantine = matches!(d, Disposition::Quarantine(_)),
                "recorded"
            );
        }
        tracing::trace!(messages = acks.len(), elapsed = ?started.elapsed(), "batch committed");
        // The acknowledgements of this batch overlap with recording the next one.
        if ack_tx.send(acks).await.is_err() {
            break;
        }
        prepared.clear();
    }
    drop(ack_tx);
    let _ = acker.await;
    Ok(())
}

/// Acknowledges committed batches in order, off the reactor (a Maildir acknowledgement is a rename).
async fn acknowledge(mut rx: mpsc::Receiver<Vec<(Ack, Disposition)>>, counters: Arc<Counters>) {
    while let Some(acks) = rx.recv().await {
        let n = acks.len() as u64;
        let _ = tokio::task::spawn_blocking(move || {
            for (ack, d) in acks {
                ack.ack(d);
            }
        })
        .await;
        counters.acked.fetch_add(n, Ordering::Relaxed);
    }
}

/// Records a batch, retrying with capped backoff while the database refuses (locked, full disk):
/// the pipeline stalls behind it, which is the backpressure.
async fn record_with_retry(store: &Store, batch: &[Prepared]) -> Vec<Outcome> {
    let mut wait = Duration::from_millis(100);
    loop {
        match store.record(batch, Utc::now()).await {
            Ok(o) => return o,
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), retry_in = ?wait, "cannot record a batch; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}
