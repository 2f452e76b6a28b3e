//! Router tests of post visibility, on the backend `SORI_TEST_DB` names: the
//! table of visibility (public, followers, private) × the viewer's relation
//! to the author (stranger, follower, blocked, muted, owner, admin) → the
//! exact status of the post, its comments, a like and its audio, and its
//! presence in the feed, explore, explore by tag, post search and the
//! author's profile; then the account default, which mentions are told,
//! and editing a caption (tags derived again, others kept).

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{assert_problem, Api, User};

/// How one viewer relates to the author.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Viewer {
    Stranger,
    Follower,
    /// The author blocked them (which also ended their follow).
    Blocked,
    /// A follower who muted the author.
    Muted,
    Owner,
    /// An admin who does not follow the author.
    Admin,
}

/// What a viewer gets for one post.
#[derive(Debug, PartialEq)]
struct Seen {
    get: StatusCode,
    comments: StatusCode,
    like: StatusCode,
    audio: StatusCode,
    feed: bool,
    explore: bool,
    tag: bool,
    search: bool,
    profile: bool,
}

const OK: StatusCode = StatusCode::OK;
const GONE: StatusCode = StatusCode::NOT_FOUND;

/// Everything shown, as to the author's follower.
fn everything() -> Seen {
    Seen {
        get: OK,
        comments: OK,
        like: StatusCode::NO_CONTENT,
        audio: StatusCode::FOUND,
        feed: true,
        explore: true,
        tag: true,
        search: true,
        profile: true,
    }
}

/// Nothing shown: the post does not exist for the viewer.
fn nothing() -> Seen {
    Seen {
        get: GONE,
        comments: GONE,
        like: GONE,
        audio: StatusCode::FORBIDDEN,
        feed: false,
        explore: false,
        tag: false,
        search: false,
        profile: false,
    }
}

/// The expected answer of the table.
fn expected(visibility: &str, viewer: Viewer) -> Seen {
    let not_following = Seen {
        feed: false,
        ..everything()
    };
    match (visibility, viewer) {
        (_, Viewer::Owner) => everything(),
        // Acting across a block on a post meant for you is refused; reading finds nothing.
        ("public", Viewer::Blocked) => Seen {
            like: StatusCode::FORBIDDEN,
            ..nothing()
        },
        (_, Viewer::Blocked) => nothing(),
        ("private", _) => nothing(),
        ("followers", Viewer::Stranger | Viewer::Admin) => nothing(),
        ("public", Viewer::Stranger | Viewer::Admin) => not_following,
        (_, Viewer::Follower) => everything(),
        (_, Viewer::Muted) => Seen {
            // Muting quiets the feed and explore, not the profile or a link.
            feed: false,
            explore: false,
            tag: false,
            search: false,
            ..everything()
        },
        other => unreachable!("{other:?}"),
    }
}

/// One viewer of each kind, related to `author` as its name says.
async fn viewers(api: &Api, author: &User) -> Vec<(Viewer, User)> {
    let stranger = api.user("stranger").await;
    let follower = api.user("follower").await;
    api.follow(&follower, author).await;
    let blocked = api.user("blocked").await;
    api.follow(&blocked, author).await;
    api.block(author, &blocked).await;
    let muted = api.user("muted").await;
    api.follow(&muted, author).await;
    api.mute(&muted, author).await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    let owner = User {
        id: author.id.clone(),
        handle: author.handle.clone(),
        token: author.token.clone(),
    };
    vec![
        (Viewer::Stranger, stranger),
        (Viewer::Follower, follower),
        (Viewer::Blocked, blocked),
        (Viewer::Muted, muted),
        (Viewer::Owner, owner),
        (Viewer::Admin, admin),
    ]
}

