//! The sources of `bounced import`: files, directories (recursively), Maildirs (`new/` and `cur/`),
//! mbox files and standard input, read once, in order, with nothing to acknowledge.
//!
//! A blocking thread walks the paths entry by entry (a directory is never listed whole into memory)
//! and hands each message to the pipeline; the bounded queue in between is the backpressure. An
//! input that cannot be read is named in a warning and counted, and the walk goes on. Files whose
//! identity (device and inode) is in the skip set, such as the open database and its companions, are
//! passed over whatever their names.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Ack, Incoming, NotRegular, OversizeId, Payload, States, irregular_kind, not_regular,
    open_regular,
};
use crate::error::ReadError;
use crate::text;

/// What `bounced import` reads: its paths, and whether a Maildir's Maildir++ sub-folders
/// (`.Sent/`, `.Quarantine/`, ...) are read too.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Files, directories, Maildirs, mbox files, or `-` for standard input.
    pub paths: Vec<PathBuf>,
    /// Read a Maildir's sub-folders too; without it they are named in a warning and skipped.
    pub recursive_maildir: bool,
}

impl From<Vec<PathBuf>> for Inputs {
    fn from(paths: Vec<PathBuf>) -> Inputs {
        Inputs {
            paths,
            recursive_maildir: false,
        }
    }
}

/// The label of an import in the sources' states and figures.
const LABEL: &str = "import";

/// Files, directories, Maildirs, mbox files or `-` (standard input), read once.
#[derive(Debug)]
pub struct FilesSource {
    paths: Vec<PathBuf>,
    recursive_maildir: bool,
    max_size: usize,
    skip: HashSet<(u64, u64)>,
    unreadable: Arc<AtomicU64>,
}

/// The queue to the pipeline was closed, or the run was cancelled: stop walking.
struct Stopped;

