//! `bounced run`: the configured Maildir folders and IMAP mailboxes, driven through the
//! [`pipeline`](crate::pipeline) until shutdown.
//!
//! This module only turns the configuration's sources into pipeline sources (reading each IMAP
//! folder's saved position once, at start) and retries what can heal for as long as the daemon
//! runs; batching, workers, the writer and acknowledgements are the pipeline's. The outbox's
//! delivery workers ([`crate::notify`]) run beside it.

use std::future::Future;
use std::sync::Arc;

use crate::Classifier;
use crate::config::{ImapConfig, MaildirConfig, Secret};
use crate::notify::Notifier;
use crate::pipeline::{Pipeline, Source};
use crate::source::imap::ImapSource;
use crate::source::maildir::MaildirSource;
use crate::store::Store;

pub use crate::pipeline::{Metrics as Progress, PipelineError as DaemonError, Settings, Summary};

/// The sources of one run.
#[derive(Debug, Default)]
pub struct Sources {
    /// Maildir folders.
    pub maildirs: Vec<MaildirConfig>,
    /// IMAP mailboxes, each with its password already read.
    pub imaps: Vec<(ImapConfig, Secret)>,
    /// Targets the outbox's events are delivered to, beside the pipeline.
    pub notify: Vec<Notifier>,
}

/// Runs the daemon until `shutdown` completes (or a stage fails), then drains and returns.
/// `on_ready` is called once every source is watching (systemd's READY=1).
pub async fn run(
    settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    sources: Sources,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<Summary, DaemonError> {
    run_observed(
        settings,
        store,
        classifier,
        sources,
        shutdown,
        on_ready,
        Progress::default(),
    )
    .await
}

/// [`run`], counting into `progress` so the caller can watch it.
pub async fn run_observed(
    mut settings: Settings,
    store: Store,
    classifier: Arc<Classifier>,
    sources: Sources,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
    progress: Progress,
) -> Result<Summary, DaemonError> {
    // A daemon waits out a lock or a full disk: the pipeline stalls, which is the backpressure.
    settings.retry_for = None;
    let max_size = settings.read.max_size;
    let pipeline = Pipeline::new(settings, store.clone(), classifier, progress);
    let mut list = Vec::new();
    for m in &sources.maildirs {
        list.push(Source::Maildir(MaildirSource::new(m)?));
    }
    for (cfg, secret) in sources.imaps {
        let saved = store.source_position(&ImapSource::key_of(&cfg)).await?;
        list.push(Source::Imap(Box::new(ImapSource::new(
            cfg,
            secret,
            pipeline.positions(),
            saved,
            max_size,
        ))));
    }
    // A new target's events start from here: registered before the first commit, it misses none
    // of this run's.
    crate::notify::register(&store, &sources.notify).await?;
    // Delivery workers run beside the pipeline and stop after it has drained, so the events of
    // its last commits get their first attempt.
    let stop = tokio_util::sync::CancellationToken::new();
    let workers = tokio::spawn(crate::notify::run(
        store.clone(),
        sources.notify,
        stop.clone(),
    ));
    let result = pipeline.run(list, shutdown, on_ready).await;
    stop.cancel();
    // Attempts in flight finish within their target's timeout; a worker still busy after this is
    // abandoned, and its unsettled events are sent again at the next start, with the same ids.
    let abort = workers.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(15), workers)
        .await
        .is_err()
    {
        tracing::warn!(
            "notify workers did not stop in 15s: their unsettled events are sent again at the next start"
        );
        abort.abort();
    }
    result
}
