//! The one ingest pipeline, shared by `bounced run` and `bounced import`:
//!
//! ```text
//! sources ──Incoming──► bounded queue ──► N worker threads (load, hash, compress,
//!   report::read + classify) ──Ready──► bounded queue ──► one writer: a batch per transaction,
//!   with the sources' positions ──► acks, in commit order, after the commit
//! ```
//!
//! Every queue is bounded, so a slow database slows the sources down instead of filling memory. A
//! message is acknowledged at its source only after the transaction holding it has committed, and
//! recording is idempotent on the message's SHA-256: a crash anywhere means harmless reprocessing,
//! never loss and never double counting. A write that can heal (a lock, a full disk, an I/O error)
//! is retried with capped backoff while [`Settings::retry_for`] allows; one that cannot (a damaged
//! or newer database, a read-only file) stops the run. Any stage that fails stops the others: the
//! sources are cancelled, the queues close, and [`Pipeline::run`] returns the error. On shutdown the
//! sources stop taking messages, the workers and the writer drain what is in flight, and the run
//! ends within the grace period.
//!
//! [`Metrics`] is the pipeline's live state (counts, queue depth, commit durations, latency, each
//! source's state), cheap to read from anywhere. [`map_ordered`] is the worker stage for commands
//! that print rather than record (`classify`, `eval`): parallel, in input order, with a bounded
//! window.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::DaemonConfig;
use crate::error::ReadError;
use crate::report::{Kind, ReadOptions};
use crate::source::files::FilesSource;
use crate::source::imap::ImapSource;
use crate::source::maildir::{self, MaildirError, MaildirSource};
use crate::source::{
    Ack, Disposition, Incoming, Loaded, OversizeId, Payload, PositionUpdate, Positions,
    SourceState, States,
};
use crate::store::{Outcome, Prepared, Store, StoreError};
use crate::{Analysis, BounceType, Classifier, analyze};

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
    /// How long a write that can heal is retried before the run stops with it; `None` retries for
    /// as long as the run lasts (the daemon: the pipeline stalls, which is the backpressure).
    pub retry_for: Option<Duration>,
}

impl Settings {
    /// The settings a `[daemon]` section describes.
    pub fn from_config(c: &DaemonConfig) -> Settings {
        Settings {
            batch_size: c.batch_size,
            batch_delay: c.batch_delay.0,
            workers: jobs(c.workers),
            queue: c.queue,
            read: ReadOptions {
                max_size: c.max_message_size,
                verp_separator: c.verp_separator,
            },
            shutdown_grace: c.shutdown_grace.0,
            summary_interval: c.summary_interval.0,
            retry_for: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&DaemonConfig::default())
    }
}

/// `n` workers, or one per CPU core when `n` is 0.
pub fn jobs(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// One source of a run.
#[derive(Debug)]
pub enum Source {
    /// A Maildir folder, watched until shutdown.
    Maildir(MaildirSource),
    /// An IMAP mailbox, read until shutdown.
    Imap(Box<ImapSource>),
    /// Files, directories, Maildirs, mbox files or standard input, read once.
    Files(FilesSource),
}

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A Maildir source could not start.
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// The database failed in a way retrying cannot fix (or for longer than retries were allowed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Draining took longer than the grace period; unacknowledged messages will be read again.
    #[error(
        "shutdown took longer than the {0:?} grace period; messages not yet acknowledged will be read again on the next start"
    )]
    GraceExpired(Duration),
}

/// Whether a failed write may succeed if tried again (see [`StoreError::can_heal`]).
pub fn can_heal(e: &StoreError) -> bool {
    e.can_heal()
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
    /// Messages recorded with an error (unreadable or too large; quarantined where the source can),
    /// duplicates included.
    pub quarantined: u64,
    /// New messages recorded with an error.
    pub errors: u64,
    /// New messages that are not bounces.
    pub not_bounces: u64,
    /// Inputs that could not be read at all (not recorded; named in a warning).
    pub unreadable: u64,
    /// Bounce rows of the new messages, by type: hard, soft, complaint, none.
    pub bounces: [u64; 4],
    /// Recipients suppressed by these messages.
    pub suppressed: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Messages acknowledged at their source.
    pub acked: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    acked: AtomicU64,
    commit_micros_last: AtomicU64,
    commit_micros_max: AtomicU64,
    latency_millis_max: AtomicU64,
}

