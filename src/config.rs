//! `bounced.toml`: serde structs, defaults and validation. Every error names the key at fault.
//!
//! This holds the `[store]` and `[policy]` sections; unknown keys are refused so that a typo is an
//! error rather than a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use thiserror::Error;
use tracing_subscriber::filter::Targets;

use crate::policy::Policy;
use crate::store::StoreOptions;

/// Why a configuration file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("configuration {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value is out of range; `key` is its dotted name.
    #[error("configuration {path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// A length of time written as a number and a unit: `90s`, `30m`, `36h`, `7d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h`, `d` or `w`.
    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{s}` has no unit (use s, m, h, d or w, as in \"7d\")"))?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` does not start with a number"))?;
        if unit.trim() == "ms" {
            return Ok(HumanDuration(Duration::from_millis(n)));
        }
        let secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{s}` (use s, m, h, d or w)"
                ));
            }
        };
        n.checked_mul(secs)
            .map(|s| HumanDuration(Duration::from_secs(s)))
            .ok_or_else(|| format!("`{s}` is too long"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where and how results are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// When an address is suppressed.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How `bounced run` batches, sizes and stops its pipeline.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Log output of `bounced run`.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Maildir folders `bounced run` watches (`[[maildir]]`, any number).
    #[serde(default)]
    pub maildir: Vec<MaildirConfig>,
    /// IMAP mailboxes `bounced run` reads (`[[imap]]`, any number).
    #[serde(default)]
    pub imap: Vec<ImapConfig>,
    /// The HTTP API, metrics and dashboard.
    #[serde(default)]
    pub http: HttpConfig,
    /// What a bounce must show before it may change a recipient's state.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Targets that receive outbox events (`[[notify]]`, any number).
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// Deprecated keys met while loading, as sentences to show the user (not a configuration key).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[store]`: the bounce database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database: a SQLite file (relative paths are relative to the working directory), or a
    /// `sqlite://` or `postgres://` URL. `--db` and `BOUNCED_DB` override it.
    pub path: PathBuf,
    /// The database as a URL (`sqlite://PATH` or `postgres://user@host[:port]/db`); when set it
    /// takes the place of `path`.
    pub url: Option<String>,
    /// A file whose first line is the PostgreSQL password (`BOUNCED_DB_PASSWORD_FILE`); without it
    /// `PGPASSWORD` or `~/.pgpass` are read, as libpq does. Never put the password in the URL of a
    /// shared configuration file.
    pub password_file: Option<PathBuf>,
    /// How long a write waits for another writer before failing as "locked".
    pub busy_timeout: HumanDuration,
    /// Deprecated: the one batch setting is `daemon.batch_size`, which `run` and `import` share.
    /// When the file sets this key and not that one, its value is used there, with a warning.
    pub batch_size: Option<usize>,
    /// The permission bits of a new database file (`"0640"`: the owner writes, the folder's group
    /// reads); an existing file keeps its own.
    pub mode: FileMode,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("bounced.db"),
            url: None,
            password_file: None,
            busy_timeout: HumanDuration(Duration::from_secs(5)),
            batch_size: None,
            mode: FileMode(crate::store::DEFAULT_MODE),
        }
    }
}

/// Permission bits written in octal: `"0640"` (a string) or `0o640` (a TOML octal integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Octal;
        impl serde::de::Visitor<'_> for Octal {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal file mode such as \"0640\"")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<FileMode, E> {
                u32::try_from(n)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("{n} is not a file mode")))
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<FileMode, E> {
                let digits = t.trim().trim_start_matches("0o");
                u32::from_str_radix(digits, 8).map(FileMode).map_err(|_| {
                    E::custom(format!(
                        "`{t}` is not an octal file mode (write it as \"0640\")"
                    ))
                })
            }
        }
        d.deserialize_any(Octal)
    }
}

