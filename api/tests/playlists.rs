//! Playlists: creating and editing them, who may see and change them, adding,
//! removing and reordering items, items that drop out, limits, the per-user
//! list and concurrent writers.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::playlists::{MAX_ITEMS, MAX_PLAYLISTS};
use std::collections::BTreeSet;
use std::sync::Arc;
use support::{assert_problem, Api, Reply, User};

/// A playlist of `owner`; returns its id.
async fn playlist(api: &Api, owner: &User, title: &str, public: bool) -> String {
    let body = json!({"title": title, "public": public});
    let r = api.post("/v1/playlists", owner, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn add(api: &Api, who: &User, playlist: &str, body: Value) -> Reply {
    let path = format!("/v1/playlists/{playlist}/items");
    api.post(&path, who, body).await
}

async fn add_ok(api: &Api, who: &User, playlist: &str, post: &str) {
    let r = add(api, who, playlist, json!({"post_id": post})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

async fn reorder(api: &Api, who: &User, playlist: &str, ids: &[String]) -> Reply {
    let path = format!("/v1/playlists/{playlist}/items");
    api.call(
        Method::PUT,
        &path,
        Some(&who.token),
        json!({"post_ids": ids}),
    )
    .await
}

/// The playlist as `who` sees it (200 asserted).
async fn show(api: &Api, who: &User, playlist: &str) -> Value {
    let r = api.get(&format!("/v1/playlists/{playlist}"), who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json
}

/// The item post ids `who` sees, in order.
async fn item_ids(api: &Api, who: &User, playlist: &str) -> Vec<String> {
    ids_of(&show(api, who, playlist).await)
}

/// The stored positions of a playlist's rows, in order.
async fn positions(api: &Api, playlist: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT position FROM playlist_items WHERE playlist_id = $1 ORDER BY position",
    )
    .bind(playlist)
    .fetch_all(api.t.db.pool())
    .await
    .unwrap()
}

async fn sql(api: &Api, sql: &str, id: &str) {
    sqlx::query(sql)
        .bind(id)
        .execute(api.t.db.pool())
        .await
        .unwrap();
}

async fn posts(api: &Api, author: &User, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(api.ready_post(author).await);
    }
    ids
}

fn ids_of(playlist: &Value) -> Vec<String> {
    playlist["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The posts of `p` at `indexes`, in that order.
fn pick(p: &[String], indexes: &[usize]) -> Vec<String> {
    indexes.iter().map(|&i| p[i].clone()).collect()
}

fn problem_field(r: &Reply) -> &str {
    r.json["errors"][0]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn create_show_edit_and_delete() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let body = json!({"title": "  Morning walks ", "description": "Calm voices", "public": true});
    let r = api.post("/v1/playlists", &ana, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["title"], "Morning walks");
    assert_eq!(r.json["description"], "Calm voices");
    assert_eq!(r.json["public"], true);
    assert_eq!(r.json["owner"]["id"], ana.id.as_str());
    assert_eq!(r.json["owner"]["handle"], "ana");
    assert_eq!(r.json["owner"]["display_name"], "ana");
    assert_eq!(r.json["item_count"], 0);
    assert_eq!(r.json["total_duration_ms"], 0);
    assert_eq!(r.json["items"], json!([]));

    let path = format!("/v1/playlists/{id}");
    let r = api
        .patch(&path, &ana, json!({"title": "Evenings", "public": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let shown = show(&api, &ana, &id).await;
    assert_eq!(shown["title"], "Evenings");
    assert_eq!(shown["description"], "Calm voices", "untouched field kept");
    assert_eq!(shown["public"], false);

    let private = playlist(&api, &ana, "Just mine", false).await;
    assert_eq!(show(&api, &ana, &private).await["public"], false);

    let r = api.delete(&path, &ana).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_problem(
        &api.get(&path, &ana).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let r = api.delete(&path, &ana).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn titles_and_descriptions_are_checked() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let create = |body: Value| api.post("/v1/playlists", &ana, body);
    for (body, field) in [
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(101)}), "title"),
        (
            json!({"title": "ok", "description": "d".repeat(1001)}),
            "description",
        ),
        (json!({"title": "ok", "colour": "red"}), "colour"),
        (json!({"description": "no title"}), "title"),
    ] {
        let r = create(body).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(problem_field(&r), field, "{}", r.json);
    }
    let r = create(json!({"title": "é".repeat(100)})).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "100 characters fit: {}",
        r.json
    );

    let id = playlist(&api, &ana, "Fine", false).await;
    let path = format!("/v1/playlists/{id}");
    let r = api.patch(&path, &ana, json!({"title": ""})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem_field(&r), "title");
    assert_eq!(show(&api, &ana, &id).await["title"], "Fine");
}

#[tokio::test]
async fn a_private_playlist_does_not_exist_for_others() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&ana).await;
    let id = playlist(&api, &ana, "Secret", false).await;
    add_ok(&api, &ana, &id, &post).await;

    let path = format!("/v1/playlists/{id}");
    let items = format!("{path}/items");
    let not_found = [
        api.get(&path, &bob).await,
        api.patch(&path, &bob, json!({"title": "mine"})).await,
        api.delete(&path, &bob).await,
        add(&api, &bob, &id, json!({"post_id": post})).await,
        reorder(&api, &bob, &id, std::slice::from_ref(&post)).await,
        api.delete(&format!("{items}/{post}"), &bob).await,
    ];
    for r in &not_found {
        assert_problem(r, StatusCode::NOT_FOUND, "not-found");
    }
    assert_eq!(show(&api, &ana, &id).await["title"], "Secret", "unchanged");
    assert_eq!(item_ids(&api, &ana, &id).await, [post]);
}

#[tokio::test]
async fn only_the_owner_edits_a_public_playlist() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let posts = posts(&api, &ana, 2).await;
    let bobs = api.ready_post(&bob).await;
    let id = playlist(&api, &ana, "Open", true).await;
    for p in &posts {
        add_ok(&api, &ana, &id, p).await;
    }

    let path = format!("/v1/playlists/{id}");
    let seen = show(&api, &bob, &id).await;
    assert_eq!(seen["title"], "Open");
    assert_eq!(ids_of(&seen), posts);

    let reversed: Vec<String> = posts.iter().rev().cloned().collect();
    let forbidden = [
        api.patch(&path, &bob, json!({"title": "mine"})).await,
        api.delete(&path, &bob).await,
        add(&api, &bob, &id, json!({"post_id": bobs})).await,
        reorder(&api, &bob, &id, &reversed).await,
        api.delete(&format!("{path}/items/{}", posts[0]), &bob)
            .await,
    ];
    for r in &forbidden {
        assert_problem(r, StatusCode::FORBIDDEN, "forbidden");
    }
    let after = show(&api, &ana, &id).await;
    assert_eq!(after["title"], "Open");
    assert_eq!(ids_of(&after), posts);

    // Blocking either way hides even a public playlist.
    api.block(&ana, &bob).await;
    assert_problem(
        &api.get(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

#[tokio::test]
async fn items_are_added_at_a_position_or_the_end_removed_and_reordered() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let p = posts(&api, &ana, 5).await;
    let id = playlist(&api, &ana, "Mix", false).await;

    add_ok(&api, &ana, &id, &p[0]).await;
    add_ok(&api, &ana, &id, &p[1]).await;
    let r = add(&api, &ana, &id, json!({"post_id": p[2], "position": 0})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(ids_of(&r.json), pick(&p, &[2, 0, 1]));
    let r = add(&api, &ana, &id, json!({"post_id": p[3], "position": 3})).await;
    assert_eq!(r.status, StatusCode::CREATED, "position = length appends");
    let r = add(&api, &ana, &id, json!({"post_id": p[4], "position": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(item_ids(&api, &ana, &id).await, pick(&p, &[2, 4, 0, 1, 3]));
    assert_eq!(positions(&api, &id).await, [0, 1, 2, 3, 4]);

    let path = format!("/v1/playlists/{id}/items/{}", p[0]);
    let r = api.delete(&path, &ana).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.delete(&path, &ana).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(item_ids(&api, &ana, &id).await, pick(&p, &[2, 4, 1, 3]));
    assert_eq!(
        positions(&api, &id).await,
        [0, 1, 2, 3],
        "the gap is closed"
    );

    let new_order = pick(&p, &[3, 1, 2, 4]);
    let r = reorder(&api, &ana, &id, &new_order).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(ids_of(&r.json), new_order);
    assert_eq!(item_ids(&api, &ana, &id).await, new_order);
    assert_eq!(positions(&api, &id).await, [0, 1, 2, 3]);

    let r = add(&api, &ana, &id, json!({"post_id": p[0], "position": 5})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem_field(&r), "position");
    let r = add(&api, &ana, &id, json!({"post_id": p[0], "position": -1})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem_field(&r), "position");
    assert_eq!(item_ids(&api, &ana, &id).await, new_order, "nothing added");
}

#[tokio::test]
async fn a_post_is_in_a_playlist_at_most_once() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let post = api.ready_post(&ana).await;
    let id = playlist(&api, &ana, "Once", false).await;
    add_ok(&api, &ana, &id, &post).await;
    let r = add(&api, &ana, &id, json!({"post_id": post, "position": 0})).await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(item_ids(&api, &ana, &id).await, std::slice::from_ref(&post));

    // The same post may be in another playlist.
    let other = playlist(&api, &ana, "Twice", false).await;
    add_ok(&api, &ana, &other, &post).await;
}

#[tokio::test]
async fn a_reorder_must_be_a_permutation_of_the_items() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let p = posts(&api, &ana, 4).await;
    let id = playlist(&api, &ana, "Strict", false).await;
    for post in &p[..3] {
        add_ok(&api, &ana, &id, post).await;
    }
    let bad: [Vec<&String>; 5] = [
        vec![&p[0], &p[1]],               // one missing
        vec![&p[0], &p[1], &p[2], &p[3]], // one not in the playlist
        vec![&p[0], &p[1], &p[1]],        // a duplicate instead of p[2]
        vec![&p[0], &p[1], &p[2], &p[2]], // a duplicate on top
        vec![],                           // nothing
    ];
    for ids in bad {
        let ids: Vec<String> = ids.into_iter().cloned().collect();
        let r = reorder(&api, &ana, &id, &ids).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(problem_field(&r), "post_ids", "{ids:?}");
    }
    assert_eq!(item_ids(&api, &ana, &id).await, &p[..3]);
    assert_eq!(positions(&api, &id).await, [0, 1, 2]);
}

#[tokio::test]
async fn items_carry_what_playing_needs_and_the_total_duration() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let post = api.post_with(&bob, "a story").await;
    let other = api.ready_post(&ana).await;
    sql(&api, "UPDATE media SET duration_ms = 60000 WHERE id = (SELECT media_id FROM posts WHERE id = $1)", &other)
        .await;
    let id = playlist(&api, &ana, "Listen", true).await;
    add_ok(&api, &ana, &id, &post).await;
    add_ok(&api, &ana, &id, &other).await;

    let shown = show(&api, &bob, &id).await;
    assert_eq!(shown["item_count"], 2);
    assert_eq!(shown["total_duration_ms"], 1234 + 60000);
    let item = &shown["items"][0];
    let media = item["media_id"].as_str().unwrap();
    assert_eq!(item["id"], post.as_str());
    assert_eq!(item["author"]["id"], bob.id.as_str());
    assert_eq!(item["author"]["handle"], "bob");
    assert_eq!(item["author"]["display_name"], "bob");
    assert_eq!(item["caption"], "a story");
    assert_eq!(item["duration_ms"], 1234);
    assert_eq!(item["bars"], json!([1, 2, 3]));
    support::assert_clip_urls(item, media);
    assert_eq!(shown["items"][1]["duration_ms"], 60000);
}

#[tokio::test]
async fn deleted_hidden_unready_and_blocked_posts_drop_out() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let cat = api.user("cat").await;
    let dan = api.user("dan").await;
    let mut p = posts(&api, &ana, 4).await;
    let bobs = api.ready_post(&bob).await;
    let cats = api.ready_post(&cat).await;
    p.extend([bobs, cats]); // p[4] by bob, p[5] by cat
    let id = playlist(&api, &ana, "Everything", true).await;
    for post in &p {
        add_ok(&api, &ana, &id, post).await;
    }
    assert_eq!(show(&api, &dan, &id).await["item_count"], 6);

    let r = api.delete(&format!("/v1/posts/{}", p[0]), &ana).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    sql(&api, "UPDATE posts SET hidden_at = 1 WHERE id = $1", &p[1]).await;
    sql(&api,
        "UPDATE media SET state = 'processing' WHERE id = (SELECT media_id FROM posts WHERE id = $1)",
        &p[2],
    )
    .await;
    api.block(&bob, &ana).await; // bob blocks the owner
    api.block(&ana, &cat).await; // the owner blocks cat

    let owner_view = show(&api, &ana, &id).await;
    assert_eq!(ids_of(&owner_view), pick(&p, &[3]));
    assert_eq!(owner_view["item_count"], 1);
    assert_eq!(owner_view["total_duration_ms"], 1234);
    // Blocks concern the viewer: dan still hears bob's and cat's posts.
    let dan_view = show(&api, &dan, &id).await;
    assert_eq!(ids_of(&dan_view), pick(&p, &[3, 4, 5]));
    assert_eq!(dan_view["total_duration_ms"], 3 * 1234);
    let listed = api
        .get(&format!("/v1/users/{}/playlists", ana.id), &dan)
        .await;
    assert_eq!(listed.json["items"][0]["item_count"], 3);
    assert_eq!(listed.json["items"][0]["total_duration_ms"], 3 * 1234);

    // The owner reorders what they see; the rest keeps its rows, after it.
    let r = reorder(&api, &ana, &id, std::slice::from_ref(&p[3])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        positions(&api, &id).await,
        [0, 1, 2, 3, 4],
        "deleted post's row gone"
    );

    // A post that comes back is listed again.
    sql(
        &api,
        "UPDATE posts SET hidden_at = NULL WHERE id = $1",
        &p[1],
    )
    .await;
    assert_eq!(item_ids(&api, &ana, &id).await, pick(&p, &[3, 1]));
}

#[tokio::test]
async fn only_ready_visible_posts_can_be_added() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let cat = api.user("cat").await;
    let id = playlist(&api, &ana, "Picky", false).await;

    let own_media = api.media(&ana, "processing").await;
    let r = api
        .post("/v1/posts", &ana, json!({"media_id": own_media}))
        .await;
    let own_pending = r.json["id"].as_str().unwrap().to_owned();
    let r = add(&api, &ana, &id, json!({"post_id": own_pending})).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem_field(&r), "post_id");

    let bob_media = api.media(&bob, "queued").await;
    let r = api
        .post("/v1/posts", &bob, json!({"media_id": bob_media}))
        .await;
    let bobs_pending = r.json["id"].as_str().unwrap().to_owned();
    let hidden = api.ready_post(&bob).await;
    sql(
        &api,
        "UPDATE posts SET hidden_at = 1 WHERE id = $1",
        &hidden,
    )
    .await;
    let blocked = api.ready_post(&cat).await;
    api.block(&cat, &ana).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for post in [&bobs_pending, &hidden, &blocked, &unknown] {
        let r = add(&api, &ana, &id, json!({"post_id": post})).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    }
    assert!(item_ids(&api, &ana, &id).await.is_empty());
    assert!(positions(&api, &id).await.is_empty());
}

#[tokio::test]
async fn a_full_playlist_and_too_many_playlists_are_refused() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let id = playlist(&api, &ana, "Big", false).await;
    // Fill the playlist through the database: 500 posts through the API would be slow.
    let pool = api.t.db.pool();
    let mut tx = pool.begin().await.unwrap();
    for n in 0..MAX_ITEMS as i64 {
        let media = uuid::Uuid::now_v7().to_string();
        let post = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, state, content_type, size_bytes, original_key, \
             duration_ms, bars, created_at, updated_at) \
             VALUES ($1, $2, 'ready', 'audio/mp4', 1, $1, 1000, '[]', 0, 0)",
        )
        .bind(&media)
        .bind(&ana.id)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO posts (id, author_id, media_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&post)
        .bind(&ana.id)
        .bind(&media)
        .bind(n)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO playlist_items (playlist_id, post_id, position, added_at) \
             VALUES ($1, $2, $3, 0)",
        )
        .bind(&id)
        .bind(&post)
        .bind(n)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let shown = show(&api, &ana, &id).await;
    assert_eq!(shown["item_count"], MAX_ITEMS);
    assert_eq!(shown["total_duration_ms"], MAX_ITEMS * 1000);

    let extra = api.ready_post(&ana).await;
    let r = add(&api, &ana, &id, json!({"post_id": extra})).await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.json["detail"].as_str().unwrap().contains("full"),
        "{}",
        r.json
    );
    let first = ids_of(&shown)[0].clone();
    let r = api
        .delete(&format!("/v1/playlists/{id}/items/{first}"), &ana)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    add_ok(&api, &ana, &id, &extra).await;

    for n in 1..MAX_PLAYLISTS {
        sqlx::query(
            "INSERT INTO playlists (id, owner_id, title, created_at, updated_at) \
             VALUES ($1, $2, 'filler', $3, $3)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&ana.id)
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
    }
    let r = api
        .post("/v1/playlists", &ana, json!({"title": "one more"}))
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.json["detail"].as_str().unwrap().contains("200"),
        "{}",
        r.json
    );
    // Another user is not affected.
    let bob = api.user("bob").await;
    playlist(&api, &bob, "first", true).await;
}

