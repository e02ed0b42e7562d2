//! A Maildir source: everything in `new/`, and in `cur/` without the `S` flag, then whatever is
//! renamed into either, found by inotify (the notify crate) with a periodic rescan as a safety net.
//!
//! Listing is streamed: a blocking thread walks `read_dir` and hands names over in small chunks, so a
//! backlog of a million files is never held in memory. A file is handed to the pipeline at most once
//! at a time (an in-flight set, bounded by the pipeline's capacity); it is moved only after its result
//! is committed: to `cur/` with the `S` flag, or into a `processed` sub-folder, or into the quarantine
//! sub-folder. Nothing is ever deleted.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    Ack, Disposition, Incoming, Loaded, NotRegular, OversizeId, Payload, States, irregular_kind,
    open_regular,
};
use crate::config::MaildirConfig;
use crate::text;

/// How long a file found by a scan must go unchanged (size and modification time) before it is
/// read: a file written straight into `new/`, not through `tmp/`, may still be being written.
/// Files announced by a rename or a close after writing are complete and read at once.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The longest a file that keeps changing is held back before it is read all the same.
pub const SETTLE_MAX: Duration = Duration::from_secs(30);

/// Why a Maildir source could not start.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    /// `new/`, `cur/` or `tmp/` is missing or unreadable.
    #[error("maildir {path}: {cause} (a Maildir holds new/, cur/ and tmp/)")]
    Layout { path: PathBuf, cause: io::Error },
    /// The inotify watch could not be set up.
    #[error("maildir {path}: cannot watch for new mail: {cause}")]
    Watch { path: PathBuf, cause: notify::Error },
}

/// The folders of one Maildir, and the files of it now in the pipeline.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    new: PathBuf,
    cur: PathBuf,
    processed: Option<PathBuf>,
    quarantine: PathBuf,
    in_flight: Mutex<HashSet<PathBuf>>,
    /// Entries that are not regular files and were named in a warning already (once per path).
    warned: Mutex<HashSet<PathBuf>>,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        // A poisoned lock only means another thread panicked while holding it; the set is still valid.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Skips an entry that is not a regular file, with a warning the first time for its path.
    fn skip_irregular(&self, path: &Path, why: NotRegular) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_path_buf());
        if first {
            tracing::warn!(
                path = %text::path(path),
                "{why}: never read, and not named again while it stays (move or remove it)"
            );
        }
    }

    /// Forgets the warned entries that have gone, so a new one at the same path is named again.
    fn prune_warned(&self) {
        self.warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|p| fs::symlink_metadata(p).is_ok());
    }
}

/// The acknowledgement of one Maildir file: where it was read, and the folder it belongs to.
#[derive(Debug)]
pub struct Ticket {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Ticket {
    /// Skips the file: it turned out not to be a regular file when opened (warned once per path).
    pub fn not_regular(&self, why: NotRegular) {
        self.shared.skip_irregular(&self.path, why);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.in_flight().remove(&self.path);
    }
}

/// Splits a Maildir file name (any bytes) into its unique part and its flags (`base:2,FLAGS`).
fn split_name(name: &OsStr) -> (&OsStr, String) {
    let b = name.as_bytes();
    match b.windows(3).rposition(|w| w == b":2,") {
        Some(i) => (
            OsStr::from_bytes(b.get(..i).unwrap_or(b)),
            String::from_utf8_lossy(b.get(i + 3..).unwrap_or_default()).into_owned(),
        ),
        None => (
            OsStr::from_bytes(b.strip_suffix(b":2").unwrap_or(b)),
            String::new(),
        ),
    }
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".")
}

/// The flags with `add` included, sorted as the Maildir specification asks.
fn with_flag(flags: &str, add: Option<char>) -> String {
    let mut f: Vec<char> = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if let Some(c) = add
        && !f.contains(&c)
    {
        f.push(c);
    }
    f.sort_unstable();
    f.dedup();
    f.into_iter().collect()
}

