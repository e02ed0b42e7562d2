//! The limits on a message's structure, checked in one pass over its bytes before the MIME parser
//! builds anything from them: the parser's structures for a header field, a part or an attached
//! message cost far more memory than the bytes that make them (a 10 MB message of `A:` lines is
//! three million header structures), so they are counted first and the message refused past a
//! limit no real report comes near.
//!
//! The pass follows the structure as the parser will: header blocks (the message's, each MIME
//! part's, each attached message's), the boundaries each multipart declares, and attached messages
//! sent base64 or quoted-printable (decoded and scanned in turn, as the parser will decode and parse
//! them). Its work is linear in the message. On the way it notes what nothing reads (the leaf
//! bodies of attached messages, media, an alternative's HTML beside its plain text, trace fields;
//! see `Unread`), so that the parser is not given them to decode or index.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;

use std::ops::Range;

use crate::error::ReadError;

use super::MAX_NESTING;

/// The most header fields a message may carry in all its header blocks together (its own, its MIME
/// parts', its attached messages'). A real report carries a few hundred at most: a long
/// `Received` chain, the DSN parts' few fields, the returned message's header.
pub const MAX_HEADERS: usize = 10_000;

/// The most MIME parts and attached messages a message may have, all levels together. A real
/// report has a handful.
pub const MAX_PARTS: usize = 1_000;

/// The most bytes all the fields the parser reads into structures or decodes (`Content-Type`,
/// `Content-Disposition`, `From`, `Subject`, `Message-ID`, ...) may take together, in all header
/// blocks. Real fields take a few hundred bytes each.
pub const MAX_STRUCTURED_FIELDS: usize = 256 * 1024;

/// The fields, besides `Content-Type` and `Content-Transfer-Encoding`, that the parser reads into
/// structures or decodes (see `PARSER` in the parent module): their bytes count against
/// [`MAX_STRUCTURED_FIELDS`].
const STRUCTURED: &[&[u8]] = &[
    b"content-disposition",
    b"content-id",
    b"content-description",
    b"content-location",
    b"from",
    b"subject",
    b"message-id",
];

/// Header fields of a message that no reader reads (names lower-case; a name ending in `-` stands
/// for every field it starts): hop-by-hop trace, signatures, and a receiving system's own
/// bookkeeping. Left out of a message header before the parser reads it (see [`Unread`]); a
/// reader that needs one must take it off this list.
const UNREAD_FIELDS: &[&[u8]] = &[
    b"received",
    b"x-received",
    b"received-spf",
    b"authentication-results",
    b"arc-seal",
    b"arc-message-signature",
    b"arc-authentication-results",
    b"dkim-signature",
    b"x-google-dkim-signature",
    b"x-gm-message-state",
    b"x-google-smtp-source",
    b"x-ms-exchange-",
    b"x-microsoft-antispam",
    b"x-forefront-antispam-report",
];

/// Whether a header field of this name (as written) is one of [`UNREAD_FIELDS`].
fn is_unread_field(name: &[u8]) -> bool {
    // Every listed name starts with one of these letters: most fields are passed at the first.
    if !matches!(
        name.first().map(u8::to_ascii_lowercase),
        Some(b'a' | b'd' | b'r' | b'x')
    ) {
        return false;
    }
    UNREAD_FIELDS.iter().any(|f| {
        if f.ends_with(b"-") {
            name.len() > f.len()
                && name
                    .get(..f.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(f))
        } else {
            name.eq_ignore_ascii_case(f)
        }
    })
}

/// How much of one `Content-Type` field is read for its type and boundary (bytes).
const FIELD_READ: usize = 4096;

/// Checks the structure of `bytes` (LF or CRLF line endings) against the limits above and
/// [`MAX_NESTING`]; returns the spans nothing reads (see [`Unread`]), in order.
pub fn check(bytes: &[u8]) -> Result<Vec<Range<usize>>, ReadError> {
    let mut totals = Totals::default();
    let mut unread = Unread::default();
    scan(bytes, 1, &mut totals, Some(&mut unread))?;
    let mut spans = unread.spans;
    spans.sort_unstable_by_key(|r| r.start);
    Ok(spans)
}

