//! Text made safe to show: control characters (which can move a terminal's cursor, retitle its
//! window or split a log line) and bytes that are not UTF-8 are written as escapes, so that what a
//! message or a file name holds can never act on the terminal or the log reading it.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;

/// Whether `c` must be escaped before it reaches a terminal or a text log: C0 and C1 controls,
/// DEL, and the Unicode controls that reorder or hide text (bidirectional overrides and isolates,
/// line and paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if u32::from(c) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `s` with every unsafe character ([`is_unsafe`]) written as an escape (`\n`, `\x1b`,
/// `\u{202e}`); borrowed unchanged when there is none, as is almost always the case.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` as [`printable`] makes it, but keeping its line breaks: for multi-line text of our own
/// making, such as a parser's error pointing at a line of a file.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    if !s.contains('\n') {
        return printable(s);
    }
    let lines: Vec<Cow<'_, str>> = s.split('\n').map(printable).collect();
    Cow::Owned(lines.join("\n"))
}

/// An operating-system string (a file name may be any bytes but `/` and NUL) as printable text:
/// valid UTF-8 stays as it is, each byte that is not is written `\xNN`, a backslash `\\`, and
/// unsafe characters are escaped as [`printable`] does. Different names give different texts, and
/// the same name always the same one, so the result serves as a stable key.
pub fn escape_os(s: &OsStr) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = s.as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.contains('\\')
    {
        return printable(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if is_unsafe(c) {
                push_escaped(&mut out, c);
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// A path as printable text: [`escape_os`] of the whole path.
pub fn path(p: &Path) -> Cow<'_, str> {
    escape_os(p.as_os_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn controls_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(
            printable("user@example.org"),
            Cow::Borrowed("user@example.org")
        ));
        assert_eq!(
            printable("a\x1b]0;owned\x07b\nc\u{9b}d\u{202e}e"),
            "a\\x1b]0;owned\\x07b\\nc\\u{9b}d\\u{202e}e"
        );
        assert_eq!(printable("tab\there\r"), "tab\\there\\r");
        assert_eq!(printable("déjà vu ✓"), "déjà vu ✓");
        assert_eq!(printable_lines("one\n\x1b[2Jtwo"), "one\n\\x1b[2Jtwo");
    }

    #[test]
    fn os_names_escape_invalid_bytes_injectively() {
        let raw = OsStr::from_bytes(b"1.\xff\xfe.host\n:2,");
        assert_eq!(escape_os(raw), "1.\\xff\\xfe.host\\n:2,");
        // A name that spells the escape itself stays distinct from the raw bytes.
        let spelled = OsStr::from_bytes(b"1.\\xff\\xfe.host\\n:2,");
        assert_ne!(escape_os(spelled), escape_os(raw));
        assert_eq!(escape_os(OsStr::new("plain")), "plain");
        assert_eq!(
            path(Path::new("/md/new/caf\u{e9}")),
            "/md/new/caf\u{e9}".to_owned()
        );
    }
}