/// Whether a file in `cur/` is one this source has not processed yet.
fn cur_is_pending(name: &OsStr) -> bool {
    !is_hidden(name) && !split_name(name).1.contains('S')
}

/// Creates the Maildir `dir` (with `cur/`, `new/`, `tmp/`) where missing, its folders with `mode`
/// (less the umask).
fn ensure_maildir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true).mode(mode);
    builder.create(dir)?;
    for sub in ["cur", "new", "tmp"] {
        builder.create(dir.join(sub))?;
    }
    Ok(())
}

/// The mode of a quarantine folder that this source creates: no access for others, as the
/// messages in it are exactly the ones nothing could read and may hold anything.
const QUARANTINE_DIR_MODE: u32 = 0o750;

/// Takes every permission for others off a file about to be quarantined, so that it is never
/// world-readable in the quarantine folder (whatever mode the delivering agent gave it).
fn withhold_from_others(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o007))?;
    }
    Ok(())
}

/// Renames `from` to `to` unless `to` exists, atomically where the file system supports it
/// (`renameat2` with `RENAME_NOREPLACE`); elsewhere (NFS) it checks first, then renames.
#[allow(unsafe_code)]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
    };
    let (cf, ct) = (c(from)?, c(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cf.as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(from, to)
        }
        _ => Err(e),
    }
}

/// Moves `from` into `to_dir` as `base:2,flags`, never replacing a file: a taken name gets a numeric
/// suffix.
fn rename_no_replace(from: &Path, to_dir: &Path, base: &OsStr, flags: &str) -> io::Result<PathBuf> {
    for n in 0u32..1000 {
        let mut name = base.as_bytes().to_vec();
        if n > 0 {
            name.extend_from_slice(format!(".{n}").as_bytes());
        }
        name.extend_from_slice(format!(":2,{flags}").as_bytes());
        let to = to_dir.join(OsString::from_vec(name));
        match rename_noreplace(from, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "every candidate name is taken",
    ))
}

impl Ticket {
    /// Moves the file as `d` says. Failures are logged: the file stays where it is and is read again
    /// (and recorded as a duplicate) on the next scan.
    pub fn ack(self, d: &Disposition) {
        let Some(name) = self.path.file_name() else {
            return;
        };
        let (base, flags) = split_name(name);
        let quarantine = matches!(d, Disposition::Quarantine(_));
        let (dir, flags, mode) = match d {
            Disposition::Processed => match &self.shared.processed {
                Some(p) => (p.join("cur"), with_flag(&flags, Some('S')), 0o777),
                None => (self.shared.cur.clone(), with_flag(&flags, Some('S')), 0o777),
            },
            Disposition::Quarantine(_) => (
                self.shared.quarantine.join("cur"),
                with_flag(&flags, None),
                QUARANTINE_DIR_MODE,
            ),
        };
        if quarantine && let Err(e) = withhold_from_others(&self.path) {
            tracing::debug!(path = %text::path(&self.path), error = %e, "cannot restrict a quarantined file's mode");
        }
        let mut result = rename_no_replace(&self.path, &dir, base, &flags);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) && !dir.exists() {
            let parent = dir.parent().unwrap_or(&dir);
            result = ensure_maildir(parent, mode)
                .and_then(|()| rename_no_replace(&self.path, &dir, base, &flags));
        }
        match result {
            Ok(to) => {
                tracing::debug!(from = %text::path(&self.path), to = %text::path(&to), "acknowledged")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => tracing::debug!(
                path = %text::path(&self.path),
                "moved by another agent before the acknowledgement; its new name is read and acknowledged when seen"
            ),
            Err(e) => tracing::warn!(
                path = %text::path(&self.path),
                error = %e,
                "cannot move a recorded message; it will be read again (as a duplicate) on the next scan"
            ),
        }
    }
}

/// One Maildir folder being read.
#[derive(Debug)]
pub struct MaildirSource {
    label: Arc<str>,
    rescan_interval: Duration,
    shared: Arc<Shared>,
}

