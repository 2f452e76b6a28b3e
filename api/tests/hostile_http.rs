//! Hostile HTTP input through the router, on the backend `SORI_TEST_DB`
//! names (PostgreSQL refuses NUL in text, so both databases matter).
//!
//! The routes come from the OpenAPI document, so a new route is covered
//! without touching this file: every JSON body gets malformed JSON, a body
//! that is not an object, a wrong type in each field, the wrong content type
//! and an oversized body; every paginated route gets bad `limit`s and
//! cursors; every path parameter gets unreadable and SQL-looking ids. Each
//! answer must be a problem+json whose status the document lists, naming
//! the field where there is one. Then unicode and SQL-looking strings go
//! into every text field, and come back byte-identical or are refused with
//! a 422 naming the field.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use support::{Api, Reply, User};

/// Strings that break naive code: emoji (with a joiner), right-to-left text
/// with a direction mark, NUL, stacked combining marks, 4-byte characters,
/// SQL and LIKE metacharacters, quotes and backslashes.
const HOSTILE: &[&str] = &[
    "🎙️🔥 👩‍👩‍👧",
    "مرحبا \u{200f}שלום",
    "a\u{0}b",
    "e\u{301}\u{301}\u{302}",
    "𝄞𠜎𝕊",
    "'; DROP TABLE users; --",
    "%",
    "_",
    "\\",
    "\" OR \"1\"=\"1",
    "100%_off\\%",
];

/// Path parameter values a client should never send: unreadable bytes
/// (already percent-encoded), SQL, traversal, a huge id.
const HOSTILE_IDS: &[&str] = &[
    "%00",
    "a%00b",
    "%FF%FE",
    "%C3%28",
    "'%3B%20DROP%20TABLE%20users%3B%20--",
    "%25",
    "_",
    "%5C",
    "..%2F..%2Fetc%2Fpasswd",
    "%F0%9F%8E%99",
];

/// The app with the embedded store and queue, two users and one of every
/// resource a path can name.
struct World {
    api: Api,
    alice: User,
    bob: User,
    post: String,
    media: String,
    comment: String,
    room: String,
    /// Alice's message in the room.
    message: String,
    playlist: String,
    report: String,
    doc: Value,
}

async fn world() -> World {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.make_admin(&alice).await;
    let post = api.ready_post(&alice).await;
    let media = api.media(&alice, "ready").await;
    let r = api
        .post(
            &format!("/v1/posts/{post}/comments"),
            &bob,
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let comment = r.id();
    let room = api.room(&alice, &bob).await;
    let message = api.text_message(&alice, &room, "hello").await;
    let body = json!({"title": "mix", "description": "", "public": true});
    let playlist = api.post("/v1/playlists", &alice, body).await.id();
    let body = json!({"target_kind": "post", "target_id": post, "reason": "spam"});
    let report = api.post("/v1/reports", &bob, body).await.id();
    let doc = api.openapi().await;
    World {
        api,
        alice,
        bob,
        post,
        media,
        comment,
        room,
        message,
        playlist,
        report,
        doc,
    }
}

/// One operation of the document.
struct Op {
    method: Method,
    path: String,
    spec: Value,
}

impl Op {
    fn documents(&self, status: StatusCode) -> bool {
        self.spec["responses"]
            .get(status.as_str())
            .is_some_and(problem_content)
    }

    fn query_param(&self, name: &str) -> bool {
        self.params("query").any(|p| p["name"] == name)
    }

    fn params<'a>(&'a self, place: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(move |p| p["in"] == place)
    }
}

fn problem_content(response: &Value) -> bool {
    response["content"]
        .get("application/problem+json")
        .is_some()
}

fn operations(doc: &Value) -> Vec<Op> {
    let ops: Vec<Op> = support::operations(doc)
        .into_iter()
        .map(|(method, path)| Op {
            method: method.to_ascii_uppercase().parse().unwrap(),
            spec: doc["paths"][&path][&method].clone(),
            path,
        })
        .collect();
    assert!(ops.len() > 50, "only {} operations documented", ops.len());
    ops
}

/// `schema` with `$ref`s to components followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The JSON schema of the operation's request body, when it takes JSON.
fn json_body<'a>(doc: &'a Value, op: &'a Op) -> Option<&'a Value> {
    let schema = op.spec["requestBody"]["content"]
        .get("application/json")?
        .get("schema")?;
    Some(resolve(doc, schema))
}

