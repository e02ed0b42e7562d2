//! Where messages come from: Maildir folders and IMAP mailboxes.
//!
//! A source hands the pipeline one [`Incoming`] per message and learns what became of it through the
//! message's [`Ack`], which the writer fires only after the transaction holding the result has
//! committed. Sources know nothing of DSNs or SQL.

pub mod imap;
pub mod maildir;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

/// One message on its way from a source to the store.
#[derive(Debug)]
pub struct Incoming {
    /// Where it came from, as stored: `maildir:<path>` or `imap:<account>/<mailbox>/<uidvalidity>/<uid>`.
    pub source: String,
    /// When the source first saw it.
    pub received_at: DateTime<Utc>,
    /// The message itself, or where to read it.
    pub payload: Payload,
    /// What to do once its result is committed.
    pub ack: Ack,
}

/// The bytes of an incoming message, or how to get them.
#[derive(Debug)]
pub enum Payload {
    /// Already in memory (IMAP FETCH).
    Bytes(Vec<u8>),
    /// A file the worker reads, refusing it unread past the size limit (Maildir).
    File(PathBuf),
    /// Known to be over the size limit without reading it; `key` stands in for the content hash.
    TooLarge {
        /// The size the source announced.
        size: usize,
        /// A stable identity for the idempotency key (the source path or IMAP UID).
        key: String,
    },
}

/// What became of a message, decided after its result was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Recorded (or found already recorded): mark it processed.
    Processed,
    /// Unreadable or oversized: recorded with this error, move it aside.
    Quarantine(String),
}

/// How a message is acknowledged at its source.
#[derive(Debug)]
pub enum Ack {
    /// A Maildir file: moved by the writer itself (a rename is cheap and needs no session).
    Maildir(maildir::Ticket),
    /// A message of an IMAP session: the session task applies it (flags, MOVE) on its connection.
    Channel(oneshot::Sender<Disposition>),
    /// Nothing to do (tests and benchmarks that only record).
    None,
}

impl Ack {
    /// Acknowledges the message; call only after its result is committed.
    pub fn ack(self, d: Disposition) {
        match self {
            Ack::Maildir(t) => t.ack(&d),
            Ack::Channel(tx) => {
                // The session may have gone away (lost connection): then the message stays unseen
                // and comes back on the next connection, to be recorded as a duplicate.
                let _ = tx.send(d);
            }
            Ack::None => {}
        }
    }
}
