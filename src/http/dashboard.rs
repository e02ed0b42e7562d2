//! The dashboard: server-rendered HTML for people, usable without JavaScript (it has none), with a
//! chart drawn as inline SVG. Everything that comes from a message (addresses, diagnostics, reasons
//! typed by operators) is HTML-escaped; pages are served under a Content-Security-Policy that allows
//! only this server's stylesheet.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration as Days, NaiveDate, Utc};
use serde::Deserialize;

use super::HttpState;
use super::api::{self, Actor, ApiError};
use super::auth::same_str;
use crate::store::query::{DomainRate, StatRow, StatsBy, Timestamp};
use crate::store::{Store, normalize_address};

/// The session cookie's name.
pub const COOKIE: &str = "bounced_session";

/// Days the chart and the tables of the overview cover.
pub const WINDOW_DAYS: i64 = 30;

const STYLESHEET: &str = include_str!("static/bounced.css");

/// Escapes text for HTML content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn url_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Who is looking at the dashboard, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The token's name.
    pub name: String,
    /// The token the forms send back.
    pub csrf: String,
    /// Whether forms must carry it: not when the request itself carried the bearer token (a
    /// browser never adds that header by itself).
    pub csrf_required: bool,
    /// The session id, when signed in through the form.
    pub session: Option<String>,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Lets a request through with a bearer token or a session cookie (anyone on a tokenless loopback
/// server); otherwise a page goes to the sign-in form.
pub async fn require_viewer(
    State(state): State<HttpState>,
    mut req: Request,
    next: Next,
) -> Response {
    let viewer = if state.tokens().is_empty() {
        Some(Viewer {
            name: "local".into(),
            csrf: state.open_csrf().to_owned(),
            csrf_required: true,
            session: None,
        })
    } else if let Ok(Actor(name)) = api::bearer_actor(&state, req.headers()) {
        Some(Viewer {
            name,
            csrf: state.open_csrf().to_owned(),
            csrf_required: false,
            session: None,
        })
    } else {
        cookie_value(req.headers(), COOKIE).and_then(|id| {
            state.sessions().get(id).map(|s| Viewer {
                name: s.name,
                csrf: s.csrf,
                csrf_required: true,
                session: Some(id.to_owned()),
            })
        })
    };
    match viewer {
        Some(v) => {
            req.extensions_mut().insert(Actor(v.name.clone()));
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        None if req.method() == axum::http::Method::GET => {
            let next = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            Redirect::to(&format!("/login?next={}", url_param(&next))).into_response()
        }
        None => page_error(StatusCode::UNAUTHORIZED, "Sign in first.", None),
    }
}

/// Refuses a form posted from another site: by its `Origin` or `Sec-Fetch-Site` header, and by
/// the CSRF token when the viewer needs one.
fn check_form(headers: &HeaderMap, viewer: Option<&Viewer>, csrf: &str) -> Result<(), Response> {
    let forbid = |why: &str| page_error(StatusCode::FORBIDDEN, why, None);
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
    {
        return Err(forbid("This form was sent from another site."));
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin != "null" && !origin_host.eq_ignore_ascii_case(host) {
            return Err(forbid("This form was sent from another site."));
        }
    }
    if let Some(v) = viewer
        && v.csrf_required
        && !same_str(csrf, &v.csrf)
    {
        return Err(forbid(
            "The form's security token is missing or stale: reload the page and try again.",
        ));
    }
    Ok(())
}

// ---- layout ----

fn layout(title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · bounced</title><link rel=\"stylesheet\" href=\"/static/bounced.css\"></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">bounced</a>",
        esc(title)
    );
    if let Some(v) = viewer {
        let _ = write!(
            out,
            "<form class=\"search\" method=\"get\" action=\"/recipient\" role=\"search\">\
             <label for=\"q\">Address</label>\
             <input id=\"q\" name=\"address\" type=\"search\" placeholder=\"someone@example.com\" required>\
             <button type=\"submit\">Search</button></form>\
             <span class=\"who\">{}</span>",
            esc(&v.name)
        );
        if v.session.is_some() {
            let _ = write!(
                out,
                "<form class=\"logout\" method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form>",
                esc(&v.csrf)
            );
        }
    }
    let _ = writeln!(out, "</header><main>{body}</main></body></html>");
    out
}

fn html(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        text,
    )
        .into_response()
}

