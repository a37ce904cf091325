//! `--database` / `database:`: which store holds the call records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CdrError, CdrStore, PgCdrStore, SqliteCdrStore};

/// Where the call records live: `postgres://…` (or `postgresql://…`), `sqlite:PATH`, or a plain
/// path to an SQLite file. Its `Debug` and `Display` hide any password, so a config dump or an
/// error message cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres,
}

impl DatabaseUrl {
    pub fn new(s: impl Into<String>) -> Self {
        DatabaseUrl(s.into().trim().to_string())
    }

    pub fn backend(&self) -> Backend {
        let s = self.0.as_str();
        if is_postgres(s) {
            Backend::Postgres
        } else {
            let path = s.strip_prefix("sqlite://").or(s.strip_prefix("sqlite:"));
            Backend::Sqlite(PathBuf::from(path.unwrap_or(s)))
        }
    }

    /// The URL itself, for the driver only: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

fn is_postgres(s: &str) -> bool {
    let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`; also hides a `password=` query
/// parameter. Anything it does not understand is returned with everything after the scheme hidden.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.to_ascii_lowercase().contains("password") => {
            let kept: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", kept.join("&"))
        }
        _ => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(DatabaseUrl::new)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl::new(s))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Opens the configured store (or the SQLite file `default_sqlite` when none is configured) and
/// applies its migrations. `node` names this process among those sharing a PostgreSQL database.
pub fn open_store(
    database: Option<&DatabaseUrl>,
    default_sqlite: &Path,
    node: &str,
) -> Result<Arc<dyn CdrStore>, CdrError> {
    let Some(url) = database else {
        return Ok(Arc::new(SqliteCdrStore::open(default_sqlite)?));
    };
    match url.backend() {
        Backend::Postgres => {
            tracing::info!(database = %url, "call records in PostgreSQL");
            Ok(Arc::new(PgCdrStore::connect(url, node)?))
        }
        Backend::Sqlite(path) if path.as_os_str().is_empty() => {
            Ok(Arc::new(SqliteCdrStore::open(default_sqlite)?))
        }
        Backend::Sqlite(path) => Ok(Arc::new(SqliteCdrStore::open(&path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug_or_display() {
        let url = DatabaseUrl::new("postgres://sb:s3cr3t@db.example:5432/switchboard");
        assert_eq!(url.backend(), Backend::Postgres);
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(
                shown.contains("sb:***@db.example:5432/switchboard"),
                "{shown}"
            );
        }
        let q = DatabaseUrl::new("postgresql://h/db?user=x&password=hunter2&sslmode=disable");
        assert!(!q.to_string().contains("hunter2"), "{q}");
        assert!(q.to_string().contains("sslmode=disable"));
    }

    #[test]
    fn sqlite_forms_and_plain_paths_pick_sqlite() {
        for (given, path) in [
            ("sqlite:/var/lib/sb.db", "/var/lib/sb.db"),
            ("sqlite:///var/lib/sb.db", "/var/lib/sb.db"),
            ("data/other.db", "data/other.db"),
        ] {
            assert_eq!(
                DatabaseUrl::new(given).backend(),
                Backend::Sqlite(PathBuf::from(path)),
                "{given}"
            );
        }
    }

    #[test]
    fn an_sqlite_url_opens_that_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("elsewhere.db");
        let url = DatabaseUrl::new(format!("sqlite:{}", file.display()));
        let store = open_store(Some(&url), &dir.path().join("default.db"), "n1");
        assert!(store.is_ok_and(|s| s.ping().is_ok()));
        assert!(file.exists());
        assert!(!dir.path().join("default.db").exists());
    }
}