/// The bodies of the leaf parts of attached messages: the returned original's text, HTML and
/// attachments. Of an attached message only its header (the original's identity) and its
/// `message/*` parts (a forwarded report's status fields) are read, so these bodies are left out
/// of what the parser is given: decoding them (a newsletter's quoted-printable HTML, say) would be
/// most of the work on a bounce that returns the whole original. Images, sounds and videos are
/// unread wherever they are: a notice's logo is base64 nothing decodes for its words. So is the
/// HTML of a `multipart/alternative` that also has a `text/plain` part: the parser gives the
/// plain text as the message's text, and the HTML (most of an Exchange notice) only as HTML,
/// which nothing reads. And so are the trace and signature fields of a message header (the
/// bounce's own and an attached message's), [`UNREAD_FIELDS`]: half the bytes of a typical
/// bounce's header, which the parser would otherwise walk and index.
#[derive(Default)]
struct Unread {
    spans: Vec<Range<usize>>,
    /// Where the body being passed over started, while in one, and whether it is the HTML of the
    /// innermost `multipart/alternative`, unread only if that has a plain text part.
    from: Option<(usize, bool)>,
    /// The unread fields of the message header being read (see [`UNREAD_FIELDS`]), and where the
    /// one being passed over started.
    fields: Vec<Range<usize>>,
    field_from: Option<usize>,
    /// Whether that header has a field that is read: one made only of unread fields is kept whole.
    kept_field: bool,
}

impl Unread {
    /// Ends the span being passed over at `end`, if one is open: an alternative's HTML waits in
    /// `stack`'s innermost level until that closes.
    fn close(&mut self, end: usize, stack: &mut [Level]) {
        let Some((start, html)) = self.from.take() else {
            return;
        };
        if end <= start {
            return;
        }
        match stack.last_mut() {
            Some(Level::Multipart {
                alternative: Some(alt),
                ..
            }) if html => alt.html.push(start..end),
            _ if html => {}
            _ => self.spans.push(start..end),
        }
    }

    /// Ends the unread field being passed over at `end`, if one is.
    fn close_field(&mut self, end: usize) {
        if let Some(start) = self.field_from.take()
            && end > start
        {
            self.fields.push(start..end);
        }
    }

    /// Ends a message header at `end`: its unread fields are left out, unless it has no other.
    fn close_header(&mut self, end: usize) {
        self.close_field(end);
        if self.kept_field {
            self.spans.append(&mut self.fields);
        }
        self.fields.clear();
        self.kept_field = false;
    }

    /// Takes note of the levels of `stack` from `from` on, which are closing: the HTML of an
    /// alternative with a plain text part is unread.
    fn closing(&mut self, stack: &mut [Level], from: usize) {
        for level in stack.iter_mut().skip(from) {
            if let Level::Multipart {
                alternative: Some(alt),
                ..
            } = level
                && alt.plain
            {
                self.spans.append(&mut alt.html);
            }
        }
    }
}

/// What a `multipart/alternative` holds so far, for [`Unread`].
#[derive(Default)]
struct Alternative {
    /// Whether one of its parts is `text/plain`.
    plain: bool,
    /// The bodies of its `text/html` parts.
    html: Vec<Range<usize>>,
}

/// What the pass has counted so far, over the message and every attached message in it.
#[derive(Default)]
struct Totals {
    headers: usize,
    parts: usize,
    structured_bytes: usize,
}

impl Totals {
    fn header(&mut self) -> Result<(), ReadError> {
        self.headers += 1;
        if self.headers > MAX_HEADERS {
            return Err(ReadError::TooManyHeaders {
                count: self.headers,
                limit: MAX_HEADERS,
            });
        }
        Ok(())
    }

