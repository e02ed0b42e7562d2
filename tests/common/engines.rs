//! The engines a store test runs on: SQLite always, PostgreSQL when the helper can start one
//! (required with `BOUNCED_REQUIRE_POSTGRES=1`; otherwise the skip is printed). The same test body
//! runs once per engine.

use std::path::PathBuf;

use bounced::store::{Store, StoreOptions};

use super::postgres::{self, TestDb};

/// One empty database on one engine, for one test.
pub struct Engine {
    /// `sqlite` or `postgres`, for messages.
    pub name: &'static str,
    /// What `--db` takes: the SQLite file, or the PostgreSQL URL.
    pub location: PathBuf,
    /// The folder holding the SQLite file (a scratch folder for PostgreSQL).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, dropped with this.
    pub pg: Option<TestDb>,
}

impl Engine {
    /// Opens the store with the default options.
    pub async fn open(&self) -> Store {
        self.open_with(StoreOptions::default()).await
    }

    /// Opens the store with `opts`; panics with the engine's name when it cannot.
    pub async fn open_with(&self, opts: StoreOptions) -> Store {
        match Store::open(&self.location, opts).await {
            Ok(s) => s,
            Err(e) => panic!(
                "{}: cannot open {}: {e}",
                self.name,
                self.location.display()
            ),
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

/// A SQLite database in a new temp folder.
pub fn sqlite() -> Engine {
    let dir = tempfile::tempdir().expect("temp folder");
    Engine {
        name: "sqlite",
        location: dir.path().join("b.db"),
        dir,
        pg: None,
    }
}

/// A fresh PostgreSQL database for `test`, when PostgreSQL can be had (the skip printed when not).
pub fn postgres(test: &str) -> Option<Engine> {
    let db = postgres::database(test)?;
    Some(Engine {
        name: "postgres",
        location: PathBuf::from(&db.url),
        dir: tempfile::tempdir().expect("temp folder"),
        pg: Some(db),
    })
}

/// Every engine available to `test`: SQLite first, then PostgreSQL.
pub fn all(test: &str) -> Vec<Engine> {
    let mut out = vec![sqlite()];
    out.extend(postgres(test));
    out
}

/// Runs `body` once on each engine available to `test`, naming the engine on stderr first.
pub fn each(test: &str, mut body: impl FnMut(Engine)) {
    for engine in all(test) {
        eprintln!("{test}: {}", engine.name);
        body(engine);
    }
}

impl Engine {
    /// Runs raw SQL on the database behind the store's back (to break or inspect it): `sqlite` on
    /// SQLite, `postgres` on PostgreSQL.
    pub async fn exec(&self, sqlite: &str, postgres: &str) {
        if let Some(pg) = &self.pg {
            pg.exec(postgres);
            return;
        }
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite:{}", self.location.display()))
                .await
                .expect("connect to the SQLite file");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sqlite}: {e}"));
    }
}

/// An engine, for a test that needs several databases on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The engines available to `test`: SQLite always, PostgreSQL when it can be had.
pub fn kinds(test: &str) -> Vec<Kind> {
    let mut out = vec![Kind::Sqlite];
    if postgres::shared(test).is_some() {
        out.push(Kind::Postgres);
    }
    out
}

impl Kind {
    /// A new empty database on this engine.
    pub fn fresh(self, test: &str) -> Engine {
        match self {
            Kind::Sqlite => sqlite(),
            Kind::Postgres => postgres(test).expect("PostgreSQL was available a moment ago"),
        }
    }
}