fn page_error(status: StatusCode, message: &str, viewer: Option<&Viewer>) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"notice\">{}</p><p><a href=\"/\">Back to the overview</a></p>",
        status.as_u16(),
        esc(message)
    );
    html(status, layout(&status.as_u16().to_string(), viewer, &body))
}

fn failure(e: ApiError, viewer: Option<&Viewer>) -> Response {
    match e {
        ApiError::NotReady => page_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is not open yet; reload in a moment.",
            viewer,
        ),
        ApiError::NotFound(d) => page_error(StatusCode::NOT_FOUND, &d, viewer),
        ApiError::BadRequest(d) => page_error(StatusCode::BAD_REQUEST, &d, viewer),
        ApiError::Store(e) => {
            tracing::warn!(error = %e, "dashboard: database error");
            page_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The database could not answer; see the server's log.",
                viewer,
            )
        }
        other => other.into_response(),
    }
}

fn store(state: &HttpState) -> Result<&Store, ApiError> {
    state.store().ok_or(ApiError::NotReady)
}

fn opt_ts(t: &Option<Timestamp>) -> String {
    t.map(|t| t.rfc3339()).unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    esc(s.as_deref().unwrap_or(""))
}

fn recipient_link(address: &str) -> String {
    format!(
        "<a href=\"/recipient?address={}\">{}</a>",
        esc(&url_param(address)),
        esc(address)
    )
}

// ---- pages ----

/// `GET /static/bounced.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The fallback of unknown paths.
pub async fn not_found() -> Response {
    page_error(StatusCode::NOT_FOUND, "There is no page here.", None)
}

/// `?next=` of the sign-in form.
#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this server: never `//host` or a scheme.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn login_page(status: StatusCode, next: &str, notice: Option<&str>) -> Response {
    let notice = notice
        .map(|n| format!("<p class=\"notice\" role=\"alert\">{}</p>", esc(n)))
        .unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h1>Sign in</h1>{notice}\
         <form method=\"post\" action=\"/login\">\
         <label for=\"token\">Token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"hint\">The token is one of the secrets of the server's <code>[http]</code> \
         token file.</p></section>",
        esc(next)
    );
    html(status, layout("Sign in", None, &body))
}