    fn part(&mut self) -> Result<(), ReadError> {
        self.parts += 1;
        if self.parts > MAX_PARTS {
            return Err(ReadError::TooManyParts {
                count: self.parts,
                limit: MAX_PARTS,
            });
        }
        Ok(())
    }

    fn structured(&mut self, len: usize) -> Result<(), ReadError> {
        self.structured_bytes += len;
        if self.structured_bytes > MAX_STRUCTURED_FIELDS {
            return Err(ReadError::FieldsTooLong {
                size: self.structured_bytes,
                limit: MAX_STRUCTURED_FIELDS,
            });
        }
        Ok(())
    }
}

/// An open container: a multipart or an attached message.
enum Level {
    /// A multipart, by its delimiter (`--` and the boundary); what it holds so far when it is a
    /// `multipart/alternative`.
    Multipart {
        delimiter: Vec<u8>,
        alternative: Option<Alternative>,
    },
    Message,
}

/// What a header block declares about the body that follows it.
#[derive(Default)]
struct Block {
    /// The `Content-Type` field read so far (its first [`FIELD_READ`] bytes).
    content_type: Vec<u8>,
    /// The `Content-Transfer-Encoding` value.
    encoding: Vec<u8>,
    /// The field now being read: 1 `Content-Type`, 2 `Content-Transfer-Encoding`, 3 another of
    /// [`STRUCTURED`] (counted, not read), 0 another.
    field: u8,
}

impl Block {
    /// The declared type, lower-cased (`multipart/mixed`).
    fn mime_type(&self) -> Vec<u8> {
        let v = self.content_type.trim_ascii_start();
        let end = v
            .iter()
            .position(|&b| b == b';' || b.is_ascii_whitespace())
            .unwrap_or(v.len());
        v.get(..end).unwrap_or_default().to_ascii_lowercase()
    }

