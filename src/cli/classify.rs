//! `bounced classify`: classify message files and print one result per recipient.
//!
//! Each PATH is a file, a directory (every regular file in it, recursively, sorted by name) or `-` for
//! standard input. `jsonl` prints one JSON object per result, keys in the contract order (see
//! README); `table` prints aligned columns for people.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::classify::Bounce;
use crate::report::{DEFAULT_MAX_SIZE, ReadOptions};
use crate::{Analysis, analyze};

use super::{Entry, InputError, load_classifier, read_capped, read_stream_capped, walk};

/// Output formats of `bounced classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Aligned columns.
    Table,
}

/// Arguments of `bounced classify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// A rule file (TOML) merged over the built-in rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The VERP separator in bounce addresses (`list-bounces+user=example.com@...`).
    #[arg(long, value_name = "C", default_value_t = '+')]
    pub verp_separator: char,
    /// Messages larger than this many bytes are reported as errors, unread.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_SIZE)]
    pub max_size: usize,
    /// Files, directories, or `-` for standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// One line of `classify` output: a result, or the single line of a message without results.
///
/// Serialised by hand so the keys keep the contract order whatever fields [`Bounce`] gains, and so an
/// empty string always comes out as `null`.
#[derive(Debug)]
pub enum Row<'a> {
    /// One recipient result.
    Result {
        /// The input path (`-` for stdin); the key is left out when `None`.
        file: Option<&'a str>,
        /// The message kind.
        kind: &'a str,
        /// The result.
        bounce: &'a Bounce,
    },
    /// A message with no result: `not_bounce`, or `error` with the error text.
    Empty {
        /// The input path (`-` for stdin); the key is left out when `None`.
        file: Option<&'a str>,
        /// `not_bounce` or `error`.
        kind: &'a str,
        /// The error text, for `error`.
        error: Option<String>,
    },
}

/// `None` for an absent or empty value: the contract has `null`, never `""`.
fn known(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

impl Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Row::Result { file, kind, bounce } => {
                if let Some(file) = file {
                    map.serialize_entry("file", file)?;
                }
                map.serialize_entry("kind", kind)?;
                let b = bounce;
                let fields: [(&str, Option<&str>); 18] = [
                    ("recipient", b.recipient.as_deref()),
                    ("action", b.action.as_deref()),
                    ("status", b.status.as_deref()),
                    ("replycode", b.replycode.as_deref()),
                    ("reason", Some(b.reason.as_str())),
                    ("bounce_type", Some(b.bounce_type.as_str())),
                    ("diagnostic", b.diagnostic.as_deref()),
                    ("remote_mta", b.remote_mta.as_deref()),
                    ("reporting_mta", b.reporting_mta.as_deref()),
                    ("date", b.date.as_deref()),
                    ("feedback_type", b.feedback_type.as_deref()),
                    ("rule", Some(b.rule.as_str())),
                    ("reader", Some(b.reader.as_str())),
                    ("original_message_id", b.original_message_id.as_deref()),
                    ("original_from", b.original_from.as_deref()),
                    ("original_to", b.original_to.as_deref()),
                    ("original_subject", b.original_subject.as_deref()),
                    ("original_list_id", b.original_list_id.as_deref()),
                ];
                for (key, value) in fields {
                    map.serialize_entry(key, &known(value))?;
                }
            }
            Row::Empty { file, kind, error } => {
                if let Some(file) = file {
                    map.serialize_entry("file", file)?;
                }
                map.serialize_entry("kind", kind)?;
                if let Some(error) = error {
                    map.serialize_entry("error", error)?;
                }
            }
        }
        map.end()
    }
}

/// The output rows of one analysed message: one per bounce, or exactly one when there is none.
pub fn rows<'a>(file: Option<&'a str>, analysis: &'a Analysis) -> Vec<Row<'a>> {
    if analysis.bounces.is_empty() {
        let kind = if analysis.error.is_some() || analysis.kind == "error" {
            "error"
        } else {
            "not_bounce"
        };
        return vec![Row::Empty {
            file,
            kind,
            error: analysis.error.as_ref().map(|e| e.to_string()),
        }];
    }
    analysis
        .bounces
        .iter()
        .map(|bounce| Row::Result {
            file,
            kind: analysis.kind,
            bounce,
        })
        .collect()
}

/// Reads one input (a path or `-`), respecting the size cap.
pub fn read_input(path: &Path, max_size: usize) -> Result<Vec<u8>, InputError> {
    if path.as_os_str() == "-" {
        read_stream_capped(io::stdin().lock(), max_size)
    } else {
        read_capped(path, max_size)
    }
}

