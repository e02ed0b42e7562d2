//! Copying a whole database to another, across engines (SQLite to PostgreSQL and back): every table,
//! row for row, ids kept, read and written in batches so that memory does not grow with the database.
//!
//! The source is read in one read-only snapshot; the target is written in one transaction that
//! commits only when it was empty before and every table's count equals the source's afterwards.
//! Columns are listed here table by table, each with its kind, so a boolean (an integer in SQLite)
//! and a raw message (`blob` or `bytea`) cross engines as what they mean.

use std::path::PathBuf;

use super::{Pool, Store, StoreError};

/// Rows read (and written) at a time; a few megabytes of compressed messages at most.
const BATCH: usize = 500;

/// What a column holds, the same on both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Blob,
    Bool,
}

use Kind::{Blob, Bool, Int, Text};

/// A table of the store: its name, the columns of its primary key (the order it is read in), every
/// column with its kind, and the identity column PostgreSQL numbers new rows with.
#[derive(Debug)]
struct Table {
    name: &'static str,
    key: &'static [&'static str],
    columns: &'static [(&'static str, Kind)],
    identity: Option<&'static str>,
}

/// A column written empty at first and filled in once the rows it points to are there (a
/// recipient's suppressing bounce: recipients come before bounces, which point back at them).
struct Later {
    table: &'static str,
    key: &'static str,
    column: &'static str,
}

const LATER: &[Later] = &[Later {
    table: "recipients",
    key: "id",
    column: "suppressed_bounce_id",
}];

/// Every table, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "messages",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("sha256", Text),
            ("source", Text),
            ("received_at", Int),
            ("recorded_at", Int),
            ("kind", Text),
            ("reader", Text),
            ("error", Text),
            ("original_message_id", Text),
            ("original_list_id", Text),
            ("raw_size", Int),
            ("raw_deflate", Blob),
            ("verp_recipient", Text),
            ("original_campaign", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "recipients",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("address", Text),
            ("domain", Text),
            ("state", Text),
            ("hard_count", Int),
            ("soft_count", Int),
            ("complaint_count", Int),
            ("other_count", Int),
            ("soft_score", Int),
            ("soft_last_counted_at", Int),
            ("first_bounce_at", Int),
            ("last_bounce_at", Int),
            ("suppressed_at", Int),
            ("suppressed_type", Text),
            ("suppressed_why", Text),
            ("suppressed_bounce_id", Int),
            ("manual", Text),
            ("updated_at", Int),
            ("policy_key", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "bounces",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("message_id", Int),
            ("position", Int),
            ("recipient_id", Int),
            ("recipient", Text),
            ("at", Int),
            ("action", Text),
            ("status", Text),
            ("replycode", Text),
            ("reason", Text),
            ("bounce_type", Text),
            ("diagnostic", Text),
            ("remote_mta", Text),
            ("reporting_mta", Text),
            ("date", Text),
            ("feedback_type", Text),
            ("rule", Text),
            ("reader", Text),
            ("original_message_id", Text),
            ("original_from", Text),
            ("original_to", Text),
            ("original_subject", Text),
            ("original_list_id", Text),
            ("counted", Bool),
            ("verp_mismatch", Bool),
            ("untrusted", Bool),
        ],
        identity: Some("id"),
    },
    Table {
        name: "events",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("recipient_id", Int),
            ("at", Int),
            ("change", Text),
            ("cause", Text),
            ("bounce_id", Int),
            ("rule", Text),
            ("note", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "source_state",
        key: &["source"],
        columns: &[
            ("source", Text),
            ("uidvalidity", Int),
            ("last_uid", Int),
            ("updated_at", Int),
        ],
        identity: None,
    },
    Table {
        name: "outbox_events",
        key: &["seq"],
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("at", Int),
            ("event", Text),
            ("address", Text),
            ("bounce_type", Text),
            ("campaign", Text),
            ("body", Text),
        ],
        identity: Some("seq"),
    },
    Table {
        name: "outbox_targets",
        key: &["name"],
        columns: &[("name", Text), ("cursor", Int), ("created_at", Int)],
        identity: None,
    },
    Table {
        name: "outbox_deliveries",
        key: &["target", "event_seq"],
        columns: &[
            ("target", Text),
            ("event_seq", Int),
            ("address", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_at", Int),
            ("last_error", Text),
            ("updated_at", Int),
        ],
        identity: None,
    },
    Table {
        name: "notify_disabled",
        key: &["target", "member_id"],
        columns: &[
            ("target", Text),
            ("member_id", Text),
            ("address", Text),
            ("list_id", Text),
            ("at", Int),
        ],
        identity: None,
    },
];

