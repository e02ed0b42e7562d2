//! `bounced run`: the daemon. Watches the configured Maildir folders and IMAP mailboxes, records every
//! message in the database and acknowledges it at its source after the commit.
//!
//! With no configuration file, `bounced run --maildir DIR` watches one Maildir and writes
//! `bounced.db` in the working directory. `--config FILE` (or `BOUNCED_CONFIG`) reads everything
//! else; `BOUNCED_...` variables override the file and options override both. SIGTERM or SIGINT
//! drain the pipeline and exit 0. Exit codes: 0 clean stop; 1 the drain overran the grace period;
//! 2 a configuration, token, database, listening or source error.
//!
//! With `--http ADDR` (or an `[http]` section, or `BOUNCED_HTTP_LISTEN`) the daemon also serves the
//! HTTP API, metrics and dashboard of `bounced serve` on the same runtime: listening before the
//! database opens (`/healthz` says 503 until then), `/metrics` showing the pipeline's own record,
//! stopped with the pipeline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use bounced::Classifier;
use bounced::config::{Config, LogFormat, MaildirConfig};
use bounced::daemon::{self, DaemonError, Progress, Settings, Sources};
use bounced::http::{self, HttpState, Tokens};
use bounced::source::maildir::MaildirSource;
use bounced::store::Store;
use bounced::text;
use tokio_util::sync::CancellationToken;

/// Arguments of `bounced run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML); without it, only the options below are used.
    #[arg(long, value_name = "FILE", env = "BOUNCED_CONFIG")]
    pub config: Option<PathBuf>,
    /// A Maildir to watch (the folder holding new/, cur/, tmp/); may be given several times.
    #[arg(long, value_name = "DIR")]
    pub maildir: Vec<PathBuf>,
    /// The database: a SQLite file or a `postgres://` URL (overrides `store.path` and BOUNCED_DB).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Log format: human or json (overrides `logging.format`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Also serve the HTTP API, metrics and dashboard on this address and port (overrides
    /// `[http] listen` and BOUNCED_HTTP_LISTEN); tokens come from `[http]`.
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
}

/// Everything `run` needs, checked: the configuration with the options applied and every path made
/// absolute, the classifier, each IMAP password read, each Maildir's layout checked. `check-config`
/// builds the same, so it fails exactly where `run` would fail to start.
pub struct Plan {
    /// The configuration, paths absolute.
    pub cfg: Config,
    /// The classifier (with `daemon.rules` merged in).
    pub classifier: Classifier,
    /// The sources, passwords read.
    pub sources: Sources,
    /// The HTTP tokens, read and checked against the listening address, when the API is served.
    pub tokens: Option<Tokens>,
}

impl Plan {
    /// The one line that says what the daemon is about to do: database, rules, each source.
    pub fn describe(&self) -> String {
        let cfg = &self.cfg;
        let mut parts = vec![format!(
            "database {}",
            bounced::store::Location::shown(&cfg.store.path)
        )];
        if let Some(r) = &cfg.daemon.rules {
            parts.push(format!("rules {}", text::path(r)));
        }
        for m in &cfg.maildir {
            let mut s = format!("maildir {}", text::path(&m.path));
            if m.name.is_some() {
                s.push_str(&format!(" ({})", text::printable(&m.label())));
            }
            parts.push(s);
        }
        for i in &cfg.imap {
            parts.push(format!(
                "imap {} ({}@{}:{} {})",
                text::printable(&i.name),
                text::printable(&i.username),
                text::printable(&i.host),
                i.port(),
                text::printable(&i.mailbox)
            ));
        }
        if self.tokens.is_some() {
            parts.push(format!("http {}", cfg.http.listen));
        }
        parts.join("; ")
    }
}

