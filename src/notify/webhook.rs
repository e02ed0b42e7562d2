//! The webhook target: each event POSTed as JSON, signed with HMAC-SHA256.
//!
//! Headers: `X-Bounced-Event-Id` (the stable event id), `X-Bounced-Timestamp` (unix seconds of
//! this attempt) and `X-Bounced-Signature: sha256=<hex>`, the HMAC of `timestamp + "." + body`
//! with the shared secret, so a receiver can check the sender and refuse old replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Attempt, NotifyError, first_line, http_client, http_outcome};
use crate::config::NotifyConfig;
use crate::store::Due;

/// A configured webhook.
pub(super) struct Webhook {
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// The hex HMAC-SHA256 of the concatenated `parts`.
fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    // An HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!("sha256={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]))
}

impl Webhook {
    pub(super) fn new(cfg: &NotifyConfig) -> Result<Webhook, NotifyError> {
        let path = cfg.secret_file.clone().unwrap_or_default();
        let secret = first_line(&cfg.name, "secret file", &path)?;
        Ok(Webhook {
            url: cfg.url.clone().unwrap_or_default(),
            secret: secret.into_bytes(),
            client: http_client(cfg)?,
        })
    }

    pub(super) async fn send(&self, due: &Due) -> Attempt {
        let ts = chrono::Utc::now().timestamp();
        let sig = signature(&self.secret, ts, due.body.as_bytes());
        let r = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Bounced-Event-Id", &due.id)
            .header("X-Bounced-Timestamp", ts.to_string())
            .header("X-Bounced-Signature", sig)
            .body(due.body.clone())
            .send()
            .await;
        http_outcome(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let s = signature(b"key", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            format!("sha256={}", hmac_hex(b"key", &[b"1700000000.{}"]))
        );
        assert_ne!(s, signature(b"key", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"key", 1_700_000_000, b"{ }"));
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
    }
}