/// One value of a row, typed by its column (an empty one keeps its type: PostgreSQL wants it).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    Bool(Option<bool>),
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds rows: a copy never merges.
    #[error(
        "the target database {target} is not empty (table {table} has {rows} rows); a copy only \
         writes into an empty database: give a new file or an empty PostgreSQL database"
    )]
    NotEmpty {
        /// The target (its URL with any password masked).
        target: PathBuf,
        /// The first table found with rows.
        table: &'static str,
        /// Its rows.
        rows: i64,
    },
    /// Source and target are the same database.
    #[error("the source and the target are the same database ({0})")]
    Same(PathBuf),
    /// After writing, a table's count differs from the source's: nothing was committed.
    #[error(
        "the copy of table {table} has {written} rows where the source has {read}; nothing was \
         written (the target is left empty)"
    )]
    Count {
        /// The table.
        table: &'static str,
        /// Rows in the source snapshot.
        read: i64,
        /// Rows written to the target.
        written: i64,
    },
    /// The database refused a read or a write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was copied: each table with its rows, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// `(table, rows)` for every table of the store.
    pub tables: Vec<(String, i64)>,
}

impl CopyReport {
    /// Rows in all.
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Defines the reads and writes of a copy for one engine: `$db` is its `sqlx::Database`.
macro_rules! engine_side {
    ($m:ident, $db:ty) => {
        mod $m {
            use super::{Kind, Table, Value};
            use sqlx::Row;

            type Db = $db;
            pub(super) type Conn = <Db as sqlx::Database>::Connection;

            fn columns(t: &Table) -> String {
                t.columns
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            }

            fn bind(qb: &mut sqlx::query_builder::Separated<'_, Db, &str>, v: &Value) {
                match v {
                    Value::Int(x) => qb.push_bind(*x),
                    Value::Text(x) => qb.push_bind(x.clone()),
                    Value::Blob(x) => qb.push_bind(x.clone()),
                    Value::Bool(x) => qb.push_bind(*x),
                };
            }

            /// The next `limit` rows of `t` after the key `after` (from the start when `None`).
            pub(super) async fn read(
                conn: &mut Conn,
                t: &Table,
                after: Option<&[Value]>,
                limit: usize,
            ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
                let key = t.key.join(", ");
                let mut qb =
                    sqlx::QueryBuilder::<Db>::new(format!("select {} from {}", columns(t), t.name));
                if let Some(after) = after {
                    qb.push(format!(" where ({key}) > ("));
                    let mut s = qb.separated(", ");
                    for v in after {
                        bind(&mut s, v);
                    }
                    qb.push(")");
                }
                qb.push(format!(" order by {key} limit "));
                qb.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
                let rows = qb.build().fetch_all(&mut *conn).await?;
                rows.iter()
                    .map(|row| {
                        t.columns
                            .iter()
                            .enumerate()
                            .map(|(i, (_, kind))| {
                                Ok(match kind {
                                    Kind::Int => Value::Int(row.try_get(i)?),
                                    Kind::Text => Value::Text(row.try_get(i)?),
                                    Kind::Blob => Value::Blob(row.try_get(i)?),
                                    Kind::Bool => Value::Bool(row.try_get(i)?),
                                })
                            })
                            .collect()
                    })
                    .collect()
            }

            /// Inserts `rows` (each in `t`'s column order) into `t`, the columns of `blank` empty.
            pub(super) async fn write(
                conn: &mut Conn,
                t: &Table,
                rows: &[Vec<Value>],
                blank: &[&str],
            ) -> Result<(), sqlx::Error> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                    "insert into {} ({}) ",
                    t.name,
                    columns(t)
                ));
                qb.push_values(rows, |mut b, row| {
                    for ((name, _), v) in t.columns.iter().zip(row) {
                        if blank.contains(name) {
                            match v {
                                Value::Int(_) => b.push_bind(None::<i64>),
                                Value::Text(_) => b.push_bind(None::<String>),
                                Value::Blob(_) => b.push_bind(None::<Vec<u8>>),
                                Value::Bool(_) => b.push_bind(None::<bool>),
                            };
                        } else {
                            bind(&mut b, v);
                        }
                    }
                });
                qb.build().execute(&mut *conn).await?;
                Ok(())
            }