/// `[policy]`: the suppression rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Counted soft bounces (at most one per address per UTC day) that suppress an address.
    pub soft_threshold: u32,
    /// The soft score restarts when the last counted soft bounce is older than this.
    pub soft_stale_after: HumanDuration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            soft_threshold: 5,
            soft_stale_after: HumanDuration(Duration::from_secs(7 * 86_400)),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if let Some(n) = cfg.store.batch_size {
            let daemon_set = toml::from_str::<toml::Table>(text).is_ok_and(|t| {
                t.get("daemon")
                    .and_then(toml::Value::as_table)
                    .is_some_and(|d| d.contains_key("batch_size"))
            });
            if daemon_set {
                cfg.warnings.push(format!(
                    "{}: store.batch_size is deprecated and ignored, as daemon.batch_size is set (it serves run and import alike)",
                    path.display()
                ));
            } else {
                cfg.daemon.batch_size = n;
                cfg.warnings.push(format!(
                    "{}: store.batch_size is deprecated: rename it daemon.batch_size (it serves run and import alike)",
                    path.display()
                ));
            }
        }
        if let Some(url) = cfg.store.url.take() {
            cfg.store.path = PathBuf::from(url);
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem: problem.to_owned(),
        };
        if self.store.path.as_os_str().is_empty() {
            return Err(invalid("store.path", "must not be empty"));
        }
        if self.store.batch_size.is_some_and(|n| n == 0 || n > 100_000) {
            return Err(invalid("store.batch_size", "must be between 1 and 100000"));
        }
        if self.store.busy_timeout.0 > Duration::from_secs(3_600) {
            return Err(invalid("store.busy_timeout", "must be at most 1h"));
        }
        let mode = self.store.mode.0;
        if mode > 0o777 || mode & 0o600 != 0o600 || mode & 0o113 != 0 {
            return Err(invalid(
                "store.mode",
                "must be an octal mode such as \"0640\" that lets the owner read and write, \
                 with no execute bits and not writable by others",
            ));
        }
        if self.policy.soft_threshold == 0 {
            return Err(invalid("policy.soft_threshold", "must be at least 1"));
        }
        if self.policy.soft_stale_after.0 < Duration::from_secs(86_400) {
            return Err(invalid(
                "policy.soft_stale_after",
                "must be at least 1d (soft bounces count at most once a day)",
            ));
        }
        if self.policy.soft_stale_after.0 > Duration::from_secs(3_650 * 86_400) {
            return Err(invalid("policy.soft_stale_after", "must be at most 3650d"));
        }
        if !self.trust.campaigns.is_empty() && !self.trust.listmonk_campaign {
            return Err(invalid(
                "trust.campaigns",
                "applies only with trust.listmonk_campaign = true",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for n in &self.notify {
            if !names.insert(n.name.as_str()) {
                return Err(invalid(
                    "notify.name",
                    &format!("`{}` is used twice", n.name),
                ));
            }
        }
        self.http
            .validate()
            .and_then(|()| self.validate_daemon())
            .and_then(|()| self.notify.iter().try_for_each(NotifyConfig::validate))
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                problem,
            })
    }

    /// Makes every path of the configuration absolute against the working directory now (the
    /// database, the rule file, each Maildir, password and CA files, the token file), so that what
    /// was named relative means the same folder for the whole run and in every log line.
    pub fn resolve_paths(&mut self) -> std::io::Result<()> {
        fn abs(p: &mut PathBuf) -> std::io::Result<()> {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = std::path::absolute(&*p)?;
            }
            Ok(())
        }
        if let crate::store::Location::Sqlite(file) =
            crate::store::Location::parse(self.store.path.as_os_str())
        {
            self.store.path = file;
            abs(&mut self.store.path)?;
        }
        if let Some(p) = &mut self.store.password_file {
            abs(p)?;
        }
        if let Some(r) = &mut self.daemon.rules {
            abs(r)?;
        }
        for m in &mut self.maildir {
            abs(&mut m.path)?;
        }
        for i in &mut self.imap {
            for p in [&mut i.password_file, &mut i.ca_file].into_iter().flatten() {
                abs(p)?;
            }
        }
        if let Some(t) = &mut self.http.token_file {
            abs(t)?;
        }
        Ok(())
    }

    /// The suppression policy these settings describe.
    pub fn policy(&self) -> Policy {
        let secs = i64::try_from(self.policy.soft_stale_after.0.as_secs()).unwrap_or(i64::MAX);
        Policy {
            soft_threshold: self.policy.soft_threshold,
            soft_stale_after: chrono::Duration::try_seconds(secs)
                .unwrap_or(Policy::default().soft_stale_after),
        }
    }

    /// Options for opening the store with these settings.
    pub fn store_options(&self, create: bool) -> StoreOptions {
        StoreOptions {
            policy: self.policy(),
            busy_timeout: self.store.busy_timeout.0,
            create,
            mode: self.store.mode.0,
            bounce_events: self.notify.iter().any(|n| n.filter().wants_bounces()),
            trust: self.trust.trust(),
            password_file: self.store.password_file.clone(),
        }
    }
}

// ---- `bounced run`: [daemon], [logging], [[maildir]], [[imap]] ----

/// `[daemon]`: the pipeline of `bounced run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Most messages per transaction; a full batch is written at once.
    pub batch_size: usize,
    /// Longest wait for more messages before writing a partial batch (bounds idle latency).
    pub batch_delay: HumanDuration,
    /// Parse-and-classify workers; 0 means one per CPU core.
    pub workers: usize,
    /// Messages waiting between the sources and the workers; sources block (backpressure) when full.
    pub queue: usize,
    /// Larger messages are not read: they are recorded as too large and quarantined.
    pub max_message_size: usize,
    /// VERP separator in bounce addresses (`list-bounces+user=example.com@...`).
    pub verp_separator: char,
    /// After SIGTERM or SIGINT, how long draining may take before the daemon gives up and exits.
    pub shutdown_grace: HumanDuration,
    /// How often a summary line is logged at info level.
    pub summary_interval: HumanDuration,
    /// A rule file merged over the built-in classification rules.
    pub rules: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            batch_size: 500,
            batch_delay: HumanDuration(Duration::from_millis(10)),
            workers: 0,
            queue: 256,
            max_message_size: 10 * 1024 * 1024,
            verp_separator: '+',
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            summary_interval: HumanDuration(Duration::from_secs(60)),
            rules: None,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for journald or a log shipper.
    Json,
}

/// `[logging]`: log output (always on stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug` (one line per message), `bounced=debug,sqlx=warn`, ...
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// `[[maildir]]`: one Maildir folder to watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirConfig {
    /// A short name for logs; defaults to the path.
    #[serde(default)]
    pub name: Option<String>,
    /// The Maildir: the folder holding `new/`, `cur/` and `tmp/`.
    pub path: PathBuf,
    /// A Maildir++ sub-folder (such as `.Processed`) that recorded messages move to; when unset they
    /// stay in `cur/` with the `S` (seen) flag.
    #[serde(default)]
    pub processed: Option<String>,
    /// The Maildir++ sub-folder unreadable and oversized messages move to.
    #[serde(default = "default_quarantine")]
    pub quarantine: String,
    /// How often the whole folder is scanned again, as a safety net for missed inotify events.
    #[serde(default = "default_rescan")]
    pub rescan_interval: HumanDuration,
}

fn default_quarantine() -> String {
    ".Quarantine".to_owned()
}

fn default_rescan() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl MaildirConfig {
    /// A source for `path` with every other setting at its default.
    pub fn at(path: PathBuf) -> MaildirConfig {
        MaildirConfig {
            name: None,
            path,
            processed: None,
            quarantine: default_quarantine(),
            rescan_interval: default_rescan(),
        }
    }

    /// The name used in logs.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// How the IMAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImapSecurity {
    /// TLS from the first byte (port 993).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS before login (port 143); refused if not offered.
    Starttls,
    /// No encryption at all: only for a server on the same host or in tests.
    Plain,
}