/// The JSON type a schema names, ignoring `null` (nullable fields).
fn json_type(doc: &Value, schema: &Value) -> Option<String> {
    let schema = resolve(doc, schema);
    if let Some(first) = schema["oneOf"].as_array().and_then(|a| a.first()) {
        return json_type(doc, first);
    }
    match &schema["type"] {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        _ => None,
    }
}

/// A value of the right type (not necessarily valid for the handler).
fn sample(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    if let Some(first) = schema["enum"].as_array().and_then(|a| a.first()) {
        return first.clone();
    }
    // An optional field is `oneOf: [null, T]`: a sample of `T`, not of null.
    let mut alternatives = schema["oneOf"].as_array().into_iter().flatten();
    if let Some(first) = alternatives.find(|s| s["type"] != "null") {
        return sample(doc, first);
    }
    match json_type(doc, schema).as_deref() {
        Some("string") => json!("x"),
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => json!({}),
    }
}

/// A value of a different JSON type than the schema's.
fn wrong(doc: &Value, schema: &Value) -> Option<Value> {
    match json_type(doc, schema)?.as_str() {
        "string" => Some(json!(12345)),
        "integer" | "number" | "boolean" | "array" | "object" => Some(json!("wrong")),
        _ => None,
    }
}

/// Every property of the body filled with a value of its type.
fn skeleton(doc: &Value, schema: &Value) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            body.insert(name.clone(), sample(doc, prop));
        }
    }
    body
}

/// Fills the path's `{parameters}` with the world's resources.
fn concrete(w: &World, path: &str) -> String {
    let mut out = Vec::new();
    let mut collection = "";
    for segment in path.split('/') {
        let filled = match segment {
            "{post_id}" => w.post.clone(),
            "{user_id}" => w.bob.id.clone(),
            "{device_id}" => "phone".to_owned(),
            "{key}" => "originals/x".to_owned(),
            s if s.starts_with('{') => match collection {
                "users" => w.bob.id.clone(),
                "posts" => w.post.clone(),
                "media" => w.media.clone(),
                "comments" => w.comment.clone(),
                "chats" => w.room.clone(),
                "messages" => w.message.clone(),
                "playlists" => w.playlist.clone(),
                "reports" => w.report.clone(),
                other => panic!("no resource for {{id}} under /{other}/ in {path}"),
            },
            s => {
                collection = s;
                s.to_owned()
            }
        };
        out.push(filled);
    }
    out.join("/")
}

/// Asserts `r` is a problem of `status` that the operation documents.
fn assert_documented(op: &Op, r: &Reply, status: StatusCode, what: &str) {
    assert_eq!(
        r.status, status,
        "{} {} ({what}): {}",
        op.method, op.path, r.json
    );
    assert_eq!(
        r.content_type, "application/problem+json",
        "{} {} ({what})",
        op.method, op.path
    );
    assert!(
        op.documents(status),
        "{} {} ({what}): {status} is not documented as a problem",
        op.method,
        op.path
    );
}

/// Asserts a documented 422 whose `errors` name `field`.
fn assert_names(op: &Op, r: &Reply, field: &str, what: &str) {
    assert_documented(op, r, StatusCode::UNPROCESSABLE_ENTITY, what);
    let named: Vec<&str> = r.json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        named.contains(&field),
        "{} {} ({what}): expected `{field}` named, got {named:?}",
        op.method,
        op.path
    );
}

#[tokio::test]
async fn every_json_body_refuses_broken_input_with_a_documented_problem() {
    let w = world().await;
    let mut checked = 0;
    for op in operations(&w.doc) {
        let Some(schema) = json_body(&w.doc, &op) else {
            continue;
        };
        checked += 1;
        let path = concrete(&w, &op.path);
        let token = Some(w.alice.token.as_str());
        let send = |content_type: &'static str, body: Vec<u8>| {
            w.api
                .call_raw(op.method.clone(), &path, token, Some(content_type), body)
        };
        let json_type = "application/json";

        let r = send(json_type, b"{,".to_vec()).await;
        assert_documented(&op, &r, StatusCode::BAD_REQUEST, "malformed JSON");
        let r = send(json_type, br#""not an object""#.to_vec()).await;
        assert_names(&op, &r, "body", "a string, not an object");

        let base = skeleton(&w.doc, schema);
        let r = send("text/plain", Value::Object(base.clone()).to_string().into()).await;
        assert_documented(&op, &r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain");

        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            let Some(bad) = wrong(&w.doc, prop) else {
                continue;
            };
            let mut body = base.clone();
            body.insert(name.clone(), bad);
            let r = send(json_type, Value::Object(body).to_string().into()).await;
            assert_names(&op, &r, name, "wrong type");
        }

        let mut big = base.clone();
        big.insert("padding".to_owned(), json!("x".repeat(70 * 1024)));
        let r = send(json_type, Value::Object(big).to_string().into()).await;
        assert_documented(&op, &r, StatusCode::PAYLOAD_TOO_LARGE, "70 KiB body");
    }
    assert!(checked >= 15, "only {checked} JSON bodies documented");
}