impl MaildirSource {
    /// Checks the folder's layout and prepares the source (nothing is read yet).
    pub fn new(cfg: &MaildirConfig) -> Result<MaildirSource, MaildirError> {
        let root = cfg.path.clone();
        for sub in ["new", "cur", "tmp"] {
            let p = root.join(sub);
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(MaildirError::Layout {
                        path: root,
                        cause: io::Error::other(format!("{} is not a folder", p.display())),
                    });
                }
                Err(cause) => return Err(MaildirError::Layout { path: p, cause }),
            }
        }
        Ok(MaildirSource {
            label: cfg.label().into(),
            rescan_interval: cfg.rescan_interval.0,
            shared: Arc::new(Shared {
                new: root.join("new"),
                cur: root.join("cur"),
                processed: cfg.processed.as_ref().map(|p| root.join(p)),
                quarantine: root.join(&cfg.quarantine),
                root,
                in_flight: Mutex::new(HashSet::new()),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Reads the folder until `cancel` fires: a full scan first, then inotify events and rescans.
    /// `ready` is notified once the watch is in place and the first scan has been queued.
    pub async fn run(
        self,
        tx: mpsc::Sender<Incoming>,
        cancel: CancellationToken,
        ready: Option<tokio::sync::oneshot::Sender<()>>,
        states: States,
    ) -> Result<(), MaildirError> {
        let (ev_tx, mut ev_rx) = mpsc::channel::<PathBuf>(4096);
        let overflow = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let mut watcher = {
            let overflow = overflow.clone();
            let wake = wake.clone();
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let ev = match res {
                    Ok(ev) => ev,
                    Err(_) => {
                        overflow.store(true, Ordering::Release);
                        wake.notify_one();
                        return;
                    }
                };
                if ev.need_rescan() {
                    overflow.store(true, Ordering::Release);
                    wake.notify_one();
                    return;
                }
                let path = match ev.kind {
                    EventKind::Modify(notify::event::ModifyKind::Name(
                        notify::event::RenameMode::To,
                    ))
                    | EventKind::Access(notify::event::AccessKind::Close(
                        notify::event::AccessMode::Write,
                    )) => ev.paths.first(),
                    EventKind::Modify(notify::event::ModifyKind::Name(
                        notify::event::RenameMode::Both,
                    )) => ev.paths.get(1),
                    EventKind::Create(notify::event::CreateKind::Folder) => {
                        overflow.store(true, Ordering::Release);
                        wake.notify_one();
                        None
                    }
                    _ => None,
                };
                // Our own acknowledgements rename files into cur/ with the S flag: not news.
                let path =
                    path.filter(|p| p.file_name().is_none_or(|n| !split_name(n).1.contains('S')));
                if let Some(p) = path
                    && ev_tx.try_send(p.clone()).is_err()
                {
                    // The queue is full: fall back to a scan rather than block inotify's thread.
                    overflow.store(true, Ordering::Release);
                    wake.notify_one();
                }
            })
            .map_err(|cause| MaildirError::Watch {
                path: self.shared.root.clone(),
                cause,
            })?
        };
        for dir in [&self.shared.new, &self.shared.cur] {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|cause| MaildirError::Watch {
                    path: dir.clone(),
                    cause,
                })?;
        }
        tracing::info!(maildir = %text::printable(&self.label), path = %text::path(&self.shared.root), "watching");
        states.set(&self.label, "watching");
        states.set_connected(&self.label, true);
        if let Some(r) = ready {
            let _ = r.send(());
        }

        let mut tick = tokio::time::interval(self.rescan_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settle_tick = tokio::time::interval(SETTLE / 4);
        settle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settling = Held::new();
        // The first tick fires at once: that is the start-up scan.
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = tick.tick() => {
                    overflow.store(false, Ordering::Release);
                    if !self.scan(&tx, &cancel, &mut settling).await { break; }
                }
                () = wake.notified() => {
                    if overflow.swap(false, Ordering::AcqRel) {
                        tracing::info!(maildir = %text::printable(&self.label), "event queue overflowed or a folder appeared: rescanning");
                        if !self.scan(&tx, &cancel, &mut settling).await { break; }
                    }
                }
                _ = settle_tick.tick(), if !settling.is_empty() => {
                    let list = std::mem::take(&mut settling);
                    let Ok((waiting, ready)) = tokio::task::spawn_blocking(move || settle(list)).await else {
                        break;
                    };
                    settling = waiting;
                    let mut go_on = true;
                    for path in ready {
                        if !self.offer(path, &tx, &cancel).await {
                            go_on = false;
                            break;
                        }
                    }
                    if !go_on { break; }
                }
                ev = ev_rx.recv() => {
                    let Some(path) = ev else { break };
                    if !self.offer(path, &tx, &cancel).await { break; }
                }
            }
        }
        drop(watcher);
        states.set(&self.label, "stopped");
        states.set_connected(&self.label, false);
        tracing::info!(maildir = %text::printable(&self.label), "stopped");
        Ok(())
    }

    /// Streams the names in `new/` and `cur/` into the pipeline, holding back into `settling` the
    /// files modified within [`SETTLE`]; false when cancelled.
    async fn scan(
        &self,
        tx: &mpsc::Sender<Incoming>,
        cancel: &CancellationToken,
        settling: &mut Held,
    ) -> bool {
        let (chunk_tx, mut chunk_rx) = mpsc::channel::<Vec<Found>>(2);
        let shared = self.shared.clone();
        let lister = tokio::task::spawn_blocking(move || {
            list_pending(&shared, &chunk_tx);
            shared.prune_warned();
        });
        let mut offered = 0usize;
        let mut go_on = true;
        while let Some(chunk) = chunk_rx.recv().await {
            for found in chunk {
                let path = match found {
                    Found::Ready(p) => p,
                    Found::Recent(s) => {
                        settling.entry(s.path.clone()).or_insert(s);
                        continue;
                    }
                };
                if !self.offer(path, tx, cancel).await {
                    go_on = false;
                    break;
                }
                offered += 1;
            }
            if !go_on {
                break;
            }
        }
        drop(chunk_rx);
        let _ = lister.await;
        tracing::debug!(maildir = %text::printable(&self.label), offered, settling = settling.len(), "scan done");
        go_on
    }

    /// Hands one file to the pipeline unless it is already there or not pending; false when
    /// cancelled.
    async fn offer(
        &self,
        path: PathBuf,
        tx: &mpsc::Sender<Incoming>,
        cancel: &CancellationToken,
    ) -> bool {
        let Some(parent) = path.parent() else {
            return true;
        };
        let Some(name) = path.file_name() else {
            return true;
        };
        let pending = if parent == self.shared.new {
            !is_hidden(name)
        } else if parent == self.shared.cur {
            cur_is_pending(name)
        } else {
            false
        };
        if !pending || !self.shared.in_flight().insert(path.clone()) {
            return true;
        }
        let incoming = Incoming {
            source: format!("maildir:{}", text::path(&path)),
            origin: self.label.clone(),
            received_at: Utc::now(),
            payload: Payload::File(path.clone()),
            ack: Ack::Maildir(Ticket {
                path,
                shared: self.shared.clone(),
            }),
        };
        tokio::select! {
            biased;
            // Dropping the message drops its ticket, which takes it out of the in-flight set.
            () = cancel.cancelled() => false,
            r = tx.send(incoming) => r.is_ok(),
        }
    }
}