/// `[[imap]]`: one IMAP mailbox to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// A short name for logs and for the saved position (`imap:<name>/<mailbox>`); keep it stable.
    pub name: String,
    /// Server host name (also the name the certificate must carry).
    pub host: String,
    /// Server port; defaults to 993 for `tls`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls`, `starttls` or `plain`.
    #[serde(default)]
    pub security: ImapSecurity,
    /// Login name.
    pub username: String,
    /// A file holding the password (its first line is used).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A systemd credential name (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY`.
    #[serde(default)]
    pub password_credential: Option<String>,
    /// Refused with a clear message: passwords never go into the configuration file.
    #[serde(default)]
    pub password: Option<String>,
    /// `login` (the LOGIN command) or `plain` (AUTHENTICATE PLAIN).
    #[serde(default)]
    pub auth: ImapAuth,
    /// The folder to read.
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// A folder recorded messages are moved to (MOVE, else COPY + EXPUNGE); unset leaves them, seen.
    #[serde(default)]
    pub processed_mailbox: Option<String>,
    /// A folder unreadable and oversized messages are moved to; unset leaves them, seen.
    #[serde(default)]
    pub quarantine_mailbox: Option<String>,
    /// A PEM file of CA certificates to trust instead of the built-in web roots (a private CA, or a
    /// self-signed server certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only for tests: the connection can then be intercepted.
    #[serde(default)]
    pub tls_insecure: bool,
    /// Use IDLE when the server offers it (else poll).
    #[serde(default = "yes")]
    pub idle: bool,
    /// IDLE is ended and issued again after this long (servers drop idle clients after 30 minutes).
    #[serde(default = "default_idle_renew")]
    pub idle_renew: HumanDuration,
    /// How often to check for new mail when IDLE is off or missing.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// First wait before reconnecting after a failure; doubles on each failure.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial: HumanDuration,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: HumanDuration,
    /// Messages fetched per FETCH command.
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: usize,
}

/// How the IMAP client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImapAuth {
    /// The LOGIN command.
    #[default]
    Login,
    /// AUTHENTICATE PLAIN (RFC 4616).
    Plain,
}

fn yes() -> bool {
    true
}
fn default_mailbox() -> String {
    "INBOX".to_owned()
}
fn default_idle_renew() -> HumanDuration {
    HumanDuration(Duration::from_secs(25 * 60))
}
fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_reconnect_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_reconnect_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_fetch_batch() -> usize {
    100
}

/// A password: never printed, never logged.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the LOGIN command only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a password could not be read.
#[derive(Debug, Error)]
pub enum SecretError {
    /// No source, or more than one, is configured.
    #[error("imap `{0}`: set exactly one of password_file, password_env, password_credential")]
    Choice(String),
    /// The file could not be read.
    #[error("imap `{name}`: cannot read password file {path}: {cause}")]
    File {
        name: String,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The variable is unset or empty.
    #[error("imap `{name}`: environment variable {var} is unset or empty")]
    Env { name: String, var: String },
    /// `$CREDENTIALS_DIRECTORY` is unset (not started by systemd with LoadCredential=).
    #[error(
        "imap `{0}`: password_credential needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"
    )]
    NoCredentials(String),
}

impl ImapConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            ImapSecurity::Tls => 993,
            _ => 143,
        })
    }

    /// Reads the password from its file, variable or systemd credential.
    pub fn password(&self) -> Result<Secret, SecretError> {
        let chosen = [
            self.password_file.is_some(),
            self.password_env.is_some(),
            self.password_credential.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen != 1 {
            return Err(SecretError::Choice(self.name.clone()));
        }
        let from_file = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .map(|t| Secret(t.lines().next().unwrap_or("").to_owned()))
                .map_err(|cause| SecretError::File {
                    name: self.name.clone(),
                    path,
                    cause,
                })
        };
        if let Some(p) = &self.password_file {
            return from_file(p.clone());
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(SecretError::Env {
                    name: self.name.clone(),
                    var: var.clone(),
                }),
            };
        }
        let cred = self.password_credential.clone().unwrap_or_default();
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .ok_or_else(|| SecretError::NoCredentials(self.name.clone()))?;
        from_file(PathBuf::from(dir).join(cred))
    }
}