/// `base64url("{created_at}:{id}")`: a cursor of the shape the API encodes.
fn cursor(text: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    URL_SAFE_NO_PAD.encode(text)
}

/// The query string that makes a list route valid but for `extra`.
fn required_query(w: &World, op: &Op) -> String {
    let mut pairs = Vec::new();
    for p in op.params("query") {
        if p["required"] == true {
            let value = match sample(&w.doc, &p["schema"]) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            pairs.push(format!("{}={value}", p["name"].as_str().unwrap()));
        }
    }
    pairs.join("&")
}

#[tokio::test]
async fn every_list_refuses_bad_limits_and_cursors_naming_them() {
    let w = world().await;
    let bad_limits = [
        "0",
        "-1",
        "101",
        "4294967296",
        "99999999999999999999999999",
        "abc",
        "1.5",
        "1e2",
        "%00",
        "%F0%9F%94%A5",
    ];
    let bad_cursors = [
        "!!".to_owned(),
        "%00".to_owned(),
        cursor("1:\0"),
        cursor("1:a\0b"),
        cursor("x:y"),
        cursor(&format!("1:{}", "a".repeat(100))),
        cursor("99999999999999999999999:a"),
    ];
    let mut checked = 0;
    for op in operations(&w.doc) {
        if op.method != Method::GET || !op.query_param("limit") {
            continue;
        }
        checked += 1;
        assert!(
            op.query_param("cursor"),
            "{}: limit without cursor",
            op.path
        );
        let path = concrete(&w, &op.path);
        let required = required_query(&w, &op);
        let api = &w.api;
        let alice = &w.alice;
        let required = &required;
        let path = &path;
        let list = |extra: String| {
            let query = [required.clone(), extra]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("&");
            let uri = format!("{path}?{query}");
            async move { api.get(&uri, alice).await }
        };
        let r = list(String::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
        for limit in bad_limits {
            let r = list(format!("limit={limit}")).await;
            assert_names(&op, &r, "limit", &format!("limit={limit}"));
        }
        for c in &bad_cursors {
            let r = list(format!("cursor={c}")).await;
            assert_names(&op, &r, "cursor", &format!("cursor={c}"));
        }
    }
    assert!(checked >= 12, "only {checked} paginated routes documented");
}

#[tokio::test]
async fn every_path_parameter_survives_hostile_ids() {
    let w = world().await;
    for op in operations(&w.doc) {
        if op.params("path").next().is_none() {
            continue;
        }
        let json_body = json_body(&w.doc, &op).map(|s| Value::Object(skeleton(&w.doc, s)));
        for id in HOSTILE_IDS {
            // Every parameter of the path gets the hostile value.
            let path: String = op
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { *id } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let r = match &json_body {
                Some(body) => {
                    let bytes = body.to_string().into_bytes();
                    let token = Some(w.alice.token.as_str());
                    let json_type = Some("application/json");
                    w.api
                        .call_raw(op.method.clone(), &path, token, json_type, bytes)
                        .await
                }
                None => {
                    w.api
                        .call_raw(op.method.clone(), &path, Some(&w.alice.token), None, vec![])
                        .await
                }
            };
            let what = format!("{} {path}", op.method);
            assert!(
                !r.status.is_server_error(),
                "{what}: {} {}",
                r.status,
                r.json
            );
            if r.status.is_client_error() {
                assert_eq!(r.content_type, "application/problem+json", "{what}");
                assert!(
                    op.documents(r.status),
                    "{what}: {} is not documented: {}",
                    r.status,
                    r.json
                );
            }
        }
    }
}

/// Percent-encodes everything but unreserved characters, for paths and queries.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What happened to one hostile string in one field.
enum Outcome {
    /// Accepted: the answer to read it back.
    Stored(Value),
    Refused,
}

/// Accepted (2xx: the JSON answer) or refused with a 422 naming `field`;
/// anything else fails the test.
fn outcome(r: Reply, field: &str, value: &str) -> Outcome {
    if r.status.is_success() {
        return Outcome::Stored(r.json);
    }
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}={value:?}: {}",
        r.json
    );
    assert_eq!(r.content_type, "application/problem+json");
    let named = r.json["errors"].as_array().unwrap();
    assert!(
        named.iter().any(|e| e["field"] == field),
        "{field}={value:?}: the 422 names {named:?}"
    );
    Outcome::Refused
}

