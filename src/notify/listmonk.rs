//! The listmonk target: its bounce webhook, `POST <url>/webhooks/bounce` with basic auth (an API
//! user and its token).
//!
//! A `suppressed` or `bounce` event becomes a bounce record of type `hard`, `soft` or `complaint`
//! (a suppression by hand counts as hard), with the campaign UUID from the returned original's
//! `X-Listmonk-Campaign` header when it had one; listmonk's own bounce settings then decide what
//! happens to the subscriber. listmonk has no way to take a bounce back, so `unsuppressed` events
//! are accepted without a request.

use serde_json::json;

use super::{Attempt, NotifyError, credentials, http_client, http_outcome};
use crate::config::NotifyConfig;
use crate::store::{Due, EventBody};

/// A configured listmonk.
pub(super) struct Listmonk {
    url: String,
    user: String,
    password: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Listmonk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listmonk")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish()
    }
}

/// The bounce record listmonk is sent for an event; `None` when there is nothing to send.
pub(super) fn bounce_record(e: &EventBody, campaign: Option<&str>) -> Option<serde_json::Value> {
    if e.event == "unsuppressed" {
        return None;
    }
    let kind = match e.bounce_type.as_deref() {
        Some("soft") => "soft",
        Some("complaint") => "complaint",
        _ => "hard",
    };
    let mut v = json!({
        "email": e.address,
        "source": "bounced",
        "type": kind,
        "meta": {
            "event_id": e.id,
            "event": e.event,
            "cause": e.cause,
            "reason": e.reason,
            "status": e.status,
            "diagnostic": e.diagnostic,
        },
    });
    if let (Some(c), Some(obj)) = (campaign.filter(|c| !c.is_empty()), v.as_object_mut()) {
        obj.insert("campaign_uuid".to_owned(), json!(c));
    }
    Some(v)
}

impl Listmonk {
    pub(super) fn new(cfg: &NotifyConfig) -> Result<Listmonk, NotifyError> {
        let (user, password) = credentials(cfg)?;
        Ok(Listmonk {
            url: format!(
                "{}/webhooks/bounce",
                cfg.url.clone().unwrap_or_default().trim_end_matches('/')
            ),
            user,
            password,
            client: http_client(cfg)?,
        })
    }

    pub(super) async fn send(&self, due: &Due) -> Attempt {
        let event: EventBody = match serde_json::from_str(&due.body) {
            Ok(e) => e,
            Err(e) => return Attempt::Refused(format!("stored event is not readable: {e}")),
        };
        let Some(record) = bounce_record(&event, due.campaign.as_deref()) else {
            return Attempt::Accepted;
        };
        let r = self
            .client
            .post(&self.url)
            .basic_auth(&self.user, Some(&self.password))
            .json(&record)
            .send()
            .await;
        http_outcome(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, ty: Option<&str>) -> EventBody {
        EventBody {
            id: "e1".into(),
            event: event.into(),
            at: "2026-01-01T00:00:00Z".into(),
            address: "a@example.org".into(),
            cause: None,
            bounce_type: ty.map(str::to_owned),
            reason: None,
            status: None,
            replycode: None,
            diagnostic: None,
            rule: None,
            original_message_id: None,
            original_list_id: None,
        }
    }

    #[test]
    fn maps_types_and_campaign() {
        let r = bounce_record(&event("suppressed", Some("complaint")), Some("c-uuid"));
        let r = r.unwrap_or_default();
        assert_eq!(r["type"], "complaint");
        assert_eq!(r["campaign_uuid"], "c-uuid");
        assert_eq!(r["email"], "a@example.org");
        let r = bounce_record(&event("suppressed", Some("manual")), None).unwrap_or_default();
        assert_eq!(r["type"], "hard");
        assert!(r.get("campaign_uuid").is_none());
        let r = bounce_record(&event("bounce", Some("soft")), None).unwrap_or_default();
        assert_eq!(r["type"], "soft");
        assert_eq!(bounce_record(&event("unsuppressed", None), None), None);
    }
}
