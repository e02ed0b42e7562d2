//! Recording analysed messages, operator decisions, and replaying a recipient's history.

use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{Store, StoreError, from_secs, normalize_address, secs};
use crate::Analysis;
use crate::classify::{Bounce, BounceType};
use crate::policy::{self, Cause, Decision, Event, Manual, Policy, RecipientState, State};

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

/// The stored bounce type name back as a [`BounceType`].
pub(crate) fn parse_bounce_type(s: &str) -> BounceType {
    match s {
        "hard" => BounceType::Hard,
        "soft" => BounceType::Soft,
        "complaint" => BounceType::Complaint,
        _ => BounceType::None,
    }
}

/// A recipient's row, less its address.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RecipientRow {
    pub id: i64,
    pub address: String,
    pub domain: String,
    pub state: String,
    pub soft_score: i64,
    pub soft_last_counted_at: Option<i64>,
    pub manual: Option<String>,
    pub hard_count: i64,
    pub soft_count: i64,
    pub complaint_count: i64,
    pub other_count: i64,
    pub first_bounce_at: Option<i64>,
    pub last_bounce_at: Option<i64>,
    pub suppressed_at: Option<i64>,
    pub suppressed_type: Option<String>,
    pub suppressed_why: Option<String>,
    pub suppressed_bounce_id: Option<i64>,
}

impl RecipientRow {
    fn policy_state(&self) -> RecipientState {
        RecipientState {
            state: State::parse(&self.state),
            soft_score: u32::try_from(self.soft_score).unwrap_or(0),
            soft_last_counted_at: self.soft_last_counted_at.map(from_secs),
            manual: self.manual.as_deref().and_then(Manual::parse),
        }
    }

    fn reset(&mut self) {
        self.state = State::Active.as_str().to_owned();
        self.soft_score = 0;
        self.soft_last_counted_at = None;
        self.manual = None;
        self.hard_count = 0;
        self.soft_count = 0;
        self.complaint_count = 0;
        self.other_count = 0;
        self.first_bounce_at = None;
        self.last_bounce_at = None;
        self.clear_suppression();
    }

    fn clear_suppression(&mut self) {
        self.suppressed_at = None;
        self.suppressed_type = None;
        self.suppressed_why = None;
        self.suppressed_bounce_id = None;
    }

    /// Applies one event through the policy and keeps the row's own bookkeeping in step.
    fn apply(
        &mut self,
        policy: &Policy,
        event: Event,
        at: DateTime<Utc>,
        why: Option<&str>,
    ) -> Decision {
        let mut st = self.policy_state();
        let d = policy::apply(policy, &mut st, event, at);
        self.state = st.state.as_str().to_owned();
        self.soft_score = i64::from(st.soft_score);
        self.soft_last_counted_at = st.soft_last_counted_at.map(secs);
        self.manual = st.manual.map(|m| m.as_str().to_owned());
        if let Event::Bounce(t) = event {
            let t_secs = secs(at);
            match t {
                BounceType::Hard => self.hard_count += 1,
                BounceType::Soft => self.soft_count += 1,
                BounceType::Complaint => self.complaint_count += 1,
                BounceType::None => self.other_count += 1,
            }
            if t != BounceType::None {
                self.first_bounce_at = Some(self.first_bounce_at.map_or(t_secs, |f| f.min(t_secs)));
                self.last_bounce_at = Some(self.last_bounce_at.map_or(t_secs, |l| l.max(t_secs)));
            }
        }
        if let Some(change) = d.change {
            match change.to {
                State::Suppressed => {
                    self.suppressed_at = Some(secs(at));
                    self.suppressed_type = Some(change.cause.suppressed_type().to_owned());
                    self.suppressed_why = why.map(str::to_owned);
                    self.suppressed_bounce_id = None;
                }
                State::Active => self.clear_suppression(),
            }
        }
        d
    }