/// Reads a message file whole when its size (from the metadata, before any byte is read) is within
/// `max`; a larger file is never read: its key is derived from its Maildir name and size, so that an
/// oversized message costs neither memory nor a pass over its bytes.
/// Only a regular file is read, never through a symbolic link and never waiting on a FIFO: anything
/// else is an error holding [`NotRegular`].
pub fn read_file(path: &Path, max: usize) -> io::Result<Loaded> {
    use std::io::Read;
    let (mut f, meta) = open_regular(path, false)?;
    let mtime = meta.modified().ok().map(chrono::DateTime::<Utc>::from);
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > max {
        return Ok(Loaded::TooLarge(len, oversized_id(path, len), mtime));
    }
    let mut buf = Vec::with_capacity(len);
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    (&mut f).take(cap).read_to_end(&mut buf)?;
    if buf.len() <= max {
        return Ok(Loaded::Whole(buf, mtime));
    }
    // It grew past the limit after the stat: what was read is dropped, the rest never read.
    let size = usize::try_from(f.metadata()?.len())
        .unwrap_or(usize::MAX)
        .max(buf.len());
    Ok(Loaded::TooLarge(size, oversized_id(path, size), mtime))
}

/// The identity of an oversized file: its Maildir unique name (without flags, so the key survives a
/// rename into `cur/`) and its size.
fn oversized_id(path: &Path, size: usize) -> OversizeId {
    let base = path
        .file_name()
        .map(|n| text::escape_os(split_name(n).0).into_owned())
        .unwrap_or_default();
    OversizeId::Name(format!("{base}:{size}"))
}

