//! Recording analysed messages, operator decisions, and replaying a recipient's history.

use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

use super::replay::{
    self, AutoEvent, History, IN_LIST, RecipientRow, StoredEvent, fixed_chunks, padded,
    recipient_columns,
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
        super::dispatch!(self, record_with_positions(batch, positions, now).await)
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
        super::dispatch!(self, decide(address, decision, why, at, dry_run).await)
    }
}

super::engines!("engine/record.rs");
