//! Starting the server roles and shutting them down cleanly.

use crate::cli::Settings;
use anyhow::Context;
use sori_api::AppState;
use sori_pipeline::db::redact;
use sori_pipeline::Db;
use std::time::Duration;

/// Which halves of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and worker pool together (`sori serve`).
    All,
    /// API only (`sori api`).
    Api,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url()?;
    let db = Db::connect(&url, 10)
        .await
        .with_context(|| format!("DATABASE_URL={}", redact(&url)))?;
    db.migrate()
        .await
        .with_context(|| format!("DATABASE_URL={}: migrations", redact(&url)))?;
    Ok(db)
}

/// `sori migrate`.
pub fn migrate(settings: &Settings) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let db = open_db(settings).await?;
        db.close().await;
        tracing::info!("migrations applied");
        Ok(())
    })
}

/// `sori serve` and `sori api`: serve until SIGTERM/SIGINT, then drain.
pub fn run(settings: &Settings, role: Role) -> anyhow::Result<()> {
    settings.check_backends()?;
    runtime()?.block_on(async {
        let db = open_db(settings).await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("SORI_LISTEN={}: cannot listen", settings.listen))?;
        tracing::info!(listen = %settings.listen, ?role, "sori is serving");
        let state = AppState::new(db.clone());
        let grace = Duration::from_secs(settings.shutdown_grace_secs);
        let server = sori_api::serve(listener, state, shutdown_signal());
        // After the signal, in-flight requests get `grace` to finish.
        tokio::select! {
            result = server => result.context("HTTP server")?,
            _ = async { shutdown_signal().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("grace period over; closing remaining connections");
            }
        }
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
