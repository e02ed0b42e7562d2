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
    /// The database server cannot be reached or has gone away (connection refused or lost, the
    /// server shutting down or starting up, every connection busy): worth trying again.
    #[error(
        "database {path} is not reachable ({detail}): check that the server runs and accepts connections from this host; bounced retries"
    )]
    Unavailable { path: PathBuf, detail: String },
    /// The file named to hold the PostgreSQL password cannot be read.
    #[error(
        "cannot read the database password file {file}: {cause}; check store.password_file or BOUNCED_DB_PASSWORD_FILE"
    )]
    PasswordFile {
        file: PathBuf,
        cause: std::io::Error,
    },
    /// The TLS connection to the database server failed: a certificate not signed by the CA the
    /// client trusts, a host name the certificate does not carry, or a server without TLS.
    #[error(
        "TLS to database server {path} failed ({detail}): check sslmode, sslrootcert (the CA that signed the server's certificate) and that the URL's host is a name in that certificate"
    )]
    Tls { path: PathBuf, detail: String },
    /// The server refused this role or database: a wrong password, a role or database that does
    /// not exist, or no `pg_hba.conf` line for this host.
    #[error(
        "database server {path} refused the connection ({detail}): check the role and its password (store.password_file, PGPASSWORD or ~/.pgpass), that the database exists, and the server's pg_hba.conf"
    )]
    Refused { path: PathBuf, detail: String },
    /// Another writer's transaction conflicted with this one (a serialization failure or a
    /// deadlock); the transaction was rolled back and can be run again.
    #[error("database {path}: a concurrent writer conflicted ({detail}); the write is retried")]
    Conflict { path: PathBuf, detail: String },
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

/// Whether `path` names a database server (its URL) rather than a SQLite file.
fn is_server(path: &Path) -> bool {
    super::Location::parse(path.as_os_str()).is_server()
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

/// PostgreSQL SQLSTATE codes that pass: another writer won a conflict, or the server is going away
/// or not yet ready.
const PG_SERIALIZATION_FAILURE: &str = "40001";
const PG_DEADLOCK: &str = "40P01";
const PG_ADMIN_SHUTDOWN: &str = "57P01";
const PG_CRASH_SHUTDOWN: &str = "57P02";
const PG_CANNOT_CONNECT_NOW: &str = "57P03";
const PG_TOO_MANY_CONNECTIONS: &str = "53300";
const PG_DISK_FULL: &str = "53100";
const PG_CONNECTION_EXCEPTION: &str = "08";
const PG_INVALID_PASSWORD: &str = "28P01";
const PG_INVALID_AUTHORIZATION: &str = "28000";
const PG_NO_SUCH_DATABASE: &str = "3D000";
const PG_INSUFFICIENT_PRIVILEGE: &str = "42501";

impl StoreError {
    /// Whether the failed operation may succeed if tried again as it is: a lock or a conflict with
    /// another writer, a full disk, an I/O error, a server or pool not reachable right now. A
    /// damaged, newer or read-only database, or a statement the database refuses, stays so.
    pub fn can_heal(&self) -> bool {
        match self {
            StoreError::Locked { .. }
            | StoreError::Full { .. }
            | StoreError::Io { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Conflict { .. } => true,
            StoreError::Sql { cause, .. } => matches!(
                cause,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }

    /// Sorts a sqlx error into a case the user can act on.
    pub(crate) fn from_sqlx(path: &Path, e: sqlx::Error) -> StoreError {
        if let Some(sorted) = StoreError::from_postgres(path, &e) {
            return sorted;
        }
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

    /// Sorts an error of a PostgreSQL connection: by SQLSTATE, and the connection-level failures
    /// (refused, lost, TLS, pool timeout) as [`StoreError::Unavailable`]. `None` for a SQLite error.
    fn from_postgres(path: &Path, e: &sqlx::Error) -> Option<StoreError> {
        let path = path.to_path_buf();
        let detail = e.to_string();
        match e {
            sqlx::Error::Database(db) => {
                db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
                match db.code().as_deref() {
                    Some(PG_SERIALIZATION_FAILURE | PG_DEADLOCK) => {
                        Some(StoreError::Conflict { path, detail })
                    }
                    Some(
                        PG_ADMIN_SHUTDOWN
                        | PG_CRASH_SHUTDOWN
                        | PG_CANNOT_CONNECT_NOW
                        | PG_TOO_MANY_CONNECTIONS,
                    ) => Some(StoreError::Unavailable { path, detail }),
                    // Class 08: a connection exception (the connection failed or was lost).
                    Some(code) if code.starts_with(PG_CONNECTION_EXCEPTION) => {
                        Some(StoreError::Unavailable { path, detail })
                    }
                    Some(PG_DISK_FULL) => Some(StoreError::Full { path }),
                    Some(
                        PG_INVALID_PASSWORD
                        | PG_INVALID_AUTHORIZATION
                        | PG_NO_SUCH_DATABASE
                        | PG_INSUFFICIENT_PRIVILEGE,
                    ) => Some(StoreError::Refused { path, detail }),
                    _ => None,
                }
            }
            // Only a server URL names a host: a SQLite path never reaches these through sqlx.
            sqlx::Error::Tls(_) if is_server(&path) => Some(StoreError::Tls { path, detail }),
            // rustls reports a refused handshake as an I/O error carrying its own error.
            sqlx::Error::Io(io)
                if is_server(&path)
                    && io
                        .get_ref()
                        .is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>()) =>
            {
                Some(StoreError::Tls { path, detail })
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut if is_server(&path) => {
                Some(StoreError::Unavailable { path, detail })
            }
            sqlx::Error::Protocol(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
                if is_server(&path) =>
            {
                Some(StoreError::Unavailable { path, detail })
            }
            _ => None,
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
