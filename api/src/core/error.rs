//! The API's one error type and its `application/problem+json` (RFC 9457) rendering.
//!
//! Handlers return `Result<_, ApiError>`; this module is the only place that
//! turns a failure into a status code, a stable problem `type` and headers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every way a request can fail. Each variant has a stable problem `type`.
///
/// Client errors (4xx) tell the caller what to change; `Unavailable` is worth
/// retrying later; `Internal` is logged with detail and answered with a bare 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request cannot be parsed (e.g. JSON syntax).
    #[error("{0}")]
    BadRequest(String),
    /// Missing, malformed, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed to act on this resource.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// Login to an account a moderator removed.
    #[error("this account was removed by a moderator")]
    AccountRemoved,
    /// The password an action asks for again (a password change, deleting
    /// the account) does not match. Not 401: the token itself is fine.
    #[error("the password does not match")]
    WrongPassword,
    /// A signed URL that is expired, or whose signature does not cover this
    /// request. Which of them is not said (it would help a forger); the log has it.
    #[error("the signed URL has expired or does not match this request (method, key, Content-Type, Content-Length)")]
    SignedUrlRefused,
    #[error("not found")]
    NotFound,
    /// The request clashes with the current state (duplicate, wrong state).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the route accepts.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid input: each bad field is named.
    #[error("invalid fields: {}", field_names(.fields))]
    Validation { fields: Vec<FieldError> },
    /// The request (its body, or the work on it) took longer than allowed.
    #[error("the request took longer than {secs} s")]
    RequestTimeout { secs: u64 },
    /// Rate limited: retry after this many seconds (sent as `Retry-After`).
    #[error("too many attempts; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// A dependency is down for now. A fixed text, so a 503 can never carry
    /// a database's or a store's error message to the client.
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// Overloaded for now (e.g. the password-hashing queue is full): 503,
    /// retry after this many seconds (sent as `Retry-After`).
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    /// Anything unexpected: logged with detail, answered with a bare 500.
    #[error(transparent)]
    Internal(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// One invalid input field of a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name (a dotted path for nested fields).
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn field_names(fields: &[FieldError]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    names.join(", ")
}

impl ApiError {
    /// A 422 about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            fields: vec![FieldError::new(field, message)],
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(Box::new(e))
    }
}

/// Maps a unique-constraint violation to `conflict` (typically a 409, or a 422
/// naming the field), and any other database error to a 500. The one place
/// where constraint violations become client errors.
pub fn on_unique(e: sqlx::Error, conflict: impl FnOnce() -> ApiError) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => conflict(),
        _ => e.into(),
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `https://sori.dev/problems/not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// On a 422: every invalid field and why.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
}

const PROBLEM_BASE: &str = "https://sori.dev/problems/";

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden | Self::SignedUrlRefused => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            }
            Self::AccountRemoved => (StatusCode::FORBIDDEN, "account-removed", "Account removed"),
            Self::WrongPassword => (StatusCode::FORBIDDEN, "wrong-password", "Wrong password"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            Self::RequestTimeout { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Server busy"),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let detail = match &self {
            Self::Internal(e) => {
                // 5xx details stay in the logs.
                tracing::error!(error = %e, "internal error");
                None
            }
            Self::Unavailable(why) => Some((*why).to_owned()),
            other => Some(other.to_string()),
        };
        let mut problem = Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: Vec::new(),
        };
        let mut response = status.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Validation { fields } => problem.errors = fields,
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after } | Self::Busy { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        *response.body_mut() = body.into();
        response
    }
}

/// A documented `application/problem+json` answer (for the OpenAPI
/// modifiers that add the problems every route can answer with).
pub(crate) fn problem_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", content)
        .build()
        .into()
}
