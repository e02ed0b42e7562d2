//! Re-running the current rules over stored raw messages, and re-deriving recipient states.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::record::{BounceFields, inflate, standing};
use super::replay::{self, History, RecipientRow, StoredBounce};
use super::{Store, StoreError, from_secs, normalize_address, secs};
use crate::Analysis;
use crate::maildate::bounce_time;
use crate::policy::State;

/// A recipient whose state reclassification changed (or, in a dry run, would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    /// The address.
    pub address: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
}

/// What [`Store::reclassify`] changed (or, in a dry run, would change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReclassifyReport {
    /// Nothing was written: the figures say what a real run would do.
    pub dry_run: bool,
    /// Messages examined.
    pub messages: u64,
    /// Messages whose kind or bounces differ under the current rules.
    pub changed: u64,
    /// Bounce rows of the changed messages before.
    pub bounces_before: u64,
    /// Bounce rows of the changed messages after.
    pub bounces_after: u64,
    /// Recipients whose history was replayed.
    pub recipients_replayed: u64,
    /// Recipients whose state changed.
    pub shifts: Vec<Shift>,
}

/// How [`Store::reclassify`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclassifyOptions {
    /// Only messages received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Write nothing; report what would change.
    pub dry_run: bool,
    /// Messages per transaction: each batch replaces its bounces and re-derives the recipients
    /// involved in one transaction, so a run stopped anywhere leaves every recipient in step with
    /// its bounces, and a rerun finishes the work.
    pub batch: usize,
}

impl Default for ReclassifyOptions {
    fn default() -> Self {
        ReclassifyOptions {
            since: None,
            dry_run: false,
            batch: 200,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StoredMessage {
    id: i64,
    received_at: i64,
    kind: String,
    reader: String,
    verp_recipient: Option<String>,
    raw_deflate: Vec<u8>,
}

/// A message whose result changed, kept for a dry run's final derivation.
pub(crate) struct Fresh {
    received_at: i64,
    analysis: Analysis,
}

/// Records each recipient's first state and latest state across batches.
#[derive(Default)]
struct Shifts(BTreeMap<String, (State, State)>);

impl Shifts {
    fn note(&mut self, address: &str, before: State, after: State) {
        self.0
            .entry(address.to_owned())
            .and_modify(|(_, to)| *to = after)
            .or_insert((before, after));
    }

    fn into_vec(self) -> Vec<Shift> {
        self.0
            .into_iter()
            .filter(|(_, (from, to))| from != to)
            .map(|(address, (from, to))| Shift { address, from, to })
            .collect()
    }
}

impl Store {
    /// Re-analyses every stored message (received at or after `opts.since`) with `analyze`,
    /// replaces the bounces of those whose result changed and re-derives every recipient involved,
    /// one transaction per batch of messages. `analyze` takes a batch's raw messages and returns
    /// their analyses in the same order (so the caller may spread them over threads). The analysis
    /// runs outside the transaction, so a running daemon waits only for the writes.
    ///
    /// With `opts.dry_run` nothing is written: the report says which recipients would change state.
    pub async fn reclassify<F>(
        &self,
        opts: &ReclassifyOptions,
        analyze: F,
        now: DateTime<Utc>,
    ) -> Result<ReclassifyReport, StoreError>
    where
        F: FnMut(Vec<Vec<u8>>) -> Vec<Analysis>,
    {
        super::dispatch!(self, reclassify(opts, analyze, now).await)
    }
}

super::engines!("engine/reclassify.rs");
