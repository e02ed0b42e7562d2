//! The outbox: an event for every change of a recipient's state (and, when asked, every recorded
//! bounce), written inside the transaction that makes the change; and the per-target delivery rows
//! the notify workers read and settle.
//!
//! Writing an event needs no knowledge of the targets: each target keeps a cursor in the event
//! stream and copies the events its filter wants into its own deliveries ([`Store::outbox_fan_out`]).
//! A delivery is pending until its target accepted it (delivered) or it ran out of attempts (dead).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::replay::{RecipientRow, rows_per_statement};
use super::{Store, StoreError, from_secs, secs};

/// An event as every target receives it (the webhook body, the exec command's input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBody {
    /// Stable event id: the same on every attempt and every target (an idempotency key).
    pub id: String,
    /// `suppressed`, `unsuppressed` or `bounce`.
    pub event: String,
    /// When the change was recorded, RFC 3339.
    pub at: String,
    /// The normalized address.
    pub address: String,
    /// Why the state changed: `hard`, `complaint`, `soft_threshold`, `manual` or `reclassify`;
    /// null for a bounce event.
    pub cause: Option<String>,
    /// The bounce's type (`hard`, `soft`, `complaint`), or `manual` for a decision by hand.
    pub bounce_type: Option<String>,
    /// The bounce's reason, or the operator's words for a decision by hand.
    pub reason: Option<String>,
    /// The enhanced status code.
    pub status: Option<String>,
    /// The SMTP reply code.
    pub replycode: Option<String>,
    /// The remote server's words.
    pub diagnostic: Option<String>,
    /// The classification rule that decided the bounce.
    pub rule: Option<String>,
    /// `Message-ID` of the returned original.
    pub original_message_id: Option<String>,
    /// `List-Id` of the returned original.
    pub original_list_id: Option<String>,
}

/// An event on its way into the outbox.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub body: EventBody,
    pub campaign: Option<String>,
}

/// The fields of a stored bounce an event carries.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub(crate) struct BounceRef {
    pub id: i64,
    pub status: Option<String>,
    pub replycode: Option<String>,
    pub reason: String,
    pub diagnostic: Option<String>,
    pub rule: String,
    pub original_message_id: Option<String>,
    pub original_list_id: Option<String>,
    pub original_campaign: Option<String>,
}

/// A fresh random event id (UUID version 4 form).
fn new_event_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // No OS randomness: fall back to a weaker but still unique-enough source.
        for (i, x) in b.iter_mut().enumerate() {
            *x = fastrand::u8(..) ^ (i as u8);
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn rfc3339(at: i64) -> String {
    from_secs(at).to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl NewEvent {
    /// An event about `address`, with the fields of `bounce` when there is one.
    pub(crate) fn new(
        event: &str,
        address: &str,
        at: i64,
        cause: Option<&str>,
        bounce_type: Option<String>,
        bounce: Option<&BounceRef>,
    ) -> NewEvent {
        NewEvent {
            body: EventBody {
                id: new_event_id(),
                event: event.to_owned(),
                at: rfc3339(at),
                address: address.to_owned(),
                cause: cause.map(str::to_owned),
                bounce_type,
                reason: bounce.map(|b| b.reason.clone()),
                status: bounce.and_then(|b| b.status.clone()),
                replycode: bounce.and_then(|b| b.replycode.clone()),
                diagnostic: bounce.and_then(|b| b.diagnostic.clone()),
                rule: bounce.map(|b| b.rule.clone()),
                original_message_id: bounce.and_then(|b| b.original_message_id.clone()),
                original_list_id: bounce.and_then(|b| b.original_list_id.clone()),
            },
            campaign: bounce.and_then(|b| b.original_campaign.clone()),
        }
    }
}

/// One delivery ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Due {
    /// The event's place in the stream.
    pub seq: i64,
    /// The stable event id.
    pub id: String,
    /// `suppressed`, `unsuppressed` or `bounce`.
    pub event: String,
    /// The address the event is about.
    pub address: String,
    /// The returned original's campaign header, when known.
    pub campaign: Option<String>,
    /// The event as JSON ([`EventBody`]).
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The target accepted the event.
    Delivered {
        /// The event's place in the stream.
        seq: i64,
    },
    /// The attempt failed; try again at `next_at` (unix milliseconds).
    Retry {
        /// The event's place in the stream.
        seq: i64,
        /// Unix milliseconds of the next attempt.
        next_at: i64,
        /// What went wrong.
        error: String,
    },
    /// The attempt failed and no other will be made.
    Dead {
        /// The event's place in the stream.
        seq: i64,
        /// What went wrong.
        error: String,
    },
}

/// Which deliveries `outbox list|retry|drop` act on.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    /// Only this target's.
    pub target: Option<String>,
    /// Only those in this state: `pending`, `delivered` or `dead`.
    pub state: Option<String>,
    /// Only this event (its id).
    pub id: Option<String>,
    /// Only events about this address.
    pub address: Option<String>,
    /// At most this many (list only).
    pub limit: Option<u64>,
}

/// One delivery as `outbox list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    /// The target's name.
    pub target: String,
    /// The stable event id.
    pub id: String,
    /// The event's place in the stream.
    pub seq: i64,
    /// `suppressed`, `unsuppressed` or `bounce`.
    pub event: String,
    /// The address the event is about.
    pub address: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// Unix milliseconds of the next attempt (pending only).
    pub next_at: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Unix seconds of the last change of this delivery.
    pub updated_at: i64,
}

