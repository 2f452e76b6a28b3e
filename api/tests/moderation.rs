//! Router tests of moderation beyond reports, on the backend `SORI_TEST_DB`
//! names: the audit log records every admin action (resolve, restore, role
//! change, announcement) with who, what and why; a removed post, comment or
//! account is restored; an announcement reaches every account's
//! notifications, pushes those away, and is dismissed.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_problem, Api, Reply, User};

/// Reports `id` of `kind` as `who` and removes it as `admin` with `reason`.
async fn report_and_remove(api: &Api, who: &User, admin: &User, kind: &str, id: &str) {
    let body = json!({"target_kind": kind, "target_id": id, "reason": "spam", "details": "ads"});
    let r = api.post("/v1/reports", who, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let report = r.id();
    let r = api
        .post(
            &format!("/v1/reports/{report}/resolve"),
            admin,
            json!({"action": "remove", "reason": "selling followers"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

async fn restore(api: &Api, admin: &User, kind: &str, id: &str) -> Reply {
    let body = json!({"target_kind": kind, "target_id": id, "reason": "appeal upheld"});
    api.post("/v1/admin/restore", admin, body).await
}

/// `(action, target_kind, target_id, reason, actor handle)` newest first.
async fn audit(api: &Api, admin: &User) -> Vec<(String, String, String, String, String)> {
    let r = api.get("/v1/admin/audit?limit=100", admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                s(&e["action"]),
                s(&e["target_kind"]),
                s(&e["target_id"]),
                s(&e["reason"]),
                s(&e["actor"]["handle"]),
            )
        })
        .collect()
}

fn entry(
    action: &str,
    kind: &str,
    id: &str,
    reason: &str,
    actor: &str,
) -> (String, String, String, String, String) {
    let o = |s: &str| s.to_owned();
    (o(action), o(kind), o(id), o(reason), o(actor))
}

#[tokio::test]
async fn every_admin_action_is_in_the_audit_log_for_admins_only() {
    let api = Api::new().await;
    let admin = api.user("root").await;
    api.make_admin(&admin).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    report_and_remove(&api, &bob, &admin, "post", &post).await;
    let r = restore(&api, &admin, "post", &post).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(
        api.post(
            "/v1/admin/announcements",
            &admin,
            json!({"text": "Hello all"})
        )
        .await
        .status,
        StatusCode::CREATED
    );

    let log = audit(&api, &admin).await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(
        log[1],
        entry("restore", "post", &post, "appeal upheld", "root")
    );
    assert_eq!(
        log[2],
        entry("report.remove", "post", &post, "selling followers", "root")
    );
    assert_eq!(
        log[3],
        entry("role.grant", "user", &admin.id, "sori admin", "-")
    );
    assert_eq!(
        (log[0].0.as_str(), log[0].4.as_str()),
        ("announcement", "root")
    );
    // Page by page, the same entries.
    let paged = api.all_pages("/v1/admin/audit", &admin, 3).await;
    assert_eq!(paged.len(), 4);

    let r = api.get("/v1/admin/audit", &bob).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(Method::GET, "/v1/admin/audit", None, Value::Null)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let long = json!({"action": "dismiss", "reason": "x".repeat(501)});
    let r = api.post("/v1/reports/none/resolve", &admin, long).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn a_removed_post_comment_or_account_is_restored() {
    let api = Api::new().await;
    let admin = api.user("root").await;
    api.make_admin(&admin).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let post = api.ready_post(&alice).await;
    let c = api
        .post(
            &format!("/v1/posts/{post}/comments"),
            &bob,
            json!({"text": "buy now"}),
        )
        .await;
    let comment = c.id();

    // A post.
    report_and_remove(&api, &bob, &admin, "post", &post).await;
    let r = api.get(&format!("/v1/posts/{post}"), &bob).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        restore(&api, &admin, "post", &post).await.status,
        StatusCode::NO_CONTENT
    );
    let r = api.get(&format!("/v1/posts/{post}"), &bob).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_problem(
        &restore(&api, &admin, "post", &post).await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // A comment, and the post's count with it.
    report_and_remove(&api, &alice, &admin, "comment", &comment).await;
    let post_path = format!("/v1/posts/{post}");
    let count = || api.get(&post_path, &alice);
    assert_eq!(count().await.json["comment_count"], 0);
    assert_eq!(
        restore(&api, &admin, "comment", &comment).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(count().await.json["comment_count"], 1);
    assert_eq!(
        api.ids(&format!("/v1/posts/{post}/comments"), &alice).await,
        [comment.as_str()]
    );

    // An account: it signs in again.
    report_and_remove(&api, &alice, &admin, "user", &bob.id).await;
    let login = || {
        api.call(
            Method::POST,
            "/v1/auth/login",
            None,
            json!({"handle": "bob", "password": "correct horse"}),
        )
    };
    assert_problem(&login().await, StatusCode::FORBIDDEN, "account-removed");
    assert_eq!(
        restore(&api, &admin, "user", &bob.id).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(login().await.status, StatusCode::OK);

    // What cannot be restored, and who cannot.
    assert_problem(
        &restore(&api, &admin, "post", "nope").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let r = restore(&api, &admin, "playlist", &post).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "target_kind");
    assert_problem(
        &restore(&api, &alice, "post", &post).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // An account its owner deleted stays deleted.
    let r = api.delete_account(&alice).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_problem(
        &restore(&api, &admin, "user", &alice.id).await,
        StatusCode::CONFLICT,
        "conflict",
    );
}

#[tokio::test]
async fn an_announcement_reaches_everyone_pushes_the_away_and_is_dismissed() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let admin = api.user("root").await;
    api.make_admin(&admin).await;
    let away = api.user("away").await;
    let here = api.user("here").await;
    let removed = api.user("removed").await;
    for who in [&away, &here] {
        let device = json!({"platform": "fcm", "push_token": format!("tok-{}", who.handle)});
        let r = api
            .call(
                Method::PUT,
                "/v1/me/devices/phone",
                Some(&who.token),
                device,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    report_and_remove(&api, &away, &admin, "user", &removed.id).await;
    api.online(&here).await;

    let r = api
        .post(
            "/v1/admin/announcements",
            &admin,
            json!({"text": "  New: voice replies!  "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["text"], "New: voice replies!");
    assert_eq!(r.json["recipients"], 3, "root, away and here");

    for who in [&away, &here, &admin] {
        let list = api.get("/v1/notifications", who).await.json;
        let first = &list["items"][0];
        assert_eq!(first["kind"], "announcement", "{list}");
        assert_eq!(first["body"]["text"], "New: voice replies!");
        assert!(first["actor"].is_null());
    }
    let pushed: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM push_outbox WHERE kind = 'announcement'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        pushed,
        [away.id.as_str()],
        "only the one away with a device"
    );

    // Dismissed, it is gone from her list; another's is not hers to dismiss.
    let list = api.get("/v1/notifications", &away).await.json;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let r = api.delete(&format!("/v1/notifications/{id}"), &here).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api.delete(&format!("/v1/notifications/{id}"), &away).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let list = api.get("/v1/notifications", &away).await.json;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["kind"] != "announcement"));

    // Only admins announce, and only something.
    let r = api
        .post("/v1/admin/announcements", &away, json!({"text": "hi"}))
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .post("/v1/admin/announcements", &admin, json!({"text": "   "}))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "text");
}