    /// The multipart boundary the block declares, if it declares a multipart: the first
    /// `boundary` parameter, however written (white space around `=`, quoted with `"` or `'`, an
    /// RFC 2231 section `boundary*0=`). A section is a prefix of the whole boundary, so searching
    /// for it finds every delimiter the parser finds, and perhaps more.
    fn boundary(&self, mime_type: &[u8]) -> Option<Vec<u8>> {
        if !mime_type.starts_with(b"multipart/") {
            return None;
        }
        let lower = self.content_type.to_ascii_lowercase();
        let mut from = 0;
        while let Some(p) = lower
            .get(from..)
            .and_then(|l| l.windows(8).position(|w| w == b"boundary"))
        {
            let at = from + p + 8;
            from = at;
            let rest = self.content_type.get(at..).unwrap_or_default();
            let rest = rest
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b'*'))
                .and_then(|i| rest.get(i..))
                .unwrap_or_default()
                .trim_ascii_start();
            let Some(rest) = rest.strip_prefix(b"=") else {
                continue;
            };
            let rest = rest.trim_ascii_start();
            let value: &[u8] = match rest.first() {
                Some(&q) if q == b'"' || q == b'\'' => rest
                    .get(1..)
                    .unwrap_or_default()
                    .split(|&b| b == q)
                    .next()
                    .unwrap_or_default(),
                _ => rest
                    .split(|&b| b == b';' || b.is_ascii_whitespace())
                    .next()
                    .unwrap_or_default(),
            };
            if !value.is_empty() {
                return Some(value.to_vec());
            }
        }
        None
    }

    /// Whether a body of type `t` is a leaf nothing reads when it belongs to an attached message: text
    /// (but not a returned header block), or a media or application type; not a multipart, an
    /// attached message, or a `message/*` report part.
    fn is_unread_leaf(t: &[u8]) -> bool {
        if t.is_empty() {
            return true;
        }
        (t.starts_with(b"text/") && t != b"text/rfc822-headers")
            || [b"image/".as_slice(), b"audio/", b"video/", b"application/"]
                .iter()
                .any(|p| t.starts_with(p))
    }

    /// Whether a body of type `t` is an image, a sound or a video (a provider's logo beside its notice):
    /// nothing reads one, wherever it is.
    fn is_media(t: &[u8]) -> bool {
        [b"image/".as_slice(), b"audio/", b"video/"]
            .iter()
            .any(|p| t.starts_with(p))
    }

    /// Whether a body of type `t` is an attached message the parser will parse.
    fn is_message(t: &[u8]) -> bool {
        matches!(t, b"message/rfc822" | b"message/global")
    }

    /// The transfer encoding, when the body must be decoded before it is parsed.
    fn encoding(&self) -> Option<Encoding> {
        let e = self.encoding.trim_ascii().to_ascii_lowercase();
        match e.as_slice() {
            b"base64" => Some(Encoding::Base64),
            b"quoted-printable" => Some(Encoding::QuotedPrintable),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Base64,
    QuotedPrintable,
}

/// Scans one message (the whole input, or a decoded attached message) whose root is at `depth`;
/// notes the unread bodies in `unread` when given (the whole input's offsets).
fn scan(
    bytes: &[u8],
    depth: usize,
    totals: &mut Totals,
    mut unread: Option<&mut Unread>,
) -> Result<(), ReadError> {
    let mut stack: Vec<Level> = Vec::new();
    let mut in_header = true;
    let mut block = Block::default();
    // An encoded attached message being collected: its encoding and where its body starts.
    let mut encoded: Option<(Encoding, usize)> = None;
    let mut offset = 0;
    while offset < bytes.len() {
        if !in_header {
            // In a body only a line holding `--` can matter, and only while a multipart is open:
            // jump to the next such line rather than walking every line.
            let rest = bytes.get(offset..).unwrap_or_default();
            let found = (!stack.is_empty())
                .then(|| memchr::memmem::find(rest, b"--"))
                .flatten();
            let Some(at) = found else {
                break;
            };
            offset += rest
                .get(..at)
                .and_then(|head| memchr::memrchr(b'\n', head))
                .map_or(0, |i| i + 1);
        }
        let rest = bytes.get(offset..).unwrap_or_default();
        let raw = rest
            .get(..memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1))
            .unwrap_or(rest);
        let start = offset;
        offset += raw.len();
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if in_header {
            let message_header = matches!(stack.last(), None | Some(Level::Message));
            if line.is_empty() {
                if let Some(u) = unread.as_deref_mut()
                    && message_header
                {
                    u.close_header(start);
                }
                in_header = false;
                let here = depth + stack.len();
                let mime_type = block.mime_type();
                if let Some(boundary) = block.boundary(&mime_type) {
                    stack.push(Level::Multipart {
                        delimiter: [b"--".as_slice(), &boundary].concat(),
                        alternative: (mime_type == b"multipart/alternative")
                            .then(Alternative::default),
                    });
                    nesting(here + 1)?;
                } else if Block::is_message(&mime_type) {
                    totals.part()?;
                    nesting(here + 1)?;
                    match block.encoding() {
                        Some(e) => encoded = Some((e, offset)),
                        None => {
                            stack.push(Level::Message);
                            in_header = true;
                        }
                    }
                } else if let Some(u) = unread.as_deref_mut() {
                    let attached = stack.iter().any(|l| matches!(l, Level::Message));
                    if Block::is_media(&mime_type)
                        || (attached && Block::is_unread_leaf(&mime_type))
                    {
                        u.from = Some((offset, false));
                    } else if let Some(Level::Multipart {
                        alternative: Some(alt),
                        ..
                    }) = stack.last_mut()
                    {
                        match mime_type.as_slice() {
                            b"text/plain" => alt.plain = true,
                            b"text/html" => u.from = Some((offset, true)),
                            _ => {}
                        }
                    }
                }
                block = Block::default();
                continue;
            }
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                if block.field == 1 || block.field == 3 {
                    totals.structured(line.len())?;
                }
                block.read_more(line);
                continue;
            }
            totals.header()?;
            let name = block.start_field(line, totals)?;
            if let Some(u) = unread.as_deref_mut()
                && message_header
            {
                u.close_field(start);
                if is_unread_field(name) {
                    u.field_from = Some(start);
                } else {
                    u.kept_field = true;
                }
            }
            continue;
        }
        if !has_two_dashes(line) {
            continue;
        }
        // The parser finds a delimiter wherever `--boundary` appears, not only at the start of a
        // line, and takes what follows it on the line for junk: every occurrence of a boundary
        // open here counts, in the order they come.
        let mut next = Occurrences::new(&stack);
        while let Some((at, end)) = next.earliest(line, &stack) {
            if let Some(u) = unread.as_deref_mut() {
                u.close(start, &mut stack);
            }
            if let Some((encoding, from)) = encoded.take() {
                decoded_message(
                    bytes.get(from..start).unwrap_or_default(),
                    encoding,
                    depth + at + 2,
                    totals,
                )?;
            }
            let closing = line.get(end..).is_some_and(|r| r.starts_with(b"--"));
            if let Some(u) = unread.as_deref_mut() {
                u.closing(&mut stack, if closing { at } else { at + 1 });
            }
            if closing {
                stack.truncate(at);
                in_header = false;
            } else {
                stack.truncate(at + 1);
                totals.part()?;
                in_header = true;
            }
        }
    }
    if let Some((encoding, from)) = encoded {
        decoded_message(
            bytes.get(from..).unwrap_or_default(),
            encoding,
            depth + stack.len() + 1,
            totals,
        )?;
    }
    if let Some(u) = unread {
        u.close(bytes.len(), &mut stack);
        u.closing(&mut stack, 0);
    }
    Ok(())
}