impl FilesSource {
    /// A source over `inputs`; messages over `max_size` bytes are hashed while streaming, not kept.
    pub fn new(inputs: impl Into<Inputs>, max_size: usize) -> FilesSource {
        let Inputs {
            paths,
            recursive_maildir,
        } = inputs.into();
        FilesSource {
            paths,
            recursive_maildir,
            max_size,
            skip: HashSet::new(),
            unreadable: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Passes over `path` (when it exists) wherever the walk meets it, by file identity.
    pub fn skip_file(&mut self, path: &Path) {
        if let Ok(m) = std::fs::metadata(path) {
            self.skip.insert((m.dev(), m.ino()));
        }
    }

    /// The count of inputs that could not be read (each is named in a warning).
    pub fn unreadable(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.unreadable)
    }

    /// Walks every path, handing each message to `tx`, until done or `cancel` fires.
    pub async fn run(self, tx: mpsc::Sender<Incoming>, cancel: CancellationToken, states: States) {
        states.set(LABEL, "reading");
        let walker = tokio::task::spawn_blocking(move || {
            let w = Walker {
                tx,
                cancel,
                recursive_maildir: self.recursive_maildir,
                max: self.max_size,
                skip: self.skip,
                bad: self.unreadable,
            };
            for p in &self.paths {
                if w.path(p).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = walker.await {
            tracing::error!(error = %e, "the import walker failed");
        }
        states.set(LABEL, "done");
    }
}

struct Walker {
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
    recursive_maildir: bool,
    max: usize,
    skip: HashSet<(u64, u64)>,
    bad: Arc<AtomicU64>,
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

fn mtime(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

impl Walker {
    fn send(
        &self,
        source: String,
        received_at: DateTime<Utc>,
        payload: Payload,
    ) -> Result<(), Stopped> {
        if self.cancel.is_cancelled() {
            return Err(Stopped);
        }
        let incoming = Incoming {
            source,
            origin: Arc::from(LABEL),
            received_at,
            payload,
            ack: Ack::None,
        };
        self.tx.blocking_send(incoming).map_err(|_| Stopped)
    }

    fn unreadable(&self, path: &Path, e: &io::Error) {
        if let Some(why) = not_regular(e) {
            return self.irregular(path, why);
        }
        tracing::warn!("cannot read {}: {e}; skipped", text::path(path));
        self.bad.fetch_add(1, Ordering::Relaxed);
    }

    /// An entry that is not a regular file (a link, a FIFO, a device): never opened, named.
    fn irregular(&self, path: &Path, why: NotRegular) {
        tracing::warn!("{}: {why}", text::path(path));
    }

    fn skipped(&self, meta: &std::fs::Metadata) -> bool {
        self.skip.contains(&(meta.dev(), meta.ino()))
    }

    /// Walks one path, streaming: directories are read entry by entry, never listed whole.
    fn path(&self, path: &Path) -> Result<(), Stopped> {
        if path.as_os_str() == "-" {
            return self.stdin();
        }
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                self.unreadable(&path, &e);
                return Ok(());
            }
        };
        if meta.is_file() {
            // A path the operator named: a link to a file is followed.
            return self.file(&path, false, true);
        }
        if !meta.is_dir() {
            if let Some(kind) = irregular_kind(meta.file_type()) {
                self.irregular(&path, NotRegular(kind));
            }
            return Ok(());
        }
        if is_maildir(&path) {
            return self.maildir(&path);
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) => {
                self.unreadable(&path, &e);
                return Ok(());
            }
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if is_hidden(&p) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => self.path(&p)?,
                Ok(t) if t.is_file() => self.file(&p, false, false)?,
                Ok(t) => {
                    if let Some(kind) = irregular_kind(t) {
                        self.irregular(&p, NotRegular(kind));
                    }
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// A Maildir: the files of `new/` and `cur/`, then its Maildir++ sub-folders (`.Name/`, each a
    /// Maildir) when asked; otherwise those are named in one warning.
    fn maildir(&self, root: &Path) -> Result<(), Stopped> {
        for sub in ["new", "cur"] {
            let dir = root.join(sub);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    self.unreadable(&dir, &e);
                    continue;
                }
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if is_hidden(&p) {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_file() => self.file(&p, true, false)?,
                    Ok(t) => {
                        if let Some(kind) = irregular_kind(t) {
                            self.irregular(&p, NotRegular(kind));
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(root) else {
            return Ok(());
        };
        let mut folders: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .filter(|p| is_hidden(p) && is_maildir(p))
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Ok(());
        }
        if self.recursive_maildir {
            for f in &folders {
                self.maildir(f)?;
            }
        } else {
            let names: Vec<String> = folders
                .iter()
                .filter_map(|f| f.file_name())
                .map(|n| text::escape_os(n).into_owned())
                .collect();
            tracing::warn!(
                "{}: skipped {} Maildir++ sub-folder(s): {} (pass --recursive-maildir to import them)",
                text::path(root),
                folders.len(),
                names.join(", ")
            );
        }
        Ok(())
    }

    /// Standard input: one message, or an mbox when it starts with `From `.
    fn stdin(&self) -> Result<(), Stopped> {
        let mut reader = BufReader::with_capacity(64 * 1024, io::stdin().lock());
        let now = Utc::now();
        match reader.fill_buf() {
            Ok(head) if head.starts_with(b"From ") => {
                return self.mbox(Path::new("-"), "stdin", reader, now);
            }
            Ok(_) => {}
            Err(e) => {
                self.unreadable(Path::new("-"), &e);
                return Ok(());
            }
        }
        self.whole(Path::new("-"), "stdin".to_owned(), reader, now, None)
    }

    /// Reads one file: a single message, or (outside a Maildir) an mbox when it starts with `From `.
    /// Only a regular file is opened: a symbolic link only when `follow` (a path the operator
    /// named), a FIFO or device never.
    fn file(&self, path: &Path, in_maildir: bool, follow: bool) -> Result<(), Stopped> {
        let (file, meta) = match open_regular(path, follow) {
            Ok(f) => f,
            Err(e) => {
                self.unreadable(path, &e);
                return Ok(());
            }
        };
        if self.skipped(&meta) {
            tracing::info!(path = %text::path(path), "skipped: the database this import writes to");
            return Ok(());
        }
        let received_at = mtime(&meta);
        let scheme = if in_maildir { "maildir" } else { "file" };
        let source = format!("{scheme}:{}", text::path(path));
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        if !in_maildir {
            match reader.fill_buf() {
                Ok(head) if head.starts_with(b"From ") => {
                    let name = format!("file:{}", text::path(path));
                    return self.mbox(path, &name, reader, received_at);
                }
                Ok(_) => {}
                Err(e) => {
                    self.unreadable(path, &e);
                    return Ok(());
                }
            }
        }
        let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        self.whole(path, source, reader, received_at, Some(size))
    }

    /// Sends a whole message read from `reader`: its bytes, or over the limit its hash.
    fn whole(
        &self,
        path: &Path,
        source: String,
        mut reader: impl Read,
        received_at: DateTime<Utc>,
        size: Option<usize>,
    ) -> Result<(), Stopped> {
        let mut bytes = Vec::with_capacity(size.unwrap_or(0).min(self.max.saturating_add(1)));
        let cap = u64::try_from(self.max)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if let Err(e) = (&mut reader).take(cap).read_to_end(&mut bytes) {
            self.unreadable(path, &e);
            return Ok(());
        }
        if bytes.len() <= self.max {
            return self.send(source, received_at, Payload::Bytes(bytes));
        }
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        let mut size = bytes.len();
        drop(bytes);
        let mut counter = HashWriter(&mut hasher, 0);
        if let Err(e) = io::copy(&mut reader, &mut counter) {
            self.unreadable(path, &e);
            return Ok(());
        }
        size += counter.1;
        let id = OversizeId::Sha256(hex(&hasher.finalize()));
        self.send(source, received_at, Payload::TooLarge { size, id })
    }

    /// Splits an mbox into messages on `From ` lines (after a blank line) and undoes `>From ` quoting.
    fn mbox<R: BufRead>(
        &self,
        path: &Path,
        name: &str,
        mut reader: R,
        file_time: DateTime<Utc>,
    ) -> Result<(), Stopped> {
        let mut line = Vec::with_capacity(1024);
        let mut current: Option<MboxMessage> = None;
        let mut n = 0u64;
        let mut prev_blank = true;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.unreadable(path, &e);
                    break;
                }
            }
            if prev_blank && line.starts_with(b"From ") {
                if let Some(m) = current.take() {
                    m.send(format!("{name}#{n}"), self)?;
                }
                n += 1;
                current = Some(MboxMessage {
                    bytes: Vec::new(),
                    overflow: None,
                    received_at: from_line_time(&line).unwrap_or(file_time),
                });
                prev_blank = false;
                continue;
            }
            prev_blank = line == b"\n" || line == b"\r\n";
            let Some(m) = current.as_mut() else {
                continue;
            };
            let quoted = line.iter().take_while(|&&b| b == b'>').count();
            if quoted > 0
                && line
                    .get(quoted..)
                    .is_some_and(|rest| rest.starts_with(b"From "))
            {
                m.push(line.get(1..).unwrap_or_default(), self.max);
            } else {
                m.push(&line, self.max);
            }
        }
        if let Some(m) = current {
            m.send(format!("{name}#{n}"), self)?;
        }
        Ok(())
    }
}

/// Hashes what is written into it and counts the bytes.
struct HashWriter<'a>(&'a mut Sha256, usize);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// The time on an mbox `From ` line (`From sender Mon Mar  2 09:00:00 2026`), if it has one.
fn from_line_time(line: &[u8]) -> Option<DateTime<Utc>> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace().skip(2);
    let date: Vec<&str> = words.by_ref().take(5).collect();
    if date.len() != 5 {
        return None;
    }
    NaiveDateTime::parse_from_str(&date.join(" "), "%a %b %d %H:%M:%S %Y")
        .ok()
        .map(|t| t.and_utc())
}

/// One message being collected from an mbox.
struct MboxMessage {
    bytes: Vec<u8>,
    /// Set once the message passed the size limit: its bytes are hashed, not kept.
    overflow: Option<(Sha256, usize)>,
    received_at: DateTime<Utc>,
}

impl MboxMessage {
    fn push(&mut self, line: &[u8], max: usize) {
        if let Some((h, n)) = &mut self.overflow {
            h.update(line);
            *n += line.len();
            return;
        }
        if self.bytes.len() + line.len() > max {
            let mut h = Sha256::new();
            h.update(&self.bytes);
            h.update(line);
            self.overflow = Some((h, self.bytes.len() + line.len()));
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(line);
    }

    /// The message as a payload; `None` for an empty one.
    fn into_payload(mut self) -> Option<Payload> {
        // The blank line before the next `From ` line belongs to the separator.
        if self.bytes.ends_with(b"\n\n") {
            self.bytes.pop();
        } else if self.bytes.ends_with(b"\r\n\r\n") {
            self.bytes.truncate(self.bytes.len() - 2);
        }
        match self.overflow {
            Some((h, size)) => Some(Payload::TooLarge {
                size,
                id: OversizeId::Sha256(hex(&h.finalize())),
            }),
            None if self.bytes.iter().all(u8::is_ascii_whitespace) => None,
            None => Some(Payload::Bytes(self.bytes)),
        }
    }

    fn send(self, source: String, w: &Walker) -> Result<(), Stopped> {
        let at = self.received_at;
        match self.into_payload() {
            Some(p) => w.send(source, at, p),
            None => Ok(()),
        }
    }
}

/// Why one input could not be turned into bytes.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The operating system refused (permission, vanished file, not a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Over the size limit, found from metadata (or while reading a stream) before reading it whole.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Whether `b` may be part of a header field name as mail software writes them: RFC 5322 allows
/// any printable ASCII but the colon; names in use are letters, digits, `-`, `_` and `.`, and a
/// narrower test tells JSON (`{"kind":`) from a header.
fn is_field_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Whether `bytes` are plainly not a mail message. A message (or an mbox) begins with a header
/// field (`Name:`, see [`is_field_name_byte`]) or an mbox `From ` line,
/// perhaps after a byte-order mark or blank lines; JSON, a document or binary data do not. Empty
/// input is not judged here.
pub fn plainly_not_mail(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let Some(start) = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n')) else {
        return false;
    };
    let first = bytes.get(start..).unwrap_or_default();
    if first.starts_with(b"From ") {
        return false;
    }
    // The field name ends at the first colon of the first line.
    let name_end = first
        .iter()
        .position(|&b| b == b':' || b == b'\n')
        .filter(|&end| first.get(end) == Some(&b':'));
    !name_end.is_some_and(|end| {
        end > 0
            && first
                .get(..end)
                .is_some_and(|name| name.iter().all(|&b| is_field_name_byte(b)))
    })
}

/// Reads a file whole, unless its metadata says it is over `max_size` (then it is not read at all).
/// Only a regular file (or a link to one) is opened: a FIFO or a device named here, or swapped in
/// after a listing, is an error, never waited on.
pub fn read_capped(path: &Path, max_size: usize) -> Result<Vec<u8>, InputError> {
    let (file, meta) = open_regular(path, true)?;
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > max_size {
        return Err(ReadError::TooLarge {
            size: len,
            limit: max_size,
        }
        .into());
    }
    // Room for the whole file and the byte that would show it grew: one read, then end of file.
    read_capped_into(file, max_size, Vec::with_capacity(len.saturating_add(1)))
}

/// Reads a stream to its end, refusing it once it passes `max_size` (a file may grow after `stat`).
pub fn read_stream_capped(reader: impl Read, max_size: usize) -> Result<Vec<u8>, InputError> {
    read_capped_into(reader, max_size, Vec::new())
}

fn read_capped_into(
    reader: impl Read,
    max_size: usize,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, InputError> {
    let cap = u64::try_from(max_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(cap).read_to_end(&mut buf)?;
    if buf.len() > max_size {
        return Err(ReadError::TooLarge {
            size: buf.len(),
            limit: max_size,
        }
        .into());
    }
    Ok(buf)
}

/// One entry met while walking the inputs: a file to read, or a path that could not be listed.
#[derive(Debug)]
pub enum Entry {
    /// A regular file (or a symbolic link to one).
    File(PathBuf),
    /// A directory that could not be listed, with the reason.
    Unlisted(PathBuf, std::io::Error),
}

/// Calls `visit` for every regular file under `root` (the walk of `classify` and `eval`) (itself, when it is a file), sorted by name within
/// each directory, one directory listing in memory at a time. Symbolic links to directories are not
/// followed (no loops); links to files are.
pub fn walk(root: &Path, visit: &mut dyn FnMut(Entry)) {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => walk_dir(root, visit),
        _ => visit(Entry::File(root.to_path_buf())),
    }
}

fn walk_dir(dir: &Path, visit: &mut dyn FnMut(Entry)) {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => return visit(Entry::Unlisted(dir.to_path_buf(), e)),
    };
    let mut entries: Vec<(std::ffi::OsString, PathBuf, bool)> = Vec::new();
    for item in listing {
        match item {
            Ok(item) => {
                let is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let is_file = match item.file_type() {
                    Ok(t) if t.is_symlink() => std::fs::metadata(item.path())
                        .map(|m| m.is_file())
                        .unwrap_or(true),
                    Ok(t) => t.is_file(),
                    Err(_) => true,
                };
                if is_dir || is_file {
                    entries.push((item.file_name(), item.path(), is_dir));
                }
            }
            Err(e) => visit(Entry::Unlisted(dir.to_path_buf(), e)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, path, is_dir) in entries {
        if is_dir {
            walk_dir(&path, visit);
        } else {
            visit(Entry::File(path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_is_told_from_what_plainly_is_not() {
        for mail in [
            &b"Return-Path: <>\r\nFrom: a@b\r\n\r\nbody"[..],
            b"From MAILER-DAEMON Mon Nov 23 10:00:00 2026\nFrom: x\n",
            b"\xef\xbb\xbfReceived: from mx\n",
            b"\r\n\r\nX-Header:value\n",
            b"",
        ] {
            assert!(
                !plainly_not_mail(mail),
                "{:?}",
                String::from_utf8_lossy(mail)
            );
        }
        for other in [
            &b"[\n  {\n    \"kind\": \"dsn\"\n  }\n]\n"[..],
            b"{\"notificationType\":\"Bounce\"}",
            b"# A heading\n\nSome text: with a colon\n",
            b"just words\nKey: value\n",
            b":no name\n",
            b"\x89PNG\r\n\x1a\n",
            b"%PDF-1.7\n",
        ] {
            assert!(
                plainly_not_mail(other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn walk_is_recursive_and_sorted() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("b"))?;
        std::fs::write(dir.path().join("c.eml"), "x")?;
        std::fs::write(dir.path().join("a.eml"), "x")?;
        std::fs::write(dir.path().join("b").join("z.eml"), "x")?;
        std::fs::write(dir.path().join("b").join("m.eml"), "x")?;
        let mut seen = Vec::new();
        walk(dir.path(), &mut |e| {
            if let Entry::File(p) = e
                && let Ok(rel) = p.strip_prefix(dir.path())
            {
                seen.push(rel.to_string_lossy().into_owned());
            }
        });
        assert_eq!(seen, ["a.eml", "b/m.eml", "b/z.eml", "c.eml"]);
        Ok(())
    }

    #[test]
    fn size_cap_is_checked_before_reading() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("big.eml");
        std::fs::write(&p, vec![b'a'; 100])?;
        assert!(matches!(
            read_capped(&p, 99),
            Err(InputError::Read(ReadError::TooLarge {
                size: 100,
                limit: 99
            }))
        ));
        assert_eq!(read_capped(&p, 100).map(|b| b.len()).ok(), Some(100));
        assert!(matches!(
            read_stream_capped(&[0u8; 10][..], 9),
            Err(InputError::Read(_))
        ));
        assert!(matches!(
            read_capped(&dir.path().join("gone.eml"), 10),
            Err(InputError::Io(_))
        ));
        Ok(())
    }

    fn walker(max: usize) -> (Walker, mpsc::Receiver<Incoming>) {
        let (tx, rx) = mpsc::channel(16);
        let w = Walker {
            tx,
            cancel: CancellationToken::new(),
            recursive_maildir: false,
            max,
            skip: HashSet::new(),
            bad: Arc::new(AtomicU64::new(0)),
        };
        (w, rx)
    }

    fn split(mbox: &str) -> Vec<(String, String)> {
        let (w, mut rx) = walker(1 << 20);
        let r = w.mbox(
            Path::new("/m"),
            "file:/m",
            mbox.as_bytes(),
            DateTime::<Utc>::default(),
        );
        assert!(r.is_ok());
        drop(w);
        let mut out = Vec::new();
        while let Ok(i) = rx.try_recv() {
            out.push(match i.payload {
                Payload::Bytes(b) => (i.source, String::from_utf8_lossy(&b).into_owned()),
                _ => (i.source, "<too large>".into()),
            });
        }
        out
    }

    #[test]
    fn mbox_splits_on_from_lines_and_unquotes() {
        let got = split(
            "From a@example.org Mon Mar  2 09:00:00 2026\nSubject: one\n\n>From the start\n>>From deeper\nFrom inside a paragraph\n\nFrom b@example.org Tue Mar  3 09:00:00 2026\nSubject: two\n\nbody\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "file:/m#1");
        assert_eq!(
            got[0].1,
            "Subject: one\n\nFrom the start\n>From deeper\nFrom inside a paragraph\n"
        );
        assert_eq!(got[1].1, "Subject: two\n\nbody\n");
    }

    #[test]
    fn mbox_oversized_message_is_hashed_not_kept() {
        let (w, mut rx) = walker(50);
        let text = format!(
            "From x Mon Mar  2 09:00:00 2026\nSubject: big\n\n{}\n",
            "y".repeat(100)
        );
        assert!(
            w.mbox(
                Path::new("/m"),
                "file:/m",
                text.as_bytes(),
                DateTime::<Utc>::default()
            )
            .is_ok()
        );
        let got = rx.try_recv().map(|i| i.payload);
        assert!(
            matches!(got, Ok(Payload::TooLarge { size, id: OversizeId::Sha256(_) }) if size > 50),
            "{got:?}"
        );
    }

    #[test]
    fn oversized_file_is_hashed_whole() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("big.eml");
        std::fs::write(&p, vec![b'a'; 300])?;
        let (w, mut rx) = walker(100);
        assert!(w.file(&p, false, false).is_ok());
        let got = rx.try_recv().map(|i| i.payload);
        let want = hex(&Sha256::digest(vec![b'a'; 300]));
        assert!(
            matches!(&got, Ok(Payload::TooLarge { size: 300, id: OversizeId::Sha256(h) }) if *h == want),
            "{got:?}"
        );
        Ok(())
    }

    #[test]
    fn a_skipped_identity_is_passed_over_whatever_its_name() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("anything.eml");
        std::fs::write(&db, "Subject: x\n\nbody\n")?;
        let link = dir.path().join("hard-link.eml");
        std::fs::hard_link(&db, &link)?;
        std::fs::write(dir.path().join("other.eml"), "Subject: y\n\nbody\n")?;
        let (mut w, mut rx) = walker(1 << 20);
        let m = std::fs::metadata(&db)?;
        w.skip.insert((m.dev(), m.ino()));
        assert!(w.path(dir.path()).is_ok());
        drop(w);
        let mut sources = Vec::new();
        while let Ok(i) = rx.try_recv() {
            sources.push(i.source);
        }
        assert_eq!(sources.len(), 1, "{sources:?}");
        assert!(sources[0].ends_with("other.eml"), "{sources:?}");
        Ok(())
    }

    #[test]
    fn from_line_dates() {
        let t = from_line_time(b"From a@example.org Mon Mar  2 09:00:00 2026\n");
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-03-02T09:00:00+00:00".into())
        );
        assert_eq!(from_line_time(b"From a@example.org\n"), None);
    }
}
