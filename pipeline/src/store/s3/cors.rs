//! The bucket's CORS rules: what a web app's browser needs to upload to
//! presigned PUT URLs and to play and `fetch` presigned GET URLs, straight
//! from the bucket, from the origins the API allows (`SORI_CORS_ORIGINS`).
//!
//! [`S3Store::apply_cors`] writes them (`sori bucket-cors`);
//! [`S3Store::cors_missing`] reads the bucket's rules back and names the
//! origins they leave out (the API warns about those at start). S3 answers
//! a preflight only when one rule allows the origin, the method and every
//! header asked for.

use super::{store_error, S3Store};
use crate::store::StoreError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

/// Methods browsers use on the bucket: uploads, playback and its probes.
pub const METHODS: [&str; 3] = ["GET", "HEAD", "PUT"];
/// Request headers a preflight may ask for: the upload's signed type, and
/// the conditional and ranged requests of players (a single range is
/// usually safelisted, not always).
pub const ALLOWED_HEADERS: [&str; 5] = [
    "content-type",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
];
/// Response headers scripts may read: validators and ranges.
pub const EXPOSE_HEADERS: [&str; 4] = ["ETag", "Content-Range", "Accept-Ranges", "Content-Length"];
/// How long browsers may cache a preflight's answer.
const MAX_AGE_SECS: i32 = 3600;
/// The id of Sori's rule, so operators can tell it from theirs.
const RULE_ID: &str = "sori-browser-media";

/// Sori's rule for `origins` (`*` for any).
pub fn rule(origins: &[String]) -> Result<CorsRule, StoreError> {
    let mut rule = CorsRule::builder()
        .id(RULE_ID)
        .max_age_seconds(MAX_AGE_SECS);
    for origin in origins {
        rule = rule.allowed_origins(origin);
    }
    for method in METHODS {
        rule = rule.allowed_methods(method);
    }
    for header in ALLOWED_HEADERS {
        rule = rule.allowed_headers(header);
    }
    for header in EXPOSE_HEADERS {
        rule = rule.expose_headers(header);
    }
    rule.build()
        .map_err(|e| StoreError::Permanent(format!("CORS rule: {e}")))
}

impl S3Store {
    /// Replaces the bucket's CORS configuration with Sori's rule for
    /// `origins`. Rules others added are replaced too: S3 keeps one
    /// configuration per bucket.
    pub async fn apply_cors(&self, origins: &[String]) -> Result<(), StoreError> {
        let config = CorsConfiguration::builder()
            .cors_rules(rule(origins)?)
            .build()
            .map_err(|e| StoreError::Permanent(format!("CORS configuration: {e}")))?;
        self.client
            .put_bucket_cors()
            .bucket(&self.bucket)
            .cors_configuration(config)
            .send()
            .await
            .map_err(|e| store_error("put CORS of", &self.bucket, e))?;
        Ok(())
    }

    /// The bucket's CORS rules; none when it has no configuration.
    pub async fn cors_rules(&self) -> Result<Vec<CorsRule>, StoreError> {
        match self
            .client
            .get_bucket_cors()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.cors_rules().to_vec()),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") => Ok(Vec::new()),
            Err(e) => Err(StoreError::Permanent(format!(
                "get CORS of {}: {}",
                self.bucket,
                DisplayErrorContext(&e)
            ))),
        }
    }

    /// The `origins` the bucket's rules do not let upload and play: no one
    /// rule allows the origin with [`METHODS`] and the `Content-Type` header.
    pub async fn cors_missing(&self, origins: &[String]) -> Result<Vec<String>, StoreError> {
        let rules = self.cors_rules().await?;
        Ok(origins
            .iter()
            .filter(|origin| !rules.iter().any(|r| allows(r, origin)))
            .cloned()
            .collect())
    }
}

/// Whether one rule lets `origin` upload and play.
fn allows(rule: &CorsRule, origin: &str) -> bool {
    let origin_ok = rule
        .allowed_origins()
        .iter()
        .any(|pattern| origin_matches(pattern, origin));
    let methods_ok = METHODS.iter().all(|m| {
        rule.allowed_methods()
            .iter()
            .any(|a| a.eq_ignore_ascii_case(m))
    });
    let header_ok = rule
        .allowed_headers()
        .iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case("content-type"));
    origin_ok && methods_ok && header_ok
}

/// S3's origin patterns: exact (any case), `*`, or one `*` wildcard
/// (`https://*.example.com`). A configured `*` is matched only by `*`.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (pattern, origin) = (pattern.to_ascii_lowercase(), origin.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == origin,
        Some((head, tail)) => {
            origin.len() >= head.len() + tail.len()
                && origin.starts_with(head)
                && origin.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_allows_its_origins_only_with_every_method_and_the_type_header() {
        let ours = rule(&["https://app.example".to_owned()]).unwrap();
        assert!(allows(&ours, "https://app.example"));
        assert!(allows(&ours, "HTTPS://APP.EXAMPLE"));
        assert!(!allows(&ours, "https://evil.example"));
        let wildcard = rule(&["https://*.sori.example".to_owned()]).unwrap();
        assert!(allows(&wildcard, "https://web.sori.example"));
        assert!(!allows(&wildcard, "https://sori.example.evil"));
        let any = rule(&["*".to_owned()]).unwrap();
        assert!(allows(&any, "http://localhost:3000"));
        let get_only = CorsRule::builder()
            .allowed_origins("https://app.example")
            .allowed_methods("GET")
            .allowed_headers("*")
            .build()
            .unwrap();
        assert!(
            !allows(&get_only, "https://app.example"),
            "uploads need PUT"
        );
        let no_type = CorsRule::builder()
            .allowed_origins("https://app.example")
            .allowed_methods("GET")
            .allowed_methods("HEAD")
            .allowed_methods("PUT")
            .build()
            .unwrap();
        assert!(
            !allows(&no_type, "https://app.example"),
            "uploads send Content-Type"
        );
    }
}