/// A file found by a scan: to read now, or modified so recently that it may still be being written.
enum Found {
    Ready(PathBuf),
    Recent(Settling),
}

/// The files held back until they stop changing, by path: a burst of new mail found by one scan is
/// thousands of entries, each looked up when the next scan finds it again.
type Held = HashMap<PathBuf, Settling>;

/// A file held back until it has stopped changing.
#[derive(Debug)]
struct Settling {
    path: PathBuf,
    size: u64,
    mtime: SystemTime,
    /// When its current size and modification time were first seen (back-dated by its age).
    changed: Instant,
    /// When the scan found it.
    found: Instant,
}

impl Settling {
    /// A file of `size` modified at `mtime`, when that is within [`SETTLE`] of now.
    fn recent(path: PathBuf, size: u64, mtime: SystemTime) -> Option<Settling> {
        let age = SystemTime::now()
            .duration_since(mtime)
            .unwrap_or(Duration::ZERO);
        if age >= SETTLE {
            return None;
        }
        let now = Instant::now();
        Some(Settling {
            path,
            size,
            mtime,
            changed: now.checked_sub(age).unwrap_or(now),
            found: now,
        })
    }
}

/// Looks at each held-back file again: the ones unchanged for [`SETTLE`] (or held for
/// [`SETTLE_MAX`]) are ready; gone ones are dropped; the rest wait.
fn settle(list: Held) -> (Held, Vec<PathBuf>) {
    let mut waiting = Held::with_capacity(list.len());
    let mut ready = Vec::new();
    for (_, mut s) in list {
        let Ok(meta) = fs::symlink_metadata(&s.path) else {
            continue;
        };
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if (meta.len(), mtime) != (s.size, s.mtime) {
            s.size = meta.len();
            s.mtime = mtime;
            s.changed = Instant::now();
        }
        if s.changed.elapsed() >= SETTLE || s.found.elapsed() >= SETTLE_MAX {
            ready.push(s.path);
        } else {
            waiting.insert(s.path.clone(), s);
        }
    }
    // Maildir names begin with their delivery time: oldest first, whichever of new/ and cur/.
    ready.sort_unstable_by(|a, b| a.file_name().cmp(&b.file_name()));
    (waiting, ready)
}

