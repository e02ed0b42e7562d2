//! Who may use the server: named bearer tokens compared in constant time, and the dashboard's
//! sign-in sessions (an `HttpOnly`, `SameSite=Strict` cookie, with a CSRF token for its forms).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::HttpConfig;

/// The name given to a token written without one.
pub const DEFAULT_TOKEN_NAME: &str = "api";

/// The shortest secret accepted: a guessable token is no protection.
pub const MIN_SECRET_LEN: usize = 16;

/// Why the tokens could not be loaded. Never carries a secret.
#[derive(Debug, Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the token file {path}: {cause}")]
    File {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The environment variable is unset or empty.
    #[error("http.token_env: environment variable {0} is unset or empty")]
    Env(String),
    /// A credential was asked for outside systemd.
    #[error("http.token_credential needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")]
    NoCredentials,
    /// The source holds no token.
    #[error("{0} holds no token (one a line: name:secret, or a bare secret)")]
    Empty(String),
    /// A secret is too short.
    #[error(
        "{origin}, line {line}: the secret is shorter than {MIN_SECRET_LEN} characters (make one with `openssl rand -hex 32`)"
    )]
    Weak { origin: String, line: usize },
    /// Two tokens share a name, so the actor of a change would be ambiguous.
    #[error("{origin}: the token name `{name}` is used twice")]
    Duplicate { origin: String, name: String },
}

/// One accepted token: its name (the actor recorded for manual changes) and the SHA-256 of its secret.
struct Token {
    name: String,
    digest: [u8; 32],
}

/// The accepted tokens; empty means the server is open (allowed on loopback only).
#[derive(Default)]
pub struct Tokens(Vec<Token>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|t| t.name.as_str()).collect();
        write!(f, "Tokens({names:?})")
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Equality of two digests in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Tokens {
    /// No token: every request is let through (loopback only).
    pub fn none() -> Tokens {
        Tokens(Vec::new())
    }

    /// Parses tokens, one a line: `name:secret` or a bare secret; blank lines and `#` comments
    /// are skipped. `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, secret) = match line.split_once(':') {
                Some((n, s)) if is_name(n) => (n, s),
                _ => (DEFAULT_TOKEN_NAME, line),
            };
            if secret.chars().count() < MIN_SECRET_LEN {
                return Err(TokenError::Weak {
                    origin: origin.to_owned(),
                    line: i + 1,
                });
            }
            if tokens.iter().any(|t: &Token| t.name == name) {
                return Err(TokenError::Duplicate {
                    origin: origin.to_owned(),
                    name: name.to_owned(),
                });
            }
            tokens.push(Token {
                name: name.to_owned(),
                digest: digest(secret.as_bytes()),
            });
        }
        if tokens.is_empty() {
            return Err(TokenError::Empty(origin.to_owned()));
        }
        Ok(Tokens(tokens))
    }

    /// Loads the tokens `[http]` names (`token_file`, `token_env` or `token_credential`); none
    /// configured gives [`Tokens::none`].
    pub fn load(cfg: &HttpConfig) -> Result<Tokens, TokenError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .map_err(|cause| TokenError::File {
                    path: path.clone(),
                    cause,
                })
                .and_then(|t| Tokens::parse(&t, &path.display().to_string()))
        };
        if let Some(path) = &cfg.token_file {
            return read(path.clone());
        }
        if let Some(var) = &cfg.token_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Tokens::parse(&v, &format!("${var}")),
                _ => Err(TokenError::Env(var.clone())),
            };
        }
        if let Some(name) = &cfg.token_credential {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or(TokenError::NoCredentials)?;
            return read(PathBuf::from(dir).join(name));
        }
        Ok(Tokens::none())
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of the token whose secret is `presented`. Every token is compared, each in
    /// constant time, so the answer's timing tells nothing about any secret.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let d = digest(presented.as_bytes());
        let mut found = None;
        for t in &self.0 {
            if same(&d, &t.digest) && found.is_none() {
                found = Some(t.name.as_str());
            }
        }
        found
    }
}

/// A signed-in dashboard user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token name the user signed in with.
    pub name: String,
    /// The token the page's forms must send back.
    pub csrf: String,
    expires: Instant,
}

/// Dashboard sessions, kept in memory (a restart signs everyone out).
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
}

/// Most sessions kept at once; the oldest go first beyond this.
const MAX_SESSIONS: usize = 10_000;

/// 32 random bytes from the operating system, as hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The kernel's generator does not fail on Linux once booted; a failure leaves a value that
    // matches no session, so nobody signs in rather than anyone.
    if getrandom::getrandom(&mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    /// Sessions that last `lifetime`.
    pub fn new(lifetime: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// Opens a session for the token `name`; returns its id (the cookie value), or `None` when no
    /// random id could be made.
    pub fn open(&self, name: &str) -> Option<String> {
        let id = random_hex();
        let csrf = random_hex();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                name: name.to_owned(),
                csrf,
                expires: now + self.lifetime,
            },
        );
        Some(id)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        if id.len() != 64 {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// Constant-time equality of two strings (CSRF tokens).
pub fn same_str(a: &str, b: &str) -> bool {
    !a.is_empty() && same(&digest(a.as_bytes()), &digest(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_bare_tokens() {
        let t = Tokens::parse(
            "# comment\nalice:0123456789abcdef0123\n\nfedcba9876543210fedcba\n",
            "f",
        )
        .unwrap();
        assert_eq!(t.check("0123456789abcdef0123"), Some("alice"));
        assert_eq!(t.check("fedcba9876543210fedcba"), Some(DEFAULT_TOKEN_NAME));
        assert_eq!(t.check("0123456789abcdef012"), None);
        assert_eq!(t.check(""), None);
        // A colon in a bare secret whose first part is not a name keeps the whole line.
        let t = Tokens::parse("a b:0123456789abcdef", "f").unwrap();
        assert_eq!(t.check("a b:0123456789abcdef"), Some(DEFAULT_TOKEN_NAME));
    }

    #[test]
    fn weak_empty_and_duplicate_tokens_are_refused() {
        assert!(matches!(
            Tokens::parse("bob:short", "f"),
            Err(TokenError::Weak { line: 1, .. })
        ));
        assert!(matches!(
            Tokens::parse("# nothing\n", "f"),
            Err(TokenError::Empty(_))
        ));
        assert!(matches!(
            Tokens::parse("a:0123456789abcdef\na:fedcba9876543210\n", "f"),
            Err(TokenError::Duplicate { .. })
        ));
        let e = Tokens::parse("x:short-secret", "f")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("short-secret"), "{e}");
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.open("alice").unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.name, "alice");
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        s.close(&id);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::ZERO);
        let id = short.open("bob").unwrap();
        assert!(short.get(&id).is_none());
    }

    #[test]
    fn csrf_comparison() {
        assert!(same_str("abc", "abc"));
        assert!(!same_str("abc", "abd"));
        assert!(!same_str("", ""));
    }
}
