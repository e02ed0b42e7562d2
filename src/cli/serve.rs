//! `bounced serve`: the HTTP API, Prometheus metrics and dashboard over a database, with no sources.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::db::DbArgs;
use super::load_config;
use super::run::shutdown_signal;
use bounced::http::{self, HttpState, Metrics, Tokens};
use bounced::store::Store;

/// Serve a bounce database over HTTP: the JSON API under /api/v1, Prometheus metrics at /metrics,
/// the dashboard at /, readiness at /healthz.
///
/// Listens on [http] listen (default 127.0.0.1:8025); an address other than loopback needs a token
/// ([http] token_file, token_env or token_credential). SIGTERM or SIGINT stop it after the requests
/// in flight. Exit codes: 0 clean stop; 2 a configuration, token, database or listening error.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on (overrides [http] listen and BOUNCED_HTTP_LISTEN).
    #[arg(long = "http", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A file of tokens, one a line as name:secret (overrides [http] token_file and
    /// BOUNCED_HTTP_TOKEN_FILE).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Runs `bounced serve` until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = load_config(args.db.config_file.as_deref())?;
    if let Some(db) = &args.db.db {
        cfg.store.path = db.clone();
    }
    if let Some(addr) = args.listen {
        cfg.http.listen = addr;
    }
    if let Some(f) = args.token_file {
        cfg.http.token_file = Some(f);
        cfg.http.token_env = None;
        cfg.http.token_credential = None;
    }
    let tokens = Tokens::load(&cfg.http)?;
    http::check_exposure(cfg.http.listen, &tokens)?;
    if tokens.is_empty() {
        tracing::warn!(
            listen = %cfg.http.listen,
            "no token configured: anyone who can reach this address on this host can use the API and dashboard"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.http.listen))?;
        let addr = listener.local_addr()?;
        let state = HttpState::new(cfg.http.clone(), tokens, Metrics::new());
        // Listening first: /healthz says 503 until the database is open, then 200.
        let server = tokio::spawn(http::serve(listener, state.clone(), shutdown_signal()));
        let store = Store::open(&cfg.store.path, cfg.store_options(false)).await?;
        state.set_store(store.clone());
        tracing::info!(%addr, db = %store.path().display(), "serving");
        eprintln!(
            "bounced: serving {} on http://{addr}/",
            bounced::text::path(store.path())
        );
        let served = server
            .await
            .context("the HTTP server stopped unexpectedly")?;
        store.close().await;
        served?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
