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

/// Applies the rules to `SORI_S3_BUCKET` for `SORI_CORS_ORIGINS` and the
/// origin of `SORI_PUBLIC_URL`, reads them back, and prints what they allow.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let bucket = settings
        .s3_bucket
        .as_deref()
        .context("SORI_S3_BUCKET: the bucket to configure is needed")?;
    let origins = origins(settings)?;
    if origins.is_empty() {
        bail!("SORI_CORS_ORIGINS and SORI_PUBLIC_URL are empty: name the web app's origins (or *)");
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

/// The origins of `SORI_CORS_ORIGINS`, checked as the API checks them, and
/// the web app's own ([`browser_origins`]).
fn origins(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let config =
        HttpConfig::with_cors_origins(&settings.cors_origins).context("SORI_CORS_ORIGINS")?;
    Ok(browser_origins(&config, settings.public_url.as_deref()))
}

/// Every origin whose pages upload to and play from the bucket: the
/// `SORI_CORS_ORIGINS` ones and the origin of `SORI_PUBLIC_URL`, where the
/// API serves the bundled web app.
pub fn browser_origins(config: &HttpConfig, public_url: Option<&str>) -> Vec<String> {
    let mut origins = config.origins();
    let own = public_url.and_then(origin_of);
    if let Some(own) = own {
        if !origins.iter().any(|o| o == "*" || *o == own) {
            origins.push(own);
        }
    }
    origins
}

/// `https://example.com:8443/sori/` → `https://example.com:8443`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|h| !h.is_empty())?;
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_apps_own_origin_is_added_once() {
        let config = HttpConfig::with_cors_origins("https://a.example").unwrap();
        let all = browser_origins(&config, Some("https://Sori.example:8443/base/"));
        assert_eq!(all, ["https://a.example", "https://sori.example:8443"]);
        let same = browser_origins(&config, Some("https://a.example/"));
        assert_eq!(same, ["https://a.example"]);
        assert_eq!(browser_origins(&config, None), ["https://a.example"]);
    }
}
