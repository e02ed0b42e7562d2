//! Recording analysed messages, operator decisions, and replaying a recipient's history.

use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::replay::{
    self, AutoEvent, History, RecipientRow, StoredEvent, insert_events, recipient_columns,
    rederive, rows_per_statement, save_rows, upsert_recipients,
};
use super::{Store, StoreError, from_secs, normalize_address, outbox, secs};
use crate::Analysis;
use crate::classify::Bounce;
use crate::policy::{self, Cause, Event, Evidence, Manual, Policy, State, Trust};

/// One message ready for the database: hashed, compressed and analysed (the CPU work, done off the
/// writer so a worker pool can do it in parallel).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Hex SHA-256 of the raw bytes: the idempotency key.
    pub sha256: String,
    /// Where it came from: `file:<path>`, `maildir:<path>`, `imap:<account>/<mailbox>/<uidvalidity>/<uid>`.
    pub source: String,
    /// When the message reached us.
    pub received_at: DateTime<Utc>,
    /// Length of the raw message.
    pub raw_size: usize,
    /// The raw message, zlib-compressed.
    pub raw_deflate: Vec<u8>,
    /// What the reader and classifier made of it.
    pub analysis: Analysis,
}

/// The hex SHA-256 of a message's bytes: its key in the database.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

thread_local! {
    /// One compressor per thread, reset between messages: building one costs more than a small
    /// message's compression.
    static COMPRESSOR: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(Compression::fast(), true));
}

/// The raw message as stored: zlib, fast level (compression runs once per message, on import).
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(bytes.len() / 2 + 128);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let rest = bytes.get(consumed..).unwrap_or_default();
            match c.compress_vec(rest, &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(4096)),
                // Cannot happen with a Vec output; fall back to the one-shot encoder.
                Err(_) => return deflate_once(bytes),
            }
        }
    })
}

fn deflate_once(bytes: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 3 + 64),
        Compression::fast(),
    );
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decompresses a stored raw message.
pub(crate) fn inflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    let mut dec = flate2::write::ZlibDecoder::new(&mut out);
    dec.write_all(bytes)?;
    dec.finish()?;
    Ok(out)
}

impl Prepared {
    /// Hashes and compresses `bytes`, keeping `analysis` as given.
    pub fn new(
        source: String,
        received_at: DateTime<Utc>,
        bytes: &[u8],
        analysis: Analysis,
    ) -> Prepared {
        Prepared {
            sha256: sha256_hex(bytes),
            source,
            received_at,
            raw_size: bytes.len(),
            raw_deflate: deflate(bytes),
            analysis,
        }
    }
}

/// A recipient whose state changed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// The normalized address.
    pub address: String,
    /// The new state.
    pub to: State,
    /// What caused it.
    pub cause: Cause,
}

/// What recording one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// First time this message was seen.
    New {
        /// Its row id.
        message_id: i64,
        /// Bounce rows written.
        bounces: usize,
        /// Recipients whose state changed.
        changes: Vec<StateChange>,
    },
    /// The same bytes were recorded before; nothing was written.
    Duplicate {
        /// The existing row id.
        message_id: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_round_trips_with_a_reused_compressor() {
        for text in [
            "",
            "short",
            &"a much longer text that repeats; ".repeat(5000),
        ] {
            let packed = deflate(text.as_bytes());
            assert_eq!(inflate(&packed).unwrap_or_default(), text.as_bytes());
        }
        let incompressible: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(
            inflate(&deflate(&incompressible)).unwrap_or_default(),
            incompressible
        );
    }
}

/// The stored columns of a bounce, as one comparable value.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct BounceFields {
    pub recipient: Option<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub replycode: Option<String>,
    pub reason: String,
    pub bounce_type: String,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
    pub reporting_mta: Option<String>,
    pub date: Option<String>,
    pub feedback_type: Option<String>,
    pub rule: String,
    pub reader: String,
    pub original_message_id: Option<String>,
    pub original_from: Option<String>,
    pub original_to: Option<String>,
    pub original_subject: Option<String>,
    pub original_list_id: Option<String>,
}

