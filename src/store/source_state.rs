//! Where each daemon source stands: an IMAP folder's UIDVALIDITY and the last UID it acknowledged.
//! Positions are written by the pipeline's writer inside its batch transaction
//! ([`Store::record_with_positions`]), read once when a source starts.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{Store, StoreError};
use crate::source::PositionUpdate;

/// The saved position of one IMAP folder (the sources' own type).
pub type SourcePosition = crate::source::Position;

/// Saves each position in `updates` on `conn` (inside the caller's transaction), the last one of a
/// key winning.
pub(crate) async fn save_positions(
    conn: &mut SqliteConnection,
    updates: &[PositionUpdate],
    now: i64,
) -> Result<(), sqlx::Error> {
    for u in updates {
        sqlx::query(
            "insert into source_state (source, uidvalidity, last_uid, updated_at) values (?, ?, ?, ?) \
             on conflict (source) do update set uidvalidity = excluded.uidvalidity, \
             last_uid = excluded.last_uid, updated_at = excluded.updated_at",
        )
        .bind(&u.key)
        .bind(i64::from(u.position.uidvalidity))
        .bind(i64::from(u.position.last_uid))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// The saved position of `source` (`imap:<account>/<mailbox>`), if any.
    pub async fn source_position(
        &self,
        source: &str,
    ) -> Result<Option<SourcePosition>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("select uidvalidity, last_uid from source_state where source = ?")
                .bind(source)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        Ok(row.map(|(v, u)| SourcePosition {
            uidvalidity: u32::try_from(v).unwrap_or(0),
            last_uid: u32::try_from(u).unwrap_or(0),
        }))
    }

    /// Saves the position of `source`, replacing the previous one, in a transaction of its own.
    pub async fn set_source_position(
        &self,
        source: &str,
        pos: SourcePosition,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record_with_positions(
            &[],
            &[PositionUpdate {
                key: source.to_owned(),
                position: pos,
            }],
            now,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn position_round_trips_and_is_replaced() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("b.db"), StoreOptions::default()).await?;
        assert_eq!(store.source_position("imap:a/INBOX").await?, None);
        let p = SourcePosition {
            uidvalidity: 7,
            last_uid: 42,
        };
        store
            .set_source_position("imap:a/INBOX", p, Utc::now())
            .await?;
        assert_eq!(store.source_position("imap:a/INBOX").await?, Some(p));
        let q = SourcePosition {
            uidvalidity: u32::MAX,
            last_uid: 1,
        };
        store
            .set_source_position("imap:a/INBOX", q, Utc::now())
            .await?;
        assert_eq!(store.source_position("imap:a/INBOX").await?, Some(q));
        assert_eq!(store.source_position("imap:b/INBOX").await?, None);
        Ok(())
    }
}
