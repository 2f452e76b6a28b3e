//! The `Idempotency-Key` request header (IETF httpapi draft
//! "The Idempotency-Key HTTP Header Field") on the requests that create
//! something: `POST /v1/posts`, `POST /v1/posts/{id}/comments`,
//! `POST /v1/chats/{id}/messages` and `POST /v1/media`. A phone on a flaky
//! network resends with the same key and gets the first answer again instead
//! of a second post.
//!
//! - The key is scoped to the caller and the route (method and path); a key
//!   is 1–255 visible ASCII characters, as a Structured Field string
//!   (`"…"`) or bare.
//! - Same key, same body (SHA-256 of the bytes): the stored first answer,
//!   status and body, with `Idempotent-Replayed: true`.
//! - Same key, another body: 422, naming the `Idempotency-Key` field.
//! - Same key while the first request still runs: 409 (retry later).
//! - Only successful (2xx) answers are stored: a refused request changed
//!   nothing, so sending it again simply runs it again.
//! - Answers are kept [`TTL`]; a reservation whose request never finished
//!   (its process died) is taken over after [`ABANDONED_AFTER`].
//!
//! A replay is the first answer as it was: signed URLs in it keep their
//! first expiry. `client_id` on chat messages keeps working on its own.
//!
//! The reservation is a row inserted under the table's primary key, so two
//! concurrent first requests cannot both run: one inserts, the other sees it.

use crate::core::error::ApiError;
use crate::core::extractors::AuthUser;
use crate::core::state::AppState;
use crate::core::validation::JSON_LIMIT;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sori_db::Db;
use sori_pipeline::clock::{millis, now_ms};
use std::time::Duration;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The routes (as matched) that honour the header, all `POST`.
pub const ROUTES: [&str; 4] = [
    "/v1/posts",
    "/v1/posts/{id}/comments",
    "/v1/chats/{id}/messages",
    "/v1/media",
];
/// How long a stored answer is replayed.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a reservation may stay unfinished before another request with
/// its key may run (the first one's process must have died).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// Largest answer stored for replay (answers here are a few KiB).
const MAX_STORED: usize = 256 * 1024;

/// What a key's row says about a new request with it.
enum Reservation {
    /// Ours now: run the request.
    Fresh,
    /// Answered before, with the same body.
    Replay(Stored),
    /// The first request with this key still runs.
    InProgress,
    /// Used before with another body.
    OtherBody,
}

/// A stored first answer.
struct Stored {
    status: i64,
    content_type: Option<String>,
    body: String,
}

/// A key's row as [`reserve`] reads it.
#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: String,
    /// `None` while the first request runs.
    status: Option<i64>,
    content_type: Option<String>,
    body: Option<String>,
}

/// Which stored row a request addresses.
struct Slot<'a> {
    user_id: &'a str,
    route: &'a str,
    key: &'a str,
}

/// The middleware, applied around every route by [`crate::app_with`]; it
/// acts only on `POST`s to [`ROUTES`] that carry the header.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let applies = req.method() == Method::POST
        && req.headers().contains_key(&HEADER)
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| ROUTES.contains(&m.as_str()));
    if !applies {
        return next.run(req).await;
    }
    match handle(&state, req, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle(state: &AppState, req: Request, next: Next) -> Result<Response, Response> {
    let key = parse_key(req.headers().get(&HEADER)).map_err(IntoResponse::into_response)?;
    let (mut parts, body) = req.into_parts();
    let user = AuthUser::from_request_parts(&mut parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let bytes = axum::body::to_bytes(body, JSON_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: JSON_LIMIT }.into_response())?;
    let route = format!("POST {}", parts.uri.path());
    let slot = Slot {
        user_id: &user.id,
        route: &route,
        key: &key,
    };
    let hash = hex::encode(Sha256::digest(&bytes));
    match reserve(&state.db, &slot, &hash).await.map_err(internal)? {
        Reservation::Fresh => {}
        Reservation::Replay(stored) => return Ok(replay(stored)),
        Reservation::InProgress => {
            let why = "a request with this Idempotency-Key is still being processed; retry later";
            return Err(ApiError::Conflict(why.to_owned()).into_response());
        }
        Reservation::OtherBody => {
            let why = "already used with another request body";
            return Err(ApiError::invalid("Idempotency-Key", why).into_response());
        }
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    Ok(finish(&state.db, &slot, response).await)
}

/// The key, unquoted: a Structured Field string or a bare token.
fn parse_key(value: Option<&HeaderValue>) -> Result<String, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters, e.g. \"8e03978e-40d5-43e8-bc93-6894a57f9324\""
        ))
    };
    let text = value.and_then(|v| v.to_str().ok()).ok_or_else(bad)?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let visible = key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
        return Err(bad());
    }
    Ok(key.to_owned())
}

