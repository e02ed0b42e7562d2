//! bounced: read bounce messages, classify them, keep a suppression list.
//!
//! Data flows one way, and each hand-off has a named type:
//!
//! ```text
//! Source ──Incoming──► workers: report::read ──► Report ──Classifier::classify──► Analysis
//!   ──► writer: Store::record_with_positions (one transaction per batch) ──► Ack ──► export
//! ```
//!
//! - [`address`]: mailbox addresses (RFC 5321/5322/6531), parsed once and printed one way; the
//!   readers, the store and the CLI all normalise through it.
//! - [`source`]: Maildir folders, IMAP mailboxes, and the files, directories, mbox files and standard
//!   input of `import`; they yield [`source::Incoming`] messages and act on acks. No DSN, no SQL.
//! - [`pipeline`]: the one ingest pipeline of `run` and `import`: bounded queues, worker threads,
//!   one batching writer, acks after the commit, retries of what can heal, shutdown, live
//!   [`pipeline::Metrics`]; and the ordered worker stage of `classify` and `eval`.
//! - [`daemon`]: `bounced run`'s sources from the configuration, driven through the pipeline.
//! - [`report`]: what a message says. DSN fields (RFC 3464), ARF complaints (RFC 5965), auto-replies
//!   (RFC 3834) and free-text MTA reports, plus the returned original message. Pure; never panics.
//! - [`classify`]: SMTP reply codes and enhanced status codes, the ordered rule table that names a
//!   reason, and the hard/soft decision. Pure; rules are compiled once.
//! - [`analysis`]: [`Analysis`], [`analyze`] (read + classify, the one entry point) and its one
//!   serialization as JSONL rows.
//! - [`maildate`]: dates as mail writes them, and when a failure happened.
//! - [`store`]: the SQLite bounce database (sqlx): idempotent recording keyed by the SHA-256 of each
//!   message, bounce rows, recipient states with their history, source positions, queries,
//!   reclassification. It stores; it never reads or classifies a message itself.
//! - [`policy`]: when a recipient is suppressed (hard and complaint at once, soft by a score over
//!   time, manual overrides). Pure; time is passed in.
//! - [`export`]: suppression-list writers (txt, csv, jsonl, listmonk, postfix, ses, mailgun), streaming.
//! - [`config`]: `bounced.toml`, validated at load; the `BOUNCED_*` overrides.
//! - [`error`]: the reader's typed errors.
//! - [`text`]: text made safe for terminals and text logs (control characters and non-UTF-8 bytes
//!   escaped).
//! - [`eval`]: accuracy figures against a table of expected results (pure; `bounced eval` prints them).
//! - [`explain`]: why one message got its results (reader, fields, rule, hard/soft), for `eval --explain`.
//! - [`http`]: the HTTP server over the store's queries: JSON API, Prometheus metrics, dashboard;
//!   mounted by `bounced serve` on any runtime with a listener and a shutdown future.
//!
//! Guarantees: a message is acknowledged at its source only after the transaction holding its result
//! commits, and recording is idempotent, so a crash anywhere means reprocessing, never loss or double
//! counting; every queue is bounded; one bad message never stops the pipeline; SIGTERM/SIGINT drain
//! and exit. The command line (`src/main.rs`, `src/cli/`) is the binary's, not this library's.
//! `ARCHITECTURE.md` has the picture and what each module may import.

#[forbid(unsafe_code)]
pub mod address;
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
pub mod http;
#[forbid(unsafe_code)]
pub mod maildate;
#[forbid(unsafe_code)]
pub mod notify;
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
#[forbid(unsafe_code)]
pub mod text;

pub use analysis::{Analysis, analyze};
pub use classify::{Bounce, BounceType, Classifier, Reason};
pub use error::ReadError;
pub use report::{Kind, Report, read};