/// What `who` gets for `post` (on `media`, tagged `tag`, by `author`).
async fn seen(api: &Api, who: &User, author: &User, post: &str, media: &str, tag: &str) -> Seen {
    let has = |ids: Vec<String>| ids.iter().any(|id| id == post);
    let seen = Seen {
        get: api.get(&format!("/v1/posts/{post}"), who).await.status,
        comments: api
            .get(&format!("/v1/posts/{post}/comments"), who)
            .await
            .status,
        audio: api
            .get_raw(&format!("/v1/media/{media}/audio"), who, &[])
            .await
            .status,
        feed: has(api.feed_ids(who).await),
        explore: has(api.ids("/v1/explore", who).await),
        tag: has(api.ids(&format!("/v1/explore?tag={tag}"), who).await),
        search: has(api
            .ids(&format!("/v1/search?kind=posts&q=%23{tag}"), who)
            .await),
        profile: has(api
            .ids(&format!("/v1/users/{}/posts", author.id), who)
            .await),
        like: api.put(&format!("/v1/posts/{post}/like"), who).await.status,
    };
    // Leave the post as it was for the next visibility.
    api.delete(&format!("/v1/posts/{post}/like"), who).await;
    seen
}

#[tokio::test]
async fn each_visibility_reaches_exactly_its_audience() {
    let api = Api::new().await;
    let author = api.user("author").await;
    let viewers = viewers(&api, &author).await;
    let media = api.media(&author, "ready").await;
    let r = api
        .post(
            "/v1/posts",
            &author,
            json!({"media_id": media, "caption": "morning #walk"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["visibility"], "public");
    let post = r.id();

    for visibility in ["public", "followers", "private"] {
        let r = api
            .patch(
                &format!("/v1/posts/{post}"),
                &author,
                json!({"visibility": visibility}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["visibility"], visibility);
        assert!(r.json["edited_at"].is_null(), "visibility is not an edit");
        for (kind, who) in &viewers {
            let got = seen(&api, who, &author, &post, &media, "walk").await;
            assert_eq!(
                got,
                expected(visibility, *kind),
                "{visibility} post to {kind:?}"
            );
        }
    }
}

#[tokio::test]
async fn moderators_hear_a_reported_followers_only_post_and_no_other() {
    let api = Api::new().await;
    let author = api.user("author").await;
    let follower = api.user("follower").await;
    let admin = api.user("admin").await;
    api.make_admin(&admin).await;
    api.follow(&follower, &author).await;
    let media = api.media(&author, "ready").await;
    let body = json!({"media_id": media, "caption": "for friends", "visibility": "followers"});
    let post = api.post("/v1/posts", &author, body).await.id();
    let unreported = api
        .post(
            "/v1/posts",
            &author,
            json!({"media_id": api.media(&author, "ready").await, "visibility": "followers"}),
        )
        .await
        .id();
    assert_eq!(
        api.get(&format!("/v1/posts/{post}"), &admin).await.status,
        GONE
    );

    // A stranger cannot report what they cannot see.
    let report = json!({"target_kind": "post", "target_id": post, "reason": "spam"});
    let r = api.post("/v1/reports", &admin, report.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
    let r = api.post("/v1/reports", &follower, report).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);

    let r = api.get(&format!("/v1/posts/{post}"), &admin).await;
    assert_eq!(r.status, OK, "{}", r.json);
    assert!(r.json["audio_url"].is_string());
    assert_eq!(
        api.get(&format!("/v1/posts/{unreported}"), &admin)
            .await
            .status,
        GONE
    );
    assert!(!api.ids("/v1/explore", &admin).await.contains(&post));
}

#[tokio::test]
async fn new_posts_take_the_account_default_unless_they_name_one() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let me = api.get("/v1/me", &alice).await;
    assert_eq!(me.json["default_visibility"], "public");
    let other = api.user("bob").await;
    let r = api.get(&format!("/v1/users/{}", alice.id), &other).await;
    assert!(r.json.get("default_visibility").is_none(), "{}", r.json);

    let r = api
        .patch("/v1/me", &alice, json!({"default_visibility": "followers"}))
        .await;
    assert_eq!(r.status, OK, "{}", r.json);
    assert_eq!(r.json["default_visibility"], "followers");
    let r = api
        .patch("/v1/me", &alice, json!({"default_visibility": "friends"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);

    let media = api.media(&alice, "ready").await;
    let r = api
        .post("/v1/posts", &alice, json!({"media_id": media}))
        .await;
    assert_eq!(r.json["visibility"], "followers", "{}", r.json);
    let media = api.media(&alice, "ready").await;
    let body = json!({"media_id": media, "visibility": "public"});
    let r = api.post("/v1/posts", &alice, body).await;
    assert_eq!(r.json["visibility"], "public", "{}", r.json);

    // The profile counts what the viewer may hear.
    let r = api.get(&format!("/v1/users/{}", alice.id), &other).await;
    assert_eq!(r.json["post_count"], 1, "{}", r.json);
    let r = api.get("/v1/me", &alice).await;
    assert_eq!(r.json["post_count"], 2, "{}", r.json);
}

/// How many mention notifications `who` has in their list.
async fn mention_count(api: &Api, who: &User) -> usize {
    let r = api.get("/v1/notifications", who).await;
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "mention")
        .count()
}

#[tokio::test]
async fn mentions_reach_only_those_who_may_hear_the_post() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let friend = api.user("friend").await;
    let stranger = api.user("stranger").await;
    api.follow(&friend, &alice).await;
    let media = api.media(&alice, "ready").await;
    let body =
        json!({"media_id": media, "caption": "hi @friend @stranger", "visibility": "followers"});
    let post = api.post("/v1/posts", &alice, body).await.id();
    let mentions = |who| mention_count(&api, who);
    assert_eq!(mentions(&friend).await, 1);
    assert_eq!(mentions(&stranger).await, 0);

    // Made public, an edit of the caption tells the stranger now, and the
    // friend, already told, not again.
    let r = api
        .patch(
            &format!("/v1/posts/{post}"),
            &alice,
            json!({"visibility": "public", "caption": "hi again @friend @stranger"}),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.json);
    assert_eq!((mentions(&friend).await, mentions(&stranger).await), (1, 1));

    // Made private, the mentions leave both lists.
    let r = api
        .patch(
            &format!("/v1/posts/{post}"),
            &alice,
            json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.json);
    assert_eq!((mentions(&friend).await, mentions(&stranger).await), (0, 0));
}

#[tokio::test]
async fn editing_a_caption_rederives_tags_and_keeps_other_tags() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let media = api.media(&alice, "ready").await;
    let body = json!({"media_id": media, "caption": "first #draft", "tags": ["voice"]});
    let post = api.post("/v1/posts", &alice, body).await.id();
    let path = format!("/v1/posts/{post}");

    let r = api
        .patch(&path, &alice, json!({"caption": "  final #take  "}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["caption"], "final #take");
    assert_eq!(r.json["tags"], json!(["voice", "take"]));
    assert!(r.json["edited_at"].as_i64().unwrap() >= r.json["created_at"].as_i64().unwrap());
    assert!(api.ids("/v1/explore?tag=draft", &bob).await.is_empty());
    assert_eq!(api.ids("/v1/explore?tag=take", &bob).await, [post.as_str()]);
    assert_eq!(
        api.ids("/v1/explore?tag=voice", &bob).await,
        [post.as_str()]
    );

    let r = api.patch(&path, &alice, json!({"tags": []})).await;
    assert_eq!(r.json["tags"], json!(["take"]), "{}", r.json);
    assert!(api.ids("/v1/explore?tag=voice", &bob).await.is_empty());

    // Checked like a new post's, and only the author may edit.
    let long = "x".repeat(501);
    let r = api.patch(&path, &alice, json!({"caption": long})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api
        .patch(&path, &alice, json!({"tags": ["no spaces"]}))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api
        .patch(&path, &alice, json!({"visibility": "friends"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
    let r = api.patch(&path, &bob, json!({"caption": "mine now"})).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .patch("/v1/posts/nope", &alice, json!({"caption": "x"}))
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    // Private, it does not exist for bob: 404, not 403.
    api.patch(&path, &alice, json!({"visibility": "private"}))
        .await;
    let r = api.patch(&path, &bob, json!({"caption": "mine now"})).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(api.post_item(&post, &alice).await["caption"], "final #take");
}
