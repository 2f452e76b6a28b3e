//! Router tests of the operations endpoints, on the backend `SORI_TEST_DB` names.

mod support;

use axum::http::{header, Method, StatusCode};
use support::{Api, Fetched};

/// `GET path` with no token.
async fn get(api: &Api, path: &str) -> Fetched {
    api.plain(Method::GET, path, &[]).await
}

/// The body as text.
fn text(r: &Fetched) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn healthz_answers_ok() {
    let api = Api::new().await;
    let r = get(&api, "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(text(&r), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn readyz_is_ok_once_migrated() {
    let api = Api::new().await;
    assert_eq!(get(&api, "/readyz").await.status, StatusCode::OK);
}

/// `sori_ready` follows `/readyz`, and each change of its answer is
/// counted, so a flapping process shows even between scrapes.
#[tokio::test]
async fn readiness_and_its_changes_are_metrics() {
    let api = Api::new().await;
    assert_eq!(get(&api, "/readyz").await.status, StatusCode::OK);
    assert_eq!(get(&api, "/readyz").await.status, StatusCode::OK);
    assert_eq!(api.metric("sori_ready"), 1.0);
    assert_eq!(api.metric("sori_readiness_changes_total"), 0.0);
    let draining = &api.state.draining;
    for (drain, status) in [
        (true, StatusCode::SERVICE_UNAVAILABLE),
        (false, StatusCode::OK),
        (true, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        draining.store(drain, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&api, "/readyz").await.status, status);
    }
    assert_eq!(api.metric("sori_ready"), 0.0);
    assert_eq!(api.metric("sori_readiness_changes_total"), 3.0);
}

#[tokio::test]
async fn readyz_refuses_while_migrations_are_pending() {
    let api = Api::unmigrated().await;
    let r = get(&api, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header(header::CONTENT_TYPE), "application/problem+json");
    let problem = r.json();
    assert_eq!(problem["status"], 503);
    assert!(problem["type"].as_str().unwrap().ends_with("/unavailable"));
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let api = Api::new().await;
    get(&api, "/healthz").await;
    let r = get(&api, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = text(&r);
    assert!(body.ends_with("# EOF\n"), "{body}");
    // A counter's family is named without `_total`, its sample with it.
    assert!(body.contains("# TYPE sori_http_requests counter"), "{body}");
    // The standard process metrics, with values a live process has.
    let value = |name: &str| -> f64 {
        let line = body
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    assert!(
        body.contains(r#"sori_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{body}"
    );
}

/// Any method token is valid HTTP; each unknown one is counted as
/// `other`, so requests cannot grow the label set without bound.
#[tokio::test]
async fn unknown_methods_share_one_label() {
    let api = Api::new().await;
    for name in ["BREW", "PROPFIND", "X-RANDOM-1", "X-RANDOM-2"] {
        let method = Method::from_bytes(name.as_bytes()).unwrap();
        api.plain(method, "/healthz", &[]).await;
    }
    let body = text(&get(&api, "/metrics").await);
    assert!(
        body.contains(
            r#"sori_http_requests_total{method="other",route="/healthz",status="405"} 4"#
        ),
        "{body}"
    );
    for name in ["BREW", "PROPFIND", "X-RANDOM"] {
        assert!(!body.contains(name), "{name} became a label: {body}");
    }
}

/// With a metrics token set, only its bearer reads `/metrics`; a user's
/// token or a near miss gets the 401 problem.
#[tokio::test]
async fn a_metrics_token_guards_the_metrics() {
    let api = Api::with(|s| s.with_metrics_token(Some("scrape-secret"))).await;
    let with = |authorization: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let api = &api;
        async move { api.plain(Method::GET, "/metrics", &headers).await }
    };
    for refused in [
        None,
        Some("Bearer scrape-secre"),
        Some("Basic scrape-secret"),
    ] {
        let r = with(refused).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(r.header(header::CONTENT_TYPE), "application/problem+json");
    }
    let r = with(Some("Bearer scrape-secret")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("sori_http_requests_total"));
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_are_served_offline() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let docs = get(&api, "/docs/").await;
    assert_eq!(docs.status, StatusCode::OK);
    let html = text(&docs);
    assert!(html.contains("swagger-ui"));
    // The UI's assets come from this server, not a CDN.
    let js = get(&api, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(text(&js).len() > 100_000);
    assert!(
        !html.contains("https://"),
        "docs page must not load from a CDN"
    );
}

#[tokio::test]
async fn unknown_routes_are_404_with_a_request_id() {
    let api = Api::new().await;
    let r = get(&api, "/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(r.header(header::CONTENT_TYPE), "application/problem+json");
}

/// Every `sori_…` and `process_…` metric name the docs and the deployment
/// files mention (the dashboard's and the alerts' expressions among them)
/// is one a process exposes (the API's metrics and the worker pool's, as
/// `sori serve` registers both), so dashboards and alerts built from them
/// find their series.
#[tokio::test]
async fn every_metric_the_docs_name_is_exposed() {
    let state = sori_api::AppState::new(sori_db::testing::fresh_db().await.db.clone())
        .with_pipeline_metrics(&sori_pipeline::metrics::PipelineMetrics::default());
    // The push dispatcher's, which every API process runs.
    sori_api::push::dispatch::PushMetrics::default().register(&state.metrics);
    let exposed = state.metrics.render();
    let families: Vec<&str> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let is_exposed = |name: &str| {
        families.iter().any(|f| {
            ["", "_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name == format!("{f}{suffix}"))
        })
    };
    // Names in the docs that are not metrics: crates, databases, scripts,
    // functions, the `process_*` family as a whole.
    let not_metrics = [
        "process_",
        "process_file",
        "sori_api",
        "sori_db",
        "sori_codecs",
        "sori_pipeline",
        "sori_bench",
        "sori_chaos",
        "sori_stack",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "deploy"] {
        let mut pending = vec![root.join(dir)];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| ["md", "yaml", "yml", "json"].contains(&e.to_str().unwrap()))
                {
                    files.push(path);
                }
            }
        }
    }
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let named = text
            .match_indices("sori_")
            .chain(text.match_indices("process_"));
        for (at, _) in named {
            let before = at.checked_sub(1).map(|b| text.as_bytes()[b]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !not_metrics.contains(&name.as_str()) && !is_exposed(&name) {
                let shown = file
                    .strip_prefix(&root)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                missing.push(format!("{shown}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named in the docs, not exposed: {missing:?}"
    );
}