            /// Sets `column` of the row of `table` whose `key` is `id`.
            pub(super) async fn fill(
                conn: &mut Conn,
                table: &str,
                key: &str,
                column: &str,
                id: i64,
                value: i64,
            ) -> Result<(), sqlx::Error> {
                let mut qb =
                    sqlx::QueryBuilder::<Db>::new(format!("update {table} set {column} = "));
                qb.push_bind(value);
                qb.push(format!(" where {key} = "));
                qb.push_bind(id);
                qb.build().execute(&mut *conn).await?;
                Ok(())
            }

            /// The rows of `table` whose `column` is set: `(key, value)` after `after`, in key order.
            pub(super) async fn later(
                conn: &mut Conn,
                table: &str,
                key: &str,
                column: &str,
                after: i64,
                limit: usize,
            ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
                let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                    "select {key}, {column} from {table} where {column} is not null and {key} > "
                ));
                qb.push_bind(after);
                qb.push(format!(" order by {key} limit "));
                qb.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
                qb.build_query_as::<(i64, i64)>()
                    .fetch_all(&mut *conn)
                    .await
            }

            /// Rows in `table`.
            pub(super) async fn count(conn: &mut Conn, table: &str) -> Result<i64, sqlx::Error> {
                sqlx::QueryBuilder::<Db>::new(format!("select count(*) from {table}"))
                    .build_query_scalar::<i64>()
                    .fetch_one(&mut *conn)
                    .await
            }
        }
    };
}

engine_side!(lite, sqlx::Sqlite);
engine_side!(pg, sqlx::Postgres);

/// A transaction of either engine.
enum Side {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Calls the function `$f` of the module matching `$side`'s engine with the connection first.
macro_rules! on {
    ($side:expr, $f:ident($($arg:expr),*)) => {
        match $side {
            Side::Sqlite(c) => lite::$f(&mut **c, $($arg),*).await,
            Side::Postgres(c) => pg::$f(&mut **c, $($arg),*).await,
        }
    };
}

impl Side {
    /// A transaction on `store`: a read-only snapshot for the source, a writing one (holding
    /// SQLite's write lock from the start) for the target.
    async fn begin(store: &Store, write: bool) -> Result<Side, sqlx::Error> {
        Ok(match (&store.pool, write) {
            (Pool::Sqlite(p), true) => Side::Sqlite(p.begin_with("begin immediate").await?),
            (Pool::Sqlite(p), false) => Side::Sqlite(p.begin().await?),
            (Pool::Postgres(p), true) => Side::Postgres(p.begin().await?),
            (Pool::Postgres(p), false) => Side::Postgres(
                p.begin_with("begin isolation level repeatable read read only")
                    .await?,
            ),
        })
    }

    async fn finish(self, commit: bool) -> Result<(), sqlx::Error> {
        match (self, commit) {
            (Side::Sqlite(t), true) => t.commit().await,
            (Side::Sqlite(t), false) => t.rollback().await,
            (Side::Postgres(t), true) => t.commit().await,
            (Side::Postgres(t), false) => t.rollback().await,
        }
    }

