//! The bounce database: everything SQL lives here.
//!
//! [`Store::open`] connects to a SQLite file (WAL, `synchronous=NORMAL`, a busy timeout, foreign keys
//! on) or to a PostgreSQL database (a `postgres://` URL) and applies that engine's embedded
//! migrations; [`Store::record`] writes a batch of analysed messages in one transaction,
//! idempotently; [`query`] returns plain row structs and never formats output. Times are unix seconds
//! (UTC) in the database and [`chrono::DateTime<Utc>`] in this API.
//!
//! The statements are written once, in `engine/`, and compiled once per engine (`on_sqlite`,
//! `on_postgres`), each with its own [`sqlx::Database`] and its dialect's few differences
//! (placeholders, how a writer locks). [`Store`] holds one pool or the other and hands each call to
//! the matching compilation.

mod copy;
mod error;
mod files;
mod location;
pub mod outbox;
pub mod query;
mod reclassify;
mod record;
mod replay;
mod source_state;

pub use location::Location;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::sqlite::{SqliteConnection, SqliteSynchronous};

pub use copy::{CopyError, CopyReport};
pub use error::StoreError;
pub use files::DEFAULT_MODE;
pub use outbox::{Due, EventBody, OutboxCount, OutboxFilter, OutboxLease, OutboxRow, Settle};
pub use reclassify::{ReclassifyOptions, ReclassifyReport, Shift};
pub use record::{ManualOutcome, Outcome, Prepared, StateChange, deflate, sha256_hex};
pub use replay::{CheckReport, Difference};

pub use source_state::SourcePosition;

use crate::address::Address;
use crate::policy::Policy;

/// The SQLite migrations embedded at build time from `migrations/sqlite/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL migrations embedded at build time from `migrations/postgres/`.
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The statements compiled for SQLite.
mod on_sqlite {
    pub(crate) type Db = sqlx::Sqlite;
    pub(crate) type Conn = sqlx::SqliteConnection;

    /// A statement as written: the statements are written in SQLite's dialect.
    #[inline]
    pub(crate) fn sql(s: &'static str) -> &'static str {
        s
    }

    /// A statement built at run time (from constant pieces only), as written.
    pub(crate) fn sql_owned(s: String) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(s)
    }

    /// How a writing transaction starts: SQLite takes the database's write lock at once.
    pub(crate) const BEGIN_WRITE: &str = "begin immediate";

    /// What makes a `select` lock the rows it reads: nothing, the transaction holds the database.
    pub(crate) const FOR_UPDATE: &str = "";

    /// Nothing to lock row by row: `begin immediate` holds the whole database.
    pub(crate) async fn lock_recipients(_: &mut Conn, _: &[i64]) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to lock: one writer at a time already commits events in `seq` order.
    pub(crate) async fn lock_outbox(_: &mut Conn) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// The database's size in bytes: pages in use times the page size.
    pub(crate) async fn size_bytes(pool: &sqlx::Pool<Db>) -> Result<i64, sqlx::Error> {
        let (pages,): (i64,) = sqlx::query_as("pragma page_count").fetch_one(pool).await?;
        let (page_size,): (i64,) = sqlx::query_as("pragma page_size").fetch_one(pool).await?;
        Ok(pages.saturating_mul(page_size))
    }

    pub(crate) use crate::store::outbox::on_sqlite::imp as outbox;
    pub(crate) use crate::store::record::on_sqlite::imp as record;
    pub(crate) use crate::store::replay::on_sqlite::imp as replay;
    pub(crate) use crate::store::source_state::on_sqlite::imp as source_state;
}

/// The statements compiled for PostgreSQL.
mod on_postgres {
    pub(crate) type Db = sqlx::Postgres;
    pub(crate) type Conn = sqlx::PgConnection;

    /// A statement in PostgreSQL's dialect: `?N` and `?` placeholders become `$N`. Each distinct
    /// statement is translated once and kept for the life of the process.
    pub(crate) fn sql(s: &'static str) -> &'static str {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(s)
            .or_insert_with(|| Box::leak(super::dialect_pg(s).into_boxed_str()))
    }

    /// A statement built at run time (from constant pieces only), translated.
    pub(crate) fn sql_owned(s: String) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(super::dialect_pg(&s))
    }

