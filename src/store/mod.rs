//! The bounce database: everything SQL lives here.
//!
//! [`Store::open`] connects to a SQLite file (WAL, `synchronous=NORMAL`, a busy timeout, foreign keys
//! on) and applies the embedded migrations; [`Store::record`] writes a batch of analysed messages in one
//! transaction, idempotently; [`query`] returns plain row structs and never formats output. Times are
//! unix seconds (UTC) in the database and [`chrono::DateTime<Utc>`] in this API.

mod error;
pub mod query;
mod reclassify;
mod record;
mod source_state;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::sqlite::{SqliteSynchronous, SqliteTransaction};

pub use error::StoreError;
pub use reclassify::{ReclassifyReport, Shift};
pub use record::{ManualOutcome, Outcome, Prepared, StateChange, deflate, sha256_hex};

pub use source_state::SourcePosition;

use crate::address::Address;
use crate::policy::Policy;

/// The migrations embedded at build time from `migrations/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to open a database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The suppression policy applied when recording.
    pub policy: Policy,
    /// How long a statement waits for another writer before giving up with [`StoreError::Locked`].
    pub busy_timeout: Duration,
    /// Create the file when it does not exist (import, suppress); readers refuse a missing file.
    pub create: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            policy: Policy::default(),
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// An open bounce database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    policy: Policy,
}

/// Seconds since the epoch, the database's time unit.
pub(crate) fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The time a database integer holds.
pub(crate) fn from_secs(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        if !opts.create && !path.exists() {
            return Err(StoreError::Missing { path });
        }
        if opts.create {
            create_private(&path).map_err(|e| StoreError::CannotOpen {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| StoreError::from_sqlx(&path, e))?
            .filename(&path)
            .create_if_missing(opts.create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .statement_cache_capacity(64)
            // A streaming export or a reclassify is one long statement by design: sqlx's
            // slow-statement warning would only alarm the user.
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::from_sqlx(&path, e))?;
        let store = Store {
            pool,
            path,
            policy: opts.policy,
        };
        store.migrate().await?;
        if opts.create {
            store.check_writable().await?;
        }
        Ok(store)
    }

    /// Fails with [`StoreError::ReadOnly`] when SQLite fell back to a read-only open (the file is not
    /// writable by this user): a writer would otherwise start and then fail every write, and keep
    /// failing after the file is made writable, since the connection stays read-only.
    async fn check_writable(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        match sqlx::query("begin immediate").execute(&mut *conn).await {
            Ok(_) => {}
            Err(e) => {
                return match self.err(e) {
                    // Another writer holds the lock: the file is writable, our turn comes later.
                    StoreError::Locked { .. } => Ok(()),
                    other => Err(other),
                };
            }
        }
        // Taking the lock succeeds on a read-only file in WAL mode; a write (the same user_version
        // written back, then rolled back) does not.
        let written = async {
            let v: i64 = sqlx::query_scalar("pragma user_version")
                .fetch_one(&mut *conn)
                .await?;
            // An integer just read back: nothing to inject.
            sqlx::query(sqlx::AssertSqlSafe(format!("pragma user_version = {v}")))
                .execute(&mut *conn)
                .await
        }
        .await;
        let rolled_back = sqlx::query("rollback").execute(&mut *conn).await;
        written.map_err(|e| self.err(e))?;
        rolled_back.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Refuses a database written by a newer bounced, then applies the migrations this one knows.
    async fn migrate(&self) -> Result<(), StoreError> {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let has_table: Option<(String,)> = sqlx::query_as(
            "select name from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        if has_table.is_some() {
            let applied: Vec<(i64,)> = sqlx::query_as("select version from _sqlx_migrations")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            if let Some(&(v,)) = applied.iter().find(|(v,)| !MIGRATOR.version_exists(*v)) {
                return Err(StoreError::NewerVersion {
                    path: self.path.clone(),
                    found: v,
                    known,
                });
            }
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::from_migrate(&self.path, e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy applied when recording.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The newest schema version this binary knows.
    pub fn schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Wraps a sqlx error with this database's path.
    pub(crate) fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::from_sqlx(&self.path, e)
    }

    pub(crate) async fn begin(&self) -> Result<SqliteTransaction<'static>, StoreError> {
        self.pool.begin().await.map_err(|e| self.err(e))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Fills the database with `n` synthetic hard-suppressed recipients (for the export benchmark).
    #[doc(hidden)]
    pub async fn fill_synthetic_suppressed(
        &self,
        n: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let t = secs(at);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let mut tx = self.begin().await?;
        let (message_id,): (i64,) = sqlx::query_as(
            "insert into messages (sha256, source, received_at, recorded_at, kind, reader, \
             raw_size, raw_deflate) values ('synthetic', 'bench:', ?1, ?1, 'dsn', 'dsn', 0, x'') \
             returning id",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let (bounce_id,): (i64,) = sqlx::query_as(
            "insert into bounces (message_id, position, at, action, status, replycode, reason, \
             bounce_type, diagnostic, rule, reader) values (?1, 0, ?2, 'failed', '5.1.1', '550', \
             'userunknown', 'hard', '550 5.1.1 user unknown', 'bench', 'dsn') returning id",
        )
        .bind(message_id)
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        sqlx::query(
            "insert into recipients (address, domain, state, hard_count, first_bounce_at, \
             last_bounce_at, suppressed_at, suppressed_type, suppressed_why, suppressed_bounce_id, \
             updated_at) \
             with recursive seq(i) as (select 1 union all select i + 1 from seq where i < ?1) \
             select 'user' || i || '@d' || (i % 997) || '.example.com', \
             'd' || (i % 997) || '.example.com', 'suppressed', 1, ?2, ?2, ?2, 'hard', \
             'userunknown', ?3, ?2 from seq",
        )
        .bind(n)
        .bind(t)
        .bind(bounce_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }
}

/// Creates the database file, readable and writable by its owner only (0600), unless it exists.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file, so they are private too.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The stored form of an address: [`Address`]'s printed form (local part as sent, quoted only where
/// needed; domain lower-cased), with its domain.
///
/// Returns `(address, domain)`, or `None` for what is not a mailbox address (no `@`, an empty side,
/// a space or a control character outside quotes, two `@`, longer than RFC 5321 allows).
pub fn normalize_address(raw: &str) -> Option<(String, String)> {
    let address = Address::parse(raw).ok()?;
    Some((address.to_string(), address.domain().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_domain_only() {
        assert_eq!(
            normalize_address(" <Jane.Doe@Example.COM> "),
            Some(("Jane.Doe@example.com".into(), "example.com".into()))
        );
        assert_eq!(
            normalize_address("rfc822; bob@Mail.Example.org."),
            Some(("bob@mail.example.org".into(), "mail.example.org".into()))
        );
    }

    #[test]
    fn quoted_local_parts_are_stored_quoted() {
        assert_eq!(
            normalize_address("\"john smith\"@Example.com"),
            Some(("\"john smith\"@example.com".into(), "example.com".into()))
        );
        assert_eq!(
            normalize_address("rfc822; \"john..doe\"@example.org"),
            Some(("\"john..doe\"@example.org".into(), "example.org".into()))
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "user@",
            "a b@example.com",
            "x@\u{7}",
            "a@b@c",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad:?}");
        }
    }
}