/// `GET /login`: the sign-in form.
pub async fn login_form(State(state): State<HttpState>, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if state.tokens().is_empty() {
        return Redirect::to(&next).into_response();
    }
    login_page(StatusCode::OK, &next, None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: checks the token, opens a session, sets its cookie.
pub async fn login(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(r) = check_form(&headers, None, "") {
        return r;
    }
    let next = safe_next(f.next.as_deref());
    let Some(name) = state.tokens().check(f.token.trim()) else {
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not valid."),
        );
    };
    let Some(id) = state.sessions().open(name) else {
        return page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No session could be opened (the system's random generator failed).",
            None,
        );
    };
    let secure = if state.config().secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        state.sessions().lifetime().as_secs()
    );
    let mut res = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// A form carrying only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&headers, Some(&viewer), &f.csrf) {
        return r;
    }
    if let Some(id) = &viewer.session {
        state.sessions().close(id);
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bounced_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

/// `GET /`: totals, bounces per day by type, top reasons and domains, the latest suppressions.
pub async fn overview(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    match overview_body(&state).await {
        Ok(body) => html(StatusCode::OK, layout("Overview", Some(&viewer), &body)),
        Err(e) => failure(e, Some(&viewer)),
    }
}

async fn overview_body(state: &HttpState) -> Result<String, ApiError> {
    let store = store(state)?;
    let today = Utc::now().date_naive();
    let first = today - Days::days(WINDOW_DAYS - 1);
    let since = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let summary = store.summary().await?;
    let days = store.stats(StatsBy::Day, since, None).await?;
    let reasons = store.stats(StatsBy::Reason, since, None).await?;
    let domains = store.domain_rates(since, 10).await?;
    let recent = store.recent_suppressions(15).await?;

    let suppressed: i64 = summary.suppressed.iter().map(|(_, n)| n).sum();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Overview</h1><section class=\"totals\" aria-label=\"Totals\"><dl>\
         <div><dt>Messages</dt><dd data-figure=\"messages\">{}</dd></div>\
         <div><dt>Bounces</dt><dd data-figure=\"bounces\">{}</dd></div>\
         <div><dt>Recipients</dt><dd data-figure=\"recipients\">{}</dd></div>\
         <div><dt>Suppressed</dt><dd data-figure=\"suppressed\">{}</dd></div>\
         </dl></section>",
        summary.messages, summary.bounces, summary.recipients, suppressed
    );
    let _ = write!(
        b,
        "<section><h2>Bounces per day, last {WINDOW_DAYS} days (UTC)</h2>{}</section>",
        chart(first, today, &days)
    );

    b.push_str("<section><h2>Top reasons</h2>");
    let top: Vec<&StatRow> = reasons.iter().take(10).collect();
    if top.is_empty() {
        b.push_str("<p class=\"empty\">No bounce in this period.</p>");
    } else {
        b.push_str(
            "<div class=\"table-wrap\"><table id=\"top-reasons\"><thead><tr><th>Reason</th>\
             <th class=\"num\">Bounces</th><th class=\"num\">Hard</th><th class=\"num\">Soft</th>\
             <th class=\"num\">Complaints</th><th class=\"num\">Recipients</th></tr></thead><tbody>",
        );
        for r in top {
            let _ = write!(
                b,
                "<tr data-reason=\"{k}\"><td>{k}</td><td class=\"num\" data-bounces=\"{}\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td></tr>",
                r.bounces,
                r.bounces,
                r.hard,
                r.soft,
                r.complaint,
                r.recipients,
                k = esc(&r.key)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");

    b.push_str("<section><h2>Top recipient domains</h2>");
    if domains.is_empty() {
        b.push_str("<p class=\"empty\">No bounce in this period.</p>");
    } else {
        b.push_str(
            "<div class=\"table-wrap\"><table id=\"top-domains\"><thead><tr><th>Domain</th>\
             <th class=\"num\">Failures</th><th class=\"num\">Hard</th><th class=\"num\">Soft</th>\
             <th class=\"num\">Complaints</th><th class=\"num\">Delivered</th>\
             <th class=\"num\">Bounce rate</th></tr></thead><tbody>",
        );
        for d in &domains {
            domain_row(&mut b, d);
        }
        b.push_str(
            "</tbody></table></div><p class=\"hint\">The bounce rate needs delivery notices \
             (DSNs with Action: delivered); without them it shows as –.</p>",
        );
    }
    b.push_str("</section>");

    b.push_str("<section><h2>Latest suppressions</h2>");
    if recent.is_empty() {
        b.push_str("<p class=\"empty\">No address is suppressed.</p>");
    } else {
        b.push_str(
            "<div class=\"table-wrap\"><table id=\"recent-suppressions\"><thead><tr><th>Address</th>\
             <th>Cause</th><th>Why</th><th>Since</th></tr></thead><tbody>",
        );
        for s in &recent {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><time>{}</time></td></tr>",
                recipient_link(&s.address),
                opt(&s.suppressed_type),
                opt(&s.suppressed_why),
                opt_ts(&s.suppressed_at)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");
    Ok(b)
}

fn domain_row(b: &mut String, d: &DomainRate) {
    let rate = d
        .bounce_rate()
        .map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let _ = write!(
        b,
        "<tr data-domain=\"{k}\"><td>{k}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{rate}</td></tr>",
        d.failures,
        d.hard,
        d.soft,
        d.complaint,
        d.delivered,
        k = esc(&d.domain)
    );
}

/// Bounces per day by type as a stacked bar chart in inline SVG, with a table of the same numbers
/// for screen readers and text browsers.
pub fn chart(first: NaiveDate, last: NaiveDate, rows: &[StatRow]) -> String {
    let mut days: Vec<(NaiveDate, [i64; 3])> = Vec::new();
    let mut d = first;
    while d <= last {
        let key = d.format("%Y-%m-%d").to_string();
        let counts = rows
            .iter()
            .find(|r| r.key == key)
            .map_or([0, 0, 0], |r| [r.hard, r.soft, r.complaint]);
        days.push((d, counts));
        d += Days::days(1);
    }
    let n = days.len().max(1) as f64;
    let peak = days
        .iter()
        .map(|(_, c)| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(peak.max(1));
    let (w, h, left, bottom, head) = (720.0_f64, 240.0_f64, 44.0_f64, 26.0_f64, 10.0_f64);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - head;
    let slot = plot_w / n;
    let bar = (slot * 0.75).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"chart\"><svg id=\"bounces-per-day\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-labelledby=\"chart-title\" preserveAspectRatio=\"xMidYMid meet\">\
         <title id=\"chart-title\">Bounces per day by type, {} to {}</title>",
        first.format("%Y-%m-%d"),
        last.format("%Y-%m-%d")
    );
    for i in 0..=4 {
        let v = top * i / 4;
        let y = head + plot_h - plot_h * (v as f64) / (top as f64);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            w - 8.0,
            left - 6.0,
            y + 4.0
        );
    }
    const TYPES: [&str; 3] = ["hard", "soft", "complaint"];
    for (i, (day, counts)) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = head + plot_h;
        let key = day.format("%Y-%m-%d");
        for (t, c) in TYPES.iter().zip(counts) {
            if *c == 0 {
                continue;
            }
            let bh = plot_h * (*c as f64) / (top as f64);
            y -= bh;
            let _ = write!(
                s,
                "<rect class=\"bar {t}\" data-day=\"{key}\" data-type=\"{t}\" data-count=\"{c}\" \
                 x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\">\
                 <title>{key}: {c} {t}</title></rect>"
            );
        }
        let last = i + 1 == days.len();
        if (i % 7 == 0 && days.len() - i > 4) || last {
            let _ = write!(
                s,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                h - 8.0,
                day.format("%m-%d")
            );
        }
    }
    s.push_str(
        "</svg><figcaption class=\"legend\"><span class=\"key hard\"></span>hard \
         <span class=\"key soft\"></span>soft <span class=\"key complaint\"></span>complaint\
         </figcaption></figure>",
    );
    s.push_str(
        "<details><summary>The numbers</summary><div class=\"table-wrap\"><table id=\"per-day\">\
         <thead><tr><th>Day</th><th class=\"num\">Hard</th><th class=\"num\">Soft</th>\
         <th class=\"num\">Complaints</th></tr></thead><tbody>",
    );
    for (day, c) in days.iter().filter(|(_, c)| c.iter().any(|v| *v > 0)) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            day.format("%Y-%m-%d"),
            c[0],
            c[1],
            c[2]
        );
    }
    s.push_str("</tbody></table></div></details>");
    s
}

/// The smallest of 1, 2, 5 times a power of ten, times 4 grid steps, at or above `v`.
fn nice_ceiling(v: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if s.saturating_mul(4) >= v {
                return s.saturating_mul(4);
            }
        }
        if step > i64::MAX / 10 {
            return v;
        }
        step *= 10;
    }
}