    /// How a writing transaction starts: rows are locked as they are written.
    pub(crate) const BEGIN_WRITE: &str = "begin";

    /// What makes a `select` lock the rows it reads until the transaction ends.
    pub(crate) const FOR_UPDATE: &str = " for update";

    /// Locks the recipients `ids` (in id order, so that two writers never wait on each other in a
    /// circle) until the transaction ends.
    pub(crate) async fn lock_recipients(conn: &mut Conn, ids: &[i64]) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        sqlx::query("select id from recipients where id = any($1) order by id for update")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        Ok(())
    }

    /// Serialises the transactions that write outbox events until they commit, so that `seq`
    /// grows in commit order (a target's cursor never passes an event still to be committed).
    pub(crate) async fn lock_outbox(conn: &mut Conn) -> Result<(), sqlx::Error> {
        sqlx::query("select pg_advisory_xact_lock(7216451180163011)")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The database's size in bytes, as PostgreSQL counts it.
    pub(crate) async fn size_bytes(pool: &sqlx::Pool<Db>) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("select pg_database_size(current_database())")
            .fetch_one(pool)
            .await
    }

    pub(crate) use crate::store::outbox::on_postgres::imp as outbox;
    pub(crate) use crate::store::record::on_postgres::imp as record;
    pub(crate) use crate::store::replay::on_postgres::imp as replay;
    pub(crate) use crate::store::source_state::on_postgres::imp as source_state;
}

/// Rewrites a statement's placeholders for PostgreSQL: `?N` becomes `$N`, and each bare `?` the
/// next number. Text between single quotes is left alone.
fn dialect_pg(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut next = 0u32;
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Compiles a file of `engine/` once per engine, as the modules `on_sqlite::imp` and
/// `on_postgres::imp` of the module that invokes it; the file's `super::*` holds that engine's
/// `Db`, `Conn` and dialect, `super::super::*` the invoking module's items.
macro_rules! engines {
    ($file:literal) => {
        pub(crate) mod on_sqlite {
            pub(crate) use crate::store::on_sqlite::*;
            pub(crate) mod imp {
                include!($file);
            }
        }
        pub(crate) mod on_postgres {
            pub(crate) use crate::store::on_postgres::*;
            pub(crate) mod imp {
                include!($file);
            }
        }
    };
}
pub(crate) use engines;

/// The open connections: one engine or the other.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

/// One store seen through one engine: the store's settings and that engine's pool. The statements
/// in `engine/` are methods of this handle.
pub(crate) struct Eng<'a, DB: sqlx::Database> {
    store: &'a Store,
    pool: &'a sqlx::Pool<DB>,
}

impl<DB: sqlx::Database> Clone for Eng<'_, DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<DB: sqlx::Database> Copy for Eng<'_, DB> {}

impl<DB: sqlx::Database> std::ops::Deref for Eng<'_, DB> {
    type Target = Store;

    fn deref(&self) -> &Store {
        self.store
    }
}

impl<'a, DB: sqlx::Database> Eng<'a, DB> {
    /// The engine's pool.
    pub(crate) fn pool(&self) -> &'a sqlx::Pool<DB> {
        self.pool
    }

    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        self.pool.begin().await.map_err(|e| self.err(e))
    }
}

/// Calls a method of the engine handle matching `$store`'s pool: `dispatch!(self, m(a, b).await)`.
macro_rules! dispatch {
    ($store:expr, $($call:tt)+) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                $crate::store::Eng { store: $store, pool }.$($call)+
            }
            $crate::store::Pool::Postgres(pool) => {
                $crate::store::Eng { store: $store, pool }.$($call)+
            }
        }
    };
}
pub(crate) use dispatch;

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
    /// A file holding the PostgreSQL password (its first line); without it the URL's server is
    /// asked with `PGPASSWORD` or `~/.pgpass`, as libpq does.
    pub password_file: Option<PathBuf>,
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
            password_file: None,
        }
    }
}

