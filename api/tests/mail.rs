//! Email verification and password recovery through a real SMTP server
//! ([`support::smtp`]: `aiosmtpd` on a free loopback port per test, its
//! delivered messages read from its maildir). The relay ([`sori_api::mail::relay_once`]) is driven by the tests. On the
//! backend `SORI_TEST_DB` names.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::core::mail::Mailer;
use sori_api::mail::relay_once;
use sori_pipeline::clock::now_ms;
use std::sync::Arc;
use support::smtp::{code_in, free_port, header, SmtpServer};
use support::{assert_problem, Api, User};

fn mailer(port: u16) -> Arc<Mailer> {
    Arc::new(
        Mailer::new(
            &format!("smtp://127.0.0.1:{port}"),
            "Sori <no-reply@sori.test>",
        )
        .unwrap(),
    )
}

/// The app with mail going to `port`.
async fn api_mailing(port: u16) -> (Api, Arc<Mailer>) {
    let mailer = mailer(port);
    let m = mailer.clone();
    (Api::with(move |state| state.with_mailer(m)).await, mailer)
}

/// `PUT /v1/me/email` as `who`.
async fn set_email(api: &Api, who: &User, body: Value) -> support::Reply {
    api.call(Method::PUT, "/v1/me/email", Some(&who.token), body)
        .await
}

/// Relays the outbox once, as the API role's relay does every second.
async fn relay(api: &Api, mailer: &Mailer) -> sori_api::mail::Relayed {
    relay_once(&api.t.db, mailer, now_ms()).await.unwrap()
}

