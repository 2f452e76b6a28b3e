//! Router tests of the bundled web app: the page and what it names are
//! served, assets are cached for good only under this build's version, the
//! page and service worker are revalidated, and the page's policy keeps
//! scripts to this origin. The app's behaviour is `tests/webapp.rs`, in Chromium.

mod support;

use axum::http::{header, Method, StatusCode};
use support::{Api, Fetched};

async fn get(api: &Api, path: &str) -> Fetched {
    api.plain(Method::GET, path, &[]).await
}

fn text(r: &Fetched) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Every `/app/{version}/…` path the text names.
fn asset_paths(text: &str) -> Vec<String> {
    text.split("/app/")
        .skip(1)
        .map(|rest| {
            let end = rest.find(['"', '\'']).unwrap();
            format!("/app/{}", &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn the_page_is_revalidated_and_keeps_scripts_to_this_origin() {
    let api = Api::new().await;
    let page = get(&api, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    let policy = page.header(header::CONTENT_SECURITY_POLICY);
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = text(&page);
    assert!(
        html.contains(r#"<script type="module" src="/app/"#),
        "{html}"
    );
    assert!(!html.contains("{{"), "an unfilled template: {html}");
    assert!(
        !html.contains("//cdn") && !html.contains("https://"),
        "loads from elsewhere: {html}"
    );
}

#[tokio::test]
async fn assets_are_immutable_under_this_version_only() {
    let api = Api::new().await;
    let html = text(&get(&api, "/").await);
    let assets = asset_paths(&html);
    assert!(assets.len() >= 3, "{assets:?}");
    for path in &assets {
        let r = get(&api, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.header(header::CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(
            r.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
    }
    let script = assets.iter().find(|p| p.ends_with("/js/app.js")).unwrap();
    let r = get(&api, script).await;
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    // A page of another release asks for its own version: today's file, not cached for good.
    let version = script.split('/').nth(2).unwrap();
    let other = script.replace(version, "000000000000");
    let r = get(&api, &other).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-cache");
    // Nothing but the app's files, and no template by its raw path.
    for missing in ["js/nothing.js", "index.html", "sw.js", "../Cargo.toml"] {
        let r = get(&api, &format!("/app/{version}/{missing}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn the_service_worker_caches_this_versions_shell() {
    let api = Api::new().await;
    let html = text(&get(&api, "/").await);
    let sw = get(&api, "/sw.js").await;
    assert_eq!(sw.status, StatusCode::OK);
    assert_eq!(sw.header(header::CACHE_CONTROL), "no-cache");
    assert_eq!(
        sw.header(header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    let shell = asset_paths(&text(&sw));
    for path in asset_paths(&html) {
        assert!(shell.contains(&path), "the shell lacks {path}: {shell:?}");
    }
    let manifest = get(&api, "/manifest.webmanifest").await;
    assert_eq!(
        manifest.header(header::CONTENT_TYPE),
        "application/manifest+json"
    );
    let manifest = manifest.json();
    assert_eq!(manifest["start_url"], "/#/feed");
    for icon in manifest["icons"].as_array().unwrap() {
        let src = icon["src"].as_str().unwrap();
        assert_eq!(get(&api, src).await.status, StatusCode::OK, "{src}");
    }
}