/// Asserts the value read back at `pointer` is `value`, byte for byte.
fn assert_same(read: &Value, pointer: &str, value: &str, what: &str) {
    let got = read.pointer(pointer).and_then(Value::as_str);
    assert_eq!(
        got.map(str::as_bytes),
        Some(value.as_bytes()),
        "{what}: stored {value:?}, read back {got:?}"
    );
}

#[tokio::test]
async fn accounts_keep_hostile_text_or_refuse_it_by_name() {
    let w = world().await;
    let api = &w.api;
    for (i, s) in HOSTILE.iter().enumerate() {
        let body = json!({"handle": s, "password": "correct horse", "display_name": "x"});
        let r = api.call(Method::POST, "/v1/auth/signup", None, body).await;
        if let Outcome::Stored(v) = outcome(r, "handle", s) {
            let id = v["user_id"].as_str().unwrap();
            let read = api.get(&format!("/v1/users/{id}"), &w.alice).await;
            assert_same(&read.json, "/handle", s, "handle");
        }

        let handle = format!("hostile{i}");
        let body = json!({"handle": handle, "password": "correct horse", "display_name": s});
        let r = api.call(Method::POST, "/v1/auth/signup", None, body).await;
        if let Outcome::Stored(v) = outcome(r, "display_name", s) {
            let id = v["user_id"].as_str().unwrap();
            let read = api.get(&format!("/v1/users/{id}"), &w.alice).await;
            assert_same(&read.json, "/display_name", s, "signup display_name");
            // Search finds them by their exact name, whatever it contains.
            let q = format!("/v1/search?q={}", encode(s));
            let found = api.get(&q, &w.alice).await;
            assert_eq!(found.status, StatusCode::OK, "{q}: {}", found.json);
            let ids: Vec<&str> = found.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|u| u["id"].as_str())
                .collect();
            assert!(ids.contains(&id), "search for {s:?} misses them: {ids:?}");
        }

        // Password: anything goes, and it still logs in.
        let handle = format!("secret{i}");
        let password = format!("{s}{s}{s}{s}{s}{s}{s}{s}");
        let body = json!({"handle": handle, "password": password, "display_name": "x"});
        let r = api.call(Method::POST, "/v1/auth/signup", None, body).await;
        if let Outcome::Stored(_) = outcome(r, "password", s) {
            let body = json!({"handle": handle, "password": password});
            let r = api.call(Method::POST, "/v1/auth/login", None, body).await;
            assert_eq!(r.status, StatusCode::OK, "login with {password:?}");
        }

        // Logging in as a hostile handle is a plain refusal.
        let body = json!({"handle": s, "password": "correct horse"});
        let r = api.call(Method::POST, "/v1/auth/login", None, body).await;
        assert!(
            matches!(r.status.as_u16(), 401 | 422),
            "login as {s:?}: {} {}",
            r.status,
            r.json
        );

        for field in ["display_name", "bio"] {
            let body = json!({ field: s });
            let r = api
                .call(Method::PATCH, "/v1/me", Some(&w.bob.token), body)
                .await;
            if let Outcome::Stored(_) = outcome(r, field, s) {
                let read = api.get("/v1/me", &w.bob).await;
                assert_same(&read.json, &format!("/{field}"), s, field);
            }
        }
    }
}