impl BounceFields {
    pub(crate) fn of(b: &Bounce) -> BounceFields {
        BounceFields {
            recipient: b.recipient.clone(),
            action: b.action.clone(),
            status: b.status.clone(),
            replycode: b.replycode.clone(),
            reason: b.reason.as_str().to_owned(),
            bounce_type: b.bounce_type.as_str().to_owned(),
            diagnostic: b.diagnostic.clone(),
            remote_mta: b.remote_mta.clone(),
            reporting_mta: b.reporting_mta.clone(),
            date: b.date.clone(),
            feedback_type: b.feedback_type.clone(),
            rule: b.rule.clone(),
            reader: b.reader.clone(),
            original_message_id: b.original_message_id.clone(),
            original_from: b.original_from.clone(),
            original_to: b.original_to.clone(),
            original_subject: b.original_subject.clone(),
            original_list_id: b.original_list_id.clone(),
        }
    }
}

/// One bounce on its way to the database.
struct Pending<'a> {
    /// Index of its message in the batch.
    msg: usize,
    message_id: i64,
    position: i64,
    at: i64,
    /// The normalized `(address, domain)`, when the recipient is a usable address.
    address: Option<(String, String)>,
    /// The message's VERP address names someone else: kept, never applied to this recipient.
    verp_mismatch: bool,
    /// `[trust]` is configured and the bounce offered no proof of being about our mail: kept,
    /// never applied.
    untrusted: bool,
    fields: BounceFields,
    bounce: &'a Bounce,
    /// Sorts before the inputs its recipient's state includes, with the key of a stored bounce.
    inert: bool,
    counted: bool,
    change: Option<policy::Change>,
}

impl<'a> Pending<'a> {
    /// The bounces of message `msg` of a batch, stored as row `message_id`; `verp` is the
    /// recipient the message's VERP address names, if any.
    fn of_message(
        msg: usize,
        message_id: i64,
        received_at: DateTime<Utc>,
        verp: Option<&'a str>,
        campaign: Option<&'a str>,
        trust: &'a Trust,
        bounces: &'a [Bounce],
    ) -> impl Iterator<Item = Pending<'a>> {
        bounces.iter().enumerate().map(move |(pos, b)| {
            let address = b.recipient.as_deref().and_then(normalize_address);
            let (mismatch, untrusted) = standing(
                verp,
                campaign,
                trust,
                b,
                address.as_ref().map(|(a, _)| a.as_str()),
            );
            Pending {
                msg,
                message_id,
                position: i64::try_from(pos).unwrap_or(i64::MAX),
                at: secs(crate::maildate::bounce_time(b.date.as_deref(), received_at)),
                verp_mismatch: mismatch,
                untrusted,
                address,
                fields: BounceFields::of(b),
                bounce: b,
                inert: false,
                counted: false,
                change: None,
            }
        })
    }

    /// Whether the bounce may change its recipient's state.
    fn applies(&self) -> bool {
        !self.verp_mismatch && !self.untrusted
    }

    fn address(&self) -> Option<&str> {
        self.address.as_ref().map(|(a, _)| a.as_str())
    }

    /// The bounce's order key among a recipient's inputs, when it is one (see [`replay`]).
    fn policy_key(&self) -> Option<String> {
        (self.bounce.bounce_type != crate::BounceType::None && self.applies()).then(|| {
            replay::policy_key(
                self.at,
                replay::rank(self.bounce.bounce_type),
                self.bounce.reason.as_str(),
            )
        })
    }
}

/// Whether a bounce is kept without being applied, as `(verp mismatch, untrusted)`: its
/// message's VERP address names someone else, or `[trust]` is configured and it offers no proof of
/// being about mail we sent (`campaign` is the returned original's campaign header).
pub(crate) fn standing(
    verp: Option<&str>,
    campaign: Option<&str>,
    trust: &Trust,
    b: &Bounce,
    recipient: Option<&str>,
) -> (bool, bool) {
    let mismatch = verp_mismatch(verp, recipient);
    let evidence = Evidence {
        list_id: b.original_list_id.as_deref(),
        message_id: b.original_message_id.as_deref(),
        campaign,
        verp_matches: verp.is_some() && recipient.is_some() && !mismatch,
    };
    (mismatch, !trust.trusts(&evidence))
}