    async fn save(&self, conn: &mut SqliteConnection, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update recipients set state = ?, soft_score = ?, soft_last_counted_at = ?, manual = ?, \
             hard_count = ?, soft_count = ?, complaint_count = ?, other_count = ?, \
             first_bounce_at = ?, last_bounce_at = ?, suppressed_at = ?, suppressed_type = ?, \
             suppressed_why = ?, suppressed_bounce_id = ?, updated_at = ? where id = ?",
        )
        .bind(&self.state)
        .bind(self.soft_score)
        .bind(self.soft_last_counted_at)
        .bind(&self.manual)
        .bind(self.hard_count)
        .bind(self.soft_count)
        .bind(self.complaint_count)
        .bind(self.other_count)
        .bind(self.first_bounce_at)
        .bind(self.last_bounce_at)
        .bind(self.suppressed_at)
        .bind(&self.suppressed_type)
        .bind(&self.suppressed_why)
        .bind(self.suppressed_bounce_id)
        .bind(now)
        .bind(self.id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The columns of a [`RecipientRow`], in one place for every statement that reads one.
macro_rules! recipient_columns {
    () => {
        "id, address, domain, state, soft_score, soft_last_counted_at, manual, hard_count, \
         soft_count, complaint_count, other_count, first_bounce_at, last_bounce_at, suppressed_at, \
         suppressed_type, suppressed_why, suppressed_bounce_id"
    };
}

/// Fetches the recipient rows for normalized `(address, domain)` pairs, creating the new ones;
/// keyed by address.
async fn upsert_recipients(
    conn: &mut SqliteConnection,
    addresses: &[(String, String)],
    now: i64,
) -> Result<HashMap<String, RecipientRow>, sqlx::Error> {
    let mut rows = HashMap::with_capacity(addresses.len());
    for chunk in addresses.chunks(rows_per_statement(3)) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("insert into recipients (address, domain, updated_at) ");
        qb.push_values(chunk, |mut b, (address, domain)| {
            b.push_bind(address.clone())
                .push_bind(domain.clone())
                .push_bind(now);
        });
        qb.push(concat!(
            " on conflict (address) do update set updated_at = excluded.updated_at returning ",
            recipient_columns!()
        ));
        let got: Vec<RecipientRow> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(got.into_iter().map(|r| (r.address.clone(), r)));
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    conn: &mut SqliteConnection,
    recipient_id: i64,
    at: i64,
    to: State,
    cause: Cause,
    bounce_id: Option<i64>,
    rule: Option<&str>,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into events (recipient_id, at, change, cause, bounce_id, rule, note) \
         values (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(recipient_id)
    .bind(at)
    .bind(change_name(to))
    .bind(cause.as_str())
    .bind(bounce_id)
    .bind(rule)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
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
    fields: BounceFields,
    bounce: &'a Bounce,
    counted: bool,
    change: Option<policy::Change>,
}

impl<'a> Pending<'a> {
    /// The bounces of message `msg` of a batch, stored as row `message_id`.
    fn of_message(
        msg: usize,
        message_id: i64,
        received_at: DateTime<Utc>,
        bounces: &'a [Bounce],
    ) -> impl Iterator<Item = Pending<'a>> {
        bounces.iter().enumerate().map(move |(pos, b)| Pending {
            msg,
            message_id,
            position: i64::try_from(pos).unwrap_or(i64::MAX),
            at: secs(crate::maildate::bounce_time(b.date.as_deref(), received_at)),
            address: b.recipient.as_deref().and_then(normalize_address),
            fields: BounceFields::of(b),
            bounce: b,
            counted: false,
            change: None,
        })
    }

    fn address(&self) -> Option<&str> {
        self.address.as_ref().map(|(a, _)| a.as_str())
    }
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
    for chunk in pending.chunks(rows_per_statement(23)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into bounces (message_id, position, recipient_id, at, recipient, action, \
             status, replycode, reason, bounce_type, diagnostic, remote_mta, reporting_mta, date, \
             feedback_type, rule, reader, original_message_id, original_from, original_to, \
             original_subject, original_list_id, counted) ",
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
                .push_bind(p.counted);
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
    bounces: &[Bounce],
    now: i64,
    touched: &mut HashSet<i64>,
) -> Result<(), sqlx::Error> {
    let pending: Vec<Pending<'_>> =
        Pending::of_message(0, message_id, received_at, bounces).collect();
    let rows = recipients_of(conn, &pending, now).await?;
    touched.extend(rows.values().map(|r| r.id));
    insert_bounces(conn, &pending, &rows).await?;
    Ok(())
}

/// Re-derives one recipient's state, counts and automatic history from its bounces and the
/// operator's decisions, in time order. Returns the state before and after.
pub(crate) async fn replay(
    conn: &mut SqliteConnection,
    policy: &Policy,
    recipient_id: i64,
    now: i64,
) -> Result<(State, State), sqlx::Error> {
    let mut row: RecipientRow = sqlx::query_as(concat!(
        "select ",
        recipient_columns!(),
        " from recipients where id = ?"
    ))
    .bind(recipient_id)
    .fetch_one(&mut *conn)
    .await?;
    let before = State::parse(&row.state);
    let bounces: Vec<(i64, i64, String, String, String, bool)> = sqlx::query_as(
        "select id, at, bounce_type, reason, rule, counted from bounces \
         where recipient_id = ? order by at, id",
    )
    .bind(recipient_id)
    .fetch_all(&mut *conn)
    .await?;
    let manual: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "select at, change, note from events where recipient_id = ? and cause = 'manual' \
         order by at, id",
    )
    .bind(recipient_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("delete from events where recipient_id = ? and cause <> 'manual'")
        .bind(recipient_id)
        .execute(&mut *conn)
        .await?;

    row.reset();
    let mut mi = manual.into_iter().peekable();
    for (id, at, ty, reason, rule, was_counted) in bounces {
        while mi.peek().is_some_and(|(m_at, _, _)| *m_at < at) {
            if let Some((m_at, change, note)) = mi.next() {
                apply_manual(&mut row, policy, m_at, &change, note.as_deref());
            }
        }
        let t = from_secs(at);
        let d = row.apply(
            policy,
            Event::Bounce(parse_bounce_type(&ty)),
            t,
            Some(&reason),
        );
        if d.counted != was_counted {
            sqlx::query("update bounces set counted = ? where id = ?")
                .bind(d.counted)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        if let Some(change) = d.change {
            if change.to == State::Suppressed {
                row.suppressed_bounce_id = Some(id);
            }
            insert_event(
                conn,
                recipient_id,
                at,
                change.to,
                change.cause,
                Some(id),
                Some(&rule),
                None,
            )
            .await?;
        }
    }
    for (m_at, change, note) in mi {
        apply_manual(&mut row, policy, m_at, &change, note.as_deref());
    }
    row.save(conn, now).await?;
    Ok((before, State::parse(&row.state)))
}

fn apply_manual(
    row: &mut RecipientRow,
    policy: &Policy,
    at: i64,
    change: &str,
    note: Option<&str>,
) {
    let event = if change == "suppressed" {
        Event::ManualSuppress
    } else {
        Event::ManualUnsuppress
    };
    row.apply(policy, event, from_secs(at), note);
}

/// What a manual suppress or unsuppress did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualOutcome {
    /// The normalized address.
    pub address: String,
    /// The state now.
    pub state: State,
    /// Whether the state changed (it was not already so).
    pub changed: bool,
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
            let out = record_batch(&mut tx, &self.policy, batch, secs(now)).await?;
            super::source_state::save_positions(&mut tx, positions, secs(now)).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(out)
        }
        .await;
        match result {
            Ok(out) => Ok(out),
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
        self.manual(address, Event::ManualSuppress, why, at, true)
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
        self.manual(address, Event::ManualUnsuppress, why, at, false)
            .await
    }

    async fn manual(
        &self,
        address: &str,
        event: Event,
        why: Option<&str>,
        at: DateTime<Utc>,
        create: bool,
    ) -> Result<ManualOutcome, StoreError> {
        let (address, domain) = normalize_address(address)
            .ok_or_else(|| StoreError::UnknownRecipient(address.to_owned()))?;
        let mut tx = self.begin().await?;
        let now = secs(at);
        let row: Option<RecipientRow> = if create {
            upsert_recipients(&mut tx, &[(address.clone(), domain)], now)
                .await
                .map_err(|e| self.err(e))?
                .remove(&address)
        } else {
            sqlx::query_as(concat!(
                "select ",
                recipient_columns!(),
                " from recipients where address = ?"
            ))
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
        };
        let Some(mut row) = row else {
            return Err(StoreError::UnknownRecipient(address));
        };
        let d = row.apply(&self.policy, event, at, why);
        let to = State::parse(&row.state);
        insert_event(&mut tx, row.id, now, to, Cause::Manual, None, None, why)
            .await
            .map_err(|e| self.err(e))?;
        row.save(&mut tx, now).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(ManualOutcome {
            address,
            state: to,
            changed: d.change.is_some(),
        })
    }
}

/// Rows per multi-row statement, keeping under SQLite's 32,766 bound parameters.
fn rows_per_statement(columns: usize) -> usize {
    (32_000 / columns).max(1)
}

/// Records a batch with a handful of multi-row statements instead of several per message.
async fn record_batch(
    conn: &mut SqliteConnection,
    policy: &Policy,
    batch: &[Prepared],
    now: i64,
) -> Result<Vec<Outcome>, sqlx::Error> {
    // 1. Messages: insert, learning which are new.
    let mut inserted: HashMap<String, i64> = HashMap::with_capacity(batch.len());
    for chunk in batch.chunks(rows_per_statement(11)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into messages (sha256, source, received_at, recorded_at, kind, reader, error, \
             original_message_id, original_list_id, raw_size, raw_deflate) ",
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

    // 2. The bounces of the new messages, and their recipients.
    let mut pending: Vec<Pending<'_>> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if is_new[i] {
            let message_id = inserted.get(&m.sha256).copied().unwrap_or_default();
            pending.extend(Pending::of_message(
                i,
                message_id,
                m.received_at,
                &m.analysis.bounces,
            ));
        }
    }
    let mut rows = recipients_of(conn, &pending, now).await?;

    // 3. The policy, bounce by bounce, in batch order.
    for p in &mut pending {
        let Some(row) = p.address().and_then(|a| rows.get_mut(a)) else {
            continue;
        };
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

    // 5. History: one event per change, each naming its bounce and rule.
    let mut changes: Vec<Vec<StateChange>> = vec![Vec::new(); batch.len()];
    let mut events: Vec<(i64, i64, policy::Change, Option<i64>, &str)> = Vec::new();
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
        events.push((row.id, p.at, change, bounce_id, &p.bounce.rule));
        if let Some(c) = changes.get_mut(p.msg) {
            c.push(StateChange {
                address: address.to_owned(),
                to: change.to,
                cause: change.cause,
            });
        }
    }
    for chunk in events.chunks(rows_per_statement(6)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into events (recipient_id, at, change, cause, bounce_id, rule) ",
        );
        qb.push_values(chunk, |mut b, (rid, at, change, bounce_id, rule)| {
            b.push_bind(*rid)
                .push_bind(*at)
                .push_bind(change_name(change.to))
                .push_bind(change.cause.as_str())
                .push_bind(*bounce_id)
                .push_bind(rule.to_string());
        });
        qb.build().persistent(false).execute(&mut *conn).await?;
    }