/// Sets and verifies `who`'s `email` through the mail server.
async fn verified(api: &Api, mailer: &Mailer, smtp: &SmtpServer, who: &User, email: &str) {
    let r = set_email(api, who, json!({ "email": email })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    relay(api, mailer).await;
    let code = code_in(smtp.messages().last().unwrap());
    let r = api
        .post("/v1/me/email/verify", who, json!({ "code": code }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn a_mailed_code_verifies_the_address_once() {
    let smtp = SmtpServer::start(free_port());
    let (api, mailer) = api_mailing(smtp.port).await;
    let alice = api.user("alice").await;

    let body = json!({ "email": "  Alice@Example.COM " });
    let r = set_email(&api, &alice, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"email": "alice@example.com", "verified": false})
    );
    // Written with the request, sent by the relay.
    assert!(smtp.messages().is_empty());
    assert_eq!(relay(&api, &mailer).await.sent, 1);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(header(&mails[0], "To"), "alice@example.com");
    assert_eq!(header(&mails[0], "Subject"), "Your Sori verification code");
    assert!(header(&mails[0], "From").contains("no-reply@sori.test"));
    let code = code_in(&mails[0]);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": wrong }))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(r.json["errors"][0]["field"], "code");
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": code }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["verified"], true);
    let me = api.get("/v1/me", &alice).await;
    assert_eq!(me.json["email"], "alice@example.com");
    assert_eq!(me.json["email_verified"], true);
    // Others never see it.
    let bob = api.user("bob").await;
    let profile = api.get(&format!("/v1/users/{}", alice.id), &bob).await;
    assert!(profile.json.get("email").is_none(), "{}", profile.json);
    // Single use.
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": code }))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");

    // Bob may claim the address, but not verify it while Alice holds it.
    let r = set_email(&api, &bob, json!({"email": "alice@example.com"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    relay(&api, &mailer).await;
    let code = code_in(smtp.messages().last().unwrap());
    let r = api
        .post("/v1/me/email/verify", &bob, json!({ "code": code }))
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "conflict");
    // Bad addresses are refused before anything is sent.
    for bad in ["not-an-address", "a@b", "two@@example.com", ""] {
        let r = set_email(&api, &bob, json!({"email": bad})).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
}

#[tokio::test]
async fn codes_die_after_five_wrong_tries_or_at_their_expiry() {
    let smtp = SmtpServer::start(free_port());
    let (api, mailer) = api_mailing(smtp.port).await;
    let alice = api.user("alice").await;
    let r = set_email(&api, &alice, json!({"email": "a@example.com"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    relay(&api, &mailer).await;
    let code = code_in(&smtp.messages()[0]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = api
            .post("/v1/me/email/verify", &alice, json!({ "code": wrong }))
            .await;
        assert_eq!(r.json["errors"][0]["message"], "wrong code");
    }
    // The right code no longer works either.
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": code }))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    // A new code works, until it expires.
    let r = set_email(&api, &alice, json!({"email": "a@example.com"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    relay(&api, &mailer).await;
    let code = code_in(smtp.messages().last().unwrap());
    sqlx::query("UPDATE account_codes SET expires_at = $1")
        .bind(now_ms() - 1)
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": code }))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn simultaneous_guesses_get_no_more_tries_than_sequential_ones() {
    let smtp = SmtpServer::start(free_port());
    let (api, mailer) = api_mailing(smtp.port).await;
    let alice = api.user("alice").await;
    let r = set_email(&api, &alice, json!({"email": "a@example.com"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    relay(&api, &mailer).await;
    let code = code_in(&smtp.messages()[0]);
    // Twenty wrong guesses at once, none of them the code.
    let guesses = (0..20).map(|i| {
        let guess = format!("{:06}", (code.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
        api.post("/v1/me/email/verify", &alice, json!({ "code": guess }))
    });
    let answers = futures_util::future::join_all(guesses).await;
    let compared = answers
        .iter()
        .filter(|r| r.json["errors"][0]["message"] == "wrong code")
        .count();
    assert_eq!(compared, 5, "guesses compared with the code");
    let r = api
        .post("/v1/me/email/verify", &alice, json!({ "code": code }))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn a_password_reset_by_mail_ends_every_session_and_says_nothing_of_others() {
    let smtp = SmtpServer::start(free_port());
    let (api, mailer) = api_mailing(smtp.port).await;
    let alice = api.user("alice").await;
    verified(&api, &mailer, &smtp, &alice, "alice@example.com").await;
    let before = smtp.messages().len();

    let ask = |email: &str| json!({ "email": email });
    for email in ["nobody@example.com", "Alice@example.com"] {
        let r = api
            .call(Method::POST, "/v1/auth/password-reset", None, ask(email))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{email}: {}", r.json);
        assert_eq!(r.json, Value::Null, "the same empty answer for both");
    }
    relay(&api, &mailer).await;
    let mails = smtp.messages();
    assert_eq!(
        mails.len(),
        before + 1,
        "one mail: to the address with an account"
    );
    let mail = mails.last().unwrap();
    assert_eq!(header(mail, "To"), "alice@example.com");
    assert_eq!(header(mail, "Subject"), "Reset your Sori password");
    let code = code_in(mail);

    let confirm = |code: &str, password: &str| json!({"email": "alice@example.com", "code": code, "new_password": password});
    let r = api
        .call(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            None,
            confirm(&code, "short"),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api
        .call(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            None,
            json!({"email": "nobody@example.com", "code": code, "new_password": "battery staple"}),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let r = api
        .call(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            None,
            confirm(&code, "battery staple"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(
        api.get("/v1/me", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = json!({"handle": "alice", "password": "battery staple"});
    let r = api.call(Method::POST, "/v1/auth/login", None, login).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Single use.
    let r = api
        .call(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            None,
            confirm(&code, "other staple"),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");

    // Limited per address: nobody's inbox is flooded through Sori.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = api
            .call(
                Method::POST,
                "/v1/auth/password-reset",
                None,
                ask("alice@example.com"),
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_mail_server_outage_delays_mail_and_loses_none() {
    let port = free_port();
    let (api, mailer) = api_mailing(port).await;
    let alice = api.user("alice").await;
    let r = set_email(&api, &alice, json!({"email": "a@example.com"})).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "the request does not wait for mail"
    );
    let pass = relay(&api, &mailer).await;
    assert_eq!((pass.sent, pass.failed), (0, 1));
    let (attempts, error): (i64, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM mail_outbox")
            .fetch_one(api.t.db.pool())
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    // Not tried again before its backoff.
    assert_eq!(relay(&api, &mailer).await, Default::default());

    let smtp = SmtpServer::start(port);
    let later = now_ms() + sori_api::mail::MAX_BACKOFF.as_millis() as i64;
    let pass = relay_once(&api.t.db, &mailer, later).await.unwrap();
    let error: Option<String> = sqlx::query_scalar("SELECT MAX(last_error) FROM mail_outbox")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(pass.sent, 1, "{pass:?} {error:?}");
    assert_eq!(smtp.messages().len(), 1);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox")
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "a sent mail (and its code) is not kept");
}

#[tokio::test]
async fn without_smtp_email_and_recovery_say_they_are_not_configured() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let r = set_email(&api, &alice, json!({"email": "a@example.com"})).await;
    assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(r.json["detail"].as_str().unwrap().contains("SORI_SMTP_URL"));
    let r = api
        .call(
            Method::POST,
            "/v1/auth/password-reset",
            None,
            json!({"email": "a@example.com"}),
        )
        .await;
    assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let me = api.get("/v1/me", &alice).await;
    assert!(me.json.get("email").is_none());
}