/// Whether a bounce about `recipient` contradicts the recipient a VERP bounce address names: a
/// report sent back for one subscriber that speaks of another. The local part is compared without
/// case, as mail systems fold it.
pub(crate) fn verp_mismatch(verp: Option<&str>, recipient: Option<&str>) -> bool {
    match (verp.and_then(normalize_address), recipient) {
        (Some((named, _)), Some(recipient)) => !named.eq_ignore_ascii_case(recipient),
        _ => false,
    }
}

/// Which of the bounces `pending[i]` (for `i` in `which`) have the key of a bounce already stored
/// for their recipient (same time, type and reason, applied to the recipient), as
/// `(recipient id, at, type, reason)`.
async fn stored_keys(
    conn: &mut SqliteConnection,
    pending: &[Pending<'_>],
    which: &[usize],
    rows: &HashMap<String, RecipientRow>,
) -> Result<HashSet<(i64, i64, String, String)>, sqlx::Error> {
    let mut keys: Vec<(i64, i64, &str, &str)> = which
        .iter()
        .filter_map(|&i| pending.get(i))
        .filter_map(|p| {
            let rid = p.address().and_then(|a| rows.get(a))?.id;
            Some((
                rid,
                p.at,
                p.fields.bounce_type.as_str(),
                p.fields.reason.as_str(),
            ))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut found = HashSet::new();
    for chunk in keys.chunks(rows_per_statement(4)) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("with k (recipient_id, at, bounce_type, reason) as (");
        qb.push_values(chunk, |mut b, (rid, at, ty, reason)| {
            b.push_bind(*rid)
                .push_bind(*at)
                .push_bind(*ty)
                .push_bind(*reason);
        });
        qb.push(
            ") select k.recipient_id, k.at, k.bounce_type, k.reason from k where exists \
             (select 1 from bounces b where b.recipient_id = k.recipient_id and b.at = k.at \
             and b.bounce_type = k.bounce_type and b.reason = k.reason and b.verp_mismatch = 0 \
             and b.untrusted = 0)",
        );
        let got: Vec<(i64, i64, String, String)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(got);
    }
    Ok(found)
}

/// Creates or fetches the recipients of `pending`, keyed by address.
async fn recipients_of(
    conn: &mut SqliteConnection,
    pending: &[Pending<'_>],
    now: i64,
) -> Result<HashMap<String, RecipientRow>, sqlx::Error> {
    let mut addresses: Vec<(String, String)> =
        pending.iter().filter_map(|p| p.address.clone()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    upsert_recipients(conn, &addresses, now).await
}

/// Inserts the bounce rows of `pending` with a few multi-row statements; returns the row id of
/// each, keyed by `(message_id, position)`.
async fn insert_bounces(
    conn: &mut SqliteConnection,
    pending: &[Pending<'_>],
    rows: &HashMap<String, RecipientRow>,
) -> Result<HashMap<(i64, i64), i64>, sqlx::Error> {
    let mut ids = HashMap::with_capacity(pending.len());
    for chunk in pending.chunks(rows_per_statement(25)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into bounces (message_id, position, recipient_id, at, recipient, action, \
             status, replycode, reason, bounce_type, diagnostic, remote_mta, reporting_mta, date, \
             feedback_type, rule, reader, original_message_id, original_from, original_to, \
             original_subject, original_list_id, counted, verp_mismatch, untrusted) ",
        );
        qb.push_values(chunk, |mut b, p| {
            let f = &p.fields;
            let recipient_id = p.address().and_then(|a| rows.get(a)).map(|r| r.id);
            b.push_bind(p.message_id)
                .push_bind(p.position)
                .push_bind(recipient_id)
                .push_bind(p.at)
                .push_bind(f.recipient.clone())
                .push_bind(f.action.clone())
                .push_bind(f.status.clone())
                .push_bind(f.replycode.clone())
                .push_bind(f.reason.clone())
                .push_bind(f.bounce_type.clone())
                .push_bind(f.diagnostic.clone())
                .push_bind(f.remote_mta.clone())
                .push_bind(f.reporting_mta.clone())
                .push_bind(f.date.clone())
                .push_bind(f.feedback_type.clone())
                .push_bind(f.rule.clone())
                .push_bind(f.reader.clone())
                .push_bind(f.original_message_id.clone())
                .push_bind(f.original_from.clone())
                .push_bind(f.original_to.clone())
                .push_bind(f.original_subject.clone())
                .push_bind(f.original_list_id.clone())
                .push_bind(p.counted)
                .push_bind(p.verp_mismatch)
                .push_bind(p.untrusted);
        });
        qb.push(" returning id, message_id, position");
        let got: Vec<(i64, i64, i64)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        ids.extend(got.into_iter().map(|(id, m, pos)| ((m, pos), id)));
    }
    Ok(ids)
}

/// Writes the bounces of one stored message without applying the policy, adding their recipients
/// to `touched` so the caller can replay those histories.
pub(crate) async fn write_bounces(
    conn: &mut SqliteConnection,
    message_id: i64,
    received_at: DateTime<Utc>,
    analysis: &Analysis,
    trust: &Trust,
    now: i64,
    touched: &mut HashSet<i64>,
) -> Result<(), sqlx::Error> {
    let pending: Vec<Pending<'_>> = Pending::of_message(
        0,
        message_id,
        received_at,
        analysis.verp.as_deref(),
        analysis
            .original
            .as_ref()
            .and_then(|o| o.campaign.as_deref()),
        trust,
        &analysis.bounces,
    )
    .collect();
    let rows = recipients_of(conn, &pending, now).await?;
    touched.extend(rows.values().map(|r| r.id));
    insert_bounces(conn, &pending, &rows).await?;
    Ok(())
}

/// What a manual suppress or unsuppress did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualOutcome {
    /// The normalized address.
    pub address: String,
    /// The state after the decision.
    pub state: State,
    /// Whether the state changed (it was not already so).
    pub changed: bool,
    /// Whether the decision was recorded in the history: not when the address already had that
    /// state and that override, since it would change nothing.
    pub recorded: bool,
}

impl Store {
    /// Records a batch of messages in one transaction; one [`Outcome`] per message, in order.
    ///
    /// Idempotent: a message whose SHA-256 is already stored (or appears earlier in the batch) is a
    /// [`Outcome::Duplicate`] and writes nothing. `now` is the recording time.
    pub async fn record(
        &self,
        batch: &[Prepared],
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.record_with_positions(batch, &[], now).await
    }

    /// [`Store::record`], saving the sources' `positions` in the same transaction: the pipeline's
    /// writer commits a batch and what its sources have acknowledged together.
    pub async fn record_with_positions(
        &self,
        batch: &[Prepared],
        positions: &[crate::source::PositionUpdate],
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = conn.begin().await?;
            let out = record_batch(
                &mut tx,
                &self.policy,
                &self.trust,
                self.bounce_events,
                batch,
                secs(now),
            )
            .await?;
            super::source_state::save_positions(&mut tx, positions, secs(now)).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(out)
        }
        .await;
        match result {
            Ok(out) => {
                self.wake_outbox();
                Ok(out)
            }
            Err(e) => {
                // After a failed write (a full disk, EFBIG, EIO) SQLite can keep the transaction
                // and its write lock on this connection: close it rather than hand it back to the
                // pool, where it would lock out every later write.
                let _ = conn.close().await;
                Err(self.err(e))
            }
        }
    }

    /// Suppresses an address by hand (creating it when unknown); the reason is kept as the why.
    pub async fn suppress(
        &self,
        address: &str,
        why: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ManualOutcome, StoreError> {
        self.decide(address, Manual::Suppressed, why, at, false)
            .await
    }

    /// Unsuppresses an address by hand; soft bounces no longer suppress it until a hard bounce or
    /// complaint arrives.
    pub async fn unsuppress(
        &self,
        address: &str,
        why: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ManualOutcome, StoreError> {
        self.decide(address, Manual::Unsuppressed, why, at, false)
            .await
    }

    /// Records an operator's decision about an address at time `at`, then derives the address's
    /// state again from all its inputs (a decision sorts among the bounces by its time). A
    /// suppression creates an unknown address; an unsuppression of one fails with
    /// [`StoreError::UnknownRecipient`]. Nothing is recorded when the address already has that state
    /// and that override. With `dry_run`, nothing is written and the outcome says what would happen.
    pub async fn decide(
        &self,
        address: &str,
        decision: Manual,
        why: Option<&str>,
        at: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ManualOutcome, StoreError> {
        let (address, domain) = normalize_address(address)
            .ok_or_else(|| StoreError::InvalidAddress(address.to_owned()))?;
        let now = secs(at);
        let mut conn = self.pool().acquire().await.map_err(|e| self.err(e))?;
        let result = async {
            use sqlx::Connection;
            let mut tx = if dry_run {
                conn.begin().await?
            } else {
                conn.begin_with("begin immediate").await?
            };
            let stored: Option<RecipientRow> = sqlx::query_as(concat!(
                "select ",
                recipient_columns!(),
                " from recipients where address = ?"
            ))
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?;
            let before = stored
                .as_ref()
                .map_or(State::Active, |r| State::parse(&r.state));
            let target = match decision {
                Manual::Suppressed => State::Suppressed,
                Manual::Unsuppressed => State::Active,
            };
            if let Some(row) = &stored
                && before == target
                && row.manual.as_deref() == Some(decision.as_str())
            {
                return Ok(Some((before, before, false)));
            }
            if stored.is_none() && decision == Manual::Unsuppressed {
                return Ok(None);
            }
            let event = StoredEvent {
                recipient_id: stored.as_ref().map_or(0, |r| r.id),
                at: now,
                change: replay::change_name(target).to_owned(),
                cause: Cause::Manual.as_str().to_owned(),
                bounce_id: None,
                rule: None,
                note: why.map(str::to_owned),
            };
            if dry_run {
                let mut history = match &stored {
                    Some(row) => replay::load(&mut tx, &[row.id])
                        .await?
                        .pop()
                        .unwrap_or_else(|| History {
                            row: row.clone(),
                            bounces: Vec::new(),
                            events: Vec::new(),
                        }),
                    None => History {
                        row: RecipientRow::new(0, address.clone(), domain.clone()),
                        bounces: Vec::new(),
                        events: Vec::new(),
                    },
                };
                history.events.push(event);
                let after = State::parse(&replay::derive(&self.policy, &history).row.state);
                return Ok(Some((before, after, true)));
            }
            let id = match &stored {
                Some(row) => row.id,
                None => upsert_recipients(&mut tx, &[(address.clone(), domain.clone())], now)
                    .await?
                    .remove(&address)
                    .map_or(0, |r| r.id),
            };
            sqlx::query(
                "insert into events (recipient_id, at, change, cause, note) values (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(event.at)
            .bind(&event.change)
            .bind(&event.cause)
            .bind(&event.note)
            .execute(&mut *tx)
            .await?;
            let after = rederive(&mut tx, &self.policy, &[id], now, true, false)
                .await?
                .first()
                .map_or(target, |r| r.after);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some((before, after, true)))
        }
        .await;
        let result = result.map_err(|e| self.err(e))?;
        if !dry_run {
            self.wake_outbox();
        }
        match result {
            Some((before, state, recorded)) => Ok(ManualOutcome {
                address,
                state,
                changed: before != state,
                recorded,
            }),
            None => Err(StoreError::UnknownRecipient(address)),
        }
    }
}

/// One outbox event per new bounce of a usable address (hard, soft or complaint, not one about
/// someone the VERP address does not name), before the changes of state they cause.
async fn write_bounce_events(
    conn: &mut SqliteConnection,
    batch: &[Prepared],
    pending: &[Pending<'_>],
    bounce_ids: &HashMap<(i64, i64), i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let events: Vec<outbox::NewEvent> = pending
        .iter()
        .filter(|p| p.bounce.bounce_type != crate::BounceType::None && p.applies())
        .filter_map(|p| {
            let address = p.address()?;
            let f = &p.fields;
            let bounce = outbox::BounceRef {
                id: bounce_ids
                    .get(&(p.message_id, p.position))
                    .copied()
                    .unwrap_or_default(),
                status: f.status.clone(),
                replycode: f.replycode.clone(),
                reason: f.reason.clone(),
                diagnostic: f.diagnostic.clone(),
                rule: f.rule.clone(),
                original_message_id: f.original_message_id.clone(),
                original_list_id: f.original_list_id.clone(),
                original_campaign: batch
                    .get(p.msg)
                    .and_then(|m| m.analysis.original.as_ref())
                    .and_then(|o| o.campaign.clone()),
            };
            Some(outbox::NewEvent::new(
                "bounce",
                address,
                now,
                None,
                Some(f.bounce_type.clone()),
                Some(&bounce),
            ))
        })
        .collect();
    outbox::insert(conn, &events, now).await
}

/// Records a batch with a handful of multi-row statements instead of several per message.
async fn record_batch(
    conn: &mut SqliteConnection,
    policy: &Policy,
    trust: &Trust,
    bounce_events: bool,
    batch: &[Prepared],
    now: i64,
) -> Result<Vec<Outcome>, sqlx::Error> {
    // 1. Messages: insert, learning which are new.
    let mut inserted: HashMap<String, i64> = HashMap::with_capacity(batch.len());
    for chunk in batch.chunks(rows_per_statement(13)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into messages (sha256, source, received_at, recorded_at, kind, reader, error, \
             original_message_id, original_list_id, original_campaign, verp_recipient, raw_size, \
             raw_deflate) ",
        );
        qb.push_values(chunk, |mut b, m| {
            let a = &m.analysis;
            let original = a.original.as_ref();
            b.push_bind(m.sha256.clone())
                .push_bind(m.source.clone())
                .push_bind(secs(m.received_at))
                .push_bind(now)
                .push_bind(a.kind.as_str())
                .push_bind(a.reader)
                .push_bind(a.error.as_ref().map(ToString::to_string))
                .push_bind(original.and_then(|o| o.message_id.clone()))
                .push_bind(original.and_then(|o| o.list_id.clone()))
                .push_bind(original.and_then(|o| o.campaign.clone()))
                .push_bind(a.verp.clone())
                .push_bind(i64::try_from(m.raw_size).unwrap_or(i64::MAX))
                .push_bind(m.raw_deflate.clone());
        });
        qb.push(" on conflict (sha256) do nothing returning id, sha256");
        let rows: Vec<(i64, String)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        inserted.extend(rows.into_iter().map(|(id, sha)| (sha, id)));
    }

    // Which messages are new: the first of each inserted digest.
    let mut is_new = vec![false; batch.len()];
    let mut claimed: HashSet<&str> = HashSet::with_capacity(inserted.len());
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if inserted.contains_key(&m.sha256) {
            is_new[i] = claimed.insert(&m.sha256);
        } else {
            missing.push(&m.sha256);
        }
    }
    missing.sort_unstable();
    missing.dedup();
    for chunk in missing.chunks(rows_per_statement(1)) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("select id, sha256 from messages where sha256 in (");
        let mut sep = qb.separated(", ");
        for sha in chunk {
            sep.push_bind(sha.to_string());
        }
        qb.push(")");
        let rows: Vec<(i64, String)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        known.extend(rows.into_iter().map(|(id, sha)| (sha, id)));
    }

    // 2. The bounces of the new messages, their recipients, and their rows.
    let mut pending: Vec<Pending<'_>> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if is_new[i] {
            let message_id = inserted.get(&m.sha256).copied().unwrap_or_default();
            pending.extend(Pending::of_message(
                i,
                message_id,
                m.received_at,
                m.analysis.verp.as_deref(),
                m.analysis
                    .original
                    .as_ref()
                    .and_then(|o| o.campaign.as_deref()),
                trust,
                &m.analysis.bounces,
            ));
        }
    }
    let mut rows = recipients_of(conn, &pending, now).await?;

    // 3. The policy. A recipient whose new bounces all sort after the inputs its state includes
    // (the live case) has its state extended here, bounce by bounce in key order. A new bounce
    // with the very key of a stored one (the same failure reported again) changes nothing but the
    // counts: the one before it has done all it can. Any other recipient is derived again from all
    // its stored inputs once the new bounces are in (step 6).
    let behind: Vec<usize> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!((p.address(), p.policy_key()), (Some(a), Some(key))
                if rows.get(a).is_some_and(|r| !r.extends_with(&key)))
        })
        .map(|(i, _)| i)
        .collect();
    let stored = stored_keys(conn, &pending, &behind, &rows).await?;
    let mut replayed: HashSet<String> = HashSet::new();
    for &i in &behind {
        let Some(p) = pending.get_mut(i) else {
            continue;
        };
        let rid = p.address().and_then(|a| rows.get(a)).map_or(0, |r| r.id);
        if stored.contains(&(
            rid,
            p.at,
            p.fields.bounce_type.clone(),
            p.fields.reason.clone(),
        )) {
            p.inert = true;
        } else if let Some(a) = p.address() {
            replayed.insert(a.to_owned());
        }
    }
    let mut order: Vec<(Option<String>, usize)> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| p.address().is_some_and(|a| !replayed.contains(a)))
        .map(|(i, p)| (p.policy_key(), i))
        .collect();
    order.sort();
    for (_, i) in order {
        let Some(p) = pending.get_mut(i) else {
            continue;
        };
        let Some(row) = p.address.as_ref().and_then(|(a, _)| rows.get_mut(a)) else {
            continue;
        };
        if !p.applies() {
            continue;
        }
        if p.inert {
            row.count(p.bounce.bounce_type, p.at);
            continue;
        }
        let d = row.apply(
            policy,
            Event::Bounce(p.bounce.bounce_type),
            from_secs(p.at),
            Some(p.bounce.reason.as_str()),
        );
        p.counted = d.counted;
        p.change = d.change;
    }

    // 4. Bounce rows.
    let bounce_ids = insert_bounces(conn, &pending, &rows).await?;
    if bounce_events {
        write_bounce_events(conn, batch, &pending, &bounce_ids, now).await?;
    }

    // 5. History and rows of the extended recipients: one event per change, each naming its
    // bounce and rule.
    let mut changes: Vec<Vec<StateChange>> = vec![Vec::new(); batch.len()];
    let mut events: Vec<AutoEvent> = Vec::new();
    for p in &pending {
        let (Some(change), Some(address)) = (p.change, p.address()) else {
            continue;
        };
        let Some(row) = rows.get_mut(address) else {
            continue;
        };
        let bounce_id = bounce_ids.get(&(p.message_id, p.position)).copied();
        if change.to == State::Suppressed {
            row.suppressed_bounce_id = bounce_id;
        }
        events.push(AutoEvent::new(
            row.id,
            p.at,
            change,
            bounce_id,
            Some(&p.bounce.rule),
        ));
        if let Some(c) = changes.get_mut(p.msg) {
            c.push(StateChange {
                address: address.to_owned(),
                to: change.to,
                cause: change.cause,
            });
        }
    }
    insert_events(conn, &events).await?;
    let extended: Vec<&RecipientRow> = rows
        .values()
        .filter(|r| !replayed.contains(r.address.as_str()))
        .collect();
    save_rows(conn, &extended, now).await?;

    // 6. The recipients whose new bounces arrived out of order, derived again from all their
    // inputs; a change of state is told with the message whose bounce caused it (else the first
    // message of the batch that names the recipient).
    if !replayed.is_empty() {
        let mut ids: Vec<i64> = replayed
            .iter()
            .filter_map(|a| rows.get(a).map(|r| r.id))
            .collect();
        ids.sort_unstable();
        let message_of: HashMap<i64, usize> = pending
            .iter()
            .filter_map(|p| {
                bounce_ids
                    .get(&(p.message_id, p.position))
                    .map(|id| (*id, p.msg))
            })
            .collect();
        for r in rederive(conn, policy, &ids, now, true, false).await? {
            if r.before == r.after {
                continue;
            }
            let msg = r
                .last_change
                .and_then(|(_, bounce)| bounce)
                .and_then(|b| message_of.get(&b).copied())
                .or_else(|| {
                    pending
                        .iter()
                        .find(|p| p.address() == Some(r.address.as_str()))
                        .map(|p| p.msg)
                });
            let cause = r.last_change.map_or(Cause::Manual, |(c, _)| c);
            if let Some(c) = msg.and_then(|m| changes.get_mut(m)) {
                c.push(StateChange {
                    address: r.address,
                    to: r.after,
                    cause,
                });
            }
        }
    }

    // Outcomes, in batch order.
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if is_new[i] {
                Outcome::New {
                    message_id: inserted.get(&m.sha256).copied().unwrap_or_default(),
                    bounces: m.analysis.bounces.len(),
                    changes: changes.get_mut(i).map(std::mem::take).unwrap_or_default(),
                }
            } else {
                Outcome::Duplicate {
                    message_id: inserted
                        .get(&m.sha256)
                        .or_else(|| known.get(&m.sha256))
                        .copied()
                        .unwrap_or_default(),
                }
            }
        })
        .collect())
}
