//! bounced: read bounce messages, classify them, keep a suppression list.
//!
//! Data flows one way, and each hand-off has a named type:
//!
//! ```text
//! bytes ──report::read──► Report ──Classifier::classify──► Vec<Bounce> ──store──► rows ──export──► files
//! ```
//!
//! - [`address`]: mailbox addresses (RFC 5321/5322/6531), parsed once and printed one way; the
//!   readers, the store and the CLI all normalise through it.
//! - [`report`]: what a message says. DSN fields (RFC 3464), ARF complaints (RFC 5965), auto-replies
//!   (RFC 3834) and free-text MTA reports, plus the returned original message. Pure; never panics.
//! - [`classify`]: SMTP reply codes and enhanced status codes, the ordered rule table that names a
//!   reason, and the hard/soft decision. Pure; rules are compiled once.
//! - [`store`]: the SQLite bounce database (sqlx): idempotent recording keyed by the SHA-256 of each
//!   message, bounce rows, recipient states with their history, queries, reclassification.
//! - [`policy`]: when a recipient is suppressed (hard and complaint at once, soft by a score over
//!   time, manual overrides). Pure; time is passed in.
//! - [`export`]: suppression-list writers (txt, csv, jsonl, listmonk, postfix, ses, mailgun), streaming.
//! - [`config`]: `bounced.toml`, validated at load.
//! - [`error`]: the library's typed errors.
//! - [`eval`]: accuracy figures against a table of expected results (pure; `bounced eval` prints them).
//! - [`explain`]: why one message got its results (reader, fields, rule, hard/soft), for `eval --explain`.
//! - [`cli`]: the subcommands of the `bounced` binary (one file each).
//! - [`source`]: Maildir folders and IMAP mailboxes; they yield `Incoming` messages and act on acks.
//! - [`daemon`]: `bounced run`: sources -> bounded queue -> workers -> one batching writer -> acks,
//!   acknowledging a message only after its result is committed; drains on SIGTERM/SIGINT.
//!
//! Parsing and classification do no I/O, so the CLI, the daemon, the tests and the benchmarks all run
//! the same code.

pub mod address;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod eval;
pub mod explain;
pub mod export;
pub mod policy;
pub mod report;
pub mod source;
pub mod store;

pub use classify::{Bounce, BounceType, Classifier, Reason};
pub use error::ReadError;
pub use report::{Kind, Report, read};

/// The whole result for one message: its kind, its bounces, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// `dsn`, `text`, `feedback`, `autoreply`, `not_bounce` or `error`.
    pub kind: &'static str,
    /// The reader that recognised the message (`none` when none did).
    pub reader: &'static str,
    /// One entry per recipient result; empty for a non-bounce or an error.
    pub bounces: Vec<Bounce>,
    /// The read error, when `kind` is `error`.
    pub error: Option<ReadError>,
    /// The returned original message's identity, when the report carries it.
    pub original: Option<report::Original>,
}

/// Reads and classifies one message; the single entry point the CLI, the store and the daemon share.
pub fn analyze(bytes: &[u8], classifier: &Classifier, opts: &report::ReadOptions) -> Analysis {
    match report::read_with(bytes, opts) {
        Ok(report) => {
            let bounces = classifier.classify(&report);
            let kind = match report.kind {
                Some(k) if !bounces.is_empty() || k == Kind::NotBounce => k.as_str(),
                _ => Kind::NotBounce.as_str(),
            };
            Analysis {
                kind,
                reader: report.reader,
                bounces,
                error: None,
                original: report.original,
            }
        }
        Err(e) => Analysis {
            kind: "error",
            reader: "none",
            bounces: Vec::new(),
            error: Some(e),
            original: None,
        },
    }
}
