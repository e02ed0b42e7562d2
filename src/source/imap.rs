//! placeholder
use super::Incoming;
use crate::config::{ImapConfig, Secret};
use crate::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
/// x
pub struct ImapSource;
impl ImapSource {
    /// x
    pub fn new(_c: ImapConfig, _s: Secret, _st: Store) -> ImapSource {
        ImapSource
    }
    /// x
    pub async fn run(self, _tx: mpsc::Sender<Incoming>, _c: CancellationToken) {}
}