/// Builds and checks what `run` starts from: `config` (else the defaults and the environment),
/// then the options; fails on anything that would stop `run` at start.
pub fn prepare(
    config: Option<&Path>,
    maildirs: Vec<PathBuf>,
    db: Option<PathBuf>,
    log_format: Option<&str>,
    http_listen: Option<SocketAddr>,
) -> anyhow::Result<Plan> {
    let mut cfg = super::load_config(config)?;
    if let Some(db) = db {
        cfg.store.path = db;
    }
    match log_format {
        None => {}
        Some("json") => cfg.logging.format = LogFormat::Json,
        Some("human") => cfg.logging.format = LogFormat::Human,
        Some(other) => anyhow::bail!("--log-format must be human or json, not `{other}`"),
    }
    for dir in maildirs {
        cfg.maildir.push(MaildirConfig::at(dir));
    }
    if let Some(addr) = http_listen {
        cfg.http.listen = addr;
        cfg.http.requested = true;
    }
    cfg.resolve_paths()
        .context("cannot resolve the configured paths against the working directory")?;
    if cfg.maildir.is_empty() && cfg.imap.is_empty() {
        anyhow::bail!(
            "nothing to watch: pass --maildir DIR, or --config FILE with [[maildir]] or [[imap]] sections"
        );
    }
    let tokens = if cfg.http.requested {
        let tokens = Tokens::load(&cfg.http)?;
        http::check_exposure(cfg.http.listen, &tokens)?;
        Some(tokens)
    } else {
        None
    };
    let classifier = match &cfg.daemon.rules {
        Some(p) => Classifier::with_rules_file(p).context("daemon.rules")?,
        None => Classifier::new(),
    };
    for m in &cfg.maildir {
        MaildirSource::new(m)
            .with_context(|| format!("maildir.path of `{}`", text::printable(&m.label())))?;
    }
    let mut imaps = Vec::new();
    for i in &cfg.imap {
        imaps.push((i.clone(), i.password()?));
    }
    let location = bounced::store::Location::parse(cfg.store.path.as_os_str());
    let db_dir = match &location {
        bounced::store::Location::Sqlite(file) => file.parent().unwrap_or(Path::new("/")),
        bounced::store::Location::Postgres(_) => Path::new("/"),
    };
    if !db_dir.is_dir() {
        anyhow::bail!(
            "store.path: the folder {} of the database does not exist",
            text::path(db_dir)
        );
    }
    let mut notify = Vec::new();
    for n in &cfg.notify {
        notify.push(bounced::notify::Notifier::from_config(n)?);
    }
    let sources = Sources {
        maildirs: cfg.maildir.clone(),
        imaps,
        notify,
    };
    Ok(Plan {
        cfg,
        classifier,
        sources,
        tokens,
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: Args, verbose: u8) -> anyhow::Result<ExitCode> {
    let Plan {
        cfg,
        classifier,
        sources,
        tokens,
    } = {
        let plan = prepare(
            args.config.as_deref(),
            args.maildir,
            args.db,
            args.log_format.as_deref(),
            args.http,
        )?;
        super::logging::init(
            &super::logging::level_of(verbose, &plan.cfg.logging.level),
            plan.cfg.logging.format,
        );
        tracing::info!("starting: {}", plan.describe());
        if plan.tokens.as_ref().is_some_and(Tokens::is_empty) {
            tracing::warn!(
                listen = %plan.cfg.http.listen,
                "no token configured: anyone who can reach this address on this host can use the API and dashboard"
            );
        }
        plan
    };
    crate::ignore_sigxfsz();

    let settings = Settings::from_config(&cfg.daemon);

    let rt = tokio::runtime::Builder::new_multi_thread()
        // Workers, acknowledgements and listing are the only blocking work: a small pool keeps
        // memory (one malloc arena per thread) bounded.
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        // One stop for the pipeline and the HTTP server: a signal, or the pipeline ending.
        let stop = CancellationToken::new();
        let on_signal = {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            })
        };
        let progress = Progress::default();
        // Listening first: /healthz says 503 until the database is open.
        let (state, mut server) = match tokens {
            None => (None, None),
            Some(tokens) => {
                let listener = tokio::net::TcpListener::bind(cfg.http.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", cfg.http.listen))?;
                let addr = listener.local_addr()?;
                let state = HttpState::new(
                    cfg.http.clone(),
                    tokens,
                    http::Metrics::with_pipeline(progress.clone()),
                );
                let server = tokio::spawn(http::serve(
                    listener,
                    state.clone(),
                    stop.clone().cancelled_owned(),
                ));
                tracing::info!(url = %format!("http://{addr}/"), "HTTP: listening");
                (Some(state), Some(server))
            }
        };
        let opened = Store::open(&cfg.store.path, cfg.store_options(true)).await;
        let r = match opened {
            Err(e) => Err(e.into()),
            Ok(store) => {
                tracing::info!(db = %text::path(store.path()), "database open");
                if let Some(state) = &state {
                    state.set_store(store.clone());
                }
                let r = daemon::run_observed(
                    settings,
                    store.clone(),
                    Arc::new(classifier),
                    sources,
                    stop.clone().cancelled_owned(),
                    || {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                    },
                    progress,
                )
                .await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                // Requests still in flight end before the database closes.
                stop.cancel();
                stop_server(server.take()).await;
                store.close().await;
                r
            }
        };
        stop.cancel();
        stop_server(server).await;
        on_signal.abort();
        anyhow::Ok(r)
    })?;
    // After an overrun grace period some tasks may still be blocked: do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(DaemonError::GraceExpired(g)) => {
            tracing::error!(grace = ?g, "shutdown overran the grace period");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits for the HTTP server to finish its requests after the stop.
async fn stop_server(server: Option<tokio::task::JoinHandle<Result<(), http::HttpError>>>) {
    if let Some(server) = server
        && let Ok(Err(e)) = server.await
    {
        tracing::warn!(error = %e, "HTTP server");
    }
}

/// Completes on SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