/// `?address=` of the recipient page.
#[derive(Deserialize)]
pub struct AddressQuery {
    #[serde(default)]
    address: String,
}

/// `GET /recipient?address=A`: the state, history and bounces of one address.
pub async fn recipient(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<AddressQuery>,
) -> Response {
    let address = q.address.trim().to_owned();
    if address.is_empty() {
        return Redirect::to("/").into_response();
    }
    match recipient_body(&state, &viewer, &address).await {
        Ok(body) => html(StatusCode::OK, layout(&address, Some(&viewer), &body)),
        Err(e) => failure(e, Some(&viewer)),
    }
}

async fn recipient_body(
    state: &HttpState,
    viewer: &Viewer,
    address: &str,
) -> Result<String, ApiError> {
    let store = store(state)?;
    if normalize_address(address).is_none() {
        return Err(ApiError::BadRequest(format!(
            "`{address}` is not an address (expected local@domain)."
        )));
    }
    let Some(report) = api::recipient_report(store, address).await? else {
        return Err(ApiError::NotFound(format!(
            "No recipient {address} in the database."
        )));
    };
    let r = &report.recipient;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1 class=\"address\">{}</h1><section class=\"totals\"><dl>\
         <div><dt>State</dt><dd data-figure=\"state\" class=\"state {st}\">{st}</dd></div>\
         <div><dt>Hard</dt><dd>{}</dd></div><div><dt>Soft</dt><dd>{}</dd></div>\
         <div><dt>Complaints</dt><dd>{}</dd></div><div><dt>Soft score</dt><dd>{}</dd></div>\
         <div><dt>First failure</dt><dd><time>{}</time></dd></div>\
         <div><dt>Latest failure</dt><dd><time>{}</time></dd></div>\
         </dl></section>",
        esc(&r.address),
        r.hard_count,
        r.soft_count,
        r.complaint_count,
        r.soft_score,
        opt_ts(&r.first_bounce_at),
        opt_ts(&r.last_bounce_at),
        st = esc(&r.state)
    );
    if r.state == "suppressed" {
        let _ = write!(
            b,
            "<p class=\"notice\">Suppressed since <time>{}</time> ({}): {}</p>",
            opt_ts(&r.suppressed_at),
            opt(&r.suppressed_type),
            opt(&r.suppressed_why)
        );
    }
    let (action, label) = if r.state == "suppressed" {
        ("/recipient/unsuppress", "Unsuppress")
    } else {
        ("/recipient/suppress", "Suppress")
    };
    let _ = write!(
        b,
        "<form class=\"manual\" method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"address\" value=\"{}\">\
         <label for=\"reason\">Reason</label>\
         <input id=\"reason\" name=\"reason\" maxlength=\"{}\" placeholder=\"kept in the history\">\
         <button type=\"submit\">{label}</button></form>",
        esc(&viewer.csrf),
        esc(&r.address),
        api::MAX_REASON_CHARS
    );

    b.push_str("<section><h2>History</h2>");
    if report.history.is_empty() {
        b.push_str("<p class=\"empty\">No change of state recorded.</p>");
    } else {
        b.push_str(
            "<div class=\"table-wrap\"><table id=\"history\"><thead><tr><th>When</th><th>Change</th>\
             <th>Cause</th><th>Reason</th><th>Diagnostic or note</th></tr></thead><tbody>",
        );
        for e in &report.history {
            let detail = e.diagnostic.as_ref().or(e.note.as_ref());
            let _ = write!(
                b,
                "<tr><td><time>{}</time></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.at.rfc3339(),
                esc(&e.change),
                esc(&e.cause),
                opt(&e.reason),
                esc(detail.map_or("", String::as_str))
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section><section><h2>Latest bounces</h2>");
    if report.bounces.is_empty() {
        b.push_str("<p class=\"empty\">No bounce recorded.</p>");
    } else {
        b.push_str(
            "<div class=\"table-wrap\"><table id=\"bounces\"><thead><tr><th>When</th><th>Type</th>\
             <th>Reason</th><th>Status</th><th>Diagnostic</th><th>Message</th></tr></thead><tbody>",
        );
        for x in &report.bounces {
            let _ = write!(
                b,
                "<tr><td><time>{}</time></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><a href=\"/messages/{id}\">details</a> · \
                 <a class=\"raw\" href=\"/messages/{id}/raw\">raw</a></td></tr>",
                x.at.rfc3339(),
                esc(&x.bounce_type),
                esc(&x.reason),
                opt(&x.status),
                opt(&x.diagnostic),
                id = x.message_id
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");
    Ok(b)
}

/// The fields of the suppress and unsuppress forms.
#[derive(Deserialize)]
pub struct ManualForm {
    #[serde(default)]
    csrf: String,
    address: String,
    reason: Option<String>,
}

async fn manual(
    state: HttpState,
    viewer: Viewer,
    headers: HeaderMap,
    f: ManualForm,
    on: bool,
) -> Response {
    if let Err(r) = check_form(&headers, Some(&viewer), &f.csrf) {
        return r;
    }
    let store = match store(&state) {
        Ok(s) => s,
        Err(e) => return failure(e, Some(&viewer)),
    };
    let actor = Actor(viewer.name.clone());
    let reason = f.reason.as_deref();
    let done = if on {
        api::manual_suppress(store, &actor, &f.address, reason).await
    } else {
        api::manual_unsuppress(store, &actor, &f.address, reason).await
    };
    match done {
        Ok(r) => {
            Redirect::to(&format!("/recipient?address={}", url_param(&r.address))).into_response()
        }
        Err(e) => failure(e, Some(&viewer)),
    }
}

/// `POST /recipient/suppress` from the recipient page.
pub async fn suppress(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(f): Form<ManualForm>,
) -> Response {
    manual(state, viewer, headers, f, true).await
}

/// `POST /recipient/unsuppress` from the recipient page.
pub async fn unsuppress(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(f): Form<ManualForm>,
) -> Response {
    manual(state, viewer, headers, f, false).await
}

/// `GET /messages/{id}`: a stored message's metadata and results.
pub async fn message(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let body = async {
        let store = store(&state)?;
        let id = api::message_id(&id)?;
        let m = store
            .message(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("No message {id}.")))?;
        let results = store.message_bounces(id).await?;
        let mut b = String::new();
        let _ = write!(
            b,
            "<h1>Message {id}</h1><section><dl class=\"meta\">\
             <dt>Source</dt><dd>{}</dd><dt>Received</dt><dd><time>{}</time></dd>\
             <dt>Recorded</dt><dd><time>{}</time></dd><dt>Kind</dt><dd>{}</dd>\
             <dt>Reader</dt><dd>{}</dd><dt>Error</dt><dd>{}</dd>\
             <dt>Original Message-ID</dt><dd>{}</dd><dt>Size</dt><dd>{} bytes</dd>\
             <dt>SHA-256</dt><dd class=\"hash\">{}</dd></dl>\
             <p><a class=\"raw\" href=\"/messages/{id}/raw\">Show the raw message</a></p></section>",
            esc(&m.source),
            m.received_at.rfc3339(),
            m.recorded_at.rfc3339(),
            esc(&m.kind),
            esc(&m.reader),
            opt(&m.error),
            opt(&m.original_message_id),
            m.raw_size,
            esc(&m.sha256)
        );
        b.push_str("<section><h2>Results</h2>");
        if results.is_empty() {
            b.push_str("<p class=\"empty\">No recipient result.</p>");
        } else {
            b.push_str(
                "<div class=\"table-wrap\"><table id=\"results\"><thead><tr><th>Recipient</th>\
                 <th>Type</th><th>Reason</th><th>Status</th><th>Rule</th><th>Diagnostic</th></tr>\
                 </thead><tbody>",
            );
            for x in &results {
                let who = x
                    .recipient
                    .as_deref()
                    .map_or_else(String::new, recipient_link);
                let _ = write!(
                    b,
                    "<tr><td>{who}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&x.bounce_type),
                    esc(&x.reason),
                    opt(&x.status),
                    esc(&x.rule),
                    opt(&x.diagnostic)
                );
            }
            b.push_str("</tbody></table></div>");
        }
        b.push_str("</section>");
        Ok::<_, ApiError>((id, b))
    }
    .await;
    match body {
        Ok((id, b)) => html(
            StatusCode::OK,
            layout(&format!("Message {id}"), Some(&viewer), &b),
        ),
        Err(e) => failure(e, Some(&viewer)),
    }
}

/// `GET /messages/{id}/raw`: the raw message as plain text, never rendered as a page (a sandbox
/// policy and `nosniff` on top of the type).
pub async fn raw(
    State(state): State<HttpState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let bytes = async {
        let store = store(&state)?;
        let id = api::message_id(&id)?;
        store
            .message_raw(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("No message {id}.")))
    }
    .await;
    match bytes {
        Ok(b) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox",
                ),
            ],
            b,
        )
            .into_response(),
        Err(e) => failure(e, Some(&viewer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{0}b"), "a\u{fffd}b");
        assert_eq!(url_param("a+b@x.org"), "a%2Bb@x.org");
        assert_eq!(url_param("\"><"), "%22%3E%3C");
    }

    #[test]
    fn only_local_paths_after_sign_in() {
        assert_eq!(
            safe_next(Some("/recipient?address=a@b")),
            "/recipient?address=a@b"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn chart_draws_one_bar_per_type_and_day() {
        let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let rows = vec![StatRow {
            key: "2026-11-23".into(),
            bounces: 5,
            hard: 3,
            soft: 2,
            complaint: 0,
            none: 0,
            recipients: 4,
        }];
        let svg = chart(first, last, &rows);
        assert!(svg.contains("data-day=\"2026-11-23\" data-type=\"hard\" data-count=\"3\""));
        assert!(svg.contains("data-day=\"2026-11-23\" data-type=\"soft\" data-count=\"2\""));
        assert!(!svg.contains("data-type=\"complaint\""));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("<td>2026-11-23</td><td class=\"num\">3</td>"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1), 4);
        assert_eq!(nice_ceiling(5), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(130), 200);
    }
}
