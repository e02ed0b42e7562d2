//! The bounce database: everything SQL lives here.
//!
//! [`Store::open`] connects to a SQLite file (WAL, `synchronous=NORMAL`, a busy timeout, foreign keys
//! on) and applies the embedded migrations; [`Store::record`] writes a batch of analysed messages in one
//! transaction, idempotently; [`query`] returns plain row structs and never formats output. Times are
//! unix seconds (UTC) in the database and [`chrono::DateTime<Utc>`] in this API.

mod copy;
mod error;
mod files;
pub mod outbox;
pub mod query;
mod reclassify;
mod record;
mod replay;
mod source_state;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::sqlite::{SqliteConnection, SqliteSynchronous, SqliteTransaction};

pub use copy::{CopyError, CopyReport};
pub use error::StoreError;
pub use files::DEFAULT_MODE;
pub use outbox::{Due, EventBody, OutboxCount, OutboxFilter, OutboxRow, Settle};
pub use reclassify::{ReclassifyOptions, ReclassifyReport, Shift};
pub use record::{ManualOutcome, Outcome, Prepared, StateChange, deflate, sha256_hex};
pub use replay::{CheckReport, Difference};

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
    /// The permission bits a new database file gets (its group is its folder's); an existing file
    /// keeps its own.
    pub mode: u32,
    /// Write an outbox event for every recorded bounce too (a notify target asks for them); events
    /// for changes of state are always written.
    pub bounce_events: bool,
    /// The proof a bounce needs before it may change a recipient's state.
    pub trust: crate::policy::Trust,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            policy: Policy::default(),
            busy_timeout: Duration::from_secs(5),
            create: true,
            mode: DEFAULT_MODE,
            bounce_events: false,
            trust: crate::policy::Trust::default(),
        }
    }
}

/// An open bounce database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    policy: Policy,
    bounce_events: bool,
    trust: crate::policy::Trust,
    /// Bumped after each commit that may have written outbox events.
    wake: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
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
    ///
    /// When the file cannot be opened for want of a permission, the error says which: reading the
    /// file, writing it, or writing its folder (where SQLite keeps `-wal` and `-shm`).
    pub async fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let create = opts.create;
        match Store::open_inner(path, opts).await {
            Ok(store) => Ok(store),
            Err(
                e @ (StoreError::CannotOpen { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::Io { .. }
                | StoreError::Sql { .. }),
            ) => match files::missing_permission(path, create) {
                Some(message) => Err(StoreError::Permission {
                    path: path.to_path_buf(),
                    message,
                }),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn open_inner(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        if !opts.create && !path.exists() {
            return Err(StoreError::Missing { path });
        }
        if opts.create {
            files::create_database(&path, opts.mode).map_err(|e| StoreError::CannotOpen {
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
            bounce_events: opts.bounce_events,
            trust: opts.trust,
            wake: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
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
    ///
    /// Several processes may open a new database at once (a daemon and an import started together):
    /// the check and the migrations run inside one `begin immediate` transaction, so one process
    /// migrates while the others wait (up to the busy timeout) and then find nothing left to do. A
    /// database already up to date is only read, so readers never take the write lock here.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        if self.pending_migrations(&mut conn).await? == 0 {
            return Ok(());
        }
        use sqlx::Connection;
        let mut tx = conn
            .begin_with("begin immediate")
            .await
            .map_err(|e| self.err(e))?;
        // Another process may have migrated while this one waited for the lock.
        if self.pending_migrations(&mut tx).await? > 0 {
            MIGRATOR
                .run_direct(None, &mut *tx, false)
                .await
                .map_err(|e| StoreError::from_migrate(&self.path, e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// How many known migrations the database lacks; fails with [`StoreError::NewerVersion`] when
    /// it has one this binary does not know.
    async fn pending_migrations(&self, conn: &mut SqliteConnection) -> Result<usize, StoreError> {
        let known = Store::schema_version();
        let has_table: Option<(String,)> = sqlx::query_as(
            "select name from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| self.err(e))?;
        if has_table.is_none() {
            return Ok(MIGRATOR.iter().count());
        }
        let applied: Vec<(i64,)> = sqlx::query_as("select version from _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        if let Some(&(v,)) = applied.iter().find(|(v,)| !MIGRATOR.version_exists(*v)) {
            return Err(StoreError::NewerVersion {
                path: self.path.clone(),
                found: v,
                known,
            });
        }
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.iter().any(|(v,)| *v == m.version))
            .count())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy applied when recording.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The proof a bounce needs before it may change a recipient's state.
    pub fn trust(&self) -> &crate::policy::Trust {
        &self.trust
    }

    /// The newest schema version this binary knows.
    pub fn schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Wraps a sqlx error with this database's path; a refused write names the missing permission.
    pub(crate) fn err(&self, e: sqlx::Error) -> StoreError {
        match StoreError::from_sqlx(&self.path, e) {
            StoreError::ReadOnly { path } => match files::missing_permission(&path, true) {
                Some(message) => StoreError::Permission { path, message },
                None => StoreError::ReadOnly { path },
            },
            other => other,
        }
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
        // Written without quotes, as real mail systems accept it: the same mailbox.
        assert_eq!(
            normalize_address("john..doe@example.org"),
            Some(("\"john..doe\"@example.org".into(), "example.org".into()))
        );
    }

    #[test]
    fn keeps_every_mailbox_form() {
        for good in [
            "=plus+tag@example.com",
            "-dash@example.com",
            "o'hara@example.ie",
            "\"quoted@inside\"@example.com",
            "user@[192.0.2.1]",
            "root@localhost",
            "jörg@bücher.example",
            "under_score@mail_host.example.com",
        ] {
            let got = normalize_address(good).map(|(a, _)| a);
            assert_eq!(got.as_deref(), Some(good), "{good:?}");
        }
    }

    #[test]
    fn a_formula_never_reaches_the_store() {
        // The parenthesised text is an RFC 5322 comment: what is stored is the mailbox without it.
        let got = normalize_address("=HYPERLINK(\"http://evil.example/\")@example.com");
        assert_eq!(
            got,
            Some(("=HYPERLINK@example.com".into(), "example.com".into()))
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
            "@evil@example.com",
            "bob@exa mple.com",
            "bob@example..com",
            "bob@-x(y).com",
            "\"unclosed@example.com",
            "a\"b@example.com",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad:?}");
        }
    }
}
