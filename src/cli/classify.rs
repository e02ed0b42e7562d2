//! `bounced classify`: classify message files and print one result per recipient.
//!
//! Each PATH is a file, a directory (every regular file in it, recursively, sorted by name) or `-` for
//! standard input. `jsonl` prints one JSON object per result, keys in the contract order (see
//! README); `table` prints aligned columns for people.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use bounced::analysis::{Row, error_row, rows};
use bounced::report::{DEFAULT_MAX_SIZE, ReadOptions};
use bounced::{Analysis, analyze};

use super::load_classifier;
use bounced::source::files::{
    Entry, InputError, plainly_not_mail, read_capped, read_stream_capped, walk,
};

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
    /// Classifier threads [default: one per CPU core]; the output is in input order whatever N.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Files, directories, or `-` for standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// One input to classify: the bytes of standard input, a file to read, or a folder that could not be
/// listed.
enum Input {
    Bytes(Result<Vec<u8>, InputError>),
    File(PathBuf),
    /// A file found in a folder: skipped when it is plainly not mail.
    Found(PathBuf),
    Unlisted(io::Error),
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
    // Output that may reach a terminal: no control character a message holds goes out raw.
    let stdout = io::stdout().lock();
    let mut out = io::BufWriter::new(match args.format {
        Format::Jsonl => bounced::text::PrintableWriter::json(stdout),
        Format::Table => bounced::text::PrintableWriter::new(stdout),
    });
    let mut table = Table::default();
    let mut any_error = false;
    let mut write_err: Option<io::Error> = None;

    // Read and classify on the workers; print here, in input order.
    let work = |(name, input): (String, Input)| {
        let bytes = match input {
            Input::Bytes(b) => b,
            Input::File(p) => read_capped(&p, args.max_size),
            Input::Found(p) => match read_capped(&p, args.max_size) {
                Ok(b) if plainly_not_mail(&b) => return (name, None),
                other => other,
            },
            Input::Unlisted(e) => Err(InputError::Io(e)),
        };
        (name, Some(bytes.map(|b| analyze(&b, &classifier, &opts))))
    };
    let mut handle = |(name, analysis): (String, Option<Result<Analysis, InputError>>)| {
        let Some(analysis) = analysis else {
            tracing::debug!(
                file = %bounced::text::printable(&name),
                "skipped: not a mail message (it does not begin with a header field)"
            );
            return;
        };
        let lines = match &analysis {
            Ok(a) => rows(Some(&name), a),
            Err(e) => vec![error_row(Some(&name), e)],
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

    let jobs = bounced::pipeline::jobs(args.jobs.unwrap_or(0));
    bounced::pipeline::map_ordered(jobs, work, &mut handle, |push| {
        for path in &args.paths {
            if path.as_os_str() == "-" {
                push(("-".into(), Input::Bytes(read_input(path, args.max_size))));
                continue;
            }
            // A file named on the command line is always read; one found in a folder is
            // skipped when it is plainly not mail (the expectations beside test messages).
            walk(path, &mut |entry| match entry {
                Entry::File(p) if p == *path => {
                    push((p.to_string_lossy().into_owned(), Input::File(p)))
                }
                Entry::File(p) => push((p.to_string_lossy().into_owned(), Input::Found(p))),
                Entry::Unlisted(p, e) => {
                    push((p.to_string_lossy().into_owned(), Input::Unlisted(e)))
                }
            });
        }
    });
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
            .push(cells.map(|c| bounced::text::printable(&c).into_owned()));
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
    use bounced::{Bounce, BounceType, Reason};

    fn bounce() -> Bounce {
        Bounce {
            recipient: Some("user@example.com".into()),
            action: Some("failed".into()),
            status: Some("5.1.1".into()),
            replycode: None,
            reason: Reason::Userunknown,
            bounce_type: BounceType::Hard,
            diagnostic: None,
            remote_mta: None,
            reporting_mta: None,
            date: None,
            feedback_type: None,
            rule: "r1".into(),
            reader: "dsn".into(),
            original_message_id: None,
            original_from: None,
            original_to: None,
            original_subject: None,
            original_list_id: None,
        }
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
