//! The HTTP server: a JSON API for list managers, Prometheus metrics for monitoring, and a dashboard
//! for people, all over the store's queries.
//!
//! [`serve`] runs on any tokio runtime with a listener, an [`HttpState`] and a shutdown future, so
//! `bounced serve` and the daemon mount the same server. Until [`HttpState::set_store`] is called,
//! `/healthz` answers 503 and every route that needs the database says it is starting.
//!
//! - [`auth`]: named bearer tokens (constant-time), dashboard sessions and CSRF tokens.
//! - [`api`]: `/api/v1/...`, JSON in and out, errors as `{"error", "detail"}`.
//! - [`metrics`]: the Prometheus recorder, database gauges and the pipeline's recorder calls.
//! - [`dashboard`]: server-rendered HTML with an inline SVG chart; no script, nothing external.
//!
//! Every response carries a strict Content-Security-Policy and `nosniff`; bodies and query strings
//! are bounded; CORS headers are sent only for configured origins.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use thiserror::Error;

use crate::config::HttpConfig;
use crate::store::Store;
pub use auth::{Sessions, TokenError, Tokens};
pub use metrics::Metrics;

/// Longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// The policy every page is served under: own stylesheet only, no script, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
pub enum HttpError {
    /// A non-loopback address without a token would serve the suppression list to anyone.
    #[error(
        "refusing to listen on {0} without a token: an address other than loopback needs [http] token_file, token_env or token_credential"
    )]
    Exposed(SocketAddr),
    /// The tokens could not be loaded.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// Listening or serving failed.
    #[error("HTTP server: {0}")]
    Io(std::io::Error),
}

// The cause is in the message, so it is not also given as the error's source (said once).
impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> HttpError {
        HttpError::Io(e)
    }
}

/// What the handlers share: the store (once open), the tokens, sessions and metrics.
#[derive(Clone)]
pub struct HttpState(Arc<Inner>);

struct Inner {
    store: OnceLock<Store>,
    tokens: Tokens,
    sessions: Sessions,
    metrics: Metrics,
    config: HttpConfig,
    /// The CSRF token of the dashboard's forms when no token is configured (no session exists).
    open_csrf: String,
    /// One database scrape at a time, however many scrapers there are.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("ready", &self.0.store.get().is_some())
            .field("tokens", &self.0.tokens)
            .finish()
    }
}

impl HttpState {
    /// A state with no store yet (not ready), the given tokens and metrics.
    pub fn new(config: HttpConfig, tokens: Tokens, metrics: Metrics) -> HttpState {
        HttpState(Arc::new(Inner {
            store: OnceLock::new(),
            sessions: Sessions::new(config.session_lifetime.0),
            tokens,
            metrics,
            config,
            open_csrf: auth::random_hex(),
            scrape: tokio::sync::Mutex::new(()),
        }))
    }

    /// Hands over the open database: from now on the server is ready.
    pub fn set_store(&self, store: Store) {
        let _ = self.0.store.set(store);
    }

    /// The database, once open.
    pub fn store(&self) -> Option<&Store> {
        self.0.store.get()
    }

    /// The metrics the pipeline records into and `/metrics` renders.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The accepted tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    pub(crate) fn config(&self) -> &HttpConfig {
        &self.0.config
    }

    pub(crate) fn open_csrf(&self) -> &str {
        &self.0.open_csrf
    }
}

/// Refuses to expose the server beyond loopback without a token.
pub fn check_exposure(addr: SocketAddr, tokens: &Tokens) -> Result<(), HttpError> {
    if !addr.ip().is_loopback() && tokens.is_empty() {
        return Err(HttpError::Exposed(addr));
    }
    Ok(())
}

/// Longest wait for a request's headers (and for the next request on a kept-alive connection): a
/// client that trickles them in does not hold a connection for ever.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Most connections served at once; past it, new ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Longest wait, after `shutdown`, for the requests in flight (a long export) before closing.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the API, metrics and dashboard on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    check_exposure(listener.local_addr()?, state.tokens())?;
    // Histogram samples pile up until drained into their buckets: drain them even when nobody
    // scrapes, so memory stays flat.
    let metrics = state.metrics().clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    let app = router(state);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up: wait a little, go on.
                    tracing::warn!(error = %e, "HTTP: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    upkeep.abort();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP: requests still running {DRAIN_TIMEOUT:?} after shutdown were cut off"
        );
    }
    Ok(())
}