/// The next occurrence, in one line, of the delimiter of each multipart open in the stack: found
/// once and kept until passed, so the line is searched at most once per open level.
struct Occurrences {
    /// Per stack level: `None` not yet searched, `Some(None)` no more on the line, else where the
    /// next occurrence starts.
    next: Vec<Option<Option<usize>>>,
    /// Where the search goes on in the line.
    from: usize,
}

impl Occurrences {
    fn new(stack: &[Level]) -> Self {
        Occurrences {
            next: vec![None; stack.len()],
            from: 0,
        }
    }

    /// The earliest occurrence at or after the last one of a delimiter of a level still open: its
    /// level (the innermost when two start together) and where it ends.
    fn earliest(&mut self, line: &[u8], stack: &[Level]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None;
        for (at, level) in stack.iter().enumerate() {
            let Level::Multipart { delimiter, .. } = level else {
                continue;
            };
            let slot = self.next.get_mut(at)?;
            let known = match *slot {
                Some(Some(start)) if start >= self.from => Some(start),
                Some(None) => None,
                _ => {
                    let found = line
                        .get(self.from..)
                        .and_then(|rest| memchr::memmem::find(rest, delimiter))
                        .map(|i| self.from + i);
                    *slot = Some(found);
                    found
                }
            };
            if let Some(start) = known
                && best.is_none_or(|(s, _, _)| start <= s)
            {
                best = Some((start, at, start + delimiter.len()));
            }
        }
        let (start, at, end) = best?;
        self.from = start + 2;
        Some((at, end))
    }
}

/// Scans an attached message sent encoded, as the parser will decode and parse it.
fn decoded_message(
    body: &[u8],
    encoding: Encoding,
    depth: usize,
    totals: &mut Totals,
) -> Result<(), ReadError> {
    let decoded = match encoding {
        Encoding::Base64 => base64_decode(body),
        Encoding::QuotedPrintable => quoted_printable_decode(body),
    };
    match decoded {
        Some(bytes) => scan(&bytes, depth, totals, None),
        None => Ok(()),
    }
}

/// Whether `line` holds `--`, which every delimiter starts with.
fn has_two_dashes(line: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = line.get(from..).and_then(|rest| memchr::memchr(b'-', rest)) {
        if line.get(from + i + 1) == Some(&b'-') {
            return true;
        }
        from += i + 1;
    }
    false
}