/// Takes the key for this request, or says what it already holds. An
/// expired answer or an abandoned reservation is removed first.
async fn reserve(db: &Db, slot: &Slot<'_>, hash: &str) -> Result<Reservation, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND idem_key = $3 \
         AND (created_at < $4 OR (status IS NULL AND created_at < $5))",
    )
    .bind(slot.user_id)
    .bind(slot.route)
    .bind(slot.key)
    .bind(now - millis(TTL))
    .bind(now - millis(ABANDONED_AFTER))
    .execute(db.pool())
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, route, idem_key, request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(slot.user_id)
    .bind(slot.route)
    .bind(slot.key)
    .bind(hash)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Reservation::Fresh);
    }
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT request_hash, status, content_type, body FROM idempotency_keys \
         WHERE user_id = $1 AND route = $2 AND idem_key = $3",
    )
    .bind(slot.user_id)
    .bind(slot.route)
    .bind(slot.key)
    .fetch_optional(db.pool())
    .await?;
    Ok(match row {
        Some(row) if row.request_hash != hash => Reservation::OtherBody,
        Some(KeyRow {
            status: Some(status),
            content_type,
            body,
            ..
        }) => Reservation::Replay(Stored {
            status,
            content_type,
            body: body.unwrap_or_default(),
        }),
        // Finished and removed between our statements: the client raced itself.
        _ => Reservation::InProgress,
    })
}

/// Stores a successful answer for replays and returns it; any other answer
/// releases the key (nothing was done, so a resend may run again).
async fn finish(db: &Db, slot: &Slot<'_>, response: Response) -> Response {
    if !response.status().is_success() {
        release(db, slot).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED).await {
        Ok(bytes) => bytes,
        Err(e) => {
            release(db, slot).await;
            return internal(e);
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let stored = sqlx::query(
        "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 \
         WHERE user_id = $4 AND route = $5 AND idem_key = $6",
    )
    .bind(i64::from(parts.status.as_u16()))
    .bind(content_type)
    .bind(String::from_utf8_lossy(&bytes).into_owned())
    .bind(slot.user_id)
    .bind(slot.route)
    .bind(slot.key)
    .execute(db.pool())
    .await;
    if let Err(e) = stored {
        // The work is done; only a resend's replay is lost (it would run
        // again once the reservation is abandoned).
        tracing::warn!(error = %e, "cannot store an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn release(db: &Db, slot: &Slot<'_>) {
    let released = sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND idem_key = $3 \
         AND status IS NULL",
    )
    .bind(slot.user_id)
    .bind(slot.route)
    .bind(slot.key)
    .execute(db.pool())
    .await;
    if let Err(e) = released {
        tracing::warn!(error = %e, "cannot release an idempotency key; it frees itself later");
    }
}

fn replay(stored: Stored) -> Response {
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(stored.body)).into_response();
    let headers = response.headers_mut();
    if let Some(v) = stored
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Response {
    ApiError::Internal(Box::new(e)).into_response()
}

/// Documents the header on the operations of [`ROUTES`] in the OpenAPI
/// document, from this one list.
pub struct Documented;

impl utoipa::Modify for Documented {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for route in ROUTES {
            let Some(op) = openapi
                .paths
                .paths
                .get_mut(route)
                .and_then(|item| item.post.as_mut())
            else {
                continue;
            };
            let parameter = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(MAX_KEY_LEN)),
                ))
                .description(Some(
                    "Makes a resend safe (IETF httpapi Idempotency-Key draft): the same key with \
                     the same body within 24 h answers the first success again, with \
                     `Idempotent-Replayed: true`, and creates nothing; with another body, 422; \
                     while the first request runs, 409. Per user and route; 1-255 visible \
                     ASCII characters, as a quoted string or bare. Refused requests are not \
                     remembered. A replay's signed URLs keep their first expiry.",
                ))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(parameter);
            op.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| {
                    crate::core::error::problem_response(
                        "A request with this Idempotency-Key is still being processed",
                    )
                });
        }
    }
}

/// Deletes answers past [`TTL`] (the API role's cleanup task calls it).
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now - millis(TTL))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_structured_strings_or_bare_tokens() {
        let parse = |v: &str| parse_key(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(parse("\"abc-123\"").unwrap(), "abc-123");
        assert_eq!(parse("abc-123").unwrap(), "abc-123");
        for bad in ["\"\"", "", "a b", "\"a\"b\"", &"k".repeat(256)] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse_key(None).is_err());
    }
}
