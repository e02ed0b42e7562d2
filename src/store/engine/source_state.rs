// Sources' positions, per source key.

use super::super::{PositionUpdate, SourcePosition};
use super::{Conn, Db, sql};
use crate::store::{Eng, StoreError};

/// Saves each position in `updates` on `conn` (inside the caller's transaction), the last one of a
/// key winning.
pub(crate) async fn save_positions(
    conn: &mut Conn,
    updates: &[PositionUpdate],
    now: i64,
) -> Result<(), sqlx::Error> {
    for u in updates {
        sqlx::query(sql(
            "insert into source_state (source, uidvalidity, last_uid, updated_at) values (?, ?, ?, ?) \
             on conflict (source) do update set uidvalidity = excluded.uidvalidity, \
             last_uid = excluded.last_uid, updated_at = excluded.updated_at",
        ))
        .bind(&u.key)
        .bind(i64::from(u.position.uidvalidity))
        .bind(i64::from(u.position.last_uid))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Eng<'_, Db> {
    pub(crate) async fn source_position(
        &self,
        source: &str,
    ) -> Result<Option<SourcePosition>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(sql(
            "select uidvalidity, last_uid from source_state where source = ?",
        ))
        .bind(source)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.map(|(v, u)| SourcePosition {
            uidvalidity: u32::try_from(v).unwrap_or(0),
            last_uid: u32::try_from(u).unwrap_or(0),
        }))
    }
}
