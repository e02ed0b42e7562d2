//! `bounced check-config`: validates a configuration file with its environment overrides, and checks
//! what can be checked without starting: each Maildir's folders, each password source, the rule file,
//! the database folder. Errors name the key (or variable) at fault. Exit 0 when valid, 2 when not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use bounced::Classifier;
use bounced::source::maildir::MaildirSource;

/// Arguments of `bounced check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file to check.
    #[arg(long, value_name = "FILE", env = "BOUNCED_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Checks the configuration and prints a one-line summary on stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(args.config.as_deref())?;
    if let Some(r) = &cfg.daemon.rules {
        Classifier::with_rules_file(r).context("daemon.rules")?;
    }
    for m in &cfg.maildir {
        MaildirSource::new(m).with_context(|| format!("maildir.path of `{}`", m.label()))?;
    }
    for i in &cfg.imap {
        i.password()?;
    }
    for n in &cfg.notify {
        bounced::notify::Notifier::from_config(n)?;
    }
    let db_dir = cfg
        .store
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !db_dir.is_dir() {
        anyhow::bail!(
            "store.path: the folder {} of the database does not exist",
            db_dir.display()
        );
    }
    println!(
        "ok: {} maildir source(s), {} imap source(s), {} notify target(s), database {}",
        cfg.maildir.len(),
        cfg.imap.len(),
        cfg.notify.len(),
        cfg.store.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
