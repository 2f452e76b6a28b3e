//! Router tests of home timelines (fan-out on write), on the backend
//! `SORI_TEST_DB` names: a post is written into its followers' timelines,
//! an author with more followers than the limit is read at feed time
//! instead, and whatever happens — follows, unfollows, blocks, mutes,
//! deletions, visibility changes, moderation, media becoming ready,
//! trimming to a short length, posts from before timelines existed — every
//! user's feed, paged to its end, is exactly the posts a user is owed: their
//! own and the visible ones of the authors they follow, newest first.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use sori_api::core::state::TimelineConfig;
use sori_api::effects::timelines::{self, Hold};
use std::time::Duration;
use support::{Api, User};

/// Short timelines and a low fan-out limit, so trimming and fan-in happen
/// with a handful of users.
const SMALL: TimelineConfig = TimelineConfig {
    length: 3,
    max_fan_out: 2,
};

async fn api_with(config: TimelineConfig) -> Api {
    Api::with(|state| state.with_timelines(config)).await
}

/// Rows of `user`'s timeline.
async fn timeline_len(api: &Api, user: &User) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM timelines WHERE user_id = $1")
        .bind(&user.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap()
}

/// The posts `viewer` is owed, newest first, by their definition: their
/// own, and those of followed authors that are not private, removed, from a
/// removed or muted author, or waiting for their media.
async fn owed(api: &Api, viewer: &User) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT p.id FROM posts p JOIN media m ON m.id = p.media_id JOIN users u ON u.id = p.author_id \
         WHERE p.hidden_at IS NULL AND (p.author_id = $1 OR ( \
           EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = p.author_id) \
           AND p.visibility <> 'private' AND m.state = 'ready' AND u.hidden_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.muter_id = $1 AND mu.muted_id = p.author_id))) \
         ORDER BY p.created_at DESC, p.id DESC",
    )
    .bind(&viewer.id)
    .fetch_all(api.t.db.pool())
    .await
    .unwrap()
}

