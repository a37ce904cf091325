//! Test support: every store test runs on SQLite, and on PostgreSQL too when `SWITCHBOARD_TEST_PG`
//! holds a URL (scripts/test-postgres sets it). Each PostgreSQL run gets a schema of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{open_store, CdrStore, DatabaseUrl};

/// One database a test can open (and reopen, to prove data reached it).
pub(crate) enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Pg {
        url: DatabaseUrl,
    },
}

impl Db {
    pub(crate) fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("data").join("switchboard.db");
        Db::Sqlite { _dir: dir, path }
    }

    /// A fresh schema in the test server, or `None` (with a line saying so) when there is none.
    pub(crate) fn postgres(test: &str) -> Option<Db> {
        let Some(base) = std::env::var("SWITCHBOARD_TEST_PG")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            eprintln!("SKIPPED on PostgreSQL: {test} (SWITCHBOARD_TEST_PG is not set)");
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let schema = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("SWITCHBOARD_TEST_PG: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = DatabaseUrl::new(format!("{base}{sep}options=-c%20search_path%3D{schema}"));
        Some(Db::Pg { url })
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Pg { .. } => "postgres",
        }
    }

    pub(crate) fn open(&self) -> Arc<dyn CdrStore> {
        self.open_as("test-node")
    }

    /// As a given node (PostgreSQL keeps which node wrote each call).
    pub(crate) fn open_as(&self, node: &str) -> Arc<dyn CdrStore> {
        let opened = match self {
            Db::Sqlite { path, .. } => open_store(None, path, node),
            Db::Pg { url } => open_store(Some(url), std::path::Path::new(""), node),
        };
        opened.unwrap_or_else(|e| panic!("open {}: {e}", self.name()))
    }
}

/// Runs `check` on SQLite, then on PostgreSQL when one is configured.
pub(crate) fn each_backend(test: &str, check: impl Fn(&Db)) {
    check(&Db::sqlite());
    if let Some(pg) = Db::postgres(test) {
        check(&pg);
    }
}
