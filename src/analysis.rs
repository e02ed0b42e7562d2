//! The whole result for one message ([`Analysis`]), the one function that produces it ([`analyze`]),
//! and its one serialization as output lines ([`Row`]): what `classify` prints and the golden
//! fixtures hold.

use serde::Serialize;

use crate::classify::{Bounce, Classifier};
use crate::error::ReadError;
use crate::report::Kind;
use crate::source::files::InputError;

/// The whole result for one message: its kind, its bounces, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// What the message is; [`Kind::Error`] when it could not be read.
    pub kind: Kind,
    /// The reader that recognised the message (`none` when none did).
    pub reader: &'static str,
    /// One entry per recipient result; empty for a non-bounce or an error.
    pub bounces: Vec<Bounce>,
    /// The read error, when `kind` is `error`.
    pub error: Option<ReadError>,
    /// The returned original message's identity, when the report carries it.
    pub original: Option<crate::report::Original>,
    /// The recipient the bounce's own address names when the list sends with VERP
    /// (`list-bounces+user=example.net@...`): a report about anyone else is not trusted.
    pub verp: Option<String>,
}

/// Reads and classifies one message; the single entry point the CLI, the store and the daemon share.
pub fn analyze(
    bytes: &[u8],
    classifier: &Classifier,
    opts: &crate::report::ReadOptions,
) -> Analysis {
    match crate::report::read_with(bytes, opts) {
        Ok(report) => {
            let bounces = classifier.classify(&report);
            let verp = report.verp;
            let kind = match report.kind {
                Some(k) if !bounces.is_empty() || k == Kind::NotBounce => k,
                _ => Kind::NotBounce,
            };
            Analysis {
                kind,
                reader: report.reader,
                bounces,
                error: None,
                original: report.original,
                verp,
            }
        }
        Err(e) => Analysis {
            kind: Kind::Error,
            reader: "none",
            bounces: Vec::new(),
            error: Some(e),
            original: None,
            verp: None,
        },
    }
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

/// The fields of a bounce result, in the contract order: the JSONL keys, and the names of the
/// database's bounce columns.
pub const BOUNCE_FIELDS: [&str; 18] = [
    "recipient",
    "action",
    "status",
    "replycode",
    "reason",
    "bounce_type",
    "diagnostic",
    "remote_mta",
    "reporting_mta",
    "date",
    "feedback_type",
    "rule",
    "reader",
    "original_message_id",
    "original_from",
    "original_to",
    "original_subject",
    "original_list_id",
];

/// The values of `b` for [`BOUNCE_FIELDS`], in the same order (`None` where absent).
pub fn bounce_values(b: &Bounce) -> [Option<&str>; 18] {
    [
        b.recipient.as_deref(),
        b.action.as_deref(),
        b.status.as_deref(),
        b.replycode.as_deref(),
        Some(b.reason.as_str()),
        Some(b.bounce_type.as_str()),
        b.diagnostic.as_deref(),
        b.remote_mta.as_deref(),
        b.reporting_mta.as_deref(),
        b.date.as_deref(),
        b.feedback_type.as_deref(),
        Some(b.rule.as_str()),
        Some(b.reader.as_str()),
        b.original_message_id.as_deref(),
        b.original_from.as_deref(),
        b.original_to.as_deref(),
        b.original_subject.as_deref(),
        b.original_list_id.as_deref(),
    ]
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
                let fields = BOUNCE_FIELDS.into_iter().zip(bounce_values(bounce));
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
        let kind = if analysis.error.is_some() || analysis.kind == Kind::Error {
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
            kind: analysis.kind.as_str(),
            bounce,
        })
        .collect()
}

/// The single row of an input that could not be read (permission, vanished, too large).
pub fn error_row<'a>(file: Option<&'a str>, error: &InputError) -> Row<'a> {
    Row::Empty {
        file,
        kind: "error",
        error: Some(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{BounceType, Reason};
    use std::io;

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
            kind: Kind::Dsn,
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
            kind: Kind::NotBounce,
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
}
