//! `bounced suppress` and `bounced unsuppress`: an operator's decision, recorded in the history.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use chrono::Utc;

use super::db::{DbArgs, OutputFormat, runtime, stdout_for};
use bounced::address::Address;
use bounced::policy::Manual;
use bounced::store::{Store, StoreError};

/// The words kept when the operator gives no `--reason`.
const DEFAULT_SUPPRESS_REASON: &str = "suppressed by the operator";
const DEFAULT_UNSUPPRESS_REASON: &str = "unsuppressed by the operator";

/// Put addresses on the suppression list by hand (unknown ones are created). Each address is
/// reported on its own line; exit code 1 when any was refused (not an address).
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    /// The addresses; `-` reads them from standard input, one a line (blank lines and lines
    /// starting with `#` are skipped, and ` #` starts a comment).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// Why, kept in the history and exports [default: "suppressed by the operator"].
    #[arg(long)]
    pub reason: Option<String>,
    /// Write nothing: print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Take addresses off the suppression list. Soft bounces no longer suppress them until a hard
/// bounce or a complaint arrives. Each address is reported on its own line; exit code 1 when any
/// was refused (not an address, or not in the database).
#[derive(Debug, clap::Args)]
pub struct UnsuppressArgs {
    /// The addresses; `-` reads them from standard input, as for `suppress`.
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// Why, kept in the history [default: "unsuppressed by the operator"].
    #[arg(long)]
    pub reason: Option<String>,
    /// Write nothing: print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The address on one line of operator input, or `None` for a blank or comment line.
fn address_of_line(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .char_indices()
        .find(|&(i, c)| {
            c.is_whitespace()
                && line
                    .get(i..)
                    .is_some_and(|r| r.trim_start().starts_with('#'))
        })
        .map_or(line.len(), |(i, _)| i);
    line.get(..end).map(str::trim).filter(|a| !a.is_empty())
}

/// The addresses of the command line, with `-` replaced by those read from standard input.
fn addresses(args: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in args {
        if a == "-" {
            for line in io::stdin().lock().lines() {
                let line = line?;
                if let Some(address) = address_of_line(&line) {
                    out.push(address.to_owned());
                }
            }
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Applies one decision to every address, reporting each; exit code 1 when any was refused.
async fn decide_all(
    store: &Store,
    decision: Manual,
    addresses: &[String],
    reason: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    // Operator input and stored addresses alike reach the terminal escaped.
    let mut out = stdout_for(OutputFormat::Table);
    let mut refused = 0usize;
    let now = Utc::now();
    for given in addresses {
        // The one address parser decides what is a mailbox, and says why when it is not.
        let input = match Address::parse(given) {
            Ok(a) => a.to_string(),
            Err(e) => {
                refused += 1;
                writeln!(out, "{given} refused: not an email address: {e}")?;
                continue;
            }
        };
        let input = &input;
        // The stored form of the address (a different case of its local part) when one is known.
        let address = match decision {
            Manual::Unsuppressed => store.resolve(input).await?.unwrap_or_else(|| input.clone()),
            Manual::Suppressed => input.clone(),
        };
        let outcome = store
            .decide(&address, decision, Some(reason), now, dry_run)
            .await;
        let o = match outcome {
            Ok(o) => o,
            Err(StoreError::InvalidAddress(a)) => {
                refused += 1;
                writeln!(
                    out,
                    "{a} refused: not an email address (expected local-part@domain)"
                )?;
                continue;
            }
            Err(StoreError::UnknownRecipient(a)) => {
                refused += 1;
                writeln!(out, "{a} refused: not in the database")?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let what = match (decision, o.changed, o.recorded, dry_run) {
            (Manual::Suppressed, true, _, false) => "suppressed",
            (Manual::Suppressed, true, _, true) => "would be suppressed",
            (Manual::Suppressed, false, true, false) => {
                "already suppressed; the manual suppression is recorded"
            }
            (Manual::Suppressed, false, true, true) => {
                "already suppressed; a manual suppression would be recorded"
            }
            (Manual::Suppressed, false, false, _) => "already suppressed by hand; nothing to do",
            (Manual::Unsuppressed, true, _, false) => "unsuppressed",
            (Manual::Unsuppressed, true, _, true) => "would be unsuppressed",
            (Manual::Unsuppressed, false, true, false) => {
                "was not suppressed; soft bounces will no longer suppress it"
            }
            (Manual::Unsuppressed, false, true, true) => {
                "is not suppressed; soft bounces would no longer suppress it"
            }
            (Manual::Unsuppressed, false, false, _) => {
                "already unsuppressed by hand; nothing to do"
            }
        };
        writeln!(out, "{} {what}", o.address)?;
    }
    out.flush()?;
    if refused > 0 {
        eprintln!(
            "bounced: {refused} of {} addresses refused",
            addresses.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `bounced suppress`.
pub fn run_suppress(args: SuppressArgs) -> anyhow::Result<ExitCode> {
    let list = addresses(&args.addresses)?;
    runtime()?.block_on(async {
        let (store, _) = args.db.open(!args.dry_run).await?;
        let reason = args.reason.as_deref().unwrap_or(DEFAULT_SUPPRESS_REASON);
        let code = decide_all(&store, Manual::Suppressed, &list, reason, args.dry_run).await;
        store.close().await;
        code
    })
}

/// Runs `bounced unsuppress`.
pub fn run_unsuppress(args: UnsuppressArgs) -> anyhow::Result<ExitCode> {
    let list = addresses(&args.addresses)?;
    runtime()?.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let reason = args.reason.as_deref().unwrap_or(DEFAULT_UNSUPPRESS_REASON);
        let code = decide_all(&store, Manual::Unsuppressed, &list, reason, args.dry_run).await;
        store.close().await;
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_operator_input() {
        assert_eq!(
            address_of_line("  ann@example.com  "),
            Some("ann@example.com")
        );
        assert_eq!(address_of_line("# a comment"), None);
        assert_eq!(address_of_line("   "), None);
        assert_eq!(
            address_of_line("bob@example.com   # asked by phone"),
            Some("bob@example.com")
        );
        assert_eq!(address_of_line("a#b@example.com"), Some("a#b@example.com"));
    }
}