/// Refuses nesting deeper than [`MAX_NESTING`].
fn nesting(depth: usize) -> Result<(), ReadError> {
    if depth > MAX_NESTING {
        return Err(ReadError::TooDeep {
            depth,
            limit: MAX_NESTING,
        });
    }
    Ok(())
}

impl Block {
    /// Starts a header field: notes whether it is one the pass reads, and counts MIME fields;
    /// returns the field's name.
    fn start_field<'l>(
        &mut self,
        line: &'l [u8],
        totals: &mut Totals,
    ) -> Result<&'l [u8], ReadError> {
        let colon = line.iter().position(|&b| b == b':');
        let name = colon
            .and_then(|c| line.get(..c))
            .unwrap_or_default()
            .trim_ascii();
        let value = colon.and_then(|c| line.get(c + 1..)).unwrap_or_default();
        self.field = if name.eq_ignore_ascii_case(b"content-type") {
            1
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            2
        } else if STRUCTURED.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            3
        } else {
            0
        };
        if self.field == 1 || self.field == 3 {
            totals.structured(line.len())?;
        }
        match self.field {
            1 => {
                self.content_type.clear();
                push_bounded(&mut self.content_type, value);
            }
            2 => {
                self.encoding.clear();
                push_bounded(&mut self.encoding, value);
            }
            _ => {}
        }
        Ok(name)
    }

    /// A continuation line of the field being read.
    fn read_more(&mut self, line: &[u8]) {
        match self.field {
            1 => {
                self.content_type.push(b' ');
                push_bounded(&mut self.content_type, line.trim_ascii());
            }
            2 => push_bounded(&mut self.encoding, line.trim_ascii()),
            _ => {}
        }
    }
}

