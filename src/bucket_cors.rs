//! `sori bucket-cors`: the S3 bucket's CORS rules for the web app's origins,
//! applied and read back; and the check the API runs at start.
//!
//! Browsers upload to presigned PUT URLs and play presigned GET URLs
//! straight from the bucket, another origin than the app's: without these
//! rules the upload's preflight fails and a `fetch` of the audio is refused.

use crate::cli::Settings;
use crate::serve::runtime;
use anyhow::{bail, Context};
use sori_api::core::http::HttpConfig;
use sori_pipeline::store::s3::cors::{ALLOWED_HEADERS, EXPOSE_HEADERS, METHODS};
use sori_pipeline::store::s3::S3Store;

/// Applies the rules to `SORI_S3_BUCKET` for `SORI_CORS_ORIGINS`, reads
/// them back, and prints what they allow.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let bucket = settings
        .s3_bucket
        .as_deref()
        .context("SORI_S3_BUCKET: the bucket to configure is needed")?;
    let origins = origins(settings)?;
    if origins.is_empty() {
        bail!("SORI_CORS_ORIGINS is empty: name the web app's origins (or *)");
    }
    runtime()?.block_on(async {
        let store = S3Store::from_env(bucket)
            .await
            .with_context(|| format!("SORI_S3_BUCKET={bucket}"))?;
        store
            .apply_cors(&origins)
            .await
            .with_context(|| format!("SORI_S3_BUCKET={bucket}: cannot set CORS"))?;
        let missing = store
            .cors_missing(&origins)
            .await
            .with_context(|| format!("SORI_S3_BUCKET={bucket}: cannot read CORS back"))?;
        if !missing.is_empty() {
            bail!(
                "SORI_S3_BUCKET={bucket}: the rules read back do not allow {}",
                missing.join(", ")
            );
        }
        println!(
            "SORI_S3_BUCKET={bucket}: CORS allows {} to {} with headers {}, exposing {}",
            origins.join(", "),
            METHODS.join(", "),
            ALLOWED_HEADERS.join(", "),
            EXPOSE_HEADERS.join(", ")
        );
        Ok(())
    })
}

/// The origins of `SORI_CORS_ORIGINS`, checked as the API checks them.
fn origins(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let config =
        HttpConfig::with_cors_origins(&settings.cors_origins).context("SORI_CORS_ORIGINS")?;
    Ok(config.origins())
}

/// At the API's start: one warning line when the bucket's rules leave out
/// an allowed origin (or cannot be read); nothing to check without origins.
pub async fn check(store: &S3Store, origins: &[String]) {
    if origins.is_empty() {
        return;
    }
    match store.cors_missing(origins).await {
        Ok(missing) if missing.is_empty() => {
            tracing::info!(bucket = store.bucket(), "the bucket's CORS rules allow every SORI_CORS_ORIGINS origin");
        }
        Ok(missing) => tracing::warn!(
            "SORI_S3_BUCKET={}: its CORS rules do not let {} upload or play (GET, HEAD and PUT with Content-Type); browsers there will fail; run `sori bucket-cors`",
            store.bucket(),
            missing.join(", ")
        ),
        Err(e) => tracing::warn!(
            "SORI_S3_BUCKET={}: cannot read its CORS rules ({e}); browsers on SORI_CORS_ORIGINS may not upload or play",
            store.bucket()
        ),
    }
}