/// Every route, with authentication, limits, security headers and request metrics.
pub fn router(state: HttpState) -> Router {
    let api = Router::new()
        .route("/recipients/{address}", get(api::recipient))
        .route("/check", get(api::check_one).post(api::check_many))
        .route("/suppressions", get(api::suppressions).post(api::suppress))
        .route("/suppressions/changes", get(api::changes))
        .route("/suppressions/{address}", delete(api::unsuppress))
        .route("/bounces", get(api::bounces))
        .route("/stats", get(api::stats))
        .route("/messages/{id}", get(api::message))
        .route("/messages/{id}/raw", get(api::message_raw))
        .route("/outbox", get(api::outbox))
        .route("/outbox/retry", post(api::outbox_retry))
        .route("/outbox/drop", post(api::outbox_drop))
        .fallback(api::no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ));
    let pages = Router::new()
        .route("/", get(dashboard::overview))
        .route("/recipient", get(dashboard::recipient))
        .route("/recipient/suppress", post(dashboard::suppress))
        .route("/recipient/unsuppress", post(dashboard::unsuppress))
        .route("/messages/{id}", get(dashboard::message))
        .route("/messages/{id}/raw", get(dashboard::raw))
        .route("/logout", post(dashboard::logout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            dashboard::require_viewer,
        ));
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(pages)
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/static/bounced.css", get(dashboard::stylesheet))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_route))
        .fallback(dashboard::not_found)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    if let Some(cors) = cors_layer(state.config()) {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// CORS for the configured origins only; none configured sends no CORS header at all.
fn cors_layer(cfg: &HttpConfig) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = cfg
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::HeaderName::from_static(api::NEXT_AFTER_ID_HEADER)])
            .max_age(Duration::from_secs(600)),
    )
}

/// Whether the Host header names this machine's loopback (`127.0.0.1`, `localhost`, `[::1]`).
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Bounds the query string, keeps a tokenless server to loopback host names (so a web page cannot
/// reach it through DNS rebinding), and adds the security headers to every response.
async fn guard(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    if req.uri().query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return api::ApiError::UriTooLong.into_response();
    }
    if state.tokens().is_empty() && !host_is_loopback(req.headers()) {
        return api::ApiError::Forbidden(
            "without a token this server answers only to a loopback host name (127.0.0.1, localhost)"
                .into(),
        )
        .into_response();
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Counts each request by route pattern and status, and times it.
async fn observe(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let res = next.run(req).await;
    state
        .metrics()
        .http_request(&route, res.status().as_u16(), start.elapsed());
    res
}

/// 200 once the database is open and answers; 503 before.
async fn healthz(State(state): State<HttpState>) -> Response {
    match state.store() {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the database is not open yet\n",
        )
            .into_response(),
        Some(store) => match store.ping().await {
            Ok(()) => (StatusCode::OK, "ok\n").into_response(),
            Err(e) => {
                tracing::warn!(error = %e, "health check: the database does not answer");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database does not answer\n",
                )
                    .into_response()
            }
        },
    }
}

/// The Prometheus text format; the database gauges are read at each scrape.
async fn metrics_route(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if !state.config().metrics_public
        && let Err(e) = api::bearer_actor(&state, &headers)
    {
        return e.into_response();
    }
    if let Some(store) = state.store() {
        let _one = state.0.scrape.lock().await;
        match store.counts().await {
            Ok(c) => state.metrics().set_database(&c),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the database counts");
                state.metrics().error("metrics_scrape");
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_needs_a_token() {
        let none = Tokens::none();
        assert!(check_exposure("127.0.0.1:8025".parse().unwrap(), &none).is_ok());
        assert!(check_exposure("[::1]:8025".parse().unwrap(), &none).is_ok());
        let e = check_exposure("0.0.0.0:8025".parse().unwrap(), &none).unwrap_err();
        assert!(e.to_string().contains("token_file"), "{e}");
        let some = Tokens::parse("ops:0123456789abcdef0123", "t").unwrap();
        assert!(check_exposure("0.0.0.0:8025".parse().unwrap(), &some).is_ok());
    }

    #[test]
    fn loopback_host_names() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            host_is_loopback(&m)
        };
        assert!(h("127.0.0.1:8025"));
        assert!(h("localhost:8025"));
        assert!(h("[::1]:8025"));
        assert!(h("127.0.0.1"));
        assert!(!h("attacker.example:8025"));
        assert!(!h("10.0.0.1:8025"));
        assert!(!host_is_loopback(&HeaderMap::new()));
    }
}