#[tokio::test]
async fn a_users_playlists_are_paginated_and_others_see_public_ones() {
    let api = Api::new().await;
    let ana = api.user("ana").await;
    let bob = api.user("bob").await;
    let mut public = Vec::new();
    let mut all = Vec::new();
    for n in 0..7 {
        let id = playlist(&api, &ana, &format!("list {n}"), n % 3 != 0).await;
        if n % 3 != 0 {
            public.push(id.clone());
        }
        all.push(id);
    }
    public.reverse();
    all.reverse();

    let playlists = format!("/v1/users/{}/playlists", ana.id);
    for (who, expected, what) in [
        (&bob, &public, "newest first, public only"),
        (&ana, &all, "the owner sees all"),
    ] {
        let pages = api.all_pages(&playlists, who, 2).await;
        let ids: Vec<&str> = pages.iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, *expected, "{what}");
    }

    let r = api
        .get(&format!("/v1/users/{}/playlists", ana.id), &bob)
        .await;
    let first = &r.json["items"][0];
    assert_eq!(first["title"], "list 5");
    assert_eq!(first["owner"]["handle"], "ana");
    assert_eq!(first["public"], true);
    assert!(first.get("items").is_none(), "summaries carry no items");

    let unknown = uuid::Uuid::now_v7();
    let r = api
        .get(&format!("/v1/users/{unknown}/playlists"), &bob)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api
        .get(&format!("/v1/users/{}/playlists?limit=0", ana.id), &bob)
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");

    api.block(&bob, &ana).await;
    assert!(api
        .ids(&format!("/v1/users/{}/playlists", ana.id), &bob)
        .await
        .is_empty());
}

