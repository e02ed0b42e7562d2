//! Recording analysed messages, operator decisions, and replaying a recipient's history.

use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;

use super::{Store, StoreError, from_secs, normalize_address, secs};
use crate::classify::{Bounce, BounceType};
use crate::policy::{self, Cause, Decision, Event, Manual, Policy, RecipientState, State};
use crate::{Analysis, Classifier};

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

/// The hex SHA-256 of a message's bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 3 + 64),
        Compression::fast(),
    );
    // Writing into a Vec cannot fail.
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

    /// Analyses `bytes` with `classifier`, then hashes and compresses them.
    pub fn analyze(
        source: String,
        received_at: DateTime<Utc>,
        bytes: &[u8],
        classifier: &Classifier,
        opts: &crate::report::ReadOptions,
    ) -> Prepared {
        let analysis = crate::analyze(bytes, classifier, opts);
        Prepared::new(source, received_at, bytes, analysis)
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

/// When a failure happened: the report's date when it parses and is not in the future of its
/// arrival, else the arrival time.
pub(crate) fn bounce_time(date: Option<&str>, received_at: DateTime<Utc>) -> DateTime<Utc> {
    let Some(d) = date.map(str::trim).filter(|d| !d.is_empty()) else {
        return received_at;
    };
    // Drop a trailing comment such as "(UTC)" or "(CEST)".
    let d = match d.rfind('(') {
        Some(i) if d.ends_with(')') => d.get(..i).unwrap_or(d).trim_end(),
        _ => d,
    };
    let parsed = DateTime::parse_from_rfc2822(d)
        .or_else(|_| DateTime::parse_from_rfc3339(d))
        .map(|t| t.with_timezone(&Utc));
    match parsed {
        Ok(t) if t <= received_at + chrono::Duration::days(1) => t,
        _ => received_at,
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

/// Fetches the recipient row for a normalized address, creating it when new.
async fn upsert_recipient(
    conn: &mut SqliteConnection,
    address: &str,
    domain: &str,
    now: i64,
) -> Result<RecipientRow, sqlx::Error> {
    sqlx::query_as(
        "insert into recipients (address, domain, updated_at) values (?, ?, ?) \
         on conflict (address) do update set updated_at = excluded.updated_at \
         returning id, state, soft_score, soft_last_counted_at, manual, hard_count, soft_count, \
         complaint_count, other_count, first_bounce_at, last_bounce_at, suppressed_at, \
         suppressed_type, suppressed_why, suppressed_bounce_id",
    )
    .bind(address)
    .bind(domain)
    .bind(now)
    .fetch_one(conn)
    .await
}

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
    let change = match to {
        State::Suppressed => "suppressed",
        State::Active => "unsuppressed",
    };
    sqlx::query(
        "insert into events (recipient_id, at, change, cause, bounce_id, rule, note) \
         values (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(recipient_id)
    .bind(at)
    .bind(change)
    .bind(cause.as_str())
    .bind(bounce_id)
    .bind(rule)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_bounce(
    conn: &mut SqliteConnection,
    message_id: i64,
    position: i64,
    recipient_id: Option<i64>,
    at: i64,
    f: &BounceFields,
    counted: bool,
) -> Result<i64, sqlx::Error> {
    let (id,): (i64,) = sqlx::query_as(
        "insert into bounces (message_id, position, recipient_id, at, recipient, action, status, \
         replycode, reason, bounce_type, diagnostic, remote_mta, reporting_mta, date, feedback_type, \
         rule, reader, original_message_id, original_from, original_to, original_subject, \
         original_list_id, counted) \
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) returning id",
    )
    .bind(message_id)
    .bind(position)
    .bind(recipient_id)
    .bind(at)
    .bind(&f.recipient)
    .bind(&f.action)
    .bind(&f.status)
    .bind(&f.replycode)
    .bind(&f.reason)
    .bind(&f.bounce_type)
    .bind(&f.diagnostic)
    .bind(&f.remote_mta)
    .bind(&f.reporting_mta)
    .bind(&f.date)
    .bind(&f.feedback_type)
    .bind(&f.rule)
    .bind(&f.reader)
    .bind(&f.original_message_id)
    .bind(&f.original_from)
    .bind(&f.original_to)
    .bind(&f.original_subject)
    .bind(&f.original_list_id)
    .bind(counted)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Writes the bounces of one message and applies the policy to each recipient.
pub(crate) async fn write_bounces(
    conn: &mut SqliteConnection,
    policy: &Policy,
    message_id: i64,
    received_at: DateTime<Utc>,
    bounces: &[Bounce],
    now: i64,
    changes: &mut Vec<StateChange>,
    touched: Option<&mut std::collections::HashSet<i64>>,
) -> Result<(), sqlx::Error> {
    let mut touched = touched;
    for (pos, b) in bounces.iter().enumerate() {
        let at = bounce_time(b.date.as_deref(), received_at);
        let fields = BounceFields::of(b);
        let pos = i64::try_from(pos).unwrap_or(i64::MAX);
        let Some((address, domain)) = b.recipient.as_deref().and_then(normalize_address) else {
            insert_bounce(conn, message_id, pos, None, secs(at), &fields, false).await?;
            continue;
        };
        let mut row = upsert_recipient(conn, &address, &domain, now).await?;
        if let Some(t) = touched.as_deref_mut() {
            t.insert(row.id);
            // The caller replays the whole history afterwards; just store the row.
            insert_bounce(
                conn,
                message_id,
                pos,
                Some(row.id),
                secs(at),
                &fields,
                false,
            )
            .await?;
            continue;
        }
        let d = row.apply(
            policy,
            Event::Bounce(b.bounce_type),
            at,
            Some(b.reason.as_str()),
        );
        let bounce_id = insert_bounce(
            conn,
            message_id,
            pos,
            Some(row.id),
            secs(at),
            &fields,
            d.counted,
        )
        .await?;
        if let Some(change) = d.change {
            if change.to == State::Suppressed {
                row.suppressed_bounce_id = Some(bounce_id);
            }
            insert_event(
                conn,
                row.id,
                secs(at),
                change.to,
                change.cause,
                Some(bounce_id),
                Some(&b.rule),
                None,
            )
            .await?;
            changes.push(StateChange {
                address,
                to: change.to,
                cause: change.cause,
            });
        }
        row.save(conn, now).await?;
    }
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
    let mut row: RecipientRow = sqlx::query_as(
        "select id, state, soft_score, soft_last_counted_at, manual, hard_count, soft_count, \
         complaint_count, other_count, first_bounce_at, last_bounce_at, suppressed_at, \
         suppressed_type, suppressed_why, suppressed_bounce_id from recipients where id = ?",
    )
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
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            let o = record_one(&mut tx, &self.policy, m, secs(now))
                .await
                .map_err(|e| self.err(e))?;
            out.push(o);
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(out)
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
            Some(
                upsert_recipient(&mut tx, &address, &domain, now)
                    .await
                    .map_err(|e| self.err(e))?,
            )
        } else {
            sqlx::query_as(
                "select id, state, soft_score, soft_last_counted_at, manual, hard_count, \
                 soft_count, complaint_count, other_count, first_bounce_at, last_bounce_at, \
                 suppressed_at, suppressed_type, suppressed_why, suppressed_bounce_id \
                 from recipients where address = ?",
            )
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

async fn record_one(
    conn: &mut SqliteConnection,
    policy: &Policy,
    m: &Prepared,
    now: i64,
) -> Result<Outcome, sqlx::Error> {
    let a = &m.analysis;
    let error = a.error.as_ref().map(ToString::to_string);
    let original_message_id = a.original.as_ref().and_then(|o| o.message_id.as_deref());
    let original_list_id = a.original.as_ref().and_then(|o| o.list_id.as_deref());
    let inserted: Option<(i64,)> = sqlx::query_as(
        "insert into messages (sha256, source, received_at, recorded_at, kind, reader, error, \
         original_message_id, original_list_id, raw_size, raw_deflate) \
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (sha256) do nothing returning id",
    )
    .bind(&m.sha256)
    .bind(&m.source)
    .bind(secs(m.received_at))
    .bind(now)
    .bind(a.kind)
    .bind(a.reader)
    .bind(error)
    .bind(original_message_id)
    .bind(original_list_id)
    .bind(i64::try_from(m.raw_size).unwrap_or(i64::MAX))
    .bind(&m.raw_deflate)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((message_id,)) = inserted else {
        let (message_id,): (i64,) = sqlx::query_as("select id from messages where sha256 = ?")
            .bind(&m.sha256)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(Outcome::Duplicate { message_id });
    };
    let mut changes = Vec::new();
    write_bounces(
        conn,
        policy,
        message_id,
        m.received_at,
        &a.bounces,
        now,
        &mut changes,
        None,
    )
    .await?;
    Ok(Outcome::New {
        message_id,
        bounces: a.bounces.len(),
        changes,
    })
}
