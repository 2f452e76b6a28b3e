//! Router tests of trending explore, on the backend `SORI_TEST_DB` names:
//! `GET /v1/explore?sort=trending` orders by plays, likes and comments as
//! they decay, kept up to date by each event; it pages without repeats,
//! filters by tag, leaves out what the viewer blocked or muted, and refuses
//! an unknown sort naming the field.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{assert_problem, Api, User};

async fn like(api: &Api, post: &str, who: &User) {
    let r = api.put(&format!("/v1/posts/{post}/like"), who).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
}

#[tokio::test]
async fn trending_puts_the_most_engaged_first_and_recent_stays_newest_first() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let ben = api.user("ben").await;
    let fans = api.many_users("fan", 3).await;
    let viewer = api.user("viewer").await;
    let talked_about = api.post_with(&ana, "hello #voice").await;
    let played = api.post_with(&ben, "a song #voice").await;
    let quiet = api.post_with(&ana, "just now").await;
    for fan in &fans {
        like(&api, &talked_about, fan).await;
    }
    let comment = json!({"text": "so good"});
    let r = api
        .post(
            &format!("/v1/posts/{talked_about}/comments"),
            &fans[0],
            comment,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = api
        .post(&format!("/v1/posts/{played}/plays"), &fans[1], json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    let trending = api.ids("/v1/explore?sort=trending", &viewer).await;
    assert_eq!(
        trending,
        [talked_about.as_str(), played.as_str(), quiet.as_str()]
    );
    let recent = api.ids("/v1/explore?sort=recent", &viewer).await;
    assert_eq!(
        recent,
        [quiet.as_str(), played.as_str(), talked_about.as_str()]
    );
    assert_eq!(api.ids("/v1/explore", &viewer).await, recent);

    // Page by page, the same order, each post once.
    let paged: Vec<String> = api
        .all_pages("/v1/explore?sort=trending", &viewer, 1)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, trending);

    // A like lifts the played post (1 + 1 + 3) but not above three likes
    // and a comment (1 + 9 + 5).
    like(&api, &played, &fans[2]).await;
    assert_eq!(
        api.ids("/v1/explore?sort=trending", &viewer).await,
        [talked_about.as_str(), played.as_str(), quiet.as_str()]
    );
    // The quiet post, liked by five (1 + 15), overtakes both.
    for who in [&fans[0], &fans[1], &fans[2], &ben, &viewer] {
        like(&api, &quiet, who).await;
    }
    assert_eq!(
        api.ids("/v1/explore?sort=trending", &viewer).await,
        [quiet.as_str(), talked_about.as_str(), played.as_str()]
    );

    // By tag, and without what the viewer blocked or muted.
    assert_eq!(
        api.ids("/v1/explore?sort=trending&tag=voice", &viewer)
            .await,
        [talked_about.as_str(), played.as_str()]
    );
    api.mute(&viewer, &ben).await;
    assert_eq!(
        api.ids("/v1/explore?sort=trending&tag=voice", &viewer)
            .await,
        [talked_about.as_str()]
    );
    api.block(&viewer, &ana).await;
    assert!(api
        .ids("/v1/explore?sort=trending", &viewer)
        .await
        .is_empty());

    let r = api.get("/v1/explore?sort=hot", &viewer).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "sort", "{}", r.json);
}
