//! The one log subscriber of every command: stderr, human or JSON lines, filtered by a level (from
//! `-v`, the configuration or `RUST_LOG`). Two things hold whatever the filter says: the events of
//! libraries that log protocol bytes (the IMAP client writes the whole `LOGIN` command and the
//! `AUTHENTICATE` response, password included) are never logged, and human lines escape control
//! characters, so a file name or a diagnostic cannot split a line or act on the terminal.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt as tfmt;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use bounced::config::{LogFormat, log_filter};
use bounced::text::printable;

/// Log targets whose events carry protocol bytes, and so may carry credentials: the IMAP client
/// (`async_imap`, which traces every command it sends) and its parser (`imap_proto`).
pub const SECRET_TARGETS: &[&str] = &["async_imap", "imap_proto"];

/// Whether events of `target` are withheld from every log.
pub fn carries_secrets(target: &str) -> bool {
    SECRET_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Drops the events of [`SECRET_TARGETS`], whatever level any directive enables for them. Events
/// bridged from the `log` crate carry their real target in a `log.target` field, checked too.
struct Withhold;

#[derive(Default)]
struct LogTarget(Option<String>);

impl Visit for LogTarget {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "log.target" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S: Subscriber> Layer<S> for Withhold {
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        !carries_secrets(metadata.target())
    }

    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        if carries_secrets(event.metadata().target()) {
            return false;
        }
        let mut target = LogTarget::default();
        event.record(&mut target);
        !target.0.as_deref().is_some_and(carries_secrets)
    }
}

/// The filter of a command: `RUST_LOG` when set and valid (an invalid one is named in a warning),
/// else `default`.
fn filter(default: &str) -> Targets {
    if let Ok(v) = std::env::var("RUST_LOG")
        && !v.trim().is_empty()
    {
        match log_filter(&v) {
            Ok(f) => return f,
            Err(e) => eprintln!(
                "bounced: warning: RUST_LOG=`{}` is not a log filter ({}); using `{default}`",
                printable(&v),
                printable(&e)
            ),
        }
    }
    log_filter(default).unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Starts the subscriber on stderr at `default` (a filter such as `info` or `bounced=debug`) in
/// `format`; `RUST_LOG` overrides the level.
pub fn init(default: &str, format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry()
        .with(Withhold)
        .with(filter(default));
    let _ = match format {
        LogFormat::Json => registry
            .with(tfmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Human => {
            let fields = tfmt::format::debug_fn(|w, field, value| {
                let text = format!("{value:?}");
                let shown = printable(&text);
                if field.name() == "message" {
                    write!(w, "{shown}")
                } else {
                    write!(w, "{field}={shown}")
                }
            })
            .delimited(" ");
            registry
                .with(
                    tfmt::layer()
                        .fmt_fields(fields)
                        .with_ansi(ansi)
                        .with_writer(std::io::stderr),
                )
                .try_init()
        }
    };
}

/// The level of `-v` (debug) and `-vv` (trace), or `otherwise` without the flag.
pub fn level_of(verbose: u8, otherwise: &str) -> String {
    match verbose {
        0 => otherwise.to_owned(),
        1 => "debug".to_owned(),
        _ => "trace".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_targets_are_withheld_and_others_kept() {
        assert!(carries_secrets("async_imap"));
        assert!(carries_secrets("async_imap::imap_stream"));
        assert!(carries_secrets("imap_proto::parser"));
        assert!(!carries_secrets("async_imapx"));
        assert!(!carries_secrets("bounced::source::imap"));
        assert!(!carries_secrets("log"));
    }
}
