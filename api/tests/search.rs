//! Router tests of search, on the backend `SORI_TEST_DB` names: people by
//! handle or display-name prefix (case- and accent-insensitive, newest
//! first, in pages), posts by tag, and what is left out.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{assert_problem, Api, User};

async fn handles(api: &Api, query: &str, who: &User) -> Vec<String> {
    let r = api.get(&format!("/v1/search?{query}"), who).await;
    r.strings("handle")
}

async fn rename(api: &Api, who: &User, name: &str) {
    let r = api
        .patch("/v1/me", who, json!({"display_name": name}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn people_match_by_handle_or_name_prefix_ignoring_case_and_accents() {
    let api = Api::new().await;
    let me = api.user("viewer").await;
    let elodie = api.user("Elo_Music").await;
    let other = api.user("zed").await;
    rename(&api, &other, "Élodie Dupont").await;
    api.user("melody").await;

    // Newest sign-up first: zed (by name), then Elo_Music (by handle).
    assert_eq!(handles(&api, "q=elo", &me).await, ["zed", "Elo_Music"]);
    assert_eq!(handles(&api, "q=%C3%89LO", &me).await, ["zed", "Elo_Music"]);
    assert_eq!(handles(&api, "q=elo_m", &me).await, ["Elo_Music"]);
    assert_eq!(handles(&api, "q=elodie%20d", &me).await, ["zed"]);
    // A prefix, not a substring.
    assert!(handles(&api, "q=lody", &me).await.is_empty());
    let r = api.get("/v1/search?q=elo", &me).await;
    assert_eq!(r.json["items"][1]["id"], elodie.id.as_str());
    assert_eq!(r.json["items"][0]["display_name"], "Élodie Dupont");

    // Renaming moves the match.
    rename(&api, &other, "Someone").await;
    assert_eq!(handles(&api, "q=elo", &me).await, ["Elo_Music"]);
    assert_eq!(handles(&api, "q=some", &me).await, ["zed"]);
}

#[tokio::test]
async fn people_come_in_pages_without_blocked_users() {
    let api = Api::new().await;
    let me = api.user("viewer").await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(api.user(&format!("sam{i}")).await);
    }
    let pages = api.all_pages("/v1/search?q=SAM", &me, 2).await;
    let seen: Vec<&str> = pages
        .iter()
        .map(|u| u["handle"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["sam4", "sam3", "sam2", "sam1", "sam0"]);

    // Blocked either way: left out.
    api.block(&me, &made[1]).await;
    api.block(&made[3], &me).await;
    assert_eq!(handles(&api, "q=sam", &me).await, ["sam4", "sam2", "sam0"]);
}

#[tokio::test]
async fn posts_match_by_tag() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let tagged = api.post_with(&alice, "#Jazz night").await;
    api.post_with(&alice, "#jazzy other").await;
    let newer = api.post_with(&alice, "more #jazz").await;
    assert_eq!(
        api.ids("/v1/search?q=%23JAZZ&kind=posts", &alice).await,
        [newer, tagged]
    );
    let r = api.get("/v1/search?q=jazz&kind=posts", &alice).await;
    assert_eq!(r.json["items"][0]["author"]["handle"], "alice");
    assert!(r.json["items"][0]["play_count"].is_i64());
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let api = Api::new().await;
    let me = api.user("viewer").await;
    for (query, field) in [
        ("q=", "q"),
        ("q=%20%20", "q"),
        ("q=two%20words&kind=posts", "q"),
        ("q=x&kind=songs", "kind"),
    ] {
        let r = api.get(&format!("/v1/search?{query}"), &me).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], field, "{query}");
    }
    let r = api
        .call(Method::GET, "/v1/search?q=x", None, serde_json::Value::Null)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}
