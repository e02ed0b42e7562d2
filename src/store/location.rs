//! Where the database is: a SQLite file or a PostgreSQL server, told apart by the text given to
//! `--db`, `BOUNCED_DB` or `[store] path`/`url`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// A database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file: a plain path, or `sqlite://PATH`.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://` or `postgresql://`.
    Postgres(PgUrl),
}

/// A PostgreSQL URL as given (possibly with a password, which is never shown).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Location {
    /// Reads a location; anything that is not a `postgres://`, `postgresql://` or `sqlite://` URL
    /// is a file path.
    pub fn parse(text: &OsStr) -> Location {
        let Some(s) = text.to_str() else {
            return Location::Sqlite(PathBuf::from(text));
        };
        if let Some(rest) = s.strip_prefix("sqlite://") {
            return Location::Sqlite(PathBuf::from(rest));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Location::Postgres(PgUrl(s.to_owned()));
        }
        Location::Sqlite(PathBuf::from(text))
    }

    /// Whether this is a server's database rather than a file.
    pub fn is_server(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// The location as messages show it: the file's path with control characters escaped, or
    /// the URL with any password masked.
    pub fn shown(text: &std::path::Path) -> String {
        match Location::parse(text.as_os_str()) {
            Location::Sqlite(path) => crate::text::path(&path).into_owned(),
            Location::Postgres(url) => crate::text::printable(&url.masked()).into_owned(),
        }
    }
}

impl PgUrl {
    /// The URL with any password replaced by `***`: the form every message and log line shows.
    pub fn masked(&self) -> String {
        mask_password(&self.0)
    }

    /// The connection options the URL gives: host, port, user, database, `sslmode` and the
    /// other libpq parameters; `PGPASSWORD` and `~/.pgpass` as libpq reads them.
    pub(crate) fn options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        PgConnectOptions::from_str(&self.0)
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `***`; any other text is
/// returned as it is.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sqlite_urls_are_files_postgres_urls_are_servers() {
        assert_eq!(
            Location::parse(OsStr::new("/var/lib/bounced/b.db")),
            Location::Sqlite(PathBuf::from("/var/lib/bounced/b.db"))
        );
        assert_eq!(
            Location::parse(OsStr::new("sqlite:///tmp/x.db")),
            Location::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            Location::parse(OsStr::new("sqlite://rel.db")),
            Location::Sqlite(PathBuf::from("rel.db"))
        );
        assert!(Location::parse(OsStr::new("postgres://u@h/db")).is_server());
        assert!(Location::parse(OsStr::new("postgresql://u@h:5433/db")).is_server());
        assert!(!Location::parse(OsStr::new("postgres.db")).is_server());
    }

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            mask_password("postgres://bounced:s3cret@db.example:5432/bounces?sslmode=require"),
            "postgres://bounced:***@db.example:5432/bounces?sslmode=require"
        );
        assert_eq!(
            mask_password("postgres://bounced:p@ss:w@rd@db/b"),
            "postgres://bounced:***@db/b"
        );
        assert_eq!(
            mask_password("postgres://bounced@db/b"),
            "postgres://bounced@db/b"
        );
        assert_eq!(mask_password("postgres://db/b"), "postgres://db/b");
        let Location::Postgres(url) = Location::parse(OsStr::new("postgres://u:hunter2@h/d"))
        else {
            panic!("not a server");
        };
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
