//! The `bounced` command: parses the command line, starts logging and hands over to [`cli`], the
//! binary's own modules (one per subcommand) over the `bounced` library.
//!
//! Exit codes: 0 success; 1 the run finished but an input was an error or a floor was missed; 2 usage
//! error or a failure that stopped the run.

#[forbid(unsafe_code)]
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `run` starts its own subscriber, in the format its configuration asks for.
    if !matches!(cli.command, cli::Command::Run(_)) {
        cli::init_tracing(cli.verbose);
    }
    // A reader that stops reading (`bounced ... | head`) is a normal end for every command.
    match cli::db::quiet_broken_pipe(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bounced: error: {}", cli::explain(&e));
            ExitCode::from(2)
        }
    }
}

/// Past a file size limit (ulimit -f) a write must fail with EFBIG, to be reported, rather than
/// SIGXFSZ killing the process.
#[allow(unsafe_code)]
fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
