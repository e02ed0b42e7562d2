//! Delivery of outbox events to the configured targets (`[[notify]]`): one worker per target,
//! started by `bounced run` beside the pipeline.
//!
//! A worker copies the events its filter wants into its deliveries, sends the due ones (each the
//! oldest pending one of its address, so an address's events arrive in order; several addresses at
//! once), and settles them in one transaction: delivered when the target accepted the event, else
//! retried after a doubling, jittered wait, and kept as dead after `max_attempts` or a refusal that
//! no retry can fix. A crash between sending and settling sends the event again, with the same id.
//! Targets are independent: one that keeps failing delays only its own deliveries.

mod exec;
mod listmonk;
mod mailman;
mod webhook;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{EventFilter, NotifyConfig, NotifyKind};
use crate::store::{Due, Settle, Store};

/// Why a target could not be set up.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// A secret or credentials file could not be read.
    #[error("notify `{target}`: cannot read {what} {path}: {source}")]
    File {
        target: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what the target needs.
    #[error("notify `{target}`: {problem}")]
    Invalid { target: String, problem: String },
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The target accepted the event (or had nothing to do with it).
    Accepted,
    /// A failure that may heal (the target is down, overloaded, timed out): try again later.
    Retry(String),
    /// A refusal no retry can change (a 4xx answer, a malformed request): kept as dead at once.
    Refused(String),
}

/// One target, ready to send.
#[derive(Debug)]
enum Target {
    Webhook(webhook::Webhook),
    Listmonk(listmonk::Listmonk),
    Mailman(mailman::Mailman),
    Exec(exec::Exec),
}

/// A configured target with its delivery settings.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    filter: EventFilter,
    target: Target,
    max_attempts: u32,
    backoff_max: Duration,
    concurrency: usize,
}

/// How often a worker looks for work written by another process (a `bounced suppress`).
const POLL: Duration = Duration::from_secs(1);
/// How often a worker standing by (another process delivers its target) asks for the target.
const STANDBY: Duration = Duration::from_secs(2);
/// Events copied into a target's deliveries per transaction.
const FAN_OUT: u32 = 5_000;

/// Reads the first line of a secret file.
fn first_line(target: &str, what: &'static str, path: &Path) -> Result<String, NotifyError> {
    let text = std::fs::read_to_string(path).map_err(|source| NotifyError::File {
        target: target.to_owned(),
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(NotifyError::Invalid {
            target: target.to_owned(),
            problem: format!("{what} {} is empty", path.display()),
        });
    }
    Ok(line)
}

/// Reads `user:password` from a credentials file.
fn credentials(cfg: &NotifyConfig) -> Result<(String, String), NotifyError> {
    let path = cfg.credentials_file.clone().unwrap_or_default();
    let line = first_line(&cfg.name, "credentials file", &path)?;
    line.split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .ok_or_else(|| NotifyError::Invalid {
            target: cfg.name.clone(),
            problem: format!(
                "credentials file {} must hold user:password on its first line",
                path.display()
            ),
        })
}

/// An HTTP client with rustls: the web's roots, or only the CAs of `ca_file`; no redirects.
fn http_client(cfg: &NotifyConfig) -> Result<reqwest::Client, NotifyError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let invalid = |problem: String| NotifyError::Invalid {
        target: cfg.name.clone(),
        problem,
    };
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout.0)
        .connect_timeout(cfg.timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(cfg.concurrency)
        .user_agent(concat!("bounced/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|source| NotifyError::File {
            target: cfg.name.clone(),
            what: "ca_file",
            path: path.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| invalid(format!("ca_file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "ca_file {} holds no certificate",
                path.display()
            )));
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))
}

