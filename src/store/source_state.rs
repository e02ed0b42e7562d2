//! Where each daemon source stands: an IMAP folder's UIDVALIDITY and the last UID it acknowledged.
//! Positions are written by the pipeline's writer inside its batch transaction
//! ([`Store::record_with_positions`]), read once when a source starts.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
pub(crate) use crate::source::PositionUpdate;

/// The saved position of one IMAP folder (the sources' own type).
pub type SourcePosition = crate::source::Position;

impl Store {
    /// The saved position of `source` (`imap:<account>/<mailbox>`), if any.
    pub async fn source_position(
        &self,
        source: &str,
    ) -> Result<Option<SourcePosition>, StoreError> {
        super::dispatch!(self, source_position(source).await)
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

super::engines!("engine/source_state.rs");