/// Upper bounds of the batch commit duration buckets, in seconds.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the delivery-to-commit latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// A distribution of durations in fixed buckets, updated without a lock.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then one for what is above every bound.
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(us, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Distribution {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        Distribution {
            bounds: self.bounds,
            cumulative,
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram's state: cumulative counts per upper bound, as Prometheus exposes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// The buckets' upper bounds, in seconds.
    pub bounds: &'static [f64],
    /// For each bound, how many samples were at most that; the last entry counts every sample.
    pub cumulative: Vec<u64>,
    /// The sum of every sample.
    pub sum: Duration,
}

impl Distribution {
    /// How many samples there were.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

/// What the writer and the workers tally under one lock (once per batch, or per message for what
/// is in flight).
#[derive(Debug, Default)]
struct Tallies {
    /// Committed messages by kind and outcome (`new`, `duplicate`).
    messages: BTreeMap<(&'static str, &'static str), u64>,
    /// Bounce results of new messages, by type and reason.
    bounces: BTreeMap<(&'static str, &'static str), u64>,
    /// Recipients suppressed by new messages, by cause.
    suppressed: BTreeMap<&'static str, u64>,
    /// Errors by kind.
    errors: BTreeMap<String, u64>,
    /// Messages read by a worker and not yet committed: per source, arrival time (unix ms) to count.
    in_flight: HashMap<Arc<str>, BTreeMap<i64, u32>>,
}

/// The live state of a pipeline, shared by its stages and readable from anywhere (a summary line,
/// a benchmark, the `/metrics` route): the one record of what the pipeline did.
#[derive(Debug, Clone)]
pub struct Metrics {
    counters: Arc<Counters>,
    tallies: Arc<Mutex<Tallies>>,
    commit: Arc<Histogram>,
    latency: Arc<Histogram>,
    queue: Arc<Mutex<Option<mpsc::WeakSender<Incoming>>>>,
    states: States,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            counters: Arc::default(),
            tallies: Arc::default(),
            commit: Arc::new(Histogram::new(COMMIT_BUCKETS)),
            latency: Arc::new(Histogram::new(LATENCY_BUCKETS)),
            queue: Arc::default(),
            states: States::default(),
        }
    }
}

/// How long batch commits took, and how long messages waited from their source to the commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Sum of the commit durations, to divide by [`Summary::commits`].
    pub commit_total: Duration,
    /// The last commit's duration.
    pub commit_last: Duration,
    /// The longest commit.
    pub commit_max: Duration,
    /// Sum over committed messages of the time from their arrival at the source (a file's
    /// modification time, an IMAP INTERNALDATE) to the commit.
    pub latency_total: Duration,
    /// The longest such wait.
    pub latency_max: Duration,
}

/// One source in [`Figures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFigures {
    /// The source's label (`imap:<name>/<mailbox>`, a Maildir's name or path, `import`).
    pub label: String,
    /// Its state, connection, last IDLE and reconnections.
    pub state: SourceState,
    /// Age of its oldest message read and not yet committed, counted from its arrival at the
    /// source; zero when nothing of it is in flight.
    pub lag: Duration,
}

/// Everything [`Metrics`] holds at one moment, for a metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Committed messages: kind, outcome (`new`, `duplicate`), count.
    pub messages: Vec<(&'static str, &'static str, u64)>,
    /// Bounce results of new messages: type, reason, count.
    pub bounces: Vec<(&'static str, &'static str, u64)>,
    /// Recipients suppressed by new messages: cause, count.
    pub suppressed: Vec<(&'static str, u64)>,
    /// Errors: kind, count.
    pub errors: Vec<(String, u64)>,
    /// Messages waiting between the sources and the workers.
    pub queue: usize,
    /// Durations of the batch commits.
    pub commit: Distribution,
    /// Time from a message's arrival at its source to the commit of its result.
    pub delivery_to_commit: Distribution,
    /// Each source, by label.
    pub sources: Vec<SourceFigures>,
}

/// Error kinds the pipeline counts (see [`Metrics::error`]).
pub mod error_kind {
    /// A batch write failed in a way that can heal; it is retried.
    pub const STORE_RETRY: &str = "store_retry";
    /// A batch write failed for good; the run stops.
    pub const STORE: &str = "store";
    /// An input could not be read at all (named in a warning, retried at the next scan).
    pub const READ: &str = "read";
    /// A worker failed on a message, which stays unacknowledged.
    pub const WORKER: &str = "worker";
}

impl Metrics {
    fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Summary {
        let c = &self.counters;
        let t = self.tallies();
        let mut s = Summary {
            received: c.received.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            commits: self.commit.snapshot().count(),
            unreadable: t.errors.get(error_kind::READ).copied().unwrap_or(0),
            ..Summary::default()
        };
        for ((kind, outcome), n) in &t.messages {
            let new = *outcome == "new";
            if new {
                s.recorded += n;
            } else {
                s.duplicates += n;
            }
            if *kind == Kind::Error.as_str() {
                s.quarantined += n;
                if new {
                    s.errors += n;
                }
            } else if *kind == Kind::NotBounce.as_str() && new {
                s.not_bounces += n;
            }
        }
        for ((ty, _), n) in &t.bounces {
            let i = [
                BounceType::Hard,
                BounceType::Soft,
                BounceType::Complaint,
                BounceType::None,
            ]
            .iter()
            .position(|b| b.as_str() == *ty)
            .unwrap_or(3);
            s.bounces[i] += n;
        }
        s.suppressed = t.suppressed.values().sum();
        s
    }

    /// Commit durations and source-to-commit latency so far.
    pub fn timings(&self) -> Timings {
        let c = &self.counters;
        let us = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        let ms = |a: &AtomicU64| Duration::from_millis(a.load(Ordering::Relaxed));
        Timings {
            commit_total: self.commit.snapshot().sum,
            commit_last: us(&c.commit_micros_last),
            commit_max: us(&c.commit_micros_max),
            latency_total: self.latency.snapshot().sum,
            latency_max: ms(&c.latency_millis_max),
        }
    }

