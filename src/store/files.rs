//! The database file on disk: creating it with its mode and group, and saying which permission is
//! missing when it cannot be opened.

use std::fs::{File, OpenOptions};
use std::io;
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
    if file.metadata()?.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, None, Some(gid))
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// This process's effective user, effective group and supplementary groups, from
/// `/proc/self/status`.
struct Ids {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

fn ids() -> Option<Ids> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    // `Uid:` and `Gid:` list the real, effective, saved and file-system ids.
    Some(Ids {
        uid: *field("Uid:").get(1)?,
        gid: *field("Gid:").get(1)?,
        groups: field("Groups:"),
    })
}

/// Whether this process may create files in `folder`, judged from its mode, owner and group and the
/// process's ids (root may).
fn may_write_folder(folder: &Path) -> bool {
    let (Ok(meta), Some(ids)) = (std::fs::metadata(folder), ids()) else {
        return true;
    };
    if ids.uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let bits = if meta.uid() == ids.uid {
        mode >> 6
    } else if meta.gid() == ids.gid || ids.groups.contains(&meta.gid()) {
        mode >> 3
    } else {
        mode
    };
    bits & 0o3 == 0o3
}

/// Whether this process can open `path` for reading, or (`write`) for writing. Opening has no
/// effect on the file.
fn can_open(path: &Path, write: bool) -> bool {
    let r = if write {
        OpenOptions::new().write(true).open(path)
    } else {
        File::open(path)
    };
    !matches!(r, Err(e) if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1))
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

/// Which permission keeps this user from opening the database at `path`, as a whole message naming
/// the file, when one does: reading the file, writing it (`write`), or writing its folder, where
/// SQLite creates the `-wal` and `-shm` files beside the database. `None` when every permission is
/// there.
pub(crate) fn missing_permission(path: &Path, write: bool) -> Option<String> {
    let uid = ids().map_or_else(|| "?".to_owned(), |i| i.uid.to_string());
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Some(format!(
            "cannot open database {}: the folder {} does not exist",
            path.display(),
            folder.display()
        ));
    }
    if !path.exists() {
        return (!may_write_folder(&folder)).then(|| {
            format!(
                "cannot create database {}: this user (uid {uid}) cannot create files in {} ({}): \
                 run bounced as a user who can, or create the database there first",
                path.display(),
                folder.display(),
                describe(&folder)
            )
        });
    }
    if !can_open(path, false) {
        return Some(format!(
            "cannot read database {}: this user (uid {uid}) lacks read permission on it ({}): \
             give it read permission, for instance `store.mode = \"0640\"` (the default for a new \
             database) with this user in that group",
            path.display(),
            describe(path)
        ));
    }
    if write && !can_open(path, true) {
        return Some(format!(
            "database {} is read-only for this user (uid {uid}), who can read it but not write it \
             ({}): make it writable by this user, or run this command as a user who can write it",
            path.display(),
            describe(path)
        ));
    }
    let companions_missing = ["-wal", "-shm"].iter().any(|s| {
        let mut p = path.as_os_str().to_owned();
        p.push(s);
        !Path::new(&p).exists()
    });
    if (write || companions_missing) && !may_write_folder(&folder) {
        return Some(format!(
            "cannot open database {}: this user (uid {uid}) cannot write the folder {} ({}), where \
             SQLite creates {}-wal and {}-shm beside the database{}: make the folder writable by \
             this user or its group (mode 2770 keeps the group on new files)",
            path.display(),
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
