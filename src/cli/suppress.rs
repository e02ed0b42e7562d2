//! `bounced suppress` and `bounced unsuppress`: an operator's decision, recorded in the history.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::Utc;

use super::db::{DbArgs, runtime};
use crate::address::Address;
use crate::store::StoreError;

/// Put an address on the suppression list by hand (it is created when unknown).
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    /// The address.
    pub address: String,
    /// Why, kept in the history and exports.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Take an address off the suppression list. Soft bounces no longer suppress it until a hard bounce
/// or a complaint arrives. Exit code 1 when the address is unknown.
#[derive(Debug, clap::Args)]
pub struct UnsuppressArgs {
    /// The address.
    pub address: String,
    /// Why, kept in the history.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The printed form of an address given on the command line, or an error that says why it is not
/// one.
fn checked(given: &str) -> anyhow::Result<String> {
    match Address::parse(given) {
        Ok(address) => Ok(address.to_string()),
        Err(e) => anyhow::bail!("`{given}` is not an address: {e}"),
    }
}

/// Runs `bounced suppress`.
pub fn run_suppress(args: SuppressArgs) -> anyhow::Result<ExitCode> {
    let address = checked(&args.address)?;
    runtime()?.block_on(async {
        let (store, _) = args.db.open(true).await?;
        let out = store
            .suppress(&address, args.reason.as_deref(), Utc::now())
            .await;
        store.close().await;
        let out = match out {
            Err(StoreError::UnknownRecipient(a)) => {
                anyhow::bail!("`{a}` is not an address (expected local@domain)")
            }
            other => other?,
        };
        let note = if out.changed {
            "suppressed"
        } else {
            "already suppressed"
        };
        writeln!(io::stdout(), "{} {note}", out.address)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `bounced unsuppress`.
pub fn run_unsuppress(args: UnsuppressArgs) -> anyhow::Result<ExitCode> {
    let given = checked(&args.address)?;
    runtime()?.block_on(async {
        let (store, _) = args.db.open(false).await?;
        let address = match store.resolve(&given).await {
            Ok(found) => found.unwrap_or(given),
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        let out = store
            .unsuppress(&address, args.reason.as_deref(), Utc::now())
            .await;
        store.close().await;
        let out = match out {
            Err(StoreError::UnknownRecipient(a)) => {
                eprintln!("bounced: no recipient {a} in the database");
                return Ok(ExitCode::from(1));
            }
            other => other?,
        };
        let note = if out.changed {
            "unsuppressed"
        } else {
            "was not suppressed; override kept"
        };
        writeln!(io::stdout(), "{} {note}", out.address)?;
        Ok(ExitCode::SUCCESS)
    })
}