    /// Everything at once, for a metrics endpoint; source lag is measured at `now`.
    pub fn figures(&self, now: DateTime<Utc>) -> Figures {
        let (messages, bounces, suppressed, errors, oldest) = {
            let t = self.tallies();
            let oldest: HashMap<String, i64> = t
                .in_flight
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), *v.keys().next()?)))
                .collect();
            (
                t.messages.iter().map(|((k, o), n)| (*k, *o, *n)).collect(),
                t.bounces.iter().map(|((ty, r), n)| (*ty, *r, *n)).collect(),
                t.suppressed.iter().map(|(c, n)| (*c, *n)).collect(),
                t.errors.iter().map(|(k, n)| (k.clone(), *n)).collect(),
                oldest,
            )
        };
        let sources = self
            .states
            .details()
            .into_iter()
            .map(|(label, state)| {
                let lag = oldest.get(&label).map_or(Duration::ZERO, |ms| {
                    let age = now.timestamp_millis().saturating_sub(*ms);
                    Duration::from_millis(u64::try_from(age).unwrap_or(0))
                });
                SourceFigures { label, state, lag }
            })
            .collect();
        Figures {
            messages,
            bounces,
            suppressed,
            errors,
            queue: self.queue_depth(),
            commit: self.commit.snapshot(),
            delivery_to_commit: self.latency.snapshot(),
            sources,
        }
    }

    /// Messages waiting between the sources and the workers now.
    pub fn queue_depth(&self) -> usize {
        let q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.as_ref()
            .and_then(mpsc::WeakSender::upgrade)
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// What each source is doing now, by label.
    pub fn sources(&self) -> States {
        self.states.clone()
    }

    /// Counts an error of `kind` (see [`error_kind`]; other parts of the program add their own).
    pub fn error(&self, kind: &str) {
        self.errors(kind, 1);
    }

    fn errors(&self, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut t = self.tallies();
        match t.errors.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                t.errors.insert(kind.to_owned(), n);
            }
        }
    }

    /// Counts inputs that could not be read at all (already named in a warning).
    pub fn count_unreadable(&self, n: u64) {
        self.errors(error_kind::READ, n);
    }

    fn committed(&self, took: Duration) {
        let c = &self.counters;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit.record(took);
        c.commit_micros_last.store(us, Ordering::Relaxed);
        c.commit_micros_max.fetch_max(us, Ordering::Relaxed);
    }

    /// A worker has read a message of `origin` that arrived at `at`: in flight until committed.
    fn taken(&self, origin: &Arc<str>, at: DateTime<Utc>) {
        let mut t = self.tallies();
        *t.in_flight
            .entry(origin.clone())
            .or_default()
            .entry(at.timestamp_millis())
            .or_default() += 1;
    }

    /// Counts a committed batch: each message's kind and outcome, its bounces and suppressions, its
    /// time from arrival to `now`; and takes it out of what is in flight.
    fn count_batch(&self, batch: &[(Arc<str>, &Prepared, &Outcome)], now: DateTime<Utc>) {
        let mut t = self.tallies();
        for (origin, p, o) in batch {
            let waited = (now - p.received_at).to_std().unwrap_or(Duration::ZERO);
            self.latency.record(waited);
            let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            self.counters
                .latency_millis_max
                .fetch_max(ms, Ordering::Relaxed);
            if let Some(times) = t.in_flight.get_mut(origin) {
                let at = p.received_at.timestamp_millis();
                if let Some(n) = times.get_mut(&at) {
                    *n -= 1;
                    if *n == 0 {
                        times.remove(&at);
                    }
                }
            }
            let kind = p.analysis.kind.as_str();
            let outcome = match o {
                Outcome::New { changes, .. } => {
                    for b in &p.analysis.bounces {
                        *t.bounces
                            .entry((b.bounce_type.as_str(), b.reason.as_str()))
                            .or_default() += 1;
                    }
                    for ch in changes {
                        if ch.to == crate::policy::State::Suppressed {
                            *t.suppressed.entry(ch.cause.as_str()).or_default() += 1;
                        }
                    }
                    "new"
                }
                Outcome::Duplicate { .. } => "duplicate",
            };
            *t.messages.entry((kind, outcome)).or_default() += 1;
        }
    }
}

/// A prepared message with what to do with it after the commit.
struct Ready {
    prepared: Prepared,
    disposition: Disposition,
    ack: Ack,
    /// The label of the source it came from.
    origin: Arc<str>,
}

/// A pipeline being set up: sources that keep a position get [`Pipeline::positions`] before
/// [`Pipeline::run`] starts them.
#[derive(Debug)]
pub struct Pipeline {
    settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    metrics: Metrics,
    positions: Positions,
    positions_rx: mpsc::Receiver<PositionUpdate>,
}