/// Deliveries per target and state, for metrics and `outbox list --counts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxCount {
    /// The target's name.
    pub target: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// How many.
    pub count: i64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Store {
    /// A receiver that changes after each commit that may have written outbox events, so delivery
    /// workers in this process start at once instead of at their next poll.
    pub fn outbox_wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    pub(crate) fn wake_outbox(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a target; a new one starts at the end of the event stream (it receives the
    /// events recorded from now on).
    pub async fn outbox_register(
        &self,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        super::dispatch!(self, outbox_register(target, now).await)
    }

    /// Copies up to `limit` events after `target`'s cursor into its deliveries when `wants`
    /// (event, bounce type) says so, and moves the cursor past them; returns how many events were
    /// read. One transaction: a crash copies all of them or none.
    pub async fn outbox_fan_out(
        &self,
        target: &str,
        wants: impl Fn(&str, Option<&str>) -> bool,
        limit: u32,
    ) -> Result<usize, StoreError> {
        super::dispatch!(self, outbox_fan_out(target, wants, limit).await)
    }

    /// Up to `limit` pending deliveries of `target` that are due now, each the oldest pending one
    /// of its address (so a target sees an address's events in order), oldest first.
    pub async fn outbox_due(&self, target: &str, limit: u32) -> Result<Vec<Due>, StoreError> {
        super::dispatch!(self, outbox_due(target, limit).await)
    }

    /// Unix milliseconds of `target`'s next attempt, if it has one pending: the earliest among the
    /// deliveries that are the oldest pending one of their address (the others wait for those).
    pub async fn outbox_next_attempt(&self, target: &str) -> Result<Option<i64>, StoreError> {
        super::dispatch!(self, outbox_next_attempt(target).await)
    }

    /// Records what became of attempts to deliver to `target`, in one transaction.
    pub async fn outbox_settle(&self, target: &str, results: &[Settle]) -> Result<(), StoreError> {
        super::dispatch!(self, outbox_settle(target, results).await)
    }

    /// The deliveries `f` selects, oldest first.
    pub async fn outbox_list(&self, f: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        super::dispatch!(self, outbox_list(f).await)
    }

    /// Deliveries per target and state.
    pub async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        super::dispatch!(self, outbox_counts().await)
    }

    /// Makes the deliveries `f` selects (dead ones unless `f.state` says otherwise) pending again,
    /// due now, with their attempts reset; returns how many.
    pub async fn outbox_retry(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        super::dispatch!(self, outbox_retry(f).await)
    }

    /// Deletes the deliveries `f` selects (dead ones unless `f.state` says otherwise); returns how
    /// many. The events stay, so other targets are not affected.
    pub async fn outbox_drop(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        super::dispatch!(self, outbox_drop(f).await)
    }

    /// Every outbox event, oldest first, as JSON bodies (for checks and tests).
    pub async fn outbox_events(&self) -> Result<Vec<EventBody>, StoreError> {
        super::dispatch!(self, outbox_events().await)
    }
}

impl Store {
    /// Remembers that target `target` disabled membership `member_id` (of `address` on `list_id`).
    pub async fn notify_remember_disabled(
        &self,
        target: &str,
        address: &str,
        member_id: &str,
        list_id: &str,
    ) -> Result<(), StoreError> {
        super::dispatch!(
            self,
            notify_remember_disabled(target, address, member_id, list_id).await
        )
    }

    /// The memberships `target` disabled for `address`, as `(member id, list id)`.
    pub async fn notify_disabled(
        &self,
        target: &str,
        address: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        super::dispatch!(self, notify_disabled(target, address).await)
    }

    /// Forgets a membership `target` re-enabled (or that is gone).
    pub async fn notify_forget_disabled(
        &self,
        target: &str,
        member_id: &str,
    ) -> Result<(), StoreError> {
        super::dispatch!(self, notify_forget_disabled(target, member_id).await)
    }

    /// Takes the right to deliver `target`'s events, which one process holds at a time on a
    /// PostgreSQL server shared by several daemons (a session advisory lock, released when the
    /// holder's connection ends, a crash included); `None` while another process holds it. A
    /// SQLite file has one daemon, which always gets it.
    pub async fn outbox_lease(&self, target: &str) -> Result<Option<OutboxLease>, StoreError> {
        let super::Pool::Postgres(pool) = &self.pool else {
            return Ok(Some(OutboxLease { conn: None }));
        };
        let mut conn = pool.acquire().await.map_err(|e| self.err(e))?.detach();
        let held: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("bounced outbox target {target}"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(held.then_some(OutboxLease { conn: Some(conn) }))
    }
}

/// The right to deliver one target's events (see [`Store::outbox_lease`]); dropping it gives the
/// right up.
pub struct OutboxLease {
    conn: Option<sqlx::PgConnection>,
}

impl OutboxLease {
    /// Whether the lease still holds: on PostgreSQL, its connection (and so its lock) is alive.
    pub async fn holds(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => sqlx::query("select 1").execute(conn).await.is_ok(),
        }
    }
}

super::engines!("engine/outbox.rs");
