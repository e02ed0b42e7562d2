//! `bounced check-config`: checks a configuration file with its environment overrides exactly as
//! `bounced run` does before it starts (one function, [`super::run::prepare`]): every key, the log
//! level, a source to watch, each Maildir's folders, each password source, each notify target's
//! secret or credentials file, the rule file, the database folder. Errors name the key (or variable) at fault. Exit 0 when `run` would start, 2
//! when it would not.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bounced check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file to check.
    #[arg(long, value_name = "FILE", env = "BOUNCED_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Checks the configuration and prints a one-line summary on stdout, with the paths resolved.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = super::run::prepare(args.config.as_deref(), Vec::new(), None, None, None)?;
    println!(
        "ok: {} maildir source(s), {} imap source(s), {} notify target(s): {}",
        plan.cfg.maildir.len(),
        plan.cfg.imap.len(),
        plan.cfg.notify.len(),
        plan.describe()
    );
    Ok(ExitCode::SUCCESS)
}