impl Pipeline {
    /// A pipeline writing into `store`, classifying with `classifier`, counting into `metrics`.
    pub fn new(
        settings: Settings,
        store: Store,
        classifier: Arc<Classifier>,
        metrics: Metrics,
    ) -> Pipeline {
        let (positions, positions_rx) = Positions::channel();
        Pipeline {
            settings,
            store,
            classifier,
            metrics,
            positions,
            positions_rx,
        }
    }

    /// The handle through which sources save their positions in the writer's transactions.
    pub fn positions(&self) -> Positions {
        self.positions.clone()
    }

    /// Runs `sources` until they all finish, `shutdown` completes or a stage fails; then drains and
    /// returns. `on_ready` is called once every source is watching (systemd's READY=1).
    pub async fn run(
        self,
        sources: Vec<Source>,
        shutdown: impl Future<Output = ()>,
        on_ready: impl FnOnce(),
    ) -> Result<Summary, PipelineError> {
        let Pipeline {
            settings,
            store,
            classifier,
            metrics,
            positions,
            positions_rx,
        } = self;
        drop(positions);
        let cancel = CancellationToken::new();
        let (in_tx, in_rx) = mpsc::channel::<Incoming>(settings.queue.max(1));
        let (out_tx, out_rx) = mpsc::channel::<Ready>(settings.batch_size.max(1) * 2);
        *metrics
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(in_tx.downgrade());

        let mut source_tasks: JoinSet<Result<(), PipelineError>> = JoinSet::new();
        let mut readies = Vec::new();
        for source in sources {
            let tx = in_tx.clone();
            let c = cancel.clone();
            let states = metrics.states.clone();
            match source {
                Source::Maildir(src) => {
                    let (r_tx, r_rx) = tokio::sync::oneshot::channel();
                    readies.push(r_rx);
                    source_tasks.spawn(async move {
                        src.run(tx, c, Some(r_tx), states).await.map_err(Into::into)
                    });
                }
                Source::Imap(src) => {
                    source_tasks.spawn(async move {
                        src.run(tx, c, states).await;
                        Ok(())
                    });
                }
                Source::Files(src) => {
                    source_tasks.spawn(async move {
                        src.run(tx, c, states).await;
                        Ok(())
                    });
                }
            }
        }
        drop(in_tx);

        let workers = spawn_workers(&settings, in_rx, out_tx, classifier, &metrics);
        let mut writer = tokio::spawn(writer(
            store,
            out_rx,
            positions_rx,
            settings.clone(),
            metrics.clone(),
        ));
        let summary_task = spawn_summary(&metrics, settings.summary_interval, &cancel);

        let mut failure: Option<PipelineError> = None;
        let mut written: Option<Result<(), StoreError>> = None;
        let mut ready_wait = std::pin::pin!(async {
            for r in readies {
                let _ = r.await;
            }
        });
        let mut on_ready = Some(on_ready);
        let mut finished = false;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut ready_wait, if on_ready.is_some() => {
                    if let Some(f) = on_ready.take() {
                        f();
                    }
                    tracing::info!(workers = settings.workers, "running");
                }
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
                w = &mut writer => {
                    written = Some(w.unwrap_or(Ok(())));
                    break;
                }
                else => break,
            }
            if source_tasks.is_empty() && on_ready.is_none() {
                // Every source has finished (an import): what is in flight drains below, with no
                // time limit, as nothing asked it to stop.
                finished = true;
                break;
            }
        }
        cancel.cancel();
        let drain = async {
            while source_tasks.join_next().await.is_some() {}
            let _ = workers.await;
            match written {
                Some(w) => w,
                None => writer.await.unwrap_or(Ok(())),
            }
        };
        let grace = settings.shutdown_grace;
        let outcome = if finished {
            Ok(drain.await)
        } else {
            tokio::time::timeout(grace, drain).await
        };
        summary_task.abort();
        let summary = metrics.snapshot();
        tracing::info!(
            received = summary.received,
            recorded = summary.recorded,
            duplicates = summary.duplicates,
            quarantined = summary.quarantined,
            acked = summary.acked,
            "stopped"
        );
        match (failure, outcome) {
            (_, Ok(Err(e))) => Err(e.into()),
            (Some(e), _) => Err(e),
            (None, Err(_)) => Err(PipelineError::GraceExpired(grace)),
            (None, Ok(Ok(()))) => Ok(summary),
        }
    }
}

/// `bounced import`: `inputs` (files, directories, Maildirs, mbox files, `-` for standard input) read
/// once through the pipeline into `store`, with nothing to acknowledge. The database's own files
/// (`-wal`, `-shm`, `-journal` too) are skipped by identity wherever the walk meets them. Inputs that
/// cannot be read are named in warnings and counted in [`Summary::unreadable`].
pub async fn import(
    settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    inputs: impl Into<crate::source::files::Inputs>,
    shutdown: impl Future<Output = ()>,
    metrics: Metrics,
) -> Result<Summary, PipelineError> {
    let mut files = FilesSource::new(inputs, settings.read.max_size);
    let db = store.path().to_path_buf();
    files.skip_file(&db);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = db.clone().into_os_string();
        companion.push(suffix);
        files.skip_file(std::path::Path::new(&companion));
    }
    let unreadable = files.unreadable();
    let pipeline = Pipeline::new(settings, store, classifier, metrics.clone());
    let result = pipeline
        .run(vec![Source::Files(files)], shutdown, || {})
        .await;
    metrics.count_unreadable(unreadable.load(Ordering::Relaxed));
    result.map(|_| metrics.snapshot())
}

