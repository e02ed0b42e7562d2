//! Store errors, sorted into the cases a user can act on.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why the database could not do what was asked; each case names the file and what to do.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Reading commands need an existing database.
    #[error("no bounce database at {path}: run `bounced import` first, or pass --db")]
    Missing { path: PathBuf },
    /// Another process held the write lock longer than the busy timeout.
    #[error(
        "database {path} is locked by another process (a running daemon or import?); wait for it to finish, or stop it, then retry"
    )]
    Locked { path: PathBuf },
    /// The file or its folder cannot be written (WAL mode needs the folder writable too).
    #[error(
        "database {path} is read-only: make the file and its folder writable by this user (WAL mode writes {path}-wal and {path}-shm beside it)"
    )]
    ReadOnly { path: PathBuf },
    /// The disk is full, or a file size limit stops the write; nothing of the transaction is kept.
    #[error(
        "cannot write database {path}: the disk is full or a file size limit (ulimit -f) is reached; free some space or raise the limit"
    )]
    Full { path: PathBuf },
    /// The operating system failed a read or write of the file (EFBIG past a size limit, EIO).
    #[error(
        "input/output error on database {path} ({detail}): check free space, the file size limit (ulimit -f) and the disk"
    )]
    Io { path: PathBuf, detail: String },
    /// This user lacks a permission the database needs; the message names the file, the
    /// permission and what to do.
    #[error("{message}")]
    Permission { path: PathBuf, message: String },
    /// The file cannot be opened at all.
    #[error("cannot open database {path}: check that the folder exists and is writable ({detail})")]
    CannotOpen { path: PathBuf, detail: String },
    /// The file is not a SQLite database, or is damaged.
    #[error(
        "{path} is not a bounced database or is damaged: point --db at the right file, or restore it from a backup"
    )]
    Corrupt { path: PathBuf },
    /// A migration this binary does not know has been applied: a newer bounced wrote the file.
    #[error(
        "database {path} was written by a newer bounced (schema version {found}, this binary knows up to {known}): upgrade bounced"
    )]
    NewerVersion {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A migration failed; the transaction holding it was rolled back.
    #[error("cannot bring database {path} up to date: {cause}")]
    Migrate {
        path: PathBuf,
        cause: sqlx::migrate::MigrateError,
    },
    /// The text is not a mailbox address.
    #[error("`{0}` is not an email address (expected local-part@domain)")]
    InvalidAddress(String),
    /// No recipient with this address is known.
    #[error("no recipient {0} in the database")]
    UnknownRecipient(String),
    /// The stored raw message could not be decompressed.
    #[error("stored message {id} in {path} cannot be decompressed: {cause}")]
    Raw {
        path: PathBuf,
        id: i64,
        cause: std::io::Error,
    },
    /// Any other database error.
    #[error("database {path}: {cause}")]
    Sql { path: PathBuf, cause: sqlx::Error },
}

/// SQLite primary result codes we explain.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_NOTADB: i64 = 26;

impl StoreError {
    /// Sorts a sqlx error into a case the user can act on.
    pub(crate) fn from_sqlx(path: &Path, e: sqlx::Error) -> StoreError {
        let path = path.to_path_buf();
        let code = match &e {
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff),
            _ => None,
        };
        match code {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Locked { path },
            Some(SQLITE_READONLY) => StoreError::ReadOnly { path },
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Corrupt { path },
            Some(SQLITE_FULL) => StoreError::Full { path },
            Some(SQLITE_IOERR) => StoreError::Io {
                path,
                detail: e.to_string(),
            },
            Some(SQLITE_CANTOPEN) => StoreError::CannotOpen {
                path,
                detail: e.to_string(),
            },
            _ => StoreError::Sql { path, cause: e },
        }
    }

    /// Sorts a migration error: the database cases first, then a newer schema.
    pub(crate) fn from_migrate(path: &Path, e: sqlx::migrate::MigrateError) -> StoreError {
        use sqlx::migrate::MigrateError as M;
        match e {
            M::Execute(inner) | M::ExecuteMigration(inner, _) => {
                match StoreError::from_sqlx(path, inner) {
                    StoreError::Sql { path, cause } => StoreError::Migrate {
                        path,
                        cause: M::Execute(cause),
                    },
                    other => other,
                }
            }
            M::VersionMissing(v) => StoreError::NewerVersion {
                path: path.to_path_buf(),
                found: v,
                known: super::Store::schema_version(),
            },
            other => StoreError::Migrate {
                path: path.to_path_buf(),
                cause: other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    /// A genuine SQLITE_READONLY from a connection opened read-only (which works for any user,
    /// root included) is sorted into the case that names the file and says what to do.
    #[tokio::test]
    async fn a_write_on_a_read_only_database_is_read_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("ro.db");
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .unwrap_or_else(|e| panic!("{e}"))
            .filename(&path);
        let mut rw = opts
            .clone()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("create table t (x integer)")
            .execute(&mut rw)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ro = opts
            .read_only(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let e = sqlx::query("insert into t values (1)")
            .execute(&mut ro)
            .await
            .err()
            .unwrap_or_else(|| panic!("a read-only connection wrote"));
        let err = StoreError::from_sqlx(&path, e);
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("ro.db is read-only"), "{text}");
        assert!(text.contains("writable"), "{text}");
    }
}