#[tokio::test]
async fn posts_comments_and_tags_keep_hostile_text_or_refuse_it_by_name() {
    let w = world().await;
    let api = &w.api;
    for s in HOSTILE {
        let media = api.media(&w.alice, "ready").await;
        let body = json!({"media_id": media, "caption": s});
        let r = api.post("/v1/posts", &w.alice, body).await;
        if let Outcome::Stored(v) = outcome(r, "caption", s) {
            let read = api.post_item(v["id"].as_str().unwrap(), &w.bob).await;
            assert_same(&read, "/caption", s, "caption");
        }

        let media = api.media(&w.alice, "ready").await;
        let body = json!({"media_id": media, "caption": "", "tags": [s]});
        let r = api.post("/v1/posts", &w.alice, body).await;
        if let Outcome::Stored(v) = outcome(r, "tags[0]", s) {
            let read = api.post_item(v["id"].as_str().unwrap(), &w.bob).await;
            let tag = s.trim().trim_start_matches('#').to_lowercase();
            assert_same(&read, "/tags/0", &tag, "tag");
            let q = format!("/v1/explore?tag={}", encode(s));
            let ids = api.ids(&q, &w.bob).await;
            assert!(ids.contains(&v["id"].as_str().unwrap().to_owned()), "{q}");
        }

        let path = format!("/v1/posts/{}/comments", w.post);
        let r = api.post(&path, &w.bob, json!({ "text": s })).await;
        if let Outcome::Stored(v) = outcome(r, "text", s) {
            let list = api.get(&path, &w.bob).await;
            let item = list.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == v["id"])
                .expect("the comment is listed")
                .clone();
            assert_same(&item, "/text", s, "comment");
        }

        // Queries with hostile text are answered or refused by name.
        for (route, field) in [
            ("/v1/explore?tag=", "tag"),
            ("/v1/search?kind=posts&q=", "q"),
            ("/v1/search?kind=users&q=", "q"),
        ] {
            let r = api.get(&format!("{route}{}", encode(s)), &w.bob).await;
            outcome(r, field, s);
        }
    }
}

#[tokio::test]
async fn chat_playlists_reports_and_devices_keep_hostile_text_or_refuse_it_by_name() {
    let w = world().await;
    let api = &w.api;
    let reporters = api.many_users("reporter", HOSTILE.len()).await;
    for (i, s) in HOSTILE.iter().enumerate() {
        let messages = format!("/v1/chats/{}/messages", w.room);
        for (field, body) in [
            ("text", json!({"kind": "text", "text": s})),
            (
                "client_id",
                json!({"kind": "text", "text": "hi", "client_id": s}),
            ),
        ] {
            let r = api.post(&messages, &w.alice, body).await;
            if let Outcome::Stored(v) = outcome(r, field, s) {
                let list = api.get(&messages, &w.bob).await;
                let item = list.json["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["id"] == v["id"])
                    .expect("the message is listed")
                    .clone();
                if field == "text" {
                    assert_same(&item, "/text", s, "chat text");
                } else {
                    // The sender sees their client id; read it from their answer.
                    assert_same(&v, "/client_id", s, "client_id");
                }
            }
        }

        for field in ["title", "description"] {
            let mut body = json!({"title": "t", "description": "", "public": true});
            body[field] = json!(s);
            let r = api.post("/v1/playlists", &w.alice, body).await;
            if let Outcome::Stored(v) = outcome(r, field, s) {
                let id = v["id"].as_str().unwrap();
                let read = api.get(&format!("/v1/playlists/{id}"), &w.bob).await;
                assert_same(&read.json, &format!("/{field}"), s, field);
            }
            let path = format!("/v1/playlists/{}", w.playlist);
            let r = api
                .call(
                    Method::PATCH,
                    &path,
                    Some(&w.alice.token),
                    json!({ field: s }),
                )
                .await;
            if let Outcome::Stored(_) = outcome(r, field, s) {
                let read = api.get(&path, &w.bob).await;
                assert_same(&read.json, &format!("/{field}"), s, field);
            }
        }

        let body =
            json!({"target_kind": "post", "target_id": w.post, "reason": "other", "details": s});
        let r = api.post("/v1/reports", &reporters[i], body).await;
        if let Outcome::Stored(v) = outcome(r, "details", s) {
            let list = api.get("/v1/reports?limit=100", &w.alice).await;
            let item = list.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == v["id"])
                .expect("the report is listed")
                .clone();
            assert_same(&item, "/details", s, "report details");
        }

        let body = json!({"platform": "fcm", "push_token": s});
        let r = api
            .call(
                Method::PUT,
                "/v1/me/devices/phone",
                Some(&w.bob.token),
                body,
            )
            .await;
        if let Outcome::Stored(_) = outcome(r, "push_token", s) {
            let list = api.get("/v1/me/devices", &w.bob).await;
            assert_same(&list.json, "/items/0/push_token", s, "push_token");
        }
        let path = format!("/v1/me/devices/{}", encode(s));
        let body = json!({"platform": "webhook", "push_token": format!("token{i}")});
        let r = api
            .call(Method::PUT, &path, Some(&w.alice.token), body)
            .await;
        // A path with a control character names nothing: 404 before any route.
        if s.chars().any(char::is_control) {
            assert_eq!(r.status, StatusCode::NOT_FOUND, "device_id={s:?}");
            continue;
        }
        if let Outcome::Stored(v) = outcome(r, "device_id", s) {
            assert_same(&v, "/device_id", s, "device_id");
        }
    }
}
