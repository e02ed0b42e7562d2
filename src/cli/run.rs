//! `bounced run`: the daemon. Watches the configured Maildir folders and IMAP mailboxes, records every
//! message in the database and acknowledges it at its source after the commit.
//!
//! With no configuration file, `bounced run --maildir DIR` watches one Maildir and writes
//! `bounced.db` in the working directory. `--config FILE` (or `BOUNCED_CONFIG`) reads everything
//! else; `BOUNCED_...` variables override the file and options override both. SIGTERM or SIGINT
//! drain the pipeline and exit 0. Exit codes: 0 clean stop; 1 the drain overran the grace period;
//! 2 a configuration, database or source error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use bounced::Classifier;
use bounced::config::{Config, LogFormat, MaildirConfig};
use bounced::daemon::{self, DaemonError, Settings, Sources};
use bounced::store::Store;

/// Arguments of `bounced run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML); without it, only the options below are used.
    #[arg(long, value_name = "FILE", env = "BOUNCED_CONFIG")]
    pub config: Option<PathBuf>,
    /// A Maildir to watch (the folder holding new/, cur/, tmp/); may be given several times.
    #[arg(long, value_name = "DIR")]
    pub maildir: Vec<PathBuf>,
    /// The database file (overrides `store.path` and BOUNCED_DB).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Log format: human or json (overrides `logging.format`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// Starts the log subscriber on stderr in the configured format.
fn init_logging(cfg: &Config, verbose: u8) {
    let level = match verbose {
        0 => cfg.logging.level.clone(),
        1 => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cfg.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: Args, verbose: u8) -> anyhow::Result<ExitCode> {
    let mut cfg = super::load_config(args.config.as_deref())?;
    if let Some(db) = args.db {
        cfg.store.path = db;
    }
    match args.log_format.as_deref() {
        None => {}
        Some("json") => cfg.logging.format = LogFormat::Json,
        Some("human") => cfg.logging.format = LogFormat::Human,
        Some(other) => anyhow::bail!("--log-format must be human or json, not `{other}`"),
    }
    for dir in args.maildir {
        cfg.maildir.push(MaildirConfig::at(dir));
    }
    if cfg.maildir.is_empty() && cfg.imap.is_empty() {
        anyhow::bail!(
            "nothing to watch: pass --maildir DIR, or --config FILE with [[maildir]] or [[imap]] sections"
        );
    }
    init_logging(&cfg, verbose);
    crate::ignore_sigxfsz();

    let classifier = match &cfg.daemon.rules {
        Some(p) => Classifier::with_rules_file(p)?,
        None => Classifier::new(),
    };
    let mut imaps = Vec::new();
    for i in &cfg.imap {
        imaps.push((i.clone(), i.password()?));
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
    let settings = Settings::from_config(&cfg.daemon);

    let rt = tokio::runtime::Builder::new_multi_thread()
        // Workers, acknowledgements and listing are the only blocking work: a small pool keeps
        // memory (one malloc arena per thread) bounded.
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let store = Store::open(&cfg.store.path, cfg.store_options(true)).await?;
        tracing::info!(db = %store.path().display(), "database open");
        let r = daemon::run(
            settings,
            store.clone(),
            Arc::new(classifier),
            sources,
            shutdown_signal(),
            || {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            },
        )
        .await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        store.close().await;
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
