//! `/api/v1`: JSON for list managers and scripts. Every route needs a bearer token (when tokens are
//! configured); errors are `{"error": CODE, "detail": TEXT}` with the matching status.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::HttpState;
use crate::classify::{BounceType, Reason};
use crate::export::{Format, Writer};
use crate::store::query::{
    BounceCursor, BounceFilter, BounceRow, CheckRow, ExportFilter, ExportTypes, StatsBy, Timestamp,
};
use crate::store::{Store, StoreError, normalize_address};

/// The response header that carries the cursor of the next incremental sync.
pub const NEXT_AFTER_ID_HEADER: &str = "x-bounced-next-after-id";

/// Most addresses in one `POST /check`.
pub const MAX_CHECK_BATCH: usize = 1000;

/// Most bounces in one page of `GET /bounces`.
pub const MAX_BOUNCES_PAGE: u64 = 1000;

/// The actor of a request: the name of the token it carried (`local` on a tokenless loopback server).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// What went wrong with a request, as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    /// No token, or a wrong one.
    Unauthorized,
    /// Refused whatever the token (a cross-site form, a foreign host name).
    Forbidden(String),
    /// A parameter or body is wrong; the detail says which and why.
    BadRequest(String),
    /// Nothing by that name or id.
    NotFound(String),
    /// The body was refused before it was read: too large, or not JSON.
    Body(StatusCode, String),
    /// The query string is over [`super::MAX_QUERY_BYTES`].
    UriTooLong,
    /// The database is not open yet.
    NotReady,
    /// The database failed.
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidAddress(a) => {
                ApiError::BadRequest(format!("`{a}` is not an address (expected local@domain)"))
            }
            e => ApiError::Store(e),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the token as `Authorization: Bearer TOKEN`".to_owned(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad_request", d),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            ApiError::Body(status, d) => {
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => "bad_request",
                };
                (status, code, d)
            }
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the query string is over {} bytes", super::MAX_QUERY_BYTES),
            ),
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "the database is not open yet; retry in a moment".to_owned(),
            ),
            ApiError::Store(e) => {
                let status = match e {
                    StoreError::Locked { .. }
                    | StoreError::Full { .. }
                    | StoreError::ReadOnly { .. }
                    | StoreError::Unavailable { .. }
                    | StoreError::Conflict { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::warn!(error = %e, "HTTP request failed on the database");
                (status, "database", e.to_string())
            }
        };
        let mut res = (
            status,
            Json(ErrorBody {
                error: code,
                detail,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bounced\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// The token in `Authorization: Bearer TOKEN`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The actor a request's bearer token names; [`ApiError::Unauthorized`] without a valid one.
pub(crate) fn bearer_actor(state: &HttpState, headers: &HeaderMap) -> Result<Actor, ApiError> {
    if state.tokens().is_empty() {
        return Ok(Actor("local".to_owned()));
    }
    bearer(headers)
        .and_then(|t| state.tokens().check(t))
        .map(|name| Actor(name.to_owned()))
        .ok_or(ApiError::Unauthorized)
}

/// Lets a request through only with a valid bearer token; the token's name becomes its [`Actor`].
pub async fn require_token(
    State(state): State<HttpState>,
    mut req: Request,
    next: Next,
) -> Response {
    match bearer_actor(&state, req.headers()) {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// 404 for a path under `/api/v1` that names no route.
pub async fn no_route() -> ApiError {
    ApiError::NotFound("no such route under /api/v1 (see the README)".into())
}

fn store(state: &HttpState) -> Result<&Store, ApiError> {
    state.store().ok_or(ApiError::NotReady)
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn json<T>(j: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    j.map(|Json(t)| t).map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::Body(e.status(), e.body_text())
        }
        _ => ApiError::BadRequest(e.body_text()),
    })
}

/// Parses a time parameter: RFC 3339 (`2026-03-01T09:00:00Z`) or a UTC date (`2026-03-01`).
pub fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` must be a time such as 2026-03-01T09:00:00Z or a date such as 2026-03-01"
            ))
        })
}

fn opt_time(name: &str, s: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    s.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_time(name, s))
        .transpose()
}

// ---- recipients and checks ----

/// `GET /recipients/{address}`: the recipient's state, history and latest bounces.
#[derive(Serialize)]
pub struct RecipientReport {
    /// State and counters.
    pub recipient: crate::store::query::RecipientInfo,
    /// Every change of state, oldest first, with its cause.
    pub history: Vec<crate::store::query::EventRow>,
    /// The latest bounces, newest first.
    pub bounces: Vec<BounceRow>,
}

/// How many bounces a recipient's report carries.
pub const RECIPIENT_BOUNCES: u64 = 20;

/// Looks up a recipient's whole record: the one definition the API and the dashboard share.
pub async fn recipient_report(
    store: &Store,
    address: &str,
) -> Result<Option<RecipientReport>, StoreError> {
    let Some(address) = store.resolve(address).await? else {
        return Ok(None);
    };
    let Some(recipient) = store.recipient(&address).await? else {
        return Ok(None);
    };
    let history = store.history(&address).await?;
    let bounces = store
        .bounces(&BounceFilter {
            recipient: Some(address.clone()),
            limit: Some(RECIPIENT_BOUNCES),
            ..BounceFilter::default()
        })
        .try_collect()
        .await?;
    Ok(Some(RecipientReport {
        recipient,
        history,
        bounces,
    }))
}

/// `GET /api/v1/recipients/{address}`.
pub async fn recipient(
    State(state): State<HttpState>,
    Path(address): Path<String>,
) -> Result<Json<RecipientReport>, ApiError> {
    let store = store(&state)?;
    if normalize_address(&address).is_none() {
        return Err(ApiError::BadRequest(format!(
            "`{address}` is not an address (expected local@domain)"
        )));
    }
    recipient_report(store, &address)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no recipient {address} in the database")))
}

/// The answer to "may I send to this address?".
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// The address asked about, normalized (or as given, when it is not an address).
    pub address: String,
    /// Whether the database knows the address at all.
    pub known: bool,
    /// Whether it is suppressed: do not send.
    pub suppressed: bool,
    /// What suppressed it: `hard`, `complaint`, `soft` or `manual`.
    pub cause: Option<String>,
    /// The reason name, or the operator's words.
    pub reason: Option<String>,
    /// When it was suppressed.
    pub since: Option<Timestamp>,
    /// Why the address could not be checked (batch form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn answer(address: String, row: Option<CheckRow>) -> CheckAnswer {
    match row {
        None => CheckAnswer {
            address,
            known: false,
            suppressed: false,
            cause: None,
            reason: None,
            since: None,
            error: None,
        },
        Some(r) => {
            let suppressed = r.state == "suppressed";
            CheckAnswer {
                address,
                known: true,
                suppressed,
                cause: r.suppressed_type.filter(|_| suppressed),
                reason: r.suppressed_why.filter(|_| suppressed),
                since: r.suppressed_at.filter(|_| suppressed),
                error: None,
            }
        }
    }
}

/// `?address=` of `GET /check`.
#[derive(Deserialize)]
pub struct CheckQuery {
    address: String,
}

/// `GET /api/v1/check?address=A`.
pub async fn check_one(
    State(state): State<HttpState>,
    q: Result<Query<CheckQuery>, QueryRejection>,
) -> Result<Json<CheckAnswer>, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    let Some((address, _)) = normalize_address(&q.address) else {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not an address (expected local@domain)",
            q.address
        )));
    };
    let row = store.check(&address).await?;
    Ok(Json(answer(address, row)))
}

/// The body of `POST /check`.
#[derive(Deserialize)]
pub struct CheckBatch {
    addresses: Vec<String>,
}

/// The answer of `POST /check`, one result per address in order.
#[derive(Serialize)]
pub struct CheckResults {
    /// One answer per address asked, in the same order.
    pub results: Vec<CheckAnswer>,
}

/// `POST /api/v1/check` with `{"addresses": [...]}`.
pub async fn check_many(
    State(state): State<HttpState>,
    body: Result<Json<CheckBatch>, JsonRejection>,
) -> Result<Json<CheckResults>, ApiError> {
    let store = store(&state)?;
    let batch = json(body)?;
    if batch.addresses.len() > MAX_CHECK_BATCH {
        return Err(ApiError::BadRequest(format!(
            "{} addresses: at most {MAX_CHECK_BATCH} per request",
            batch.addresses.len()
        )));
    }
    let mut results = Vec::with_capacity(batch.addresses.len());
    for raw in batch.addresses {
        match normalize_address(&raw) {
            Some((address, _)) => {
                let row = store.check(&address).await?;
                results.push(answer(address, row));
            }
            None => {
                let mut a = answer(raw, None);
                a.error = Some("not an address (expected local@domain)".into());
                results.push(a);
            }
        }
    }
    Ok(Json(CheckResults { results }))
}

// ---- the suppression list ----

/// Parameters of `GET /suppressions`.
#[derive(Deserialize)]
pub struct SuppressionsQuery {
    format: Option<String>,
    since: Option<String>,
    types: Option<String>,
    after_id: Option<i64>,
}

/// The content type of an export format.
fn content_type(format: Format) -> &'static str {
    match format {
        Format::Jsonl => "application/x-ndjson",
        Format::Csv | Format::Listmonk | Format::Ses | Format::Mailgun => "text/csv; charset=utf-8",
        Format::Txt | Format::Postfix => "text/plain; charset=utf-8",
    }
}

/// A writer whose bytes are taken in chunks for the response body.
#[derive(Clone, Default)]
struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    fn take_if(&self, at_least: usize) -> Option<Bytes> {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (b.len() >= at_least && !b.is_empty()).then(|| Bytes::from(std::mem::take(&mut *b)))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes sent to the client at a time.
const CHUNK: usize = 64 * 1024;

/// `GET /api/v1/suppressions`: the list in an export format, streamed row by row; the
/// `X-Bounced-Next-After-Id` header is the `after_id` of the next incremental sync.
pub async fn suppressions(
    State(state): State<HttpState>,
    q: Result<Query<SuppressionsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let q = query(q)?;
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let types = match q.types.as_deref() {
        None | Some("") => ExportTypes::default(),
        Some(t) => {
            ExportTypes::parse(t).map_err(|e| ApiError::BadRequest(format!("types: {e}")))?
        }
    };
    let filter = ExportFilter {
        types,
        since: opt_time("since", &q.since)?,
        until: None,
    };
    if q.after_id.is_some_and(|a| a < 0) {
        return Err(ApiError::BadRequest(
            "`after_id` must not be negative".into(),
        ));
    }
    // Taken before the rows are read: a change in between is sent now and again next time, never lost.
    let next = store.last_event_id().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    let after = q.after_id;
    tokio::spawn(async move {
        let out = Chunks::default();
        let result = async {
            let mut w = Writer::new(format, out.clone())?;
            let mut rows = store.export_rows_after(&filter, after);
            while let Some(row) = rows.try_next().await.map_err(io::Error::other)? {
                w.write(&row)?;
                if let Some(chunk) = out.take_if(CHUNK)
                    && tx.send(Ok(chunk)).await.is_err()
                {
                    // The client went away.
                    return Ok(());
                }
            }
            w.finish()?;
            if let Some(chunk) = out.take_if(1) {
                let _ = tx.send(Ok(chunk)).await;
            }
            Ok::<(), io::Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "suppression list stream failed");
            // The body ends in an error, so the client sees a broken transfer, not a short list.
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(format)),
    );
    h.insert(NEXT_AFTER_ID_HEADER, HeaderValue::from(next));
    Ok(res)
}

/// Parameters of `GET /suppressions/changes`.
#[derive(Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    after_id: i64,
    limit: Option<u32>,
}

/// A page of changes of state and the cursor of the next one.
#[derive(Serialize)]
pub struct ChangePage {
    /// Oldest first.
    pub changes: Vec<crate::store::query::ChangeRow>,
    /// Pass as `after_id` next time (the same value when nothing changed).
    pub next_after_id: i64,
}

/// Most changes in one page of `GET /suppressions/changes`.
pub const MAX_CHANGES_PAGE: u32 = 10_000;

/// `GET /api/v1/suppressions/changes?after_id=N&limit=L`: every suppression and unsuppression after
/// the change `N`, so a list manager can follow removals as well as additions.
pub async fn changes(
    State(state): State<HttpState>,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<ChangePage>, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(1000);
    if q.after_id < 0 || limit == 0 || limit > MAX_CHANGES_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`after_id` must not be negative and `limit` must be between 1 and {MAX_CHANGES_PAGE}"
        )));
    }
    let changes = store.changes_after(q.after_id, limit).await?;
    let next_after_id = changes.last().map_or(q.after_id, |c| c.id);
    Ok(Json(ChangePage {
        changes,
        next_after_id,
    }))
}

/// The body of `POST /suppressions`.
#[derive(Deserialize)]
pub struct SuppressBody {
    address: String,
    reason: Option<String>,
}

/// The result of a manual suppress or unsuppress.
#[derive(Debug, Serialize)]
pub struct ManualResult {
    /// The normalized address.
    pub address: String,
    /// `active` or `suppressed` now.
    pub state: String,
    /// Whether this request changed the state.
    pub changed: bool,
    /// The token name recorded as the actor.
    pub actor: String,
}

/// The history note of a manual change: the actor's name, then the operator's words.
pub fn manual_note(actor: &str, reason: Option<&str>) -> String {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("by {actor}: {r}"),
        None => format!("by {actor}"),
    }
}

/// Longest reason accepted for a manual change, in characters.
pub const MAX_REASON_CHARS: usize = 500;

fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::BadRequest(format!(
            "`reason` is over {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(())
}

/// Suppresses an address by hand with the actor in the history: the API and the dashboard share it.
pub async fn manual_suppress(
    store: &Store,
    actor: &Actor,
    address: &str,
    reason: Option<&str>,
) -> Result<ManualResult, ApiError> {
    check_reason(reason)?;
    let note = manual_note(&actor.0, reason);
    let out = store.suppress(address, Some(&note), Utc::now()).await?;
    Ok(ManualResult {
        address: out.address,
        state: "suppressed".into(),
        changed: out.changed,
        actor: actor.0.clone(),
    })
}

/// Unsuppresses a known address by hand with the actor in the history.
pub async fn manual_unsuppress(
    store: &Store,
    actor: &Actor,
    address: &str,
    reason: Option<&str>,
) -> Result<ManualResult, ApiError> {
    check_reason(reason)?;
    let resolved = store
        .resolve(address)
        .await?
        .unwrap_or_else(|| address.to_owned());
    let note = manual_note(&actor.0, reason);
    match store.unsuppress(&resolved, Some(&note), Utc::now()).await {
        Ok(out) => Ok(ManualResult {
            address: out.address,
            state: "active".into(),
            changed: out.changed,
            actor: actor.0.clone(),
        }),
        Err(StoreError::UnknownRecipient(a)) => Err(ApiError::NotFound(format!(
            "no recipient {a} in the database"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/suppressions` with `{"address": A, "reason": R}`.
pub async fn suppress(
    State(state): State<HttpState>,
    actor: axum::Extension<Actor>,
    body: Result<Json<SuppressBody>, JsonRejection>,
) -> Result<Json<ManualResult>, ApiError> {
    let store = store(&state)?;
    let b = json(body)?;
    manual_suppress(store, &actor, &b.address, b.reason.as_deref())
        .await
        .map(Json)
}

/// `?reason=` of `DELETE /suppressions/{address}`.
#[derive(Deserialize)]
pub struct ReasonQuery {
    reason: Option<String>,
}

/// `DELETE /api/v1/suppressions/{address}`.
pub async fn unsuppress(
    State(state): State<HttpState>,
    actor: axum::Extension<Actor>,
    Path(address): Path<String>,
    q: Result<Query<ReasonQuery>, QueryRejection>,
) -> Result<Json<ManualResult>, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    manual_unsuppress(store, &actor, &address, q.reason.as_deref())
        .await
        .map(Json)
}

// ---- bounces, stats, messages ----

/// Parameters of `GET /bounces`.
#[derive(Deserialize)]
pub struct BouncesQuery {
    since: Option<String>,
    until: Option<String>,
    reason: Option<String>,
    #[serde(rename = "type")]
    bounce_type: Option<String>,
    domain: Option<String>,
    limit: Option<u64>,
    cursor: Option<String>,
}

/// A page of bounces and the cursor of the next one.
#[derive(Serialize)]
pub struct BouncePage {
    /// Newest first.
    pub bounces: Vec<BounceRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a bounce type name.
pub fn parse_bounce_type(s: &str) -> Result<BounceType, ApiError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "hard" => Ok(BounceType::Hard),
        "soft" => Ok(BounceType::Soft),
        "complaint" => Ok(BounceType::Complaint),
        "none" => Ok(BounceType::None),
        _ => Err(ApiError::BadRequest(format!(
            "`type` must be hard, soft, complaint or none, not `{s}`"
        ))),
    }
}

fn parse_cursor(s: &str) -> Result<BounceCursor, ApiError> {
    s.split_once('.')
        .and_then(|(at, id)| {
            Some(BounceCursor {
                at: at.parse().ok()?,
                id: id.parse().ok()?,
            })
        })
        .ok_or_else(|| ApiError::BadRequest("`cursor` is not a cursor from a previous page".into()))
}

/// `GET /api/v1/bounces`.
pub async fn bounces(
    State(state): State<HttpState>,
    q: Result<Query<BouncesQuery>, QueryRejection>,
) -> Result<Json<BouncePage>, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_BOUNCES_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_BOUNCES_PAGE}"
        )));
    }
    let filter = BounceFilter {
        since: opt_time("since", &q.since)?,
        until: opt_time("until", &q.until)?,
        reason: q
            .reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<Reason>().map_err(ApiError::BadRequest))
            .transpose()?,
        bounce_type: q
            .bounce_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(parse_bounce_type)
            .transpose()?,
        domain: q.domain.filter(|d| !d.is_empty()),
        recipient: None,
        limit: Some(limit),
    };
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let bounces: Vec<BounceRow> = store.bounces_page(&filter, after).try_collect().await?;
    let next_cursor = (bounces.len() as u64 == limit)
        .then(|| bounces.last().map(BounceCursor::after))
        .flatten()
        .map(|c| format!("{}.{}", c.at, c.id));
    Ok(Json(BouncePage {
        bounces,
        next_cursor,
    }))
}