/// Starts the workers: dedicated threads (a fixed few, so the regex caches and malloc arenas they
/// build stay as few), each taking one message at a time from the shared queue. The returned future
/// completes when every one has stopped: when the queue is closed and empty, or the writer is gone.
fn spawn_workers(
    settings: &Settings,
    in_rx: mpsc::Receiver<Incoming>,
    out_tx: mpsc::Sender<Ready>,
    classifier: Arc<Classifier>,
    metrics: &Metrics,
) -> impl Future<Output = ()> + use<> {
    let in_rx = Arc::new(Mutex::new(in_rx));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    for i in 0..settings.workers.max(1) {
        let rx = Arc::clone(&in_rx);
        let tx = out_tx.clone();
        let classifier = Arc::clone(&classifier);
        let opts = settings.read.clone();
        let metrics = metrics.clone();
        let done = done_tx.clone();
        let started = std::thread::Builder::new()
            .name(format!("bounced-worker-{i}"))
            .spawn(move || {
                let _done = done;
                // What is waiting is taken a few at a time: one turn of the lock per chunk.
                const CHUNK: usize = 8;
                let mut items = Vec::with_capacity(CHUNK);
                'work: loop {
                    match rx.lock() {
                        Ok(mut rx) => {
                            let Some(first) = rx.blocking_recv() else {
                                break;
                            };
                            items.push(first);
                            while items.len() < CHUNK {
                                match rx.try_recv() {
                                    Ok(i) => items.push(i),
                                    Err(_) => break,
                                }
                            }
                        }
                        Err(_) => break,
                    }
                    for item in items.drain(..) {
                        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            prepare(item, &classifier, &opts, &metrics)
                        }));
                        match ready {
                            Ok(Some(ready)) => {
                                metrics.counters.received.fetch_add(1, Ordering::Relaxed);
                                metrics.taken(&ready.origin, ready.prepared.received_at);
                                if tx.blocking_send(ready).is_err() {
                                    // The writer has stopped: so does this worker.
                                    break 'work;
                                }
                            }
                            Ok(None) => {}
                            // Reading never panics by design; if it did, the message stays
                            // unacknowledged and is read again on the next scan or connection.
                            Err(_) => {
                                metrics.error(error_kind::WORKER);
                                tracing::error!(
                                    "a worker failed on a message; it will be read again"
                                );
                            }
                        }
                    }
                }
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start a worker thread");
        }
    }
    drop(done_tx);
    async move {
        // Every worker holds a sender: the channel closes when the last one has stopped.
        let _ = done_rx.recv().await;
    }
}

/// How long no message must arrive for the work to count as paused: the next one is said at once.
const QUIET_SPELL: Duration = Duration::from_secs(2);

/// The shortest time between two summary lines that are not periodic ones.
const SUMMARY_GAP: Duration = Duration::from_secs(1);

/// Logs a summary line every `every` until cancelled, one as soon as work begins after a quiet spell
/// ([`QUIET_SPELL`] without a message), and one when such work pauses with some of it not yet said.
/// So the first message of a run, or after a pause of a few seconds, shows within a second, and the
/// end of a burst is said then, not at the end of the interval; under steady load only the
/// periodic lines are written, and the others are at least [`SUMMARY_GAP`] apart.
fn spawn_summary(
    metrics: &Metrics,
    every: Duration,
    cancel: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let metrics = metrics.clone();
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut look = tokio::time::interval(Duration::from_millis(500).min(every));
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the last line said, and when.
        let mut last = metrics.snapshot();
        let mut last_at = Instant::now();
        // The last look, when a message last arrived, and whether work began after a quiet spell
        // and is not yet said.
        let mut seen = last.received;
        let mut moved_at: Option<Instant> = None;
        let mut began = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let now = metrics.snapshot();
                    log_summary(&metrics, &last, &now, last_at.elapsed());
                    last = now;
                    last_at = Instant::now();
                    began = false;
                }
                _ = look.tick() => {
                    let now = metrics.snapshot();
                    if now.received != seen {
                        began |= moved_at.is_none_or(|t| t.elapsed() >= QUIET_SPELL);
                        moved_at = Some(Instant::now());
                        seen = now.received;
                    }
                    let paused = moved_at.is_some_and(|t| t.elapsed() >= QUIET_SPELL);
                    let unsaid = now.received != last.received && now.commits != last.commits;
                    if unsaid && (began || paused) && last_at.elapsed() >= SUMMARY_GAP {
                        log_summary(&metrics, &last, &now, last_at.elapsed());
                        last = now;
                        last_at = Instant::now();
                        began = false;
                    }
                }
            }
        }
    })
}

