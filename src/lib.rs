//! bounced: read bounce messages, classify them, keep a suppression list.
//!
//! Data flows one way, and each hand-off has a named type:
//!
//! ```text
//! bytes ──report::read──► Report ──Classifier::classify──► Vec<Bounce> ──store──► rows ──export──► files
//! ```
//!
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

#[forbid(unsafe_code)]
pub mod analysis;
#[forbid(unsafe_code)]
pub mod classify;
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod daemon;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
pub mod eval;
#[forbid(unsafe_code)]
pub mod explain;
#[forbid(unsafe_code)]
pub mod export;
#[forbid(unsafe_code)]
pub mod maildate;
#[forbid(unsafe_code)]
pub mod pipeline;
#[forbid(unsafe_code)]
pub mod policy;
#[forbid(unsafe_code)]
pub mod report;
/// Holds the crate's one `unsafe` call: Maildir's no-replace rename (`renameat2`).
pub mod source;
#[forbid(unsafe_code)]
pub mod store;

pub use analysis::{Analysis, analyze};
pub use classify::{Bounce, BounceType, Classifier, Reason};
pub use error::ReadError;
pub use report::{Kind, Report, read};
