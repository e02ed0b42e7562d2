//! The database file on disk: creating it with its mode and group, and saying which permission is
//! missing when it cannot be opened.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode a new database gets: owner read and write, group read.
pub const DEFAULT_MODE: u32 = 0o640;

/// Creates the database file with exactly `mode` (whatever the umask) and the group of its folder,
/// unless it exists (an existing file keeps the mode and group its administrator gave it). SQLite
/// gives its `-wal` and `-shm` files the mode of the database file.
///
/// The group is set when this user may (it belongs to the group, or is root); otherwise the file
/// keeps the user's group and a warning says so.
pub(crate) fn create_database(path: &Path, mode: u32) -> io::Result<()> {
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    let folder = folder_of(path);
    if let Ok(meta) = std::fs::metadata(&folder)
        && let Err(e) = set_group(&file, meta.gid())
    {
        tracing::warn!(
            database = %path.display(),
            group = meta.gid(),
            error = %e,
            "cannot give the new database the group of its folder; it keeps this user's group"
        );
    }
    Ok(())
}

fn set_group(file: &File, gid: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let current = file.metadata()?.gid();
    if current == gid {
        return Ok(());
    }
    // SAFETY: fchown on a descriptor this function borrows; -1 (as uid_t) keeps the owner.
    let r = unsafe { libc::fchown(file.as_raw_fd(), u32::MAX, gid) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether this process may access `path` as `how` (`libc::R_OK`, `libc::W_OK`), judged with its
/// effective user and groups.
fn may(path: &Path, how: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that lives for the call; faccessat reads it only.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), how, libc::AT_EACCESS) == 0 }
}

/// `mode 0600, owner uid 0, group 0` for a message.
fn describe(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "mode {:04o}, owner uid {}, group gid {}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ),
        Err(e) => e.to_string(),
    }
}

/// Which permission keeps this user from opening the database at `path`, in words, when one does:
/// reading the file, writing it (`write`), or writing its folder, where SQLite creates the `-wal`
/// and `-shm` files beside the database. `None` when every permission is there.
pub(crate) fn missing_permission(path: &Path, write: bool) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Some(format!("the folder {} does not exist", folder.display()));
    }
    if !path.exists() {
        return (!may(&folder, libc::W_OK | libc::X_OK)).then(|| {
            format!(
                "this user (uid {uid}) cannot create files in {} ({}): run bounced as a user \
                 who can, or create the database there first",
                folder.display(),
                describe(&folder)
            )
        });
    }
    if !may(path, libc::R_OK) {
        return Some(format!(
            "this user (uid {uid}) cannot read it ({}): give it read permission, for instance \
             `store.mode = \"0640\"` (the default for a new database) with this user in that group",
            describe(path)
        ));
    }
    if write && !may(path, libc::W_OK) {
        return Some(format!(
            "this user (uid {uid}) can read it but not write it ({}): give this user write \
             permission, or run this command as a user who has it",
            describe(path)
        ));
    }
    let companions_missing = ["-wal", "-shm"].iter().any(|s| {
        let mut p = path.as_os_str().to_owned();
        p.push(s);
        !Path::new(&p).exists()
    });
    if (write || companions_missing) && !may(&folder, libc::W_OK | libc::X_OK) {
        return Some(format!(
            "this user (uid {uid}) cannot write the folder {} ({}), where SQLite creates {}-wal \
             and {}-shm beside the database{}: make the folder writable by this user's group \
             (mode 2770 keeps the group on new files)",
            folder.display(),
            describe(&folder),
            path.display(),
            path.display(),
            if write {
                ""
            } else {
                " (they exist only while a bounced process has the database open)"
            }
        ));
    }
    None
}