/// Parameters of `GET /stats`.
#[derive(Deserialize)]
pub struct StatsQuery {
    by: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Parses a grouping name.
pub fn parse_by(s: &str) -> Result<StatsBy, ApiError> {
    match s {
        "day" => Ok(StatsBy::Day),
        "reason" => Ok(StatsBy::Reason),
        "domain" => Ok(StatsBy::Domain),
        "type" => Ok(StatsBy::Type),
        _ => Err(ApiError::BadRequest(format!(
            "`by` must be day, reason, domain or type, not `{s}`"
        ))),
    }
}

/// `GET /api/v1/stats`: totals, or with `by` bounce counts per group, over `since`..`until`.
pub async fn stats(
    State(state): State<HttpState>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    let since = opt_time("since", &q.since)?;
    let until = opt_time("until", &q.until)?;
    match q.by.as_deref() {
        Some(by) => {
            let by_name = by.to_owned();
            let rows = store.stats(parse_by(by)?, since, until).await?;
            Ok(Json(serde_json::json!({ "by": by_name, "rows": rows })).into_response())
        }
        None => Ok(Json(store.summary_between(since, until).await?).into_response()),
    }
}

/// A stored message with its results.
#[derive(Serialize)]
pub struct MessageReport {
    /// Its metadata.
    pub message: crate::store::query::MessageRow,
    /// The results read from it, in order.
    pub bounces: Vec<BounceRow>,
}

/// `GET /api/v1/messages/{id}`.
pub async fn message(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<MessageReport>, ApiError> {
    let store = store(&state)?;
    let id = message_id(&id)?;
    let message = store
        .message(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message {id}")))?;
    let bounces = store.message_bounces(id).await?;
    Ok(Json(MessageReport { message, bounces }))
}

/// Parses a message id from a path.
pub fn message_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("`{s}` is not a message id")))
}