/// One summary line: what happened between `last` and `now`, over `span`.
fn log_summary(metrics: &Metrics, last: &Summary, now: &Summary, span: Duration) {
    tracing::info!(
        received = now.received - last.received,
        recorded = now.recorded - last.recorded,
        duplicates = now.duplicates - last.duplicates,
        quarantined = now.quarantined - last.quarantined,
        total_recorded = now.recorded,
        queue = metrics.queue_depth(),
        "summary for the last {:.0?}",
        span
    );
}

/// Loads (when needed), hashes and analyzes one message; `None` when it vanished or cannot be read.
fn prepare(
    item: Incoming,
    classifier: &Classifier,
    opts: &ReadOptions,
    metrics: &Metrics,
) -> Option<Ready> {
    let Incoming {
        source,
        origin,
        received_at,
        payload,
        ack,
    } = item;
    let loaded = match payload {
        Payload::Bytes(bytes) if bytes.len() > opts.max_size => Loaded::TooLarge(
            bytes.len(),
            OversizeId::Sha256(crate::store::sha256_hex(&bytes)),
            None,
        ),
        Payload::Bytes(bytes) => Loaded::Whole(bytes, None),
        Payload::TooLarge { size, id } => Loaded::TooLarge(size, id, None),
        Payload::File(path) => match maildir::read_file(&path, opts.max_size) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %crate::text::path(&path), "gone before it was read");
                return None;
            }
            Err(e) if let Some(why) = crate::source::not_regular(&e) => {
                match &ack {
                    Ack::Maildir(t) => t.not_regular(why),
                    _ => tracing::warn!(path = %crate::text::path(&path), "{why}"),
                }
                return None;
            }
            Err(e) => {
                tracing::warn!(path = %crate::text::path(&path), error = %e, "cannot read; will retry on the next scan");
                metrics.count_unreadable(1);
                return None;
            }
        },
    };
    let prepared = match loaded {
        Loaded::Whole(bytes, mtime) => Prepared::new(
            source,
            mtime.unwrap_or(received_at),
            &bytes,
            analyze(&bytes, classifier, opts),
        ),
        Loaded::TooLarge(size, id, mtime) => too_large(
            source,
            mtime.unwrap_or(received_at),
            size,
            opts.max_size,
            id,
        ),
    };
    let disposition = match &prepared.analysis.error {
        Some(e) => Disposition::Quarantine(e.to_string()),
        None => Disposition::Processed,
    };
    Some(Ready {
        prepared,
        disposition,
        ack,
        origin,
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

/// A message over the limit: recorded as an error without its content, keyed by `id`.
fn too_large(
    source: String,
    received_at: DateTime<Utc>,
    size: usize,
    limit: usize,
    id: OversizeId,
) -> Prepared {
    let sha256 = match id {
        OversizeId::Sha256(h) => h,
        OversizeId::Name(key) => {
            let mut h = Sha256::new();
            h.update(b"too-large:");
            h.update(key.as_bytes());
            hex(&h.finalize())
        }
    };
    let analysis = Analysis {
        kind: Kind::Error,
        reader: "none",
        bounces: Vec::new(),
        error: Some(ReadError::TooLarge { size, limit }),
        original: None,
        verp: None,
    };
    let mut p = Prepared::new(source, received_at, b"", analysis);
    p.sha256 = sha256;
    p.raw_size = size;
    p
}

/// Collects prepared messages (and the sources' positions) into batches, records each batch in one
/// transaction, then hands its acknowledgements over. Ends when both queues are closed, or with the
/// error that stopped it.
async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Ready>,
    mut positions_rx: mpsc::Receiver<PositionUpdate>,
    settings: Settings,
    metrics: Metrics,
) -> Result<(), StoreError> {
    let batch_size = settings.batch_size.max(1);
    let (ack_tx, ack_rx) = mpsc::channel(2);
    let acker = tokio::spawn(acknowledge(ack_rx, metrics.clone()));
    let mut batch: Vec<Ready> = Vec::with_capacity(batch_size);
    let mut positions: Vec<PositionUpdate> = Vec::new();
    let mut messages_open = true;
    let mut positions_open = true;
    let result = loop {
        if !messages_open && !positions_open {
            break Ok(());
        }
        tokio::select! {
            r = rx.recv(), if messages_open => match r {
                Some(r) => batch.push(r),
                None => messages_open = false,
            },
            p = positions_rx.recv(), if positions_open => match p {
                Some(p) => positions.push(p),
                None => positions_open = false,
            },
        }
        if batch.is_empty() && positions.is_empty() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + settings.batch_delay;
        while messages_open && !batch.is_empty() && batch.len() < batch_size {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(mpsc::error::TryRecvError::Disconnected) => messages_open = false,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) => messages_open = false,
                        Err(_) => break,
                    }
                }
            }
        }
        while let Ok(p) = positions_rx.try_recv() {
            positions.push(p);
        }
        // Workers finish out of order: keep the batch in arrival order for the policy.
        batch.sort_by_key(|r| r.prepared.received_at);
        let mut prepared = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut origins = Vec::with_capacity(batch.len());
        for r in batch.drain(..) {
            prepared.push(r.prepared);
            acks.push((r.ack, r.disposition));
            origins.push(r.origin);
        }
        let outcomes = match commit(&store, &prepared, &positions, &settings, &metrics).await {
            Ok(o) => o,
            Err(e) => break Err(e),
        };
        positions.clear();
        let counted: Vec<_> = origins
            .into_iter()
            .zip(&prepared)
            .zip(&outcomes)
            .map(|((origin, p), o)| (origin, p, o))
            .collect();
        metrics.count_batch(&counted, Utc::now());
        for ((p, o), (ack, d)) in prepared.iter().zip(&outcomes).zip(&acks) {
            log_recorded(p, o);
            if let Disposition::Quarantine(reason) = d {
                if matches!(ack, Ack::None) {
                    tracing::warn!(source = %p.source, error = %reason, "recorded as an error");
                } else {
                    tracing::warn!(source = %p.source, error = %reason, "recorded as an error; quarantined");
                }
            }
        }
        // The acknowledgements of this batch overlap with recording the next one.
        if ack_tx.send(acks).await.is_err() {
            break Ok(());
        }
    };
    drop(ack_tx);
    let _ = acker.await;
    result
}