/// Appends `more` to `buf`, up to [`FIELD_READ`] bytes in all.
fn push_bounded(buf: &mut Vec<u8>, more: &[u8]) {
    let room = FIELD_READ.saturating_sub(buf.len());
    buf.extend_from_slice(more.get(..room.min(more.len())).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_report_passes() {
        let m = "From: a@example.org\nContent-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nhello\n--b1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@example.net\n--b1\nContent-Type: message/rfc822\n\nFrom: b@example.org\nSubject: x\n\nbody\n--b1--\n";
        assert!(check(m.as_bytes()).is_ok());
    }

    #[test]
    fn the_bodies_of_an_attached_message_are_unread_but_not_its_header_or_report_parts() {
        let text = |m: &str, spans: Vec<Range<usize>>| -> Vec<String> {
            spans
                .into_iter()
                .map(|r| m.get(r).unwrap_or_default().to_string())
                .collect()
        };
        // A returned original with an HTML body and a multipart/alternative one: their bodies only.
        let m = "Content-Type: multipart/report; boundary=b1\n\n--b1\nContent-Type: text/plain\n\nreport text\n--b1\nContent-Type: message/rfc822\n\nFrom: a@example.org\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p>newsletter=3D</p>\n--b1\nContent-Type: message/rfc822\n\nSubject: two\nContent-Type: multipart/alternative; boundary=b2\n\n--b2\nContent-Type: text/plain\n\nplain words\n--b2\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0=\n--b2--\n--b1--\n";
        let spans = check(m.as_bytes()).unwrap_or_default();
        assert_eq!(
            text(m, spans),
            ["<p>newsletter=3D</p>\n", "plain words\n", "iVBORw0=\n"]
        );
        // A forwarded report keeps its status part and its returned header block; the report's
        // own text parts, at the top, are read.
        let m = "Content-Type: multipart/mixed; boundary=f\n\n--f\nContent-Type: text/plain\n\nsee below\n--f\nContent-Type: message/rfc822\n\nSubject: Undelivered\nContent-Type: multipart/report; boundary=r\n\n--r\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.net\n--r\nContent-Type: text/rfc822-headers\n\nMessage-ID: <x@example.org>\n--r--\n--f--\n";
        assert!(check(m.as_bytes()).is_ok_and(|spans| spans.is_empty()));
        // An attached message that is the last thing in the input: to its end.
        let m = "Content-Type: message/rfc822\n\nSubject: x\n\nbody to the end\n";
        assert_eq!(
            text(m, check(m.as_bytes()).unwrap_or_default()),
            ["body to the end\n"]
        );
    }

    /// The spans of `m` that [`check`] leaves unread, as text.
    fn unread(m: &str) -> Vec<String> {
        check(m.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| m.get(r).map(str::to_string))
            .collect()
    }

    #[test]
    fn a_notice_logo_is_unread_but_its_words_and_status_are_read() {
        let m = "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: multipart/related; boundary=r\n\n--r\nContent-Type: text/html\n\n<p>Your message could not be delivered.</p>\n--r\nContent-Type: image/png; name=logo.png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--r--\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.net\n--b\nContent-Type: application/octet-stream\n\nkept\n--b--\n";
        assert_eq!(unread(m), ["iVBORw0KGgo=\n"]);
    }

    #[test]
    fn the_html_beside_a_plain_text_alternative_is_unread() {
        // HTML first, plain text after: the HTML is unread once the alternative closes.
        let m = "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/html\n\n<p>could not deliver</p>\n--a\nContent-Type: text/plain\n\ncould not deliver\n--a--\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.net\n--b--\n";
        assert_eq!(unread(m), ["<p>could not deliver</p>\n"]);
        // An alternative of HTML alone: its HTML is the text, and is read.
        let m = "Content-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/html\n\n<p>could not deliver</p>\n--a--\n";
        assert!(unread(m).is_empty());
        // HTML outside an alternative is read; an unclosed alternative still counts its parts.
        let m = "Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/html\n\n<p>one</p>\n--m\nContent-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain\n\ntwo\n--a\nContent-Type: text/html\n\n<p>two</p>\n";
        assert_eq!(unread(m), ["<p>two</p>\n"]);
    }

    #[test]
    fn every_unread_field_name_starts_with_a_letter_looked_for() {
        for f in UNREAD_FIELDS {
            let name = if f.ends_with(b"-") {
                [*f, b"Scl".as_slice()].concat()
            } else {
                f.to_ascii_uppercase()
            };
            assert!(is_unread_field(&name), "{}", String::from_utf8_lossy(f));
        }
        assert!(!is_unread_field(b"X-MS-Exchange-"));
        assert!(!is_unread_field(b"Subject"));
    }

    #[test]
    fn trace_fields_of_a_message_header_are_unread() {
        // The bounce's own header and an attached message's; a part header keeps its fields.
        let m = "Received: from a\n\tby b\nFrom: x@example.org\nDKIM-Signature: v=1;\n b=abc\nX-MS-Exchange-Organization-SCL: 1\nX-MS-Exchange: kept\nContent-Type: multipart/report; boundary=b\n\n--b\nReceived: in a part\nContent-Type: message/rfc822\n\nreceived: from c\nSubject: s\n\nbody\n--b--\n";
        assert_eq!(
            unread(m),
            [
                "Received: from a\n\tby b\n",
                "DKIM-Signature: v=1;\n b=abc\n",
                "X-MS-Exchange-Organization-SCL: 1\n",
                "received: from c\n",
                "body\n",
            ]
        );
        // A header of trace fields alone is kept whole.
        assert!(unread("Received: from a\nReceived: from b\n\nbody\n").is_empty());
    }

    #[test]
    fn header_fields_are_counted_in_every_block() {
        let top = format!("{}\nbody\n", "A: b\n".repeat(MAX_HEADERS + 1));
        assert!(matches!(
            check(top.as_bytes()),
            Err(ReadError::TooManyHeaders { .. })
        ));
        // Lines of a plain body are not header fields.
        let body = format!("A: b\n\n{}", "A: b\n".repeat(MAX_HEADERS * 2));
        assert!(check(body.as_bytes()).is_ok());
        // An attached message's header block counts.
        let nested = format!(
            "Content-Type: message/rfc822\n\n{}\nx\n",
            "A: b\n".repeat(MAX_HEADERS)
        );
        assert!(matches!(
            check(nested.as_bytes()),
            Err(ReadError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn parts_are_counted_by_their_declared_boundaries() {
        let many = format!(
            "Content-Type: multipart/mixed; boundary=b\n\n{}--b--\n",
            "--b\n\nx\n".repeat(MAX_PARTS + 1)
        );
        assert!(matches!(
            check(many.as_bytes()),
            Err(ReadError::TooManyParts { .. })
        ));
        // Dashes that are no declared boundary are text.
        let text = format!(
            "Content-Type: text/plain\n\n{}",
            "--b\n".repeat(MAX_PARTS * 3)
        );
        assert!(check(text.as_bytes()).is_ok());
    }

    #[test]
    fn a_part_header_is_counted_however_its_boundary_is_written() {
        let lines = "A:\n".repeat(MAX_HEADERS + 1);
        for (content_type, delimiter) in [
            ("multipart/mixed; boundary=\"b\"", "--b"),
            ("multipart/mixed; boundary = \"b\"", "--b"),
            ("multipart/mixed; BOUNDARY=b", "--b"),
            ("multipart/mixed; boundary='b'", "--b"),
            (
                "multipart/mixed; boundary*0=\"b\"; boundary*1=\"c\"",
                "--bc",
            ),
            // The parser takes what follows a boundary on its line for junk.
            ("multipart/mixed; boundary=\"b\"", "--bjunk"),
            // ... and finds a boundary anywhere on a line.
            ("multipart/mixed; boundary=\"b\"", "text --b"),
        ] {
            let m = format!("Content-Type: {content_type}\n\n{delimiter}\n{lines}\nx\n");
            assert!(
                matches!(check(m.as_bytes()), Err(ReadError::TooManyHeaders { .. })),
                "{content_type} / {delimiter}"
            );
        }
    }

    #[test]
    fn a_closed_multipart_ends_its_parts() {
        let m = format!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n{}",
            "A: b\n".repeat(MAX_HEADERS * 2)
        );
        assert!(check(m.as_bytes()).is_ok());
    }

    #[test]
    fn nesting_is_measured_before_parsing() {
        let mut m = String::from("Content-Type: multipart/mixed; boundary=n0\n\n");
        for i in 0..100 {
            m.push_str(&format!(
                "--n{i}\nContent-Type: multipart/mixed; boundary=n{}\n\n",
                i + 1
            ));
        }
        assert!(matches!(
            check(m.as_bytes()),
            Err(ReadError::TooDeep { .. })
        ));
        let chain = "Content-Type: message/rfc822\n\n".repeat(100);
        assert!(matches!(
            check(chain.as_bytes()),
            Err(ReadError::TooDeep { .. })
        ));
    }

    #[test]
    fn an_encoded_attached_message_is_scanned_decoded() {
        let inner = "A: b\n".repeat(MAX_HEADERS + 1) + "\nx\n";
        let encoded = base64_lines(inner.as_bytes());
        let m = format!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{encoded}--b--\n"
        );
        assert!(matches!(
            check(m.as_bytes()),
            Err(ReadError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn long_structured_fields_are_refused() {
        let m = format!(
            "Content-Type: text/plain{}\n\nx\n",
            "; a=b".repeat(MAX_STRUCTURED_FIELDS)
        );
        assert!(matches!(
            check(m.as_bytes()),
            Err(ReadError::FieldsTooLong { .. })
        ));
    }

    /// Base64 in lines of 76 characters.
    fn base64_lines(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk.first().copied().unwrap_or(0),
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                    out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
                } else {
                    out.push('=');
                }
            }
        }
        let mut lines = String::new();
        for (i, c) in out.chars().enumerate() {
            if i > 0 && i % 76 == 0 {
                lines.push('\n');
            }
            lines.push(c);
        }
        lines.push('\n');
        lines
    }
}