/// An open bounce database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// The database file, or for PostgreSQL its URL without any password.
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
    /// `path` is a SQLite file (a path, or `sqlite://PATH`) or a PostgreSQL URL
    /// (`postgres://user@host[:port]/db[?sslmode=...]`). When a SQLite file cannot be opened for want
    /// of a permission, the error says which: reading the file, writing it, or writing its folder
    /// (where SQLite keeps `-wal` and `-shm`).
    pub async fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = match Location::parse(path.as_os_str()) {
            Location::Sqlite(path) => path,
            Location::Postgres(url) => return Store::open_postgres(&url, opts).await,
        };
        let path = path.as_path();
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
        // Turning a new file to WAL takes an exclusive lock, and SQLite reports a concurrent first
        // open's conversion as busy without waiting: processes started at once retry within the
        // busy timeout.
        let started = std::time::Instant::now();
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .connect_with(connect.clone())
                .await
                .map_err(|e| StoreError::from_sqlx(&path, e));
            match attempt {
                Err(StoreError::Locked { .. }) if started.elapsed() < opts.busy_timeout => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other?,
            }
        };
        let store = Store {
            pool: Pool::Sqlite(pool),
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

    /// Connects to PostgreSQL and applies the migrations it lacks. sqlx's migrator holds an advisory
    /// lock while it works, so daemons and imports opening a new database at once migrate it once.
    async fn open_postgres(url: &location::PgUrl, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = PathBuf::from(url.masked());
        let mut connect = url.options().map_err(|e| StoreError::from_sqlx(&path, e))?;
        if let Some(file) = &opts.password_file {
            let text = std::fs::read_to_string(file).map_err(|cause| StoreError::PasswordFile {
                file: file.clone(),
                cause,
            })?;
            connect = connect.password(text.lines().next().unwrap_or_default());
        }
        let connect = connect
            .statement_cache_capacity(256)
            .disable_statement_logging();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(opts.busy_timeout.max(Duration::from_secs(1)))
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::from_sqlx(&path, e))?;
        let store = Store {
            pool: Pool::Postgres(pool),
            path,
            policy: opts.policy,
            bounce_events: opts.bounce_events,
            trust: opts.trust,
            wake: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        if let Pool::Postgres(pool) = &store.pool {
            PG_MIGRATOR
                .run(pool)
                .await
                .map_err(|e| StoreError::from_migrate(&store.path, e))?;
        }
        Ok(store)
    }

    /// Fails with [`StoreError::ReadOnly`] when SQLite fell back to a read-only open (the file is not
    /// writable by this user): a writer would otherwise start and then fail every write, and keep
    /// failing after the file is made writable, since the connection stays read-only.
    async fn check_writable(&self) -> Result<(), StoreError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        let mut conn = pool.acquire().await.map_err(|e| self.err(e))?;
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
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        let mut conn = pool.acquire().await.map_err(|e| self.err(e))?;
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

    /// The database file, or for PostgreSQL its URL with any password masked: what messages name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database is a SQLite file (rather than a server's).
    pub fn is_file(&self) -> bool {
        matches!(self.pool, Pool::Sqlite(_))
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

    /// Closes the pool (for SQLite, checkpointing the WAL).
    pub async fn close(self) {
        match self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
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

    /// Fills the database with `n` synthetic hard-suppressed recipients (for the export benchmark).
    #[doc(hidden)]
    pub async fn fill_synthetic_suppressed(
        &self,
        n: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, fill_synthetic_suppressed(n, at).await)
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
    fn placeholders_become_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            dialect_pg("select a from t where x = ?1 and (?2 is null or y < ?2) limit ?10"),
            "select a from t where x = $1 and ($2 is null or y < $2) limit $10"
        );
        assert_eq!(
            dialect_pg("insert into t (a, b, c) values (?, ?, 'what?')"),
            "insert into t (a, b, c) values ($1, $2, 'what?')"
        );
        let once = on_postgres::sql("select 1 where ?1 = ?1");
        assert_eq!(once, "select 1 where $1 = $1");
        assert!(std::ptr::eq(
            once,
            on_postgres::sql("select 1 where ?1 = ?1")
        ));
        assert_eq!(on_sqlite::sql("select ?1"), "select ?1");
    }

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