/// The log levels, from the quietest.
pub const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Reads a log filter (`logging.level`, `RUST_LOG`): comma-separated directives, each a level
/// ([`LOG_LEVELS`]) or `target=level`. A bare word that is not a level is refused: the filter
/// syntax would read it as a target name and silence everything else.
pub fn log_filter(filter: &str) -> Result<Targets, String> {
    let is_level = |s: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    let mut any = false;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !is_level(level) {
            return Err(format!(
                "is not a log filter: `{directive}` is not a level (use one of {}, or target=level such as bounced=debug)",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    if !any {
        return Err(format!("must name a level ({})", LOG_LEVELS.join(", ")));
    }
    filter
        .parse::<Targets>()
        .map_err(|e| format!("is not a log filter: {e}"))
}

/// Environment variables that override a configuration key, with the key they set.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("BOUNCED_DB", "store.path"),
    ("BOUNCED_DB_PASSWORD_FILE", "store.password_file"),
    ("BOUNCED_LOG_FORMAT", "logging.format"),
    ("BOUNCED_LOG_LEVEL", "logging.level"),
    ("BOUNCED_BATCH_SIZE", "daemon.batch_size"),
    ("BOUNCED_BATCH_DELAY", "daemon.batch_delay"),
    ("BOUNCED_WORKERS", "daemon.workers"),
    ("BOUNCED_QUEUE", "daemon.queue"),
    ("BOUNCED_MAX_MESSAGE_SIZE", "daemon.max_message_size"),
    ("BOUNCED_SHUTDOWN_GRACE", "daemon.shutdown_grace"),
    ("BOUNCED_SUMMARY_INTERVAL", "daemon.summary_interval"),
    ("BOUNCED_HTTP_LISTEN", "http.listen"),
    ("BOUNCED_HTTP_TOKEN_FILE", "http.token_file"),
];

impl Config {
    /// Applies the `BOUNCED_...` environment overrides ([`ENV_OVERRIDES`]) read through `var`, then
    /// validates again. Errors name the variable.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
        path: &Path,
    ) -> Result<(), ConfigError> {
        for (name, _) in ENV_OVERRIDES {
            let Some(v) = var(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let v = v.trim();
            let bad = |problem: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: name,
                problem,
            };
            let num = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| bad(format!("is not a whole number: `{v}`")))
            };
            let dur = |v: &str| HumanDuration::parse(v).map_err(&bad);
            match *name {
                "BOUNCED_DB" => self.store.path = PathBuf::from(v),
                "BOUNCED_DB_PASSWORD_FILE" => self.store.password_file = Some(PathBuf::from(v)),
                "BOUNCED_LOG_FORMAT" => {
                    self.logging.format = match v {
                        "human" => LogFormat::Human,
                        "json" => LogFormat::Json,
                        _ => return Err(bad(format!("must be human or json, not `{v}`"))),
                    }
                }
                "BOUNCED_LOG_LEVEL" => {
                    log_filter(v).map_err(&bad)?;
                    self.logging.level = v.to_owned();
                }
                "BOUNCED_BATCH_SIZE" => self.daemon.batch_size = num(v)?,
                "BOUNCED_BATCH_DELAY" => self.daemon.batch_delay = dur(v)?,
                "BOUNCED_WORKERS" => self.daemon.workers = num(v)?,
                "BOUNCED_QUEUE" => self.daemon.queue = num(v)?,
                "BOUNCED_MAX_MESSAGE_SIZE" => self.daemon.max_message_size = num(v)?,
                "BOUNCED_SHUTDOWN_GRACE" => self.daemon.shutdown_grace = dur(v)?,
                "BOUNCED_SUMMARY_INTERVAL" => self.daemon.summary_interval = dur(v)?,
                "BOUNCED_HTTP_LISTEN" => {
                    self.http.listen = v
                        .parse()
                        .map_err(|_| bad(format!("is not an address and port: `{v}`")))?;
                    self.http.requested = true;
                }
                "BOUNCED_HTTP_TOKEN_FILE" => self.http.token_file = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        self.validate(path)
    }

    /// Checks the daemon sections; the error is the dotted key and the problem.
    fn validate_daemon(&self) -> Result<(), (&'static str, String)> {
        let d = &self.daemon;
        let bad = |key: &'static str, p: &str| Err((key, p.to_owned()));
        if d.batch_size == 0 || d.batch_size > 100_000 {
            return bad("daemon.batch_size", "must be between 1 and 100000");
        }
        if d.batch_delay.0 > Duration::from_secs(10) {
            return bad("daemon.batch_delay", "must be at most 10s");
        }
        if d.workers > 256 {
            return bad(
                "daemon.workers",
                "must be at most 256 (0 means one per core)",
            );
        }
        if d.queue == 0 || d.queue > 100_000 {
            return bad("daemon.queue", "must be between 1 and 100000");
        }
        if d.max_message_size < 1024 {
            return bad("daemon.max_message_size", "must be at least 1024 bytes");
        }
        if d.shutdown_grace.0 < Duration::from_secs(1) {
            return bad("daemon.shutdown_grace", "must be at least 1s");
        }
        if d.summary_interval.0 < Duration::from_secs(1) {
            return bad("daemon.summary_interval", "must be at least 1s");
        }
        if let Err(problem) = log_filter(&self.logging.level) {
            return Err(("logging.level", problem));
        }
        let mut names = std::collections::HashSet::new();
        for m in &self.maildir {
            let label = m.label();
            if m.path.as_os_str().is_empty() {
                return bad("maildir.path", "must not be empty");
            }
            for (key, sub) in [
                ("maildir.quarantine", Some(&m.quarantine)),
                ("maildir.processed", m.processed.as_ref()),
            ] {
                if let Some(sub) = sub
                    && (sub.is_empty()
                        || sub.contains('/')
                        || sub == "."
                        || sub == ".."
                        || ["new", "cur", "tmp"].contains(&sub.as_str()))
                {
                    return Err((
                        key,
                        format!(
                            "in [[maildir]] `{label}`: must be one sub-folder name such as `.Quarantine`, not `{sub}`"
                        ),
                    ));
                }
            }
            if m.rescan_interval.0 < Duration::from_secs(1) {
                return Err((
                    "maildir.rescan_interval",
                    format!("in [[maildir]] `{label}`: must be at least 1s"),
                ));
            }
            if !names.insert(format!("maildir:{}", m.path.display())) {
                return Err((
                    "maildir.path",
                    format!("`{}` is listed twice", m.path.display()),
                ));
            }
        }
        for i in &self.imap {
            let n = &i.name;
            let at = |key: &'static str, p: &str| Err((key, format!("in [[imap]] `{n}`: {p}")));
            if n.is_empty() || n.contains(['/', ' ']) {
                return bad(
                    "imap.name",
                    "must be a short name without spaces or `/` (it keys the saved position)",
                );
            }
            if !names.insert(format!("imap:{n}")) {
                return at("imap.name", "is used twice");
            }
            if i.host.is_empty() {
                return at("imap.host", "must not be empty");
            }
            if i.username.is_empty() {
                return at("imap.username", "must not be empty");
            }
            if i.password.is_some() {
                return at(
                    "imap.password",
                    "passwords never go in the configuration: use password_file, password_env or password_credential",
                );
            }
            let chosen = [
                i.password_file.is_some(),
                i.password_env.is_some(),
                i.password_credential.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if chosen != 1 {
                return at(
                    "imap.password_file",
                    "set exactly one of password_file, password_env, password_credential",
                );
            }
            if i.mailbox.is_empty() {
                return at("imap.mailbox", "must not be empty");
            }
            if i.tls_insecure && i.ca_file.is_some() {
                return at("imap.tls_insecure", "makes ca_file pointless: set only one");
            }
            if i.idle_renew.0 < Duration::from_secs(1)
                || i.idle_renew.0 > Duration::from_secs(29 * 60)
            {
                return at("imap.idle_renew", "must be between 1s and 29m (RFC 2177)");
            }
            if i.poll_interval.0 < Duration::from_millis(100) {
                return at("imap.poll_interval", "must be at least 100ms");
            }
            if i.reconnect_initial.0 < Duration::from_millis(10) {
                return at("imap.reconnect_initial", "must be at least 10ms");
            }
            if i.reconnect_max.0 < i.reconnect_initial.0 {
                return at("imap.reconnect_max", "must be at least reconnect_initial");
            }
            if i.fetch_batch == 0 || i.fetch_batch > 10_000 {
                return at("imap.fetch_batch", "must be between 1 and 10000");
            }
        }
        Ok(())
    }
}

// ---- the HTTP server: [http] ----

/// `[http]`: the HTTP API, Prometheus metrics and dashboard (`bounced serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to listen on; anything but loopback needs a token.
    pub listen: std::net::SocketAddr,
    /// A file of tokens, one a line: `name:secret` (the name is recorded as the actor of manual
    /// changes) or a bare secret (named `api`).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding one token (`name:secret` or a bare secret).
    pub token_env: Option<String>,
    /// A systemd credential (`LoadCredential=`) holding tokens, read from `$CREDENTIALS_DIRECTORY`.
    pub token_credential: Option<String>,
    /// `/metrics` answers without a token (it carries no addresses).
    pub metrics_public: bool,
    /// Origins allowed to call the API from a browser (CORS); empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Mark the dashboard's session cookie `Secure` (when a TLS proxy is in front).
    pub secure_cookie: bool,
    /// How long a dashboard sign-in lasts.
    pub session_lifetime: HumanDuration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Whether the configuration asks for the server (an `[http]` section, or
    /// `BOUNCED_HTTP_LISTEN`): `bounced run` serves HTTP then, or with `--http`. Not a key.
    #[serde(skip_deserializing, default = "section_given")]
    pub requested: bool,
}

/// An `[http]` section read from a file asks for the server.
fn section_given() -> bool {
    true
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8025)),
            token_file: None,
            token_env: None,
            token_credential: None,
            metrics_public: true,
            cors_origins: Vec::new(),
            secure_cookie: false,
            session_lifetime: HumanDuration(Duration::from_secs(12 * 3_600)),
            max_body_bytes: 1024 * 1024,
            requested: false,
        }
    }
}

