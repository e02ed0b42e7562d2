//! The exec target: a command run per event, the event's JSON on standard input.
//!
//! Exit status 0 accepts the event; any other status, a signal or the timeout is a failure to
//! retry. The command also gets `BOUNCED_EVENT_ID`, `BOUNCED_EVENT` and `BOUNCED_ADDRESS` in its
//! environment. It runs directly, without a shell.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Attempt;
use crate::config::NotifyConfig;
use crate::store::Due;

/// A configured command.
#[derive(Debug)]
pub(super) struct Exec {
    command: Vec<String>,
    timeout: Duration,
}

impl Exec {
    pub(super) fn new(cfg: &NotifyConfig) -> Exec {
        Exec {
            command: cfg.command.clone(),
            timeout: cfg.timeout.0,
        }
    }

    pub(super) async fn send(&self, due: &Due) -> Attempt {
        let Some((program, args)) = self.command.split_first() else {
            return Attempt::Refused("no command configured".to_owned());
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("BOUNCED_EVENT_ID", &due.id)
            .env("BOUNCED_EVENT", &due.event)
            .env("BOUNCED_ADDRESS", &due.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Attempt::Retry(format!("cannot start {program}: {e}")),
        };
        let body = due.body.clone();
        let mut stdin = child.stdin.take();
        let run = async move {
            if let Some(mut w) = stdin.take() {
                // A command that exits without reading its input is its own business.
                let _ = w.write_all(body.as_bytes()).await;
                let _ = w.shutdown().await;
            }
            child.wait_with_output().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Err(_) => Attempt::Retry(format!(
                "{program} did not finish within {}s",
                self.timeout.as_secs_f64()
            )),
            Ok(Err(e)) => Attempt::Retry(format!("{program}: {e}")),
            Ok(Ok(out)) if out.status.success() => Attempt::Accepted,
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: String = stderr
                    .trim()
                    .chars()
                    .rev()
                    .take(300)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Attempt::Retry(format!("{program} exited with {}: {tail}", out.status))
            }
        }
    }
}
