//! Where messages come from: Maildir folders, IMAP mailboxes, and the files, directories, mbox files
//! and standard input that `bounced import` reads.
//!
//! A source hands the pipeline one [`Incoming`] per message and learns what became of it through the
//! message's [`Ack`], which the writer fires only after the transaction holding the result has
//! committed. Sources know nothing of DSNs or SQL: a source that keeps a position (IMAP's last UID)
//! hands it to a [`Positions`] handle, and the writer saves it inside its next batch transaction.

#[forbid(unsafe_code)]
pub mod files;
#[forbid(unsafe_code)]
pub mod imap;
pub mod maildir;

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

/// One message on its way from a source to the store.
#[derive(Debug)]
pub struct Incoming {
    /// Where it came from, as stored: `maildir:<path>`, `file:<path>`, `file:<path>#<n>` (an mbox),
    /// `stdin`, or `imap:<account>/<mailbox>/<uidvalidity>/<uid>`.
    pub source: String,
    /// The label of the source that yielded it (as in [`States`]), for per-source figures.
    pub origin: Arc<str>,
    /// When it arrived at the source: an IMAP message's INTERNALDATE, a file's modification time, an
    /// mbox `From ` line's date. A Maildir file's modification time is read with the file, by the
    /// worker, and replaces the time of the hand-over set here.
    pub received_at: DateTime<Utc>,
    /// The message itself, or where to read it.
    pub payload: Payload,
    /// What to do once its result is committed.
    pub ack: Ack,
}

/// The bytes of an incoming message, or how to get them.
#[derive(Debug)]
pub enum Payload {
    /// Already in memory (IMAP FETCH, an mbox, standard input, a file read by the import walker).
    Bytes(Vec<u8>),
    /// A Maildir file the worker reads, refusing it unread past the size limit.
    File(PathBuf),
    /// Known to be over the size limit without keeping it.
    TooLarge {
        /// The size the source found or announced.
        size: usize,
        /// What stands in for the content hash.
        id: OversizeId,
    },
}

/// The idempotency key of a message too large to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OversizeId {
    /// A stable identity (a Maildir unique name and size, an IMAP UID): hashed into the key, so the
    /// bytes never need a pass.
    Name(String),
    /// The hex SHA-256 of the content, computed while streaming it (import).
    Sha256(String),
}

/// A message file read by a worker: whole, or found over the limit.
#[derive(Debug)]
pub enum Loaded {
    /// The whole message and the file's modification time.
    Whole(Vec<u8>, Option<DateTime<Utc>>),
    /// Over the limit: its size, its key and the file's modification time.
    TooLarge(usize, OversizeId, Option<DateTime<Utc>>),
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
    /// Nothing to do (import, tests and benchmarks that only record).
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

/// Where one IMAP folder stands: its UIDVALIDITY and the last UID acknowledged under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The folder's UIDVALIDITY when `last_uid` was saved; UIDs mean nothing under another one.
    pub uidvalidity: u32,
    /// Every message up to this UID is recorded and acknowledged.
    pub last_uid: u32,
}

/// A source's position to save, by source key (`imap:<account>/<mailbox>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionUpdate {
    /// The source key.
    pub key: String,
    /// The new position.
    pub position: Position,
}

/// The handle through which a source saves its position: the pipeline's writer writes it in its next
/// batch transaction, so a position never runs ahead of or behind the database it describes.
#[derive(Debug, Clone)]
pub struct Positions(mpsc::Sender<PositionUpdate>);

impl Positions {
    /// A handle and the receiving end the writer drains.
    pub fn channel() -> (Positions, mpsc::Receiver<PositionUpdate>) {
        let (tx, rx) = mpsc::channel(64);
        (Positions(tx), rx)
    }

    /// Queues `position` for `key`; false when the pipeline has stopped.
    pub async fn save(&self, key: &str, position: Position) -> bool {
        self.0
            .send(PositionUpdate {
                key: key.to_owned(),
                position,
            })
            .await
            .is_ok()
    }
}

/// One source's live state, as shown in metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// What it is doing: `watching`, `connecting`, `connected`, `reconnecting: ...`, `stopped`.
    pub state: String,
    /// Connected to its server (IMAP) or watching its folder (Maildir).
    pub connected: bool,
    /// When it last began waiting for new mail with IMAP IDLE.
    pub last_idle: Option<DateTime<Utc>>,
    /// Connections lost or refused, each followed by a new attempt.
    pub reconnects: u64,
}

/// What each source is doing now, by source label: shared between the sources, which set it, and
/// whoever reports on the pipeline.
#[derive(Debug, Clone, Default)]
pub struct States(Arc<Mutex<BTreeMap<String, SourceState>>>);

impl States {
    fn update(&self, source: &str, f: impl FnOnce(&mut SourceState)) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(source) {
            Some(s) => f(s),
            None => {
                let mut s = SourceState::default();
                f(&mut s);
                map.insert(source.to_owned(), s);
            }
        }
    }

    /// Sets what `source` is doing.
    pub fn set(&self, source: &str, state: impl Into<String>) {
        let state = state.into();
        self.update(source, |s| s.state = state);
    }

    /// Sets whether `source` is connected (IMAP) or watching (Maildir).
    pub fn set_connected(&self, source: &str, connected: bool) {
        self.update(source, |s| s.connected = connected);
    }

    /// `source` began waiting for new mail with IMAP IDLE at `at`.
    pub fn idle(&self, source: &str, at: DateTime<Utc>) {
        self.update(source, |s| s.last_idle = Some(at));
    }

    /// `source` lost or could not open its connection and will try again.
    pub fn reconnect(&self, source: &str) {
        self.update(source, |s| s.reconnects += 1);
    }

    /// Every source's state text, by label.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.details()
            .into_iter()
            .map(|(k, v)| (k, v.state))
            .collect()
    }

    /// Every source's full state, by label.
    pub fn details(&self) -> BTreeMap<String, SourceState> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What an entry is when it is not a regular file: a message is only ever read from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a regular file but {0}; skipped")]
pub struct NotRegular(pub &'static str);

/// What kind of entry `t` describes, for [`NotRegular`]; `None` for a regular file.
pub fn irregular_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        Some("not a file")
    }
}

/// Opens `path` for reading only if it is a regular file, never blocking: without following a
/// symbolic link in its last component (unless `follow`, for a path the operator named), without
/// waiting for a FIFO's writer, and checking the type of what was opened (so nothing swapped in
/// between a listing and the open is read). An entry of another kind is an error whose inner
/// error is [`NotRegular`] (see [`not_regular`]).
pub fn open_regular(path: &Path, follow: bool) -> io::Result<(File, Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    // A look first, so that nothing but a regular file is ever opened (opening a device can act).
    let before = if follow {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    if let Some(kind) = irregular_kind(before.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(kind),
        ));
    }
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && !follow => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                NotRegular("a symbolic link"),
            ));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    match irregular_kind(meta.file_type()) {
        None => Ok((file, meta)),
        Some(kind) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(kind),
        )),
    }
}

/// The [`NotRegular`] inside an error of [`open_regular`], if that is why it failed.
pub fn not_regular(e: &io::Error) -> Option<NotRegular> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<NotRegular>())
        .copied()
}