    /// Makes PostgreSQL number the next new row of `t` after the highest id copied.
    async fn renumber(&mut self, t: &Table) -> Result<(), sqlx::Error> {
        let (Side::Postgres(tx), Some(id)) = (self, t.identity) else {
            return Ok(());
        };
        let sql = format!(
            "select setval(pg_get_serial_sequence('{0}', '{id}'), coalesce(max({id}), 0) + 1, false) from {0}",
            t.name
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map(drop)
    }
}

impl Store {
    /// Copies every row of this database into `target`, which must be empty: table by table in
    /// batches, ids kept, in one transaction that commits only when every table's count matches.
    /// `progress` hears each table's rows copied so far.
    pub async fn copy_to(
        &self,
        target: &Store,
        mut progress: impl FnMut(&str, i64),
    ) -> Result<CopyReport, CopyError> {
        if self.path() == target.path() {
            return Err(CopyError::Same(self.path().to_path_buf()));
        }
        let from_err = |e| StoreError::from_sqlx(self.path(), e);
        let to_err = |e| StoreError::from_sqlx(target.path(), e);
        let mut src = Side::begin(self, false).await.map_err(from_err)?;
        let mut dst = Side::begin(target, true).await.map_err(to_err)?;
        let result = copy_all(self, target, &mut src, &mut dst, &mut progress).await;
        let _ = src.finish(false).await;
        match result {
            Ok(report) => {
                dst.finish(true).await.map_err(to_err)?;
                Ok(report)
            }
            Err(e) => {
                let _ = dst.finish(false).await;
                Err(e)
            }
        }
    }
}

async fn copy_all(
    source: &Store,
    target: &Store,
    src: &mut Side,
    dst: &mut Side,
    progress: &mut impl FnMut(&str, i64),
) -> Result<CopyReport, CopyError> {
    let from_err = |e| StoreError::from_sqlx(source.path(), e);
    let to_err = |e| StoreError::from_sqlx(target.path(), e);
    for t in TABLES {
        let rows = on!(dst, count(t.name)).map_err(to_err)?;
        if rows > 0 {
            return Err(CopyError::NotEmpty {
                target: target.path().to_path_buf(),
                table: t.name,
                rows,
            });
        }
    }
    let mut report = CopyReport::default();
    for t in TABLES {
        let blank: Vec<&str> = LATER
            .iter()
            .filter(|l| l.table == t.name)
            .map(|l| l.column)
            .collect();
        let key_at: Vec<usize> = t
            .key
            .iter()
            .map(|k| t.columns.iter().position(|(c, _)| c == k).unwrap_or(0))
            .collect();
        let mut after: Option<Vec<Value>> = None;
        let mut copied = 0i64;
        loop {
            let rows = on!(src, read(t, after.as_deref(), BATCH)).map_err(from_err)?;
            let Some(last) = rows.last() else { break };
            after = Some(key_at.iter().map(|&i| last[i].clone()).collect());
            on!(dst, write(t, &rows, &blank)).map_err(to_err)?;
            copied += i64::try_from(rows.len()).unwrap_or(i64::MAX);
            progress(t.name, copied);
            if rows.len() < BATCH {
                break;
            }
        }
        dst.renumber(t).await.map_err(to_err)?;
        report.tables.push((t.name.to_owned(), copied));
    }
    for l in LATER {
        let mut after = i64::MIN;
        loop {
            let pairs =
                on!(src, later(l.table, l.key, l.column, after, BATCH)).map_err(from_err)?;
            for &(id, value) in &pairs {
                on!(dst, fill(l.table, l.key, l.column, id, value)).map_err(to_err)?;
            }
            match pairs.last() {
                Some(&(id, _)) if pairs.len() == BATCH => after = id,
                _ => break,
            }
        }
    }
    for t in TABLES {
        let source_rows = on!(src, count(t.name)).map_err(from_err)?;
        let target_rows = on!(dst, count(t.name)).map_err(to_err)?;
        if source_rows != target_rows {
            return Err(CopyError::Count {
                table: t.name,
                read: source_rows,
                written: target_rows,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of every table of a new SQLite store, as the schema has them.
    async fn schema(store: &Store) -> Vec<(String, Vec<String>)> {
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store");
        };
        let tables: Vec<(String,)> = sqlx::query_as(
            "select name from sqlite_master where type = 'table' \
             and name not like 'sqlite_%' and name <> '_sqlx_migrations' order by name",
        )
        .fetch_all(pool)
        .await
        .expect("tables");
        let mut out = Vec::new();
        for (name,) in tables {
            let cols: Vec<(String,)> =
                sqlx::query_as("select name from pragma_table_info(?1) order by cid")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .expect("columns");
            out.push((name, cols.into_iter().map(|(c,)| c).collect()));
        }
        out
    }

    #[tokio::test]
    async fn every_table_and_column_of_the_schema_is_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            &dir.path().join("s.db"),
            super::super::StoreOptions::default(),
        )
        .await
        .expect("open");
        let mut ours: Vec<(String, Vec<String>)> = TABLES
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    t.columns.iter().map(|(c, _)| (*c).to_owned()).collect(),
                )
            })
            .collect();
        ours.sort();
        assert_eq!(
            ours,
            schema(&store).await,
            "a table or column of the schema is missing from the copy's list (or listed in another order)"
        );
        for t in TABLES {
            for k in t.key {
                assert!(t.columns.iter().any(|(c, _)| c == k), "{}: key {k}", t.name);
            }
        }
        store.close().await;
    }
}