/// The attempt an HTTP answer or error amounts to: 2xx accepted; 408, 429 and 5xx retried; any
/// other answer refused.
fn http_outcome(result: Result<reqwest::Response, reqwest::Error>) -> Attempt {
    match result {
        Ok(r) if r.status().is_success() => Attempt::Accepted,
        Ok(r) => {
            let s = r.status();
            let msg = format!("answered {s}");
            if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 {
                Attempt::Retry(msg)
            } else {
                Attempt::Refused(msg)
            }
        }
        Err(e) => Attempt::Retry(error_chain(&e)),
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Notifier {
    /// Builds a target from its configuration, reading its secret files.
    pub fn from_config(cfg: &NotifyConfig) -> Result<Notifier, NotifyError> {
        let target = match cfg.kind {
            NotifyKind::Webhook => Target::Webhook(webhook::Webhook::new(cfg)?),
            NotifyKind::Listmonk => Target::Listmonk(listmonk::Listmonk::new(cfg)?),
            NotifyKind::Mailman => Target::Mailman(mailman::Mailman::new(cfg)?),
            NotifyKind::Exec => Target::Exec(exec::Exec::new(cfg)),
        };
        Ok(Notifier {
            name: cfg.name.clone(),
            filter: cfg.filter(),
            target,
            max_attempts: cfg.max_attempts,
            backoff_max: cfg.backoff_max.0,
            concurrency: cfg.concurrency,
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, store: &Store, due: &Due) -> Attempt {
        match &self.target {
            Target::Webhook(t) => t.send(due).await,
            Target::Listmonk(t) => t.send(due).await,
            Target::Mailman(t) => t.send(store, &self.name, due).await,
            Target::Exec(t) => t.send(due).await,
        }
    }

    /// The wait before attempt number `attempts + 1`: 1s doubling, capped, with jitter (a random
    /// point in the upper half) so that failures of many events do not come back in step.
    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
        let full = Duration::from_secs(1)
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    fn settle(&self, due: &Due, attempt: Attempt) -> Settle {
        let seq = due.seq;
        match attempt {
            Attempt::Accepted => Settle::Delivered { seq },
            Attempt::Refused(error) => Settle::Dead { seq, error },
            Attempt::Retry(error) if due.attempts + 1 >= i64::from(self.max_attempts) => {
                Settle::Dead { seq, error }
            }
            Attempt::Retry(error) => {
                let wait = i64::try_from(self.backoff(due.attempts).as_millis()).unwrap_or(0);
                Settle::Retry {
                    seq,
                    next_at: Utc::now().timestamp_millis() + wait,
                    error,
                }
            }
        }
    }

    /// One round: copy new events, send what is due, settle it. Returns how many were sent. Once
    /// `stop` is cancelled no new attempt starts; those in flight finish and are settled.
    async fn round(
        &self,
        store: &Store,
        stop: &CancellationToken,
    ) -> Result<usize, crate::store::StoreError> {
        while store
            .outbox_fan_out(&self.name, |e, t| self.filter.wants(e, t), FAN_OUT)
            .await?
            == FAN_OUT as usize
        {}
        let limit = u32::try_from(self.concurrency * 8).unwrap_or(128);
        let due = store.outbox_due(&self.name, limit).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let sent = due.len();
        let results: Vec<Settle> = futures_util::stream::iter(due)
            .map(|d: Due| async move {
                if stop.is_cancelled() {
                    return None;
                }
                let attempt = self.send(store, &d).await;
                match &attempt {
                    Attempt::Accepted => {
                        tracing::debug!(target_name = %self.name, id = %d.id, "event delivered")
                    }
                    Attempt::Retry(e) | Attempt::Refused(e) => tracing::warn!(
                        target_name = %self.name, id = %d.id, event = %d.event,
                        attempt = d.attempts + 1, error = %e, "event not delivered"
                    ),
                }
                Some(self.settle(&d, attempt))
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        let dead = results
            .iter()
            .filter(|r| matches!(r, Settle::Dead { .. }))
            .count();
        if dead > 0 {
            tracing::error!(target_name = %self.name, dead, "events kept as dead: see `bounced outbox list --state dead`");
        }
        store.outbox_settle(&self.name, &results).await?;
        Ok(sent)
    }

    /// Delivers the events of a [`register`]ed target until `stop` is cancelled; an attempt in
    /// flight finishes (within the target's timeout) and is settled before it returns.
    pub async fn run(self, store: Store, stop: CancellationToken) {
        let mut wake = store.outbox_wakeups();
        let mut failures: u32 = 0;
        let mut lease: Option<crate::store::OutboxLease> = None;
        let mut standing_by = false;
        while !stop.is_cancelled() {
            if let Some(l) = &mut lease
                && !l.holds().await
            {
                tracing::warn!(target_name = %self.name, "lost the right to deliver this target (database connection ended); taking it again");
                lease = None;
            }
            if lease.is_none() {
                match store.outbox_lease(&self.name).await {
                    Ok(Some(l)) => {
                        if standing_by {
                            tracing::info!(target_name = %self.name, "taking over delivery of this target");
                        }
                        standing_by = false;
                        lease = Some(l);
                    }
                    Ok(None) => {
                        if !standing_by {
                            tracing::info!(target_name = %self.name, "another bounced process delivers this target; standing by");
                        }
                        standing_by = true;
                    }
                    Err(e) => {
                        tracing::warn!(target_name = %self.name, error = %e, "cannot take the right to deliver this target; trying again");
                    }
                }
            }
            let sent = if lease.is_some() {
                self.round(&store, &stop).await
            } else {
                Ok(0)
            };
            let pause = match sent {
                // Without the right to deliver (another process has it), ask again now and then.
                Ok(_) if lease.is_none() => STANDBY,
                Ok(n) if n > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    match store.outbox_next_attempt(&self.name).await {
                        Ok(Some(at)) => {
                            let ms = (at - Utc::now().timestamp_millis()).clamp(10, 1_000);
                            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                        }
                        _ => POLL,
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(target_name = %self.name, error = %e, "outbox round failed; trying again");
                    Duration::from_millis(200).saturating_mul(failures.min(25))
                }
            };
            let standby = lease.is_none();
            tokio::select! {
                () = stop.cancelled() => break,
                _ = wake.changed(), if !standby => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(target_name = %self.name, "notify worker stopped");
    }
}

/// Registers each target that is new to the database, its cursor at the last event recorded so
/// far: a new target gets the events recorded from now on, not the history before it.
pub async fn register(
    store: &Store,
    notifiers: &[Notifier],
) -> Result<(), crate::store::StoreError> {
    for n in notifiers {
        store.outbox_register(&n.name, Utc::now()).await?;
    }
    Ok(())
}

/// Runs one worker per target until `stop` is cancelled and every worker has settled its last
/// round.
pub async fn run(store: Store, notifiers: Vec<Notifier>, stop: CancellationToken) {
    let mut set = tokio::task::JoinSet::new();
    for n in notifiers {
        tracing::info!(target_name = %n.name, "notify worker started");
        set.spawn(n.run(store.clone(), stop.clone()));
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(max_attempts: u32) -> Notifier {
        let cfg: crate::config::Config = toml::from_str(&format!(
            "[[notify]]\nname = \"x\"\nkind = \"exec\"\ncommand = [\"true\"]\nmax_attempts = {max_attempts}\nbackoff_max = \"60s\"\n"
        ))
        .unwrap_or_default();
        let n = cfg.notify.first().cloned();
        Notifier::from_config(&n.unwrap_or_else(|| panic!("no target")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn due(attempts: i64) -> Due {
        Due {
            seq: 7,
            id: "id".into(),
            event: "suppressed".into(),
            address: "a@example.org".into(),
            campaign: None,
            body: "{}".into(),
            attempts,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let n = notifier(5);
        for (attempts, full) in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 60.0), (40, 60.0)] {
            for _ in 0..50 {
                let w = n.backoff(attempts).as_secs_f64();
                assert!(w >= full / 2.0 && w <= full, "{attempts}: {w}");
            }
        }
    }

    #[test]
    fn retries_until_max_attempts_then_dead_and_refusals_die_at_once() {
        let n = notifier(3);
        assert!(matches!(
            n.settle(&due(0), Attempt::Retry("x".into())),
            Settle::Retry { seq: 7, .. }
        ));
        assert!(matches!(
            n.settle(&due(2), Attempt::Retry("x".into())),
            Settle::Dead { seq: 7, .. }
        ));
        assert!(matches!(
            n.settle(&due(0), Attempt::Refused("400".into())),
            Settle::Dead { seq: 7, .. }
        ));
        assert_eq!(
            n.settle(&due(0), Attempt::Accepted),
            Settle::Delivered { seq: 7 }
        );
    }
}