/// Runs the reorders and adds concurrently; returns their statuses in order.
async fn race(
    api: &Arc<Api>,
    ana: &Arc<User>,
    id: &str,
    orders: Vec<Vec<String>>,
    adds: &[String],
) -> (Vec<StatusCode>, Vec<StatusCode>) {
    let mut reorders = Vec::new();
    for order in orders {
        let (api, ana, id) = (api.clone(), ana.clone(), id.to_owned());
        reorders.push(tokio::spawn(async move {
            reorder(&api, &ana, &id, &order).await.status
        }));
    }
    let mut added = Vec::new();
    for (n, post) in adds.iter().enumerate() {
        let (api, ana, id) = (api.clone(), ana.clone(), id.to_owned());
        let body = json!({"post_id": post, "position": n % 3});
        added.push(tokio::spawn(async move {
            add(&api, &ana, &id, body).await.status
        }));
    }
    let mut results = (Vec::new(), Vec::new());
    for task in reorders {
        results.0.push(task.await.unwrap());
    }
    for task in added {
        results.1.push(task.await.unwrap());
    }
    results
}

/// Rotations of `items`, every other one reversed: distinct orders.
fn orders(items: &[String], n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|k| {
            let mut order = items.to_vec();
            order.rotate_left(k % items.len());
            if k % 2 == 1 {
                order.reverse();
            }
            order
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reorders_and_adds_leave_a_permutation() {
    let api = Arc::new(Api::new().await);
    let ana = Arc::new(api.user("ana").await);
    let start = posts(&api, &ana, 8).await;
    let extra = posts(&api, &ana, 8).await;
    let id = playlist(&api, &ana, "Busy", false).await;
    for p in &start {
        add_ok(&api, &ana, &id, p).await;
    }

    // Reorders alone: each is a valid permutation, so all succeed; one wins.
    let wave = orders(&start, 16);
    let (reordered, _) = race(&api, &ana, &id, wave.clone(), &[]).await;
    assert!(
        reordered.iter().all(|s| *s == StatusCode::OK),
        "{reordered:?}"
    );
    let items = item_ids(&api, &ana, &id).await;
    assert!(wave.contains(&items), "the last writer's order: {items:?}");
    assert_eq!(positions(&api, &id).await, (0..8).collect::<Vec<i64>>());

    // Mixed with adds: a reorder computed before an add landed is no longer
    // a permutation (422); every add lands.
    let (reordered, added) = race(&api, &ana, &id, orders(&start, 16), &extra).await;
    for status in reordered {
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{status}"
        );
    }
    assert!(added.iter().all(|s| *s == StatusCode::CREATED), "{added:?}");
    let items = item_ids(&api, &ana, &id).await;
    let got: BTreeSet<&String> = items.iter().collect();
    let want: BTreeSet<&String> = start.iter().chain(&extra).collect();
    assert_eq!(items.len(), 16, "no item lost or doubled");
    assert_eq!(got, want);
    assert_eq!(positions(&api, &id).await, (0..16).collect::<Vec<i64>>());
}

#[tokio::test]
async fn the_document_describes_a_playlist_and_its_items() {
    let api = Api::new().await;
    let doc = api.openapi().await;
    let schemas = &doc["components"]["schemas"];
    let summary = &schemas["PlaylistSummary"]["properties"];
    for field in [
        "id",
        "owner",
        "title",
        "description",
        "public",
        "item_count",
        "total_duration_ms",
    ] {
        assert!(
            summary.get(field).is_some(),
            "PlaylistSummary lacks {field}"
        );
    }
    let playlist = schemas["Playlist"].to_string();
    assert!(playlist.contains("PlaylistSummary"), "{playlist}");
    assert!(playlist.contains("PostItem"), "{playlist}");
}
