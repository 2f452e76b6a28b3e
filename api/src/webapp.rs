//! The web app at `/`, embedded in the binary at build time (`api/build.rs`
//! reads `web/`): the page, its manifest and its service worker at fixed
//! paths, revalidated on every load, and every other file under
//! `/app/{version}/…`, where `version` is a hash of all the files, so
//! browsers keep those for a year without asking. The page is served with a
//! content security policy: scripts and styles from this origin only.
//! Being on the API's own origin, the app needs no CORS set-up.

use crate::core::error::ApiError;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::LazyLock;

mod files {
    include!(concat!(env!("OUT_DIR"), "/webapp_files.rs"));
}

/// Where this build's assets live.
fn assets_base() -> String {
    format!("/app/{}", files::VERSION)
}

/// Files rendered with this build's asset paths, served at their own paths.
const TEMPLATES: [&str; 3] = ["index.html", "manifest.webmanifest", "sw.js"];

/// What the page may load: its own scripts, styles and socket, and media,
/// images and uploads from the object store's signed URLs (another origin
/// in production).
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data: http: https:; media-src 'self' blob: http: https:; \
     connect-src 'self' ws: wss: http: https:; worker-src 'self'; manifest-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The routes of the web app (not part of the OpenAPI document).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { template("index.html") }))
        .route(
            "/manifest.webmanifest",
            get(|| async { template("manifest.webmanifest") }),
        )
        .route("/sw.js", get(|| async { template("sw.js") }))
        .route("/app/{version}/{*path}", get(asset))
}

fn file(name: &str) -> Option<&'static [u8]> {
    files::FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// The templates with `{{ASSETS}}`, `{{VERSION}}` and `{{SHELL}}` (the
/// service worker's list of asset URLs) filled in, rendered once.
static RENDERED: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    let base = assets_base();
    let shell = files::FILES
        .iter()
        .filter(|(name, _)| !TEMPLATES.contains(name))
        .map(|(name, _)| format!("'{base}/{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    TEMPLATES
        .iter()
        .map(|name| {
            let text = String::from_utf8_lossy(file(name).unwrap_or_default())
                .replace("{{ASSETS}}", &base)
                .replace("{{VERSION}}", files::VERSION)
                .replace("{{SHELL}}", &shell);
            (*name, text)
        })
        .collect()
});

fn template(name: &str) -> Response {
    let Some((_, body)) = RENDERED.iter().find(|(n, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type(name)),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        // Rendered once for the process: served by reference, not copied.
        body.as_str(),
    )
        .into_response();
    let headers = response.headers_mut();
    if name == "index.html" {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/app/{version}/{path}`: immutable when `version` is this build's; an
/// older or newer version's URL (a page from another release during a
/// rolling update) still gets today's file, but not cached for good.
async fn asset(Path((version, path)): Path<(String, String)>) -> Response {
    let found = file(&path).filter(|_| !TEMPLATES.contains(&path.as_str()));
    let Some(bytes) = found else {
        return ApiError::NotFound.into_response();
    };
    let cache = if version == files::VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = &RENDERED.iter().find(|(n, _)| *n == "index.html").unwrap().1;
        let base = assets_base();
        let mut named = 0;
        for part in page.split(&format!("{base}/")).skip(1) {
            let path = part.split('"').next().unwrap();
            assert!(
                file(path).is_some(),
                "the page names {path}, which is not embedded"
            );
            named += 1;
        }
        assert!(named >= 3, "the page names {named} assets");
    }

    #[test]
    fn every_module_an_app_module_imports_is_embedded() {
        for (name, bytes) in files::FILES.iter().filter(|(n, _)| n.ends_with(".js")) {
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in String::from_utf8_lossy(bytes).lines() {
                let Some(from) = line.split(" from '").nth(1) else {
                    continue;
                };
                let target = from.split('\'').next().unwrap();
                let resolved = resolve(dir, target);
                assert!(
                    file(&resolved).is_some(),
                    "{name} imports {target} ({resolved}), which is not embedded"
                );
            }
        }
    }

    /// `dir` joined with a relative module path (`./x.js`, `../y.js`).
    fn resolve(dir: &str, target: &str) -> String {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for piece in target.split('/') {
            match piece {
                "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        parts.join("/")
    }
}
