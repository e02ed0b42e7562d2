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
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

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

/// Inserts events into the outbox, a few multi-row statements for any number of them.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(rows_per_statement(7)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into outbox_events (id, at, event, address, bounce_type, campaign, body) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(e.body.id.clone())
                .push_bind(now)
                .push_bind(e.body.event.clone())
                .push_bind(e.body.address.clone())
                .push_bind(e.body.bounce_type.clone())
                .push_bind(e.campaign.clone())
                .push_bind(serde_json::to_string(&e.body).unwrap_or_default());
        });
        qb.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The stored bounces `ids` with their message's campaign, keyed by id.
pub(crate) async fn bounces(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<HashMap<i64, BounceRef>, sqlx::Error> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(rows_per_statement(1)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "select b.id, b.status, b.replycode, b.reason, b.diagnostic, b.rule, \
             b.original_message_id, b.original_list_id, m.original_campaign \
             from bounces b join messages m on m.id = b.message_id where b.id in (",
        );
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        let got: Vec<BounceRef> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        out.extend(got.into_iter().map(|b| (b.id, b)));
    }
    Ok(out)
}

/// Writes one event per recipient of `rows` whose state differs from the stored one: called by
/// every write of recipient rows, before it, so no change of state goes without its event.
pub(crate) async fn state_changes(
    conn: &mut SqliteConnection,
    rows: &[&RecipientRow],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut before: HashMap<i64, String> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(rows_per_statement(1)) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("select id, state from recipients where id in (");
        let mut sep = qb.separated(", ");
        for r in chunk {
            sep.push_bind(r.id);
        }
        qb.push(")");
        let got: Vec<(i64, String)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        before.extend(got);
    }
    let changed: Vec<&RecipientRow> = rows
        .iter()
        .copied()
        .filter(|r| before.get(&r.id).map_or("active", String::as_str) != r.state)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = changed
        .iter()
        .filter(|r| r.state == "suppressed")
        .filter_map(|r| r.suppressed_bounce_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let found = bounces(conn, &ids).await?;
    let events: Vec<NewEvent> = changed
        .iter()
        .map(|r| {
            if r.state == "suppressed" {
                let kind = r.suppressed_type.as_deref().unwrap_or("manual");
                let cause = match kind {
                    "soft" => "soft_threshold",
                    "hard" | "complaint" => kind,
                    _ => "manual",
                };
                let bounce = r.suppressed_bounce_id.and_then(|id| found.get(&id));
                let mut e = NewEvent::new(
                    "suppressed",
                    &r.address,
                    now,
                    Some(cause),
                    Some(kind.to_owned()),
                    bounce.filter(|_| cause != "manual"),
                );
                if cause == "manual" {
                    e.body.reason = r.suppressed_why.clone();
                }
                e
            } else {
                let cause = if r.manual.as_deref() == Some("unsuppressed") {
                    "manual"
                } else {
                    "reclassify"
                };
                NewEvent::new("unsuppressed", &r.address, now, Some(cause), None, None)
            }
        })
        .collect();
    insert(conn, &events, now).await
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

/// Appends the `where` conditions of `f` (on `d` = deliveries, `e` = events) to `qb`.
fn push_filter(qb: &mut QueryBuilder<Sqlite>, f: &OutboxFilter, default_state: Option<&str>) {
    qb.push(" where 1 = 1");
    if let Some(t) = &f.target {
        qb.push(" and d.target = ").push_bind(t.clone());
    }
    if let Some(s) = f.state.as_deref().or(default_state) {
        qb.push(" and d.state = ").push_bind(s.to_owned());
    }
    if let Some(id) = &f.id {
        qb.push(" and e.id = ").push_bind(id.clone());
    }
    if let Some(a) = &f.address {
        qb.push(" and d.address = ").push_bind(a.clone());
    }
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
        sqlx::query(
            "insert into outbox_targets (name, cursor, created_at) \
             select ?1, coalesce((select max(seq) from outbox_events), 0), ?2 \
             where not exists (select 1 from outbox_targets where name = ?1)",
        )
        .bind(target)
        .bind(secs(now))
        .execute(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
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
        let now = secs(Utc::now());
        let next_at = now_ms();
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = conn.begin_with("begin immediate").await?;
            let cursor: i64 =
                sqlx::query_scalar("select cursor from outbox_targets where name = ?")
                    .bind(target)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0);
            let events: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
                "select seq, event, address, bounce_type from outbox_events where seq > ? \
                 order by seq limit ?",
            )
            .bind(cursor)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = events.last().map(|e| e.0) else {
                return Ok(0);
            };
            let wanted: Vec<&(i64, String, String, Option<String>)> = events
                .iter()
                .filter(|(_, ev, _, ty)| wants(ev, ty.as_deref()))
                .collect();
            for chunk in wanted.chunks(rows_per_statement(5)) {
                let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "insert into outbox_deliveries (target, event_seq, address, next_at, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (seq, _, address, _)| {
                    b.push_bind(target)
                        .push_bind(*seq)
                        .push_bind(address.clone())
                        .push_bind(next_at)
                        .push_bind(now);
                });
                qb.push(" on conflict (target, event_seq) do nothing");
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            sqlx::query("update outbox_targets set cursor = ? where name = ?")
                .bind(last)
                .bind(target)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(events.len())
        }
        .await;
        result.map_err(|e| self.err(e))
    }

    /// Up to `limit` pending deliveries of `target` that are due now, each the oldest pending one
    /// of its address (so a target sees an address's events in order), oldest first.
    pub async fn outbox_due(&self, target: &str, limit: u32) -> Result<Vec<Due>, StoreError> {
        sqlx::query_as(
            "select d.event_seq as seq, e.id, e.event, e.address, e.campaign, e.body, d.attempts \
             from outbox_deliveries d join outbox_events e on e.seq = d.event_seq \
             where d.target = ?1 and d.state = 'pending' and d.next_at <= ?2 \
             and not exists (select 1 from outbox_deliveries p where p.target = d.target \
               and p.address = d.address and p.state = 'pending' and p.event_seq < d.event_seq) \
             order by d.event_seq limit ?3",
        )
        .bind(target)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Unix milliseconds of `target`'s next attempt, if it has one pending: the earliest among the
    /// deliveries that are the oldest pending one of their address (the others wait for those).
    pub async fn outbox_next_attempt(&self, target: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "select min(d.next_at) from outbox_deliveries d where d.target = ?1 \
             and d.state = 'pending' and not exists (select 1 from outbox_deliveries p \
               where p.target = d.target and p.address = d.address and p.state = 'pending' \
               and p.event_seq < d.event_seq)",
        )
        .bind(target)
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Records what became of attempts to deliver to `target`, in one transaction.
    pub async fn outbox_settle(&self, target: &str, results: &[Settle]) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let now = secs(Utc::now());
        let mut tx = self.begin().await?;
        let result = async {
            let delivered: Vec<i64> = results
                .iter()
                .filter_map(|r| match r {
                    Settle::Delivered { seq } => Some(*seq),
                    _ => None,
                })
                .collect();
            for chunk in delivered.chunks(rows_per_statement(1)) {
                let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "update outbox_deliveries set state = 'delivered', updated_at = ",
                );
                qb.push_bind(now)
                    .push(", attempts = attempts + 1, last_error = null where target = ")
                    .push_bind(target)
                    .push(" and event_seq in (");
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(*s);
                }
                qb.push(")");
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            for r in results {
                let (seq, state, next_at, error) = match r {
                    Settle::Delivered { .. } => continue,
                    Settle::Retry {
                        seq,
                        next_at,
                        error,
                    } => (*seq, "pending", *next_at, error),
                    Settle::Dead { seq, error } => (*seq, "dead", 0, error),
                };
                sqlx::query(
                    "update outbox_deliveries set state = ?, attempts = attempts + 1, next_at = ?, \
                     last_error = ?, updated_at = ? where target = ? and event_seq = ?",
                )
                .bind(state)
                .bind(next_at)
                .bind(error)
                .bind(now)
                .bind(target)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        result.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The deliveries `f` selects, oldest first.
    pub async fn outbox_list(&self, f: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "select d.target, e.id, e.seq, e.event, e.address, d.state, d.attempts, d.next_at, \
             d.last_error, d.updated_at from outbox_deliveries d \
             join outbox_events e on e.seq = d.event_seq",
        );
        push_filter(&mut qb, f, None);
        qb.push(" order by e.seq, d.target");
        if let Some(n) = f.limit {
            qb.push(" limit ")
                .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        }
        qb.build_query_as()
            .persistent(false)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    /// Deliveries per target and state.
    pub async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        sqlx::query_as(
            "select target, state, count(*) as count from outbox_deliveries \
             group by target, state order by target, state",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Makes the deliveries `f` selects (dead ones unless `f.state` says otherwise) pending again,
    /// due now, with their attempts reset; returns how many.
    pub async fn outbox_retry(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "update outbox_deliveries set state = 'pending', attempts = 0, next_at = ",
        );
        qb.push_bind(now_ms())
            .push(", updated_at = ")
            .push_bind(secs(Utc::now()))
            .push(
                " where (target, event_seq) in (select d.target, d.event_seq from \
                 outbox_deliveries d join outbox_events e on e.seq = d.event_seq",
            );
        push_filter(&mut qb, f, Some("dead"));
        qb.push(")");
        let done = qb
            .build()
            .persistent(false)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        self.wake_outbox();
        Ok(done.rows_affected())
    }

    /// Deletes the deliveries `f` selects (dead ones unless `f.state` says otherwise); returns how
    /// many. The events stay, so other targets are not affected.
    pub async fn outbox_drop(&self, f: &OutboxFilter) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "delete from outbox_deliveries where (target, event_seq) in \
             (select d.target, d.event_seq from outbox_deliveries d \
             join outbox_events e on e.seq = d.event_seq",
        );
        push_filter(&mut qb, f, Some("dead"));
        qb.push(")");
        let done = qb
            .build()
            .persistent(false)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Every outbox event, oldest first, as JSON bodies (for checks and tests).
    pub async fn outbox_events(&self) -> Result<Vec<EventBody>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("select body from outbox_events order by seq")
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(b,)| serde_json::from_str(&b).ok())
            .collect())
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
        sqlx::query(
            "insert into notify_disabled (target, member_id, address, list_id, at) \
             values (?, ?, ?, ?, ?) on conflict (target, member_id) do nothing",
        )
        .bind(target)
        .bind(member_id)
        .bind(address)
        .bind(list_id)
        .bind(secs(Utc::now()))
        .execute(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The memberships `target` disabled for `address`, as `(member id, list id)`.
    pub async fn notify_disabled(
        &self,
        target: &str,
        address: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(
            "select member_id, list_id from notify_disabled where target = ? and address = ? \
             order by list_id",
        )
        .bind(target)
        .bind(address)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Forgets a membership `target` re-enabled (or that is gone).
    pub async fn notify_forget_disabled(
        &self,
        target: &str,
        member_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("delete from notify_disabled where target = ? and member_id = ?")
            .bind(target)
            .bind(member_id)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
