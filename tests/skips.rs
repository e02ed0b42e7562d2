//! A test that cannot run here (a server or tool is missing) must say so in the plain `cargo test`
//! output, not pass silently: the harness captures `eprintln!` unless `--nocapture` is given.

mod common;

use std::process::Command;

#[test]
fn a_skip_is_printed_without_nocapture() {
    if std::env::var_os("BOUNCED_SKIP_PROBE").is_some() {
        common::skipped("probe", "asked to by the outer test");
        return;
    }
    // Run this very test again, in a child, the way `cargo test` runs it: output captured.
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args(["--exact", "a_skip_is_printed_without_nocapture"])
        .env("BOUNCED_SKIP_PROBE", "1")
        .output()
        .expect("run the test binary");
    assert!(out.status.success(), "{out:?}");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("SKIPPED probe: asked to by the outer test"),
        "the skip line is missing from:\n{shown}"
    );
}
