//! Sori's database layer: one pool over SQLite (embedded default) or
//! PostgreSQL (production), chosen by the URL, with each backend's migrations
//! (`migrations/sqlite`, `migrations/postgres`, embedded at compile time) and
//! fresh per-test databases ([`testing`]).
//!
//! A crate of its own because the schema belongs to the whole service, not
//! to the media pipeline: the API, the pipeline and the binary share this one
//! pool type and one migration history.
//!
//! Queries go through sqlx's `Any` driver so the same SQL (with `$1` style
//! parameters, which both backends accept) serves both databases; where a
//! backend-specific statement is clearly worth it, [`Db::backend`] says which
//! one is in use.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;

pub mod testing;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pooled connection may sit idle and still be handed out
/// untested. sqlx tests a connection with a round trip to the server when
/// the pool hands it out and again when it comes back, so a statement costs
/// three round trips where one does the work. The test on return stays (it
/// drops a connection a statement left broken); the one on hand-out is kept
/// for connections idle this long, which a server restart or an idle
/// timeout may have closed meanwhile: a dead one is replaced before use, so
/// the first requests after a restart do not fail.
const TEST_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of an open connection: for code handed a transaction's
    /// connection rather than the [`Db`].
    pub fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL names neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme in {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// The server is unreachable or refused us (recoverable: retry later).
    #[error("cannot connect: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A connection pool plus the knowledge of which backend it is.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Opens a pool. SQLite files are created if missing and run in WAL mode
    /// with foreign keys on and `synchronous=FULL`, so an acknowledged write
    /// survives a power cut or `kill -9`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url_with_create(url),
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
        // One direct connection first: a pool would only say "timed out",
        // where the driver says "connection refused" or "role does not exist".
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(&options))
            .await
            .map_err(|_| DbError::Connect(sqlx::Error::PoolTimedOut))?
            .map_err(DbError::Connect)?;
        probe.close().await.map_err(DbError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= TEST_WHEN_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration of this backend. Migrations a newer
    /// release applied are left alone (not an error): during a rolling update
    /// the old release's processes start against the new schema, which is
    /// additive and backward compatible (docs/SCALING.md).
    pub async fn migrate(&self) -> Result<(), DbError> {
        // `migrations` is public only for `migrate!()`; copying it is the way
        // to an owned migrator whose `ignore_missing` can be set.
        let mut migrator = Migrator {
            migrations: self.migrator().migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers and every embedded migration is
    /// applied: what `/readyz` reports. Migrations the binary does not know
    /// (a newer release applied them) do not matter: migrations are additive
    /// and backward compatible, so during a rolling update the old release's
    /// processes stay ready on the new schema.
    pub async fn is_ready(&self) -> bool {
        let applied: Result<Vec<i64>, _> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_all(&self.pool)
                .await;
        let Ok(applied) = applied else { return false };
        self.migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .all(|m| applied.contains(&m.version))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl(redact(url)))
    }
}

/// `sqlite://path` → `sqlite://path?mode=rwc` so a fresh data directory just works.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Hides a password in a URL before it reaches a log line or an error message.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/sori.db"), "sqlite://data/sori.db");
    }

    #[test]
    fn rejects_unknown_schemes() {
        assert!(matches!(
            backend_of("mysql://x"),
            Err(DbError::UnsupportedUrl(_))
        ));
    }

    #[tokio::test]
    async fn fresh_database_is_migrated_and_ready() {
        let t = testing::fresh_db().await;
        assert!(t.db.is_ready().await);
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(users, 0);
    }

    #[tokio::test]
    async fn a_schema_ahead_of_the_binary_is_ready_and_one_behind_is_not() {
        let t = testing::fresh_db().await;
        // A newer release applied a migration this binary does not have.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             SELECT 99990101000000, 'from a newer release', installed_on, success, checksum, execution_time \
             FROM _sqlx_migrations WHERE version = 1",
        )
        .execute(t.db.pool())
        .await
        .unwrap();
        assert!(t.db.is_ready().await);
        // An old binary's start-up migration does not refuse the newer schema.
        t.db.migrate().await.unwrap();
        // One of this binary's migrations missing: not ready.
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2")
            .execute(t.db.pool())
            .await
            .unwrap();
        assert!(!t.db.is_ready().await);
    }

    /// The server dropped every pooled connection while they sat idle (a
    /// restart, an idle timeout): the next statements still succeed, on new
    /// connections, because an idle connection is tested before use.
    #[tokio::test]
    async fn connections_the_server_dropped_while_idle_are_replaced_before_use() {
        if testing::backend_name() != "postgres" {
            eprintln!("skipped: it needs SORI_TEST_DB=postgres (SQLite has no server to drop connections)");
            return;
        }
        let t = testing::fresh_db().await;
        let mut held = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..t.db.pool().options().get_max_connections() {
            let mut conn = t.db.pool().acquire().await.unwrap();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            pids.push(pid);
            held.push(conn);
        }
        drop(held);
        let admin = Db::connect(&t.url, 1).await.unwrap();
        for pid in &pids {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(admin.pool())
                .await
                .unwrap();
        }
        admin.close().await;
        tokio::time::sleep(TEST_WHEN_IDLE_FOR + Duration::from_millis(200)).await;
        for _ in 0..pids.len() {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(t.db.pool())
                .await
                .expect("a statement after the server dropped the idle connections");
            assert!(!pids.contains(&pid), "a dropped connection was used");
        }
    }
}
