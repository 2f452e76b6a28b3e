//! Fresh databases for tests: each test gets its own, on the backend
//! named by `SORI_TEST_DB` (`sqlite`, the default, or `postgres`).
//!
//! PostgreSQL tests each get a new schema in the database named by
//! `SORI_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! the test script drops the previous run's schemas before starting.

use crate::{Db, DbError};
use std::path::PathBuf;

/// Keeps a test database alive (and its SQLite directory on disk) for the test's length.
#[derive(Debug)]
pub struct TestDb {
    pub db: Db,
    /// The URL another process (a `sori` binary under test) can use to reach the same database.
    pub url: String,
    _dir: Option<TempDir>,
}

/// A directory removed on drop (no dependency on `tempfile` outside tests).
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which backend the test suite runs on.
pub fn backend_name() -> String {
    std::env::var("SORI_TEST_DB").unwrap_or_else(|_| "sqlite".to_owned())
}

/// A fresh, migrated database for one test. Panics (failing the test loudly)
/// when the requested backend is unreachable: tests never skip silently.
pub async fn fresh_db() -> TestDb {
    fresh(true).await
}

/// A fresh database with no migrations applied (to test readiness checks).
pub async fn fresh_unmigrated_db() -> TestDb {
    fresh(false).await
}

async fn fresh(migrate: bool) -> TestDb {
    match try_fresh_db(migrate).await {
        Ok(db) => db,
        Err(e) => panic!("test database ({}) unavailable: {e}", backend_name()),
    }
}

async fn try_fresh_db(migrate: bool) -> Result<TestDb, DbError> {
    let name = unique_name();
    let (url, dir) = match backend_name().as_str() {
        "postgres" => (postgres_schema(&name).await?, None),
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("sori-test-{name}"));
            std::fs::create_dir_all(&dir).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
            let url = format!("sqlite://{}/sori.db", dir.display());
            (url, Some(TempDir(dir)))
        }
        other => return Err(DbError::UnsupportedUrl(format!("SORI_TEST_DB={other}"))),
    };
    let db = Db::connect(&url, 5).await?;
    if migrate {
        db.migrate().await?;
    }
    Ok(TestDb { db, url, _dir: dir })
}

/// Creates schema `t_<name>` and returns a URL whose connections use it.
async fn postgres_schema(name: &str) -> Result<String, DbError> {
    let base = std::env::var("SORI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let admin = Db::connect(&base, 1).await?;
    sqlx::query(&format!("CREATE SCHEMA t_{name}"))
        .execute(admin.pool())
        .await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3Dt_{name}"))
}

fn unique_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