/// Runs `bounced classify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let classifier = load_classifier(args.rules.as_deref())?;
    let opts = ReadOptions {
        max_size: args.max_size,
        verp_separator: args.verp_separator,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut table = Table::default();
    let mut any_error = false;
    let mut write_err: Option<io::Error> = None;

    let mut handle = |name: &str, input: Result<Vec<u8>, InputError>| {
        let analysis = input.map(|bytes| analyze(&bytes, &classifier, &opts));
        let lines = match &analysis {
            Ok(a) => rows(Some(name), a),
            Err(e) => vec![error_row(Some(name), e)],
        };
        for row in lines {
            if matches!(row, Row::Empty { kind: "error", .. }) {
                any_error = true;
            }
            match args.format {
                Format::Jsonl => {
                    if write_err.is_none()
                        && let Err(e) = serde_json::to_writer(&mut out, &row)
                            .map_err(io::Error::from)
                            .and_then(|()| out.write_all(b"\n"))
                    {
                        write_err = Some(e);
                    }
                }
                Format::Table => table.push(&row),
            }
        }
    };

    for path in &args.paths {
        if path.as_os_str() == "-" {
            handle("-", read_input(path, args.max_size));
            continue;
        }
        walk(path, &mut |entry| match entry {
            Entry::File(p) => {
                let name = p.to_string_lossy().into_owned();
                let input = read_capped(&p, args.max_size);
                handle(&name, input);
            }
            Entry::Unlisted(p, e) => {
                handle(&p.to_string_lossy(), Err(InputError::Io(e)));
            }
        });
    }
    if let Some(e) = write_err {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(e).context("writing to stdout");
    }
    if args.format == Format::Table {
        table.write(&mut out).context("writing to stdout")?;
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing to stdout");
        }
        _ => {}
    }
    Ok(if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The single row of an input that could not be read (permission, vanished, too large).
pub fn error_row<'a>(file: Option<&'a str>, error: &InputError) -> Row<'a> {
    Row::Empty {
        file,
        kind: "error",
        error: Some(error.to_string()),
    }
}

/// Columns for people; collected, because widths depend on every row.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    const HEAD: [&'static str; 7] = [
        "FILE",
        "RECIPIENT",
        "STATUS",
        "REPLYCODE",
        "REASON",
        "TYPE",
        "RULE",
    ];

    fn push(&mut self, row: &Row) {
        let dash = || "-".to_string();
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(dash);
        let cells = match row {
            Row::Result { file, bounce, .. } => [
                file.unwrap_or("-").to_string(),
                or_dash(&bounce.recipient),
                or_dash(&bounce.status),
                or_dash(&bounce.replycode),
                bounce.reason.to_string(),
                bounce.bounce_type.to_string(),
                bounce.rule.clone(),
            ],
            Row::Empty { file, kind, error } => [
                file.unwrap_or("-").to_string(),
                dash(),
                dash(),
                dash(),
                match error {
                    Some(e) => format!("({kind}: {e})"),
                    None => format!("({kind})"),
                },
                dash(),
                dash(),
            ],
        };
        self.rows
            .push(cells.map(|c| c.replace(['\n', '\r', '\t'], " ")));
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths = Self::HEAD.map(|h| h.chars().count());
        for row in &self.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    let pad = w.saturating_sub(c.chars().count()) + 2;
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        line(out, &Self::HEAD)?;
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(out, &cells)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{BounceType, Reason};

    fn bounce() -> Bounce {
        let mut b =
            crate::eval::tests::bounce(Reason::Userunknown, BounceType::Hard, Some("5.1.1"), None);
        b.diagnostic = None;
        b.rule = "r1".into();
        b
    }

    #[test]
    fn result_keys_come_in_contract_order_with_nulls() -> serde_json::Result<()> {
        let analysis = Analysis {
            kind: "dsn",
            reader: "dsn",
            bounces: vec![bounce()],
            error: None,
            original: None,
            verp: None,
        };
        let line = serde_json::to_string(&rows(Some("a.eml"), &analysis)[0])?;
        assert!(line.starts_with(
            r#"{"file":"a.eml","kind":"dsn","recipient":"user@example.com","action":"failed","status":"5.1.1","replycode":null,"reason":"userunknown","bounce_type":"hard","diagnostic":null,"remote_mta":null,"reporting_mta":null,"date":null,"feedback_type":null,"rule":"r1","reader":"dsn","original_message_id":null,"#
        ), "{line}");
        assert!(line.ends_with(r#""original_list_id":null}"#), "{line}");
        Ok(())
    }

    #[test]
    fn empty_strings_come_out_as_null() -> serde_json::Result<()> {
        let mut b = bounce();
        b.diagnostic = Some(String::new());
        b.rule = String::new();
        let line = serde_json::to_string(&Row::Result {
            file: None,
            kind: "dsn",
            bounce: &b,
        })?;
        assert!(line.contains(r#""diagnostic":null"#), "{line}");
        assert!(line.contains(r#""rule":null"#), "{line}");
        assert!(!line.contains(r#""""#), "{line}");
        Ok(())
    }

    #[test]
    fn no_result_is_one_line_without_reason() -> serde_json::Result<()> {
        let analysis = Analysis {
            kind: "not_bounce",
            reader: "none",
            bounces: vec![],
            error: None,
            original: None,
            verp: None,
        };
        let r = rows(Some("n.eml"), &analysis);
        assert_eq!(r.len(), 1);
        assert_eq!(
            serde_json::to_string(&r[0])?,
            r#"{"file":"n.eml","kind":"not_bounce"}"#
        );
        let err = InputError::Io(io::Error::from(io::ErrorKind::NotFound));
        let line = serde_json::to_string(&error_row(None, &err))?;
        assert!(line.starts_with(r#"{"kind":"error","error":""#), "{line}");
        Ok(())
    }

    #[test]
    fn table_columns_are_aligned() -> io::Result<()> {
        let mut t = Table::default();
        let b = bounce();
        t.push(&Row::Result {
            file: Some("a-long-name.eml"),
            kind: "dsn",
            bounce: &b,
        });
        t.push(&Row::Empty {
            file: Some("b.eml"),
            kind: "not_bounce",
            error: None,
        });
        let mut out = Vec::new();
        t.write(&mut out)?;
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("RECIPIENT");
        assert_eq!(col, lines[1].find("user@example.com"));
        assert_eq!(lines[2].find('-'), col);
        assert!(lines[2].contains("(not_bounce)"));
        Ok(())
    }
}
