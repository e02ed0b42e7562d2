//! A throwaway TLS certificate for the servers the tests start (Dovecot, PostgreSQL, HTTPS
//! targets). Included by `postgres.rs` with a path, so that the benchmarks that borrow that file
//! have it too.

use std::path::Path;
use std::process::{Command, Stdio};

/// Writes a fresh self-signed certificate for `localhost` and 127.0.0.1 (`cert.pem`, `key.pem`)
/// into `dir` with openssl; false when openssl is missing or fails.
pub fn self_signed_cert(dir: &Path) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