/// `GET /api/v1/messages/{id}/raw`: the message as received, `message/rfc822`.
pub async fn message_raw(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let id = message_id(&id)?;
    let raw = store
        .message_raw(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message {id}")))?;
    let disposition = format!("attachment; filename=\"message-{id}.eml\"");
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        raw,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_cursors() {
        assert!(parse_time("since", "2026-03-01").is_ok());
        assert!(parse_time("since", "2026-03-01T09:00:00+02:00").is_ok());
        assert!(parse_time("since", "7d").is_err());
        assert_eq!(
            parse_cursor("1790000000.42").ok(),
            Some(BounceCursor {
                at: 1_790_000_000,
                id: 42
            })
        );
        assert!(parse_cursor("42").is_err());
        assert!(message_id("0").is_err());
        assert!(message_id("x").is_err());
    }

    #[test]
    fn manual_notes_name_the_actor() {
        assert_eq!(manual_note("ops", Some(" typo trap ")), "by ops: typo trap");
        assert_eq!(manual_note("ops", Some("")), "by ops");
        assert_eq!(manual_note("ops", None), "by ops");
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}

/// Parameters of the outbox routes: which deliveries.
#[derive(Deserialize)]
pub struct OutboxQuery {
    target: Option<String>,
    state: Option<String>,
    id: Option<String>,
    address: Option<String>,
    limit: Option<u64>,
}

impl OutboxQuery {
    fn filter(self, limit: Option<u64>) -> Result<crate::store::OutboxFilter, ApiError> {
        if let Some(s) = self.state.as_deref()
            && !["pending", "delivered", "dead"].contains(&s)
        {
            return Err(ApiError::BadRequest(format!(
                "`state` must be pending, delivered or dead, not `{s}`"
            )));
        }
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(crate::store::OutboxFilter {
            target: nonempty(self.target),
            state: nonempty(self.state),
            id: nonempty(self.id),
            address: nonempty(self.address),
            limit,
        })
    }
}

/// Most deliveries one `GET /api/v1/outbox` returns.
const MAX_OUTBOX_PAGE: u64 = 10_000;

/// `GET /api/v1/outbox`: deliveries (oldest first) and the count per target and state.
pub async fn outbox(
    State(state): State<HttpState>,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_OUTBOX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_OUTBOX_PAGE}"
        )));
    }
    let deliveries = store.outbox_list(&q.filter(Some(limit))?).await?;
    let counts = store.outbox_counts().await?;
    Ok(Json(serde_json::json!({ "deliveries": deliveries, "counts": counts })).into_response())
}

/// `POST /api/v1/outbox/retry`: dead deliveries (or those of `state`) pending again.
pub async fn outbox_retry(
    State(state): State<HttpState>,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let n = store.outbox_retry(&query(q)?.filter(None)?).await?;
    Ok(Json(serde_json::json!({ "retried": n })).into_response())
}

/// `POST /api/v1/outbox/drop`: dead deliveries (or those of `state`) deleted.
pub async fn outbox_drop(
    State(state): State<HttpState>,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let n = store.outbox_drop(&query(q)?.filter(None)?).await?;
    Ok(Json(serde_json::json!({ "dropped": n })).into_response())
}
