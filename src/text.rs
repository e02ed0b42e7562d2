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

/// A writer for output that may reach a terminal. As text ([`PrintableWriter::new`]) it passes
/// line breaks and tabs and writes every other unsafe character ([`is_unsafe`]) and every byte
/// that is not UTF-8 as an escape; as JSON lines ([`PrintableWriter::json`]) it writes the unsafe
/// characters that JSON allows raw in a string (DEL, C1 controls, bidirectional controls) as
/// `\uXXXX`, which is the same JSON value. Whatever a stored field holds, the terminal receives
/// only text. A UTF-8 sequence split across two writes is held until it is complete.
#[derive(Debug)]
pub struct PrintableWriter<W: std::io::Write> {
    inner: W,
    pending: Vec<u8>,
    json: bool,
}

impl<W: std::io::Write> PrintableWriter<W> {
    /// Escapes text before it reaches `inner`.
    pub fn new(inner: W) -> PrintableWriter<W> {
        PrintableWriter {
            inner,
            pending: Vec::new(),
            json: false,
        }
    }

    /// Escapes JSON lines (as `serde_json` writes them) before they reach `inner`.
    pub fn json(inner: W) -> PrintableWriter<W> {
        PrintableWriter {
            inner,
            pending: Vec::new(),
            json: true,
        }
    }

    /// Writes `bytes` to `inner`, escaped. Runs of printable ASCII, line breaks and tabs (nearly
    /// all of any output) go through as they are; only the rest is decoded and escaped. An ASCII
    /// byte never belongs to a multi-byte UTF-8 sequence, so splitting at one splits no character.
    fn write_escaped(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let passes = |b: &u8| matches!(b, b' '..=b'~' | b'\n' | b'\t');
        while !bytes.is_empty() {
            let plain = bytes.iter().position(|b| !passes(b)).unwrap_or(bytes.len());
            let (run, rest) = bytes.split_at(plain);
            self.inner.write_all(run)?;
            let other = rest.iter().position(passes).unwrap_or(rest.len());
            let (odd, rest) = rest.split_at(other);
            if !odd.is_empty() {
                let mut out = String::with_capacity(odd.len() + 8);
                escape_into(&mut out, odd, self.json);
                self.inner.write_all(out.as_bytes())?;
            }
            bytes = rest;
        }
        Ok(())
    }
}

/// Appends `bytes` to `out` with every unsafe character escaped: as `\uXXXX` for `json` (which
/// allows them raw but a terminal must not see them), else as [`printable`] writes them; a byte
/// that is not UTF-8 as `\xNN`.
fn escape_into(out: &mut String, bytes: &[u8], json: bool) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\n' || c == '\t' || !is_unsafe(c) {
                out.push(c);
            } else if json {
                // Every unsafe character is in the basic plane: one `\uXXXX`.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            } else {
                push_escaped(out, c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// How many bytes at the end of `data` begin a UTF-8 sequence that is not yet complete.
fn incomplete_tail(data: &[u8]) -> usize {
    let start = data.len().saturating_sub(3);
    for (i, &b) in data.iter().enumerate().skip(start).rev() {
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            0x80..=0xBF => continue,
            _ => return 0,
        };
        let have = data.len() - i;
        return if have < need { have } else { 0 };
    }
    0
}

impl<W: std::io::Write> std::io::Write for PrintableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let data = if self.pending.is_empty() {
            buf
        } else {
            self.pending.extend_from_slice(buf);
            &std::mem::take(&mut self.pending)[..]
        };
        let keep = incomplete_tail(data);
        let (complete, tail) = data.split_at(data.len() - keep);
        let tail = tail.to_vec();
        self.write_escaped(complete)?;
        self.pending = tail;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_escaped(&pending)?;
        }
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for PrintableWriter<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
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
    fn the_writer_escapes_controls_even_split_across_writes() {
        use std::io::Write;
        let mut out = Vec::new();
        {
            let mut w = PrintableWriter::new(&mut out);
            let text = "a\tb\n\x1b]0;x\x07 \u{9b}2J é\n".as_bytes();
            // One byte at a time: every multi-byte character is split.
            for b in text {
                w.write_all(std::slice::from_ref(b)).expect("write");
            }
            w.write_all(b"\xff end").expect("write");
        }
        let expected = "a\tb\n\\x1b]0;x\\x07 \\u{9b}2J é\n\\xff end";
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
        // In one write, plain runs and escapes alternate within the buffer: the same text.
        let mut once = Vec::new();
        let mut all = "a\tb\n\x1b]0;x\x07 \u{9b}2J é\n".as_bytes().to_vec();
        all.extend_from_slice(b"\xff end");
        PrintableWriter::new(&mut once)
            .write_all(&all)
            .expect("write");
        assert_eq!(String::from_utf8(once).expect("utf-8"), expected);
    }

    #[test]
    fn json_lines_stay_the_same_values_with_no_raw_control() {
        use std::io::Write;
        let value = serde_json::json!({"d": "a\u{7f}b\u{9b}c\u{202e}d\x1b é"});
        let mut out = Vec::new();
        {
            let mut w = PrintableWriter::json(&mut out);
            serde_json::to_writer(&mut w, &value).expect("write");
            w.write_all(b"\n").expect("write");
        }
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.trim_end().chars().any(is_unsafe), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back, value);
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