/// Logs one committed message at debug.
fn log_recorded(p: &Prepared, o: &Outcome) {
    let (outcome, bounces) = match o {
        Outcome::New { bounces, .. } => ("new", *bounces),
        Outcome::Duplicate { .. } => ("duplicate", 0),
    };
    tracing::debug!(
        source = %p.source,
        kind = p.analysis.kind.as_str(),
        outcome,
        bounces,
        quarantine = p.analysis.error.is_some(),
        "recorded"
    );
}

/// Records a batch with the sources' positions, retrying a write that can heal with capped backoff
/// while the settings allow.
async fn commit(
    store: &Store,
    batch: &[Prepared],
    positions: &[PositionUpdate],
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Vec<Outcome>, StoreError> {
    let first_try = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match store
            .record_with_positions(batch, positions, Utc::now())
            .await
        {
            Ok(o) => {
                metrics.committed(started.elapsed());
                tracing::trace!(messages = batch.len(), elapsed = ?started.elapsed(), "batch committed");
                return Ok(o);
            }
            Err(e)
                if can_heal(&e)
                    && settings
                        .retry_for
                        .is_none_or(|limit| first_try.elapsed() + wait <= limit) =>
            {
                metrics.error(error_kind::STORE_RETRY);
                tracing::error!(error = %e, messages = batch.len(), retry_in = ?wait, "cannot record a batch; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                metrics.error(error_kind::STORE);
                tracing::error!(error = %e, messages = batch.len(), "cannot record a batch; stopping");
                return Err(e);
            }
        }
    }
}

/// Acknowledges committed batches in order, off the reactor (a Maildir acknowledgement is a rename).
async fn acknowledge(mut rx: mpsc::Receiver<Vec<(Ack, Disposition)>>, metrics: Metrics) {
    while let Some(acks) = rx.recv().await {
        let n = acks.len() as u64;
        let _ = tokio::task::spawn_blocking(move || {
            for (ack, d) in acks {
                ack.ack(d);
            }
        })
        .await;
        metrics.counters.acked.fetch_add(n, Ordering::Relaxed);
    }
}

/// The worker stage for commands that print rather than record: `work` runs on `jobs` threads over
/// the items that `feed` pushes, and `sink` receives the results in the order they were pushed. Items
/// travel in small chunks (one hand-off per chunk, not per item), and at most a fixed window of
/// chunks (a few per thread) is in flight, so memory does not grow with the number of items. With
/// one job everything runs on the calling thread.
pub fn map_ordered<I, O, R>(
    jobs: usize,
    work: impl Fn(I) -> O + Sync,
    mut sink: impl FnMut(O),
    feed: impl FnOnce(&mut dyn FnMut(I)) -> R,
) -> R
where
    I: Send,
    O: Send,
{
    const CHUNK: usize = 8;
    let jobs = jobs.max(1);
    if jobs == 1 {
        return feed(&mut |item| sink(work(item)));
    }
    let window = (jobs * 4) as u64;
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<I>)>(jobs);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<O>)>(jobs * 4);
    let job_rx = Mutex::new(job_rx);
    let (work, job_rx) = (&work, &job_rx);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let next = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, items)) = next else { return };
                    let out = items.into_iter().map(work).collect();
                    if done_tx.send((seq, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending: std::collections::BTreeMap<u64, Vec<O>> =
            std::collections::BTreeMap::new();
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        let mut emit = |pending: &mut std::collections::BTreeMap<u64, Vec<O>>,
                        next_out: &mut u64| {
            while let Some(outs) = pending.remove(next_out) {
                outs.into_iter().for_each(&mut sink);
                *next_out += 1;
            }
        };
        let mut chunk: Vec<I> = Vec::with_capacity(CHUNK);
        let mut dispatch = |chunk: Vec<I>,
                            pending: &mut std::collections::BTreeMap<u64, Vec<O>>,
                            next_in: &mut u64,
                            next_out: &mut u64| {
            // Keep the window: wait for the oldest results before sending more.
            while *next_in - *next_out >= window {
                match done_rx.recv() {
                    Ok((seq, o)) => {
                        pending.insert(seq, o);
                        emit(pending, next_out);
                    }
                    Err(_) => return,
                }
            }
            if job_tx.send((*next_in, chunk)).is_ok() {
                *next_in += 1;
            }
            while let Ok((seq, o)) = done_rx.try_recv() {
                pending.insert(seq, o);
            }
            emit(pending, next_out);
        };
        let result = feed(&mut |item: I| {
            chunk.push(item);
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                dispatch(full, &mut pending, &mut next_in, &mut next_out);
            }
        });
        if !chunk.is_empty() {
            dispatch(chunk, &mut pending, &mut next_in, &mut next_out);
        }
        drop(job_tx);
        while next_out < next_in {
            match done_rx.recv() {
                Ok((seq, o)) => {
                    pending.insert(seq, o);
                    emit(&mut pending, &mut next_out);
                }
                Err(_) => break,
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_map_keeps_input_order_for_any_job_count() {
        for jobs in [1, 2, 4, 7] {
            let mut out = Vec::new();
            map_ordered(
                jobs,
                |i: u64| {
                    // Uneven work, so results finish out of order.
                    if i.is_multiple_of(3) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    i * 2
                },
                |o| out.push(o),
                |push| {
                    for i in 0..500 {
                        push(i);
                    }
                },
            );
            assert_eq!(
                out,
                (0..500).map(|i| i * 2).collect::<Vec<_>>(),
                "jobs {jobs}"
            );
        }
    }

    const DSN: &str = "From: MAILER-DAEMON@mx.example.net\r\n\
Subject: Undelivered Mail\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--b\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; gone@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\
--b--\r\n";

    #[test]
    fn one_record_gives_the_summary_and_the_figures() {
        let m = Metrics::default();
        let origin: Arc<str> = Arc::from("maildir-a");
        m.sources().set("maildir-a", "watching");
        let now = Utc::now();
        let arrived = now - chrono::Duration::seconds(3);
        let classifier = Classifier::new();
        let analysis = analyze(DSN.as_bytes(), &classifier, &ReadOptions::default());
        let p = Prepared::new("maildir:/m/new/1".into(), arrived, DSN.as_bytes(), analysis);
        m.taken(&origin, arrived);
        m.taken(&origin, arrived - chrono::Duration::seconds(7));
        let f = m.figures(now);
        assert_eq!(f.sources[0].lag, Duration::from_secs(10));

        let new = Outcome::New {
            message_id: 1,
            bounces: 1,
            changes: vec![crate::store::StateChange {
                address: "gone@example.com".into(),
                to: crate::policy::State::Suppressed,
                cause: crate::policy::Cause::Hard,
            }],
        };
        let dup = Outcome::Duplicate { message_id: 1 };
        m.count_batch(&[(origin.clone(), &p, &new)], now);
        m.committed(Duration::from_millis(4));
        let f = m.figures(now);
        // The older message is still in flight.
        assert_eq!(f.sources[0].lag, Duration::from_secs(10));
        assert_eq!(f.messages, vec![("dsn", "new", 1)]);
        assert_eq!(f.bounces, vec![("hard", "userunknown", 1)]);
        assert_eq!(f.suppressed, vec![("hard", 1)]);
        assert_eq!(f.commit.count(), 1);
        // 4 ms: not in the 2.5 ms bucket, in the 5 ms one.
        assert_eq!(f.commit.cumulative[1], 0);
        assert_eq!(f.commit.cumulative[2], 1);
        assert_eq!(f.delivery_to_commit.count(), 1);
        assert_eq!(f.delivery_to_commit.sum, Duration::from_secs(3));

        let mut older = p.clone();
        older.received_at = arrived - chrono::Duration::seconds(7);
        m.count_batch(&[(origin, &older, &dup)], now);
        m.count_unreadable(2);
        let f = m.figures(now);
        assert_eq!(f.sources[0].lag, Duration::ZERO);
        assert_eq!(f.messages, vec![("dsn", "duplicate", 1), ("dsn", "new", 1)]);
        assert_eq!(f.errors, vec![("read".to_owned(), 2)]);
        let s = m.snapshot();
        assert_eq!(
            (
                s.recorded,
                s.duplicates,
                s.bounces,
                s.suppressed,
                s.commits,
                s.unreadable
            ),
            (1, 1, [1, 0, 0, 0], 1, 1, 2)
        );
        assert_eq!(m.timings().latency_total, Duration::from_secs(13));
    }

    #[test]
    fn healing_is_told_from_lasting_failure() {
        let p = std::path::PathBuf::from("/x.db");
        assert!(can_heal(&StoreError::Locked { path: p.clone() }));
        assert!(can_heal(&StoreError::Full { path: p.clone() }));
        assert!(can_heal(&StoreError::Io {
            path: p.clone(),
            detail: "EIO".into()
        }));
        assert!(!can_heal(&StoreError::Corrupt { path: p.clone() }));
        assert!(!can_heal(&StoreError::ReadOnly { path: p.clone() }));
        assert!(!can_heal(&StoreError::NewerVersion {
            path: p,
            found: 9,
            known: 1
        }));
    }
}