impl HttpConfig {
    /// Checks the section; the error is the dotted key and the problem.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |key: &'static str, p: &str| Err((key, p.to_owned()));
        let sources = [
            self.token_file.is_some(),
            self.token_env.is_some(),
            self.token_credential.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            return bad(
                "http.token_file",
                "set at most one of token_file, token_env, token_credential",
            );
        }
        if self.session_lifetime.0 < Duration::from_secs(60)
            || self.session_lifetime.0 > Duration::from_secs(30 * 86_400)
        {
            return bad("http.session_lifetime", "must be between 1m and 30d");
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 * 1024 * 1024 {
            return bad(
                "http.max_body_bytes",
                "must be between 1024 and 67108864 bytes",
            );
        }
        for o in &self.cors_origins {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && !o.contains(char::is_whitespace);
            if !ok {
                return Err((
                    "http.cors_origins",
                    format!("`{o}` is not an origin such as \"https://lists.example.org\""),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn log_filters_are_levels_and_target_levels() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,bounced::pipeline=debug",
            "bounced=Trace, sqlx=warn",
        ] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        let t: Targets = "warn,bounced::pipeline=debug".parse().expect("filter");
        assert!(t.would_enable("bounced::pipeline", &tracing::Level::DEBUG));
        assert!(!t.would_enable("bounced::store", &tracing::Level::INFO));
        assert!(t.would_enable("sqlx::query", &tracing::Level::WARN));
        for bad in ["", " , ", "bounced", "info,verbose", "bounced=loud"] {
            assert!(log_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.store.path, PathBuf::from("bounced.db"));
        assert_eq!(c.policy(), Policy::default());
    }

    #[test]
    fn durations_parse() {
        let c = parse("[policy]\nsoft_threshold = 3\nsoft_stale_after = \"2w\"\n").unwrap();
        assert_eq!(c.policy().soft_threshold, 3);
        assert_eq!(c.policy().soft_stale_after, chrono::Duration::days(14));
        assert!(HumanDuration::parse("7").is_err());
        assert!(HumanDuration::parse("7y").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[policy]\nsoft_threshold = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.soft_threshold"), "{e}");
        let e = parse("[policy]\nsoft_stale_after = \"1h\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.soft_stale_after"), "{e}");
        let e = parse("[store]\ndb = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("db"), "{e}");
        let e = parse("[policy]\nsoft_stale_after = \"7 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("soft_stale_after"), "{e}");
    }

    #[test]
    fn daemon_defaults_and_sections() {
        let c = parse(
            "[daemon]\nbatch_delay = \"25ms\"\n[[maildir]]\npath = \"/m\"\n\
             [[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"PW\"\n",
        )
        .unwrap();
        assert_eq!(c.daemon.batch_delay.0, Duration::from_millis(25));
        assert_eq!(c.maildir[0].quarantine, ".Quarantine");
        assert_eq!(c.imap[0].port(), 993);
        assert_eq!(c.imap[0].security, ImapSecurity::Tls);
        assert_eq!(HumanDuration(Duration::from_millis(25)).to_string(), "25ms");
    }

    #[test]
    fn daemon_errors_name_the_key() {
        let imap = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n";
        let e = parse(&format!("{imap}password = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("imap.password") && e.contains("password_file"),
            "{e}"
        );
        assert!(!e.contains("\"x\""), "{e}");
        let e = parse(imap).unwrap_err().to_string();
        assert!(e.contains("imap.password_file"), "{e}");
        let e = parse("[[maildir]]\npath = \"/m\"\nquarantine = \"a/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("maildir.quarantine"), "{e}");
        let e = parse("[daemon]\nqueue = 0\n").unwrap_err().to_string();
        assert!(e.contains("daemon.queue"), "{e}");
        let e = parse("[logging]\nformat = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("format"), "{e}");
    }

    #[test]
    fn a_store_url_takes_the_place_of_the_path_and_the_password_file_is_resolved() {
        let mut c = parse(
            "[store]\nurl = \"postgres://bounced@db.example.org/bounces?sslmode=require\"\n\
             password_file = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(
            c.store.path,
            PathBuf::from("postgres://bounced@db.example.org/bounces?sslmode=require")
        );
        c.resolve_paths().unwrap();
        // A URL is not a path: it is left as written; the password file becomes absolute.
        assert_eq!(
            c.store.path,
            PathBuf::from("postgres://bounced@db.example.org/bounces?sslmode=require")
        );
        assert!(
            c.store
                .password_file
                .as_ref()
                .is_some_and(|p| p.is_absolute())
        );
        assert_eq!(
            c.store_options(false).password_file,
            c.store.password_file.clone()
        );
        let env = |k: &str| match k {
            "BOUNCED_DB_PASSWORD_FILE" => Some("/run/secrets/db".to_owned()),
            _ => None,
        };
        c.apply_env(env, Path::new("t")).unwrap();
        assert_eq!(
            c.store.password_file,
            Some(PathBuf::from("/run/secrets/db"))
        );
        let mut f = parse("[store]\nurl = \"sqlite://rel.db\"\n").unwrap();
        f.resolve_paths().unwrap();
        assert!(f.store.path.is_absolute() && f.store.path.ends_with("rel.db"));
    }

    #[test]
    fn environment_overrides_and_names_the_variable() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "BOUNCED_DB" => Some("/var/lib/bounced/b.db".to_owned()),
            "BOUNCED_BATCH_SIZE" => Some("64".to_owned()),
            "BOUNCED_LOG_FORMAT" => Some("json".to_owned()),
            _ => None,
        };
        c.apply_env(env, Path::new("t")).unwrap();
        assert_eq!(c.store.path, PathBuf::from("/var/lib/bounced/b.db"));
        assert_eq!(c.daemon.batch_size, 64);
        assert_eq!(c.logging.format, LogFormat::Json);
        let e = Config::default()
            .apply_env(
                |k| (k == "BOUNCED_BATCH_SIZE").then(|| "lots".to_owned()),
                Path::new("t"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("BOUNCED_BATCH_SIZE"), "{e}");
        let e = Config::default()
            .apply_env(
                |k| (k == "BOUNCED_BATCH_SIZE").then(|| "0".to_owned()),
                Path::new("t"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size"), "{e}");
    }

    #[test]
    fn the_old_batch_key_still_works_with_a_warning() {
        let c = parse("[store]\nbatch_size = 50\n").unwrap();
        assert_eq!(c.daemon.batch_size, 50);
        assert!(c.warnings[0].contains("deprecated"), "{:?}", c.warnings);
        let c = parse("[store]\nbatch_size = 50\n[daemon]\nbatch_size = 70\n").unwrap();
        assert_eq!(c.daemon.batch_size, 70);
        assert!(c.warnings[0].contains("ignored"), "{:?}", c.warnings);
        assert!(
            parse("[daemon]\nbatch_size = 70\n")
                .unwrap()
                .warnings
                .is_empty()
        );
        let e = parse("[store]\nbatch_size = 0\n").unwrap_err().to_string();
        assert!(e.contains("store.batch_size"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\nsecond line\n").unwrap();
        let c = parse(&format!(
            "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            f.display()
        ))
        .unwrap();
        let s = c.imap[0].password().unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?} {c:?}").contains("hunter2"));
    }

    #[test]
    fn the_sample_config_is_valid_and_says_the_defaults() {
        let text = include_str!("../config/bounced.toml");
        let c = parse(text).unwrap();
        let d = Config::default();
        assert_eq!(c.store.path, d.store.path);
        assert_eq!(c.store.batch_size, None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.store.busy_timeout, d.store.busy_timeout);
        assert_eq!(c.policy(), d.policy());
        assert_eq!(c.daemon.batch_size, d.daemon.batch_size);
        assert_eq!(c.daemon.batch_delay, d.daemon.batch_delay);
        assert_eq!(c.daemon.queue, d.daemon.queue);
        assert_eq!(c.daemon.max_message_size, d.daemon.max_message_size);
        assert_eq!(c.daemon.shutdown_grace, d.daemon.shutdown_grace);
        assert_eq!(c.daemon.summary_interval, d.daemon.summary_interval);
        assert_eq!(c.logging.format, d.logging.format);
        assert_eq!(c.logging.level, d.logging.level);
        assert!(c.maildir.is_empty() && c.imap.is_empty());
        let (h, dh) = (&c.http, &d.http);
        assert_eq!(h.listen, dh.listen);
        assert_eq!(h.metrics_public, dh.metrics_public);
        assert_eq!(h.cors_origins, dh.cors_origins);
        assert_eq!(h.secure_cookie, dh.secure_cookie);
        assert_eq!(h.session_lifetime, dh.session_lifetime);
        assert_eq!(h.max_body_bytes, dh.max_body_bytes);
        assert!(h.token_file.is_none() && h.token_env.is_none());
        assert!(c.notify.is_empty());
        assert!(!c.trust.trust().enabled());
    }

    #[test]
    fn notify_targets_are_checked() {
        let ok = "[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"https://x.example/h\"\nsecret_file = \"/s\"\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.notify[0].max_attempts, 15);
        assert!(c.notify[0].filter().wants("suppressed", Some("hard")));
        assert!(!c.notify[0].filter().wants("bounce", Some("hard")));
        assert!(!c.store_options(false).bounce_events);
        for (bad, key) in [
            (
                ok.replace("secret_file = \"/s\"\n", ""),
                "notify.secret_file",
            ),
            (ok.replace("https://", "ftp://"), "notify.url"),
            (
                format!("{ok}events = [\"bounce:manual\"]\n"),
                "notify.events",
            ),
            (format!("{ok}events = [\"sent\"]\n"), "notify.events"),
            (format!("{ok}{ok}"), "notify.name"),
            (ok.replace("name = \"a\"", "name = \"a b\""), "notify.name"),
            (
                ok.replace("kind = \"webhook\"", "kind = \"listmonk\""),
                "notify.credentials_file",
            ),
            (format!("{ok}concurrency = 0\n"), "notify.concurrency"),
            (
                "[[notify]]\nname = \"e\"\nkind = \"exec\"\n".to_owned(),
                "notify.command",
            ),
            (
                "[trust]\ncampaigns = [\"x\"]\n".to_owned(),
                "trust.campaigns",
            ),
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        let c = parse(&format!("{ok}events = [\"bounce:hard\", \"suppressed\"]\n")).unwrap();
        assert!(c.store_options(false).bounce_events);
        assert!(c.notify[0].filter().wants("bounce", Some("hard")));
        assert!(!c.notify[0].filter().wants("bounce", Some("soft")));
    }

    #[test]
    fn http_section_is_checked() {
        let e = parse("[http]\ntoken_file = \"/a\"\ntoken_env = \"B\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.token_file"), "{e}");
        let e = parse("[http]\ncors_origins = [\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.cors_origins"), "{e}");
        let e = parse("[http]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let mut c = Config::default();
        c.apply_env(
            |k| match k {
                "BOUNCED_HTTP_LISTEN" => Some("127.0.0.1:9000".to_owned()),
                "BOUNCED_HTTP_TOKEN_FILE" => Some("/run/tokens".to_owned()),
                _ => None,
            },
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(c.http.token_file, Some(PathBuf::from("/run/tokens")));
        assert!(c.http.requested, "BOUNCED_HTTP_LISTEN asks for the server");
    }

    #[test]
    fn an_http_section_asks_the_daemon_to_serve() {
        assert!(!parse("").unwrap().http.requested);
        assert!(!Config::default().http.requested);
        assert!(parse("[http]\n").unwrap().http.requested);
        assert!(
            parse("[http]\nlisten = \"127.0.0.1:9001\"\n")
                .unwrap()
                .http
                .requested
        );
    }

    #[test]
    fn the_sample_config_commented_sources_are_valid() {
        // Uncomment the [[maildir]] and [[imap]] examples (one password source) and parse them.
        let text = include_str!("../config/bounced.toml");
        let mut out = String::new();
        for line in text.lines() {
            let t = line.strip_prefix("# ").unwrap_or(line);
            let is_example = t.starts_with("[[")
                || (line.starts_with("# ")
                    && !line.starts_with("# #")
                    && t.contains(" = ")
                    && !t.starts_with("password_env")
                    && !t.starts_with("password_credential")
                    && !t.starts_with("token_env")
                    && !t.starts_with("token_credential")
                    && !t.starts_with("rules"));
            if is_example && line.starts_with("# ") {
                out.push_str(t);
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        let c = parse(&out).unwrap();
        assert_eq!(c.maildir.len(), 1);
        assert_eq!(c.imap.len(), 1);
        assert_eq!(c.notify.len(), 1);
        assert_eq!(c.notify[0].kind, NotifyKind::Webhook);
        assert_eq!(
            c.imap[0].processed_mailbox.as_deref(),
            Some("Bounces/Processed")
        );
    }
}

// ---- `[[notify]]`: where suppressions are pushed ----

/// What kind of system a `[[notify]]` target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// POST each event as signed JSON to a URL.
    Webhook,
    /// listmonk's bounce webhook.
    Listmonk,
    /// GNU Mailman 3's REST API.
    Mailman,
    /// A command run per event, the event on standard input.
    Exec,
}

impl NotifyKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Listmonk => "listmonk",
            NotifyKind::Mailman => "mailman",
            NotifyKind::Exec => "exec",
        }
    }
}

/// What a Mailman target does to a suppressed address's memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailmanAction {
    /// Stop delivery (`delivery_status` by_bounces, else by_moderator); re-enabled on unsuppress.
    #[default]
    Disable,
    /// Remove the membership.
    Unsubscribe,
}

/// `[[notify]]`: one target that receives outbox events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The target's name: letters, digits, `-` and `_`; its deliveries are kept under it.
    pub name: String,
    /// webhook, listmonk, mailman or exec.
    pub kind: NotifyKind,
    /// Which events it receives: `suppressed`, `unsuppressed`, `bounce`, each optionally narrowed
    /// to a type with `:hard`, `:soft`, `:complaint` (or `:manual` for suppressed).
    #[serde(default = "default_notify_events")]
    pub events: Vec<String>,
    /// webhook: the URL to POST to; listmonk: its base URL; mailman: the REST API's base URL
    /// (`http://127.0.0.1:8001/3.1`).
    pub url: Option<String>,
    /// webhook: the file holding the HMAC secret (its first line).
    pub secret_file: Option<PathBuf>,
    /// listmonk, mailman: the file holding `user:password` (its first line).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust instead of the web's roots (HTTPS targets).
    pub ca_file: Option<PathBuf>,
    /// mailman: only these lists (list ids such as `news.example.org`); empty means every list.
    #[serde(default)]
    pub lists: Vec<String>,
    /// mailman: `disable` (the default) or `unsubscribe`.
    #[serde(default)]
    pub action: MailmanAction,
    /// exec: the program and its arguments (no shell).
    #[serde(default)]
    pub command: Vec<String>,
    /// Attempts before an event is kept as dead.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The longest wait between two attempts (the wait doubles from 1s, with jitter).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// How long one attempt may take.
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
    /// Attempts in flight at once (each for a different address).
    #[serde(default = "default_notify_concurrency")]
    pub concurrency: usize,
}

fn default_notify_events() -> Vec<String> {
    vec!["suppressed".to_owned(), "unsuppressed".to_owned()]
}
fn default_max_attempts() -> u32 {
    15
}
fn default_backoff_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}
fn default_notify_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_notify_concurrency() -> usize {
    16
}

/// The events a target receives: (event, type) pairs, a `None` type meaning any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter(Vec<(String, Option<String>)>);

impl EventFilter {
    /// Parses `events = [...]` entries.
    pub fn parse(entries: &[String]) -> Result<EventFilter, String> {
        let mut out = Vec::new();
        for e in entries {
            let (event, ty) = match e.split_once(':') {
                Some((ev, ty)) => (ev.trim(), Some(ty.trim())),
                None => (e.trim(), None),
            };
            if !["suppressed", "unsuppressed", "bounce"].contains(&event) {
                return Err(format!(
                    "has `{e}`: events are suppressed, unsuppressed or bounce (optionally :hard, :soft, :complaint)"
                ));
            }
            if let Some(ty) = ty {
                let allowed: &[&str] = match event {
                    "suppressed" => &["hard", "soft", "complaint", "manual"],
                    "bounce" => &["hard", "soft", "complaint"],
                    _ => &[],
                };
                if !allowed.contains(&ty) {
                    return Err(format!(
                        "has `{e}`: {event} takes no type `{ty}` (allowed: {})",
                        if allowed.is_empty() {
                            "none".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ));
                }
            }
            out.push((event.to_owned(), ty.map(str::to_owned)));
        }
        Ok(EventFilter(out))
    }

    /// Whether an event of this name and type is wanted.
    pub fn wants(&self, event: &str, bounce_type: Option<&str>) -> bool {
        self.0
            .iter()
            .any(|(e, t)| e == event && (t.is_none() || t.as_deref() == bounce_type))
    }

    /// Whether any bounce event is wanted.
    pub fn wants_bounces(&self) -> bool {
        self.0.iter().any(|(e, _)| e == "bounce")
    }
}

impl NotifyConfig {
    /// The parsed `events` list (validated at load, so the error cannot happen after it).
    pub fn filter(&self) -> EventFilter {
        EventFilter::parse(&self.events).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad =
            |key: &'static str, p: String| Err((key, format!("(target `{}`) {p}", self.name)));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "notify.name",
                format!("`{}` must be letters, digits, - and _", self.name),
            ));
        }
        if let Err(p) = EventFilter::parse(&self.events) {
            return bad("notify.events", p);
        }
        if self.events.is_empty() {
            return bad("notify.events", "must name at least one event".to_owned());
        }
        if self.max_attempts == 0 {
            return bad("notify.max_attempts", "must be at least 1".to_owned());
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return bad("notify.concurrency", "must be between 1 and 256".to_owned());
        }
        if self.backoff_max.0 < Duration::from_secs(1) {
            return bad("notify.backoff_max", "must be at least 1s".to_owned());
        }
        if self.timeout.0 < Duration::from_millis(100) || self.timeout.0 > Duration::from_secs(600)
        {
            return bad("notify.timeout", "must be between 100ms and 10m".to_owned());
        }
        let needs_url = self.kind != NotifyKind::Exec;
        match (&self.url, needs_url) {
            (None, true) => {
                return bad(
                    "notify.url",
                    format!("is required for kind {}", self.kind.as_str()),
                );
            }
            (Some(u), true) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return bad(
                    "notify.url",
                    format!("`{u}` must start with http:// or https://"),
                );
            }
            (Some(_), false) => return bad("notify.url", "is not used by kind exec".to_owned()),
            _ => {}
        }
        match self.kind {
            NotifyKind::Webhook if self.secret_file.is_none() => bad(
                "notify.secret_file",
                "is required for kind webhook (the HMAC secret)".to_owned(),
            ),
            NotifyKind::Listmonk | NotifyKind::Mailman if self.credentials_file.is_none() => bad(
                "notify.credentials_file",
                format!(
                    "is required for kind {} (user:password)",
                    self.kind.as_str()
                ),
            ),
            NotifyKind::Exec if self.command.is_empty() => bad(
                "notify.command",
                "is required for kind exec (program and arguments)".to_owned(),
            ),
            _ => Ok(()),
        }
    }
}

/// `[trust]`: the proof a bounce must carry (any one of those configured) before it may suppress;
/// without any, every bounce may. Bounces without it are recorded and counted, never applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// The returned original's `List-Id` is one of these.
    pub list_ids: Vec<String>,
    /// The returned original's `Message-ID` ends in `@` one of these domains.
    pub message_id_domains: Vec<String>,
    /// A VERP bounce address naming the bounce's recipient is proof.
    pub verp: bool,
    /// An `X-Listmonk-Campaign` header in the returned original is proof (one of `campaigns`
    /// when that is set).
    pub listmonk_campaign: bool,
    /// The campaign UUIDs `listmonk_campaign` accepts; empty means any.
    pub campaigns: Vec<String>,
}

impl TrustConfig {
    /// The check these settings describe.
    pub fn trust(&self) -> crate::policy::Trust {
        let clean = |v: &[String]| {
            v.iter()
                .map(|s| s.trim().trim_matches(['<', '>']).to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        crate::policy::Trust {
            list_ids: clean(&self.list_ids),
            message_id_domains: clean(&self.message_id_domains),
            verp: self.verp,
            listmonk_campaign: self.listmonk_campaign,
            campaigns: clean(&self.campaigns),
        }
    }
}