    // 6. Recipient rows, all in one upsert per chunk.
    let all: Vec<&RecipientRow> = rows.values().collect();
    for chunk in all.chunks(rows_per_statement(18)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "insert into recipients (id, address, domain, state, soft_score, \
             soft_last_counted_at, manual, hard_count, soft_count, complaint_count, other_count, \
             first_bounce_at, last_bounce_at, suppressed_at, suppressed_type, suppressed_why, \
             suppressed_bounce_id, updated_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.address.clone())
                .push_bind(r.domain.clone())
                .push_bind(r.state.clone())
                .push_bind(r.soft_score)
                .push_bind(r.soft_last_counted_at)
                .push_bind(r.manual.clone())
                .push_bind(r.hard_count)
                .push_bind(r.soft_count)
                .push_bind(r.complaint_count)
                .push_bind(r.other_count)
                .push_bind(r.first_bounce_at)
                .push_bind(r.last_bounce_at)
                .push_bind(r.suppressed_at)
                .push_bind(r.suppressed_type.clone())
                .push_bind(r.suppressed_why.clone())
                .push_bind(r.suppressed_bounce_id)
                .push_bind(now);
        });
        qb.push(
            " on conflict (id) do update set state = excluded.state, \
             soft_score = excluded.soft_score, soft_last_counted_at = excluded.soft_last_counted_at, \
             manual = excluded.manual, hard_count = excluded.hard_count, \
             soft_count = excluded.soft_count, complaint_count = excluded.complaint_count, \
             other_count = excluded.other_count, first_bounce_at = excluded.first_bounce_at, \
             last_bounce_at = excluded.last_bounce_at, suppressed_at = excluded.suppressed_at, \
             suppressed_type = excluded.suppressed_type, suppressed_why = excluded.suppressed_why, \
             suppressed_bounce_id = excluded.suppressed_bounce_id, updated_at = excluded.updated_at",
        );
        qb.build().persistent(false).execute(&mut *conn).await?;
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

fn change_name(to: State) -> &'static str {
    match to {
        State::Suppressed => "suppressed",
        State::Active => "unsuppressed",
    }
}