/// Lists pending files of `new/` then `cur/`, a chunk at a time, until the receiver goes away.
/// Entries that are not regular files are skipped (named once); recently modified files are
/// handed over as [`Found::Recent`].
fn list_pending(shared: &Shared, out: &mpsc::Sender<Vec<Found>>) {
    const CHUNK: usize = 256;
    for (dir, is_cur) in [(&shared.new, false), (&shared.cur, true)] {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %text::path(dir), error = %e, "cannot list");
                continue;
            }
        };
        let mut chunk = Vec::with_capacity(CHUNK);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let wanted = if is_cur {
                cur_is_pending(&name)
            } else {
                !is_hidden(&name)
            };
            if !wanted {
                continue;
            }
            // The entry itself, never what a link points to.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if let Some(kind) = irregular_kind(meta.file_type()) {
                shared.skip_irregular(&entry.path(), NotRegular(kind));
                continue;
            }
            let path = entry.path();
            let found = match meta.modified() {
                Ok(mtime) => match Settling::recent(path, meta.len(), mtime) {
                    Some(s) => Found::Recent(s),
                    None => Found::Ready(entry.path()),
                },
                Err(_) => Found::Ready(path),
            };
            chunk.push(found);
            if chunk.len() == CHUNK {
                if out.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    return;
                }
                chunk.reserve(CHUNK);
            }
        }
        if !chunk.is_empty() && out.blocking_send(chunk).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_base_and_flags() {
        let split = |n: &[u8]| {
            let (b, f) = split_name(OsStr::from_bytes(n));
            (b.as_bytes().to_vec(), f)
        };
        assert_eq!(
            split(b"123.abc.host:2,RS"),
            (b"123.abc.host".to_vec(), "RS".into())
        );
        assert_eq!(
            split(b"123.abc.host"),
            (b"123.abc.host".to_vec(), "".into())
        );
        assert_eq!(
            split(b"123.abc.host:2,"),
            (b"123.abc.host".to_vec(), "".into())
        );
        assert_eq!(
            split(b"1.\xff\n.h:2,S"),
            (b"1.\xff\n.h".to_vec(), "S".into())
        );
        assert_eq!(with_flag("T", Some('S')), "ST");
        assert_eq!(with_flag("FS", Some('S')), "FS");
        assert_eq!(with_flag("a", None), "a");
        assert!(cur_is_pending(OsStr::new("1.x:2,")));
        assert!(cur_is_pending(OsStr::new("1.x:2,F")));
        assert!(!cur_is_pending(OsStr::new("1.x:2,FS")));
        assert!(!cur_is_pending(OsStr::new(".hidden")));
    }

    #[test]
    fn settled_files_come_out_oldest_first_and_gone_ones_are_dropped() -> io::Result<()> {
        let d = tempfile::tempdir()?;
        let held_since = |path: &Path, age: Duration| -> io::Result<Settling> {
            let meta = fs::metadata(path)?;
            let now = Instant::now();
            Ok(Settling {
                path: path.to_path_buf(),
                size: meta.len(),
                mtime: meta.modified()?,
                changed: now.checked_sub(age).unwrap_or(now),
                found: now,
            })
        };
        let mut held = Held::new();
        for name in [
            "1700000003.c.host",
            "1700000001.a.host",
            "1700000002.b.host",
        ] {
            let path = d.path().join(name);
            fs::write(&path, name)?;
            held.insert(path.clone(), held_since(&path, SETTLE)?);
        }
        let young = d.path().join("1700000004.d.host");
        fs::write(&young, "still being written")?;
        held.insert(young.clone(), held_since(&young, Duration::ZERO)?);
        fs::remove_file(d.path().join("1700000002.b.host"))?;

        let (waiting, ready) = settle(held);
        let names: Vec<_> = ready
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["1700000001.a.host", "1700000003.c.host"]);
        assert_eq!(waiting.len(), 1);
        assert!(waiting.contains_key(&young));
        Ok(())
    }

    #[test]
    fn rename_never_replaces() -> io::Result<()> {
        let d = tempfile::tempdir()?;
        let a = d.path().join("a");
        let b = d.path().join("b");
        fs::write(&a, "one")?;
        fs::write(&b, "two")?;
        fs::write(d.path().join("x:2,S"), "taken")?;
        let to = rename_no_replace(&a, d.path(), OsStr::new("x"), "S")?;
        assert_eq!(to, d.path().join("x.1:2,S"));
        assert_eq!(fs::read_to_string(d.path().join("x:2,S"))?, "taken");
        assert_eq!(fs::read_to_string(&to)?, "one");
        Ok(())
    }
}