/// Every post of `viewer`'s feed, paged two at a time to its end.
async fn whole_feed(api: &Api, viewer: &User) -> Vec<String> {
    api.all_pages("/v1/feed", viewer, 2)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn assert_feeds_owed(api: &Api, users: &[User], step: &str) {
    for user in users {
        assert_eq!(
            whole_feed(api, user).await,
            owed(api, user).await,
            "feed of {} after {step}",
            user.handle
        );
    }
}

#[tokio::test]
async fn a_post_is_written_into_each_followers_timeline_and_read_from_there() {
    let api = api_with(TimelineConfig::default()).await;
    let author = api.user("author").await;
    let fans = api.many_users("fan", 3).await;
    let stranger = api.user("stranger").await;
    for fan in &fans {
        api.follow(fan, &author).await;
    }
    let post = api.ready_post(&author).await;
    for fan in &fans {
        assert_eq!(timeline_len(&api, fan).await, 1);
        assert_eq!(api.feed_ids(fan).await, [post.as_str()]);
    }
    assert_eq!(timeline_len(&api, &author).await, 1, "the author's own");
    assert_eq!(timeline_len(&api, &stranger).await, 0);

    // Unfollowing removes the author's rows; following again backfills them.
    let own = api.ready_post(&fans[0]).await;
    let r = api
        .delete(&format!("/v1/users/{}/follow", author.id), &fans[0])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(timeline_len(&api, &fans[0]).await, 1);
    assert_eq!(api.feed_ids(&fans[0]).await, [own.as_str()]);
    api.follow(&fans[0], &author).await;
    assert_eq!(timeline_len(&api, &fans[0]).await, 2);
    assert_eq!(api.feed_ids(&fans[0]).await, [own.as_str(), post.as_str()]);

    // A block removes both ways; a post turned private leaves followers'
    // timelines and comes back when public again.
    api.block(&fans[1], &author).await;
    assert_eq!(timeline_len(&api, &fans[1]).await, 0);
    let r = api
        .patch(
            &format!("/v1/posts/{post}"),
            &author,
            json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(timeline_len(&api, &fans[2]).await, 0);
    assert!(api.feed_ids(&fans[2]).await.is_empty());
    let r = api
        .patch(
            &format!("/v1/posts/{post}"),
            &author,
            json!({"visibility": "public"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(api.feed_ids(&fans[2]).await, [post.as_str()]);
}

#[tokio::test]
async fn an_author_with_too_many_followers_is_read_at_feed_time() {
    let api = api_with(SMALL).await;
    let star = api.user("star").await;
    let fans = api.many_users("fan", 3).await;
    for fan in &fans {
        api.follow(fan, &star).await;
    }
    // Each fan has an older own post, so their timelines have a horizon.
    let mut own = Vec::new();
    for fan in &fans {
        own.push(api.ready_post(fan).await);
    }
    let post = api.ready_post(&star).await;
    let fan_in: i64 = sqlx::query_scalar("SELECT fan_in FROM posts WHERE id = $1")
        .bind(&post)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(fan_in, 1, "three followers, limit two: not written out");
    assert_eq!(timeline_len(&api, &fans[0]).await, 1, "only the fan's own");
    for (fan, own) in fans.iter().zip(&own) {
        assert_eq!(api.feed_ids(fan).await, [post.as_str(), own.as_str()]);
    }
    // Once a fan-in author, always: with one follower left, still read at feed time.
    for fan in &fans[1..] {
        let r = api
            .delete(&format!("/v1/users/{}/follow", star.id), fan)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let next = api.ready_post(&star).await;
    assert_eq!(timeline_len(&api, &fans[0]).await, 1);
    assert_eq!(
        api.feed_ids(&fans[0]).await,
        [next.as_str(), post.as_str(), own[0].as_str()]
    );
    // A private post of theirs turned public reaches the feed the same way.
    let media = api.media(&star, "ready").await;
    let body = json!({"media_id": media, "caption": "later", "visibility": "private"});
    let later = api.post("/v1/posts", &star, body).await.id();
    assert_eq!(api.feed_ids(&fans[0]).await[0], next);
    let public = json!({"visibility": "public"});
    let r = api
        .patch(&format!("/v1/posts/{later}"), &star, public)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        timeline_len(&api, &fans[0]).await,
        1,
        "still no rows of theirs"
    );
    assert_eq!(api.feed_ids(&fans[0]).await[0], later);
    // A mute hides the fan-in author too.
    api.mute(&fans[0], &star).await;
    assert_eq!(api.feed_ids(&fans[0]).await, [own[0].as_str()]);
}

#[tokio::test]
async fn trimming_keeps_the_newest_rows_and_the_feed_reads_on_past_them() {
    let api = api_with(SMALL).await;
    let author = api.user("author").await;
    let reader = api.user("reader").await;
    api.follow(&reader, &author).await;
    let mut posts = Vec::new();
    for _ in 0..7 {
        posts.push(api.ready_post(&author).await);
    }
    posts.reverse();
    assert_eq!(timeline_len(&api, &reader).await, 7);
    let dropped = timelines::trim_all(&api.t.db, SMALL.length, 0)
        .await
        .unwrap();
    assert_eq!(dropped, 8, "four of the reader's, four of the author's");
    assert_eq!(timeline_len(&api, &reader).await, 3);
    assert_eq!(whole_feed(&api, &reader).await, posts);
}

#[tokio::test]
async fn a_follow_waits_while_a_post_of_the_followee_is_being_written() {
    let api = api_with(SMALL).await;
    let author = api.user("author").await;
    let reader = api.user("reader").await;
    // A post of the author's, mid-transaction: its fan-out holds the
    // author's lock (and, on SQLite, the database's write lock).
    let mut posting = api.t.db.pool().begin().await.unwrap();
    timelines::lock_author(&mut posting, &author.id, Hold::Shared)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET display_name = display_name WHERE id = $1")
        .bind(&author.id)
        .execute(&mut *posting)
        .await
        .unwrap();
    let follow = api.follow(&reader, &author);
    tokio::pin!(follow);
    let early = tokio::time::timeout(Duration::from_millis(300), &mut follow).await;
    assert!(early.is_err(), "the follow ran beside the post's fan-out");
    posting.commit().await.unwrap();
    follow.await;
    let reader_follows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM follows WHERE follower_id = $1 AND followee_id = $2",
    )
    .bind(&reader.id)
    .bind(&author.id)
    .fetch_one(api.t.db.pool())
    .await
    .unwrap();
    assert_eq!(reader_follows, 1);
}

/// A small xorshift generator: the same steps on every run.
struct Steps(u64);

impl Steps {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[tokio::test]
async fn every_feed_stays_what_its_reader_is_owed_through_random_changes() {
    let api = api_with(SMALL).await;
    let mut users = api.many_users("old", 4).await;
    let mut steps = Steps(0x5eed_1234_abcd_0042);
    // Four accounts and their posts from before timelines existed: rows
    // written directly, none fanned out; two accounts made since.
    api.accounts_before_timelines().await;
    for (i, user) in users.iter().enumerate() {
        let media = api.media(user, "ready").await;
        let at = sori_pipeline::clock::now_ms() - 3_600_000 + i as i64;
        api.post_on(&user.id, &media, "old", &[], at).await;
    }
    users.extend(api.many_users("new", 2).await);
    for (a, b) in [(0, 1), (1, 2), (2, 0), (3, 0), (4, 0), (5, 4)] {
        api.follow(&users[a], &users[b]).await;
    }
    let mut posts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for step in 0..150 {
        let who = &users[steps.below(users.len())];
        let other = &users[steps.below(users.len())];
        let action = steps.below(13);
        act(
            &api,
            &mut steps,
            action,
            who,
            other,
            &mut posts,
            &mut pending,
        )
        .await;
        if step % 10 == 9 {
            assert_feeds_owed(&api, &users, &format!("step {step} (action {action})")).await;
        }
    }
    assert_feeds_owed(&api, &users, "the last step").await;
}

/// One random change by `who` (towards `other`).
async fn act(
    api: &Api,
    steps: &mut Steps,
    action: usize,
    who: &User,
    other: &User,
    posts: &mut Vec<String>,
    pending: &mut Vec<String>,
) {
    let user_path = |what: &str| format!("/v1/users/{}/{what}", other.id);
    let visibility = ["public", "followers", "private"][steps.below(3)];
    match action {
        0 | 1 => {
            let media = api.media(who, "ready").await;
            let body = json!({"media_id": media, "caption": "hi", "visibility": visibility});
            posts.push(api.post("/v1/posts", who, body).await.id());
        }
        2 => {
            let media = api.media(who, "processing").await;
            posts.push(api.publish(who, &media, "soon").await);
            pending.push(media);
        }
        3 => {
            if let Some(media) = pending.pop() {
                api.set_media_state(&media, "ready").await;
            }
        }
        // Refused ones (oneself, a block) change nothing: the feeds are
        // compared with the rows, whatever the answer.
        4 | 5 => drop(api.put(&user_path("follow"), who).await),
        6 => drop(api.delete(&user_path("follow"), who).await),
        7 => drop(api.put(&user_path("block"), who).await),
        8 => drop(api.delete(&user_path("block"), who).await),
        9 => match steps.below(2) {
            0 => drop(api.put(&user_path("mute"), who).await),
            _ => drop(api.delete(&user_path("mute"), who).await),
        },
        10 | 11 if !posts.is_empty() => {
            let post = posts[steps.below(posts.len())].clone();
            match (action, steps.below(3)) {
                (10, 0) => drop(api.delete(&format!("/v1/posts/{post}"), who).await),
                (10, _) => {
                    let body = json!({"visibility": visibility});
                    drop(api.patch(&format!("/v1/posts/{post}"), who, body).await)
                }
                // A moderator's removal, or its undoing.
                (_, hide) => set_hidden(api, &post, hide == 1).await,
            }
        }
        _ => {
            timelines::trim_all(&api.t.db, SMALL.length, 0)
                .await
                .unwrap();
        }
    }
}

async fn set_hidden(api: &Api, post: &str, hidden: bool) {
    let sql = if hidden {
        "UPDATE posts SET hidden_at = 1 WHERE id = $1"
    } else {
        "UPDATE posts SET hidden_at = NULL WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(post)
        .execute(api.t.db.pool())
        .await
        .unwrap();
}
