//! The Mailman 3 target: its REST API (`url` such as `http://127.0.0.1:8001/3.1`, basic auth).
//!
//! On `suppressed`, the address's memberships (on every list, or on those of `lists`) are found
//! with `members/find`; `action = "disable"` sets each enabled one's `delivery_status` to
//! `by_bounces` (or `by_moderator` where the API refuses that) and remembers it, `unsubscribe`
//! deletes it. On `unsuppressed`, the memberships this target disabled are enabled again; what a
//! member or a moderator disabled is left alone. `bounce` events need nothing here.

use serde::Deserialize;
use serde_json::json;

use super::{Attempt, NotifyError, credentials, error_chain, http_client};
use crate::config::{MailmanAction, NotifyConfig};
use crate::store::{Due, Store};

/// A configured Mailman.
pub(super) struct Mailman {
    base: String,
    user: String,
    password: String,
    lists: Vec<String>,
    action: MailmanAction,
    client: reqwest::Client,
}

impl std::fmt::Debug for Mailman {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailman")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("lists", &self.lists)
            .field("action", &self.action)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Found {
    #[serde(default)]
    entries: Vec<Member>,
}

#[derive(Debug, Deserialize)]
struct Member {
    member_id: String,
    list_id: String,
}

#[derive(Debug, Deserialize)]
struct Preferences {
    delivery_status: Option<String>,
}

/// A failed step: the attempt it amounts to.
type Step<T> = Result<T, Attempt>;

fn store_failure(e: crate::store::StoreError) -> Attempt {
    Attempt::Retry(format!("database: {e}"))
}

impl Mailman {
    pub(super) fn new(cfg: &NotifyConfig) -> Result<Mailman, NotifyError> {
        let (user, password) = credentials(cfg)?;
        Ok(Mailman {
            base: cfg
                .url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            user,
            password,
            lists: cfg.lists.clone(),
            action: cfg.action,
            client: http_client(cfg)?,
        })
    }

    /// Sends a request; a 2xx answer is returned, anything else becomes the attempt's outcome.
    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Step<reqwest::Response> {
        match req
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => {
                let s = r.status();
                let text = r.text().await.unwrap_or_default();
                let msg = format!("{what}: answered {s}: {}", text.trim());
                // A refused credential or an unknown list is fixed by the operator, after which
                // the event should still arrive: only a malformed request is final.
                if s.as_u16() == 400 {
                    Err(Attempt::Refused(msg))
                } else {
                    Err(Attempt::Retry(msg))
                }
            }
            Err(e) => Err(Attempt::Retry(format!("{what}: {}", error_chain(&e)))),
        }
    }

    async fn memberships(&self, address: &str) -> Step<Vec<Member>> {
        let r = self
            .call(
                self.client
                    .get(format!("{}/members/find", self.base))
                    .query(&[("subscriber", address), ("role", "member")]),
                "members/find",
            )
            .await?;
        let found: Found = r
            .json()
            .await
            .map_err(|e| Attempt::Retry(format!("members/find: unreadable answer: {e}")))?;
        Ok(found
            .entries
            .into_iter()
            .filter(|m| self.lists.is_empty() || self.lists.contains(&m.list_id))
            .collect())
    }

    async fn set_status(&self, member_id: &str, status: &str) -> Step<()> {
        self.call(
            self.client
                .patch(format!("{}/members/{member_id}/preferences", self.base))
                .json(&json!({ "delivery_status": status })),
            "members/preferences",
        )
        .await
        .map(|_| ())
    }

    async fn disable(&self, store: &Store, target: &str, address: &str, m: &Member) -> Step<()> {
        let r = self
            .call(
                self.client.get(format!(
                    "{}/members/{}/all/preferences",
                    self.base, m.member_id
                )),
                "members/all/preferences",
            )
            .await?;
        let prefs: Preferences = r
            .json()
            .await
            .map_err(|e| Attempt::Retry(format!("preferences: unreadable answer: {e}")))?;
        match prefs.delivery_status.as_deref() {
            // Delivery on: remembered first, then stopped, so an attempt cut short between the two
            // finds it remembered and stops it, and one cut short after finds it ours.
            None | Some("enabled" | "unknown") => {
                store
                    .notify_remember_disabled(target, address, &m.member_id, &m.list_id)
                    .await
                    .map_err(store_failure)?;
                match self.set_status(&m.member_id, "by_bounces").await {
                    Ok(()) => Ok(()),
                    Err(Attempt::Refused(_)) => self.set_status(&m.member_id, "by_moderator").await,
                    Err(other) => Err(other),
                }
            }
            // Stopped already: by this target in an earlier attempt, or by the member, a
            // moderator or Mailman's own bounce processing, whose decision is left as it is.
            Some(_) => Ok(()),
        }
    }

    async fn unsubscribe(&self, m: &Member) -> Step<()> {
        let url = format!("{}/members/{}", self.base, m.member_id);
        match self
            .client
            .delete(url)
            .query(&[("pre_approved", "true")])
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
        {
            // 404: already gone, which is what was asked.
            Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => Ok(()),
            Ok(r) => Err(Attempt::Retry(format!(
                "delete member: answered {}",
                r.status()
            ))),
            Err(e) => Err(Attempt::Retry(format!(
                "delete member: {}",
                error_chain(&e)
            ))),
        }
    }

    async fn enable(&self, store: &Store, target: &str, address: &str) -> Step<()> {
        let ours = store
            .notify_disabled(target, address)
            .await
            .map_err(store_failure)?;
        for (member_id, _) in ours {
            match self.set_status(&member_id, "enabled").await {
                Ok(()) => {}
                // The membership is gone: nothing to enable.
                Err(Attempt::Retry(m)) if m.contains("404") => {}
                Err(other) => return Err(other),
            }
            store
                .notify_forget_disabled(target, &member_id)
                .await
                .map_err(store_failure)?;
        }
        Ok(())
    }

    async fn apply(&self, store: &Store, target: &str, due: &Due) -> Step<()> {
        match due.event.as_str() {
            "suppressed" => {
                for m in self.memberships(&due.address).await? {
                    match self.action {
                        MailmanAction::Disable => {
                            self.disable(store, target, &due.address, &m).await?;
                        }
                        MailmanAction::Unsubscribe => self.unsubscribe(&m).await?,
                    }
                }
                Ok(())
            }
            "unsuppressed" => self.enable(store, target, &due.address).await,
            _ => Ok(()),
        }
    }

    pub(super) async fn send(&self, store: &Store, target: &str, due: &Due) -> Attempt {
        match self.apply(store, target, due).await {
            Ok(()) => Attempt::Accepted,
            Err(a) => a,
        }
    }
}
