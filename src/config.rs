//! `bounced.toml`: serde structs, defaults and validation. Every error names the key at fault.
//!
//! This holds the `[store]` and `[policy]` sections; unknown keys are refused so that a typo is an
//! error rather than a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::policy::Policy;
use crate::store::StoreOptions;

/// Why a configuration file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    /// Parses `<number><unit>` with unit `s`, `m`, `h`, `d` or `w`.
    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{s}` has no unit (use s, m, h, d or w, as in \"7d\")"))?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` does not start with a number"))?;
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
        write!(f, "{}s", self.0.as_secs())
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
}

/// `[store]`: the bounce database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file; relative paths are relative to the working directory. `--db` and
    /// `BOUNCED_DB` override it.
    pub path: PathBuf,
    /// How long a write waits for another writer before failing as "locked".
    pub busy_timeout: HumanDuration,
    /// Messages per transaction when importing: larger is faster, smaller loses less on a crash.
    pub batch_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("bounced.db"),
            busy_timeout: HumanDuration(Duration::from_secs(5)),
            batch_size: 500,
        }
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
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
        if self.store.batch_size == 0 || self.store.batch_size > 100_000 {
            return Err(invalid("store.batch_size", "must be between 1 and 100000"));
        }
        if self.store.busy_timeout.0 > Duration::from_secs(3_600) {
            return Err(invalid("store.busy_timeout", "must be at most 1h"));
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
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
    fn the_sample_config_is_valid_and_says_the_defaults() {
        let text = include_str!("../config/bounced.toml");
        let c = parse(text).unwrap();
        let d = Config::default();
        assert_eq!(c.store.path, d.store.path);
        assert_eq!(c.store.batch_size, d.store.batch_size);
        assert_eq!(c.store.busy_timeout, d.store.busy_timeout);
        assert_eq!(c.policy(), d.policy());
    }
}
