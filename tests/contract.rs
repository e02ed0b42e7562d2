//! One definition of a bounce result: the JSONL keys of `classify` and the database's bounce
//! columns are the same names, in the same order ([`bounced::analysis::BOUNCE_FIELDS`]).

use bounced::analysis::BOUNCE_FIELDS;
use bounced::store::{Store, StoreOptions};

#[test]
fn the_bounce_columns_are_the_jsonl_fields_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("b.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let columns: Vec<String> = rt.block_on(async {
        let store = Store::open(&db, StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store.close().await;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String,)> = sqlx::query_as("select name from pragma_table_info('bounces')")
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pool.close().await;
        rows.into_iter().map(|(n,)| n).collect()
    });
    // Every field is a column, in the same order (the table adds its own keys and times around them).
    let named: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| BOUNCE_FIELDS.contains(c))
        .collect();
    assert_eq!(named, BOUNCE_FIELDS, "bounce columns: {columns:?}");
}
