//! Input checking at the HTTP edge: the [`JsonBody`] and [`QueryParams`]
//! extractors (every rejection is a problem+json naming the field where
//! possible), a [`Checks`] collector for 422 answers, and the field rules
//! shared by the routes (handles, names, passwords, captions, tags).

use crate::core::error::{ApiError, FieldError};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

/// Largest JSON request body the API reads.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A JSON request body. Unlike `axum::Json`, a bad body is an [`ApiError`]:
/// 415 without a JSON content type, 413 past [`JSON_LIMIT`], 400 for broken
/// syntax, and 422 naming the field for unknown fields, wrong types and missing fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), JSON_LIMIT)
            .await
            .map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

fn body_error(e: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge { limit: JSON_LIMIT };
        }
        source = err.source();
    }
    ApiError::BadRequest("cannot read the request body".to_owned())
}

/// Deserializes JSON, turning serde's error into a 400 (syntax) or a 422
/// naming the field. A string containing NUL is a 422 naming its field, on
/// every route: PostgreSQL cannot store or compare it, and no field needs it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = nul_field(bytes) {
        return Err(ApiError::invalid(field, "must not contain NUL characters"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(e, bytes))?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The field (`a.b`, `tags[0]`; `body` for the whole) of the first string
/// holding a NUL, when the body escapes one. A NUL can only arrive escaped:
/// raw control characters are JSON syntax errors.
fn nul_field(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let path = nul_path(&value, String::new())?;
    Some(if path.is_empty() {
        "body".to_owned()
    } else {
        path
    })
}

fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let inner = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                return Some(inner);
            }
            nul_path(v, inner)
        }),
        _ => None,
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>, bytes: &[u8]) -> ApiError {
    use serde_json::error::Category;
    let path = e.path().to_string();
    let inner = e.into_inner();
    // serde_json reports a non-string where an enum is expected as a syntax
    // error; when the document parses, it is the field's type that is wrong.
    let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
    match inner.classify() {
        Category::Syntax if well_formed() => {
            ApiError::invalid(field_of(&path, ""), "invalid type for this field")
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        }
        Category::Data => {
            let message = strip_position(&inner.to_string());
            ApiError::invalid(field_of(&path, &message), message)
        }
    }
}

/// The field a serde data error is about: the path, completed with the name
/// inside the message for missing fields (reported at their parent object).
fn field_of(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.split_once(prefix))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    match (named, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "body".to_owned(),
        (None, path) => path.to_owned(),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query-string parameters. A bad value is a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                ApiError::invalid(field_of(&path, &message), message)
            })
    }
}

/// Collects every bad field of a request, so one 422 names them all.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// Records `field` as invalid when `result` is an error message.
    pub fn check(&mut self, field: &str, result: Result<(), String>) -> &mut Self {
        if let Err(message) = result {
            self.0.push(FieldError::new(field, message));
        }
        self
    }

    /// `Ok` when every check passed, else the 422.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation {
                fields: std::mem::take(&mut self.0),
            })
        }
    }
}

/// Handles: 3–30 ASCII letters, digits or underscores. Case is kept for
/// display but uniqueness is case-insensitive (`users.handle_lower`).
pub fn handle(value: &str) -> Result<(), String> {
    let len = value.chars().count();
    if !(3..=30).contains(&len) {
        return Err("must be 3 to 30 characters".to_owned());
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("may contain only letters a-z, digits and underscores".to_owned());
    }
    Ok(())
}

/// Display names: 1–50 characters after trimming, no control characters.
pub fn display_name(value: &str) -> Result<(), String> {
    text(value.trim(), 1, 50)
}

/// Passwords: 8–200 characters; anything else goes.
pub fn password(value: &str) -> Result<(), String> {
    let len = value.chars().count();
    if !(8..=200).contains(&len) {
        return Err("must be 8 to 200 characters".to_owned());
    }
    Ok(())
}

/// Free text between `min` and `max` characters without control characters
/// (newlines and tabs allowed).
pub fn text(value: &str, min: usize, max: usize) -> Result<(), String> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(match min {
            0 => format!("must be at most {max} characters"),
            _ => format!("must be {min} to {max} characters"),
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// Longest caption, in characters.
pub const MAX_CAPTION: usize = 500;
/// Most tags on one post.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 30;

/// Normalizes one tag: an optional leading `#`, then 1–30 letters, digits or
/// underscores (any script), lowercased.
pub fn normalize_tag(raw: &str) -> Result<String, String> {
    let body = raw.trim().strip_prefix('#').unwrap_or(raw.trim());
    let len = body.chars().count();
    if len == 0 || len > MAX_TAG_LEN {
        return Err(format!("a tag is 1 to {MAX_TAG_LEN} characters"));
    }
    if !body.chars().all(is_tag_char) {
        return Err("a tag may contain only letters, digits and underscores".to_owned());
    }
    Ok(body.to_lowercase())
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `#words` of a caption, normalized; over-long ones are ignored (a
/// caption is prose, not a list of tags).
pub fn caption_tags(caption: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = caption;
    while let Some(i) = rest.find('#') {
        let after = &rest[i + 1..];
        let end = after.find(|c: char| !is_tag_char(c)).unwrap_or(after.len());
        if let Ok(tag) = normalize_tag(&after[..end]) {
            tags.push(tag);
        }
        rest = &after[end..];
    }
    tags
}

/// The post's tags: the `tags` field's, then the caption's, deduplicated in
/// order; errors name `tags[i]` or `tags`.
pub fn post_tags(given: &[String], caption: &str) -> Result<Vec<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for (i, raw) in given.iter().enumerate() {
        match normalize_tag(raw) {
            Ok(tag) => tags.push(tag),
            Err(message) => errors.push(FieldError::new(format!("tags[{i}]"), message)),
        }
    }
    tags.extend(caption_tags(caption));
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("at most {MAX_TAGS} tags, counting the caption's #tags"),
        ));
    }
    if errors.is_empty() {
        Ok(tags)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Fields are read through Debug only.
    struct Sample {
        name: String,
        age: u32,
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::Validation { fields } => fields[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Sample>(br#"{"name":"a","age":"x"}"#).unwrap_err();
        assert_eq!(field(e), "age");
        let e = parse_json::<Sample>(br#"{"name":"a","age":1,"extra":2}"#).unwrap_err();
        assert_eq!(field(e), "extra");
        let e = parse_json::<Sample>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(field(e), "age");
        let e = parse_json::<Sample>(br#"{"name":"a","#).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(_)));
        let e = parse_json::<Sample>(br#"{"name":"a","age":1} x"#).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(_)));
        let e = parse_json::<Sample>(br#"{"name":"a\u0000","age":1}"#).unwrap_err();
        assert_eq!(field(e), "name");
        let e = parse_json::<Vec<Vec<String>>>(br#"[["ok"],["x","\u0000"]]"#).unwrap_err();
        assert_eq!(field(e), "[1][1]");
        // An escaped backslash before `u0000` is no NUL.
        let ok = parse_json::<Sample>(br#"{"name":"a\\u0000","age":1}"#).unwrap();
        assert_eq!(ok.name, "a\\u0000");
    }

    #[test]
    fn handles_are_short_ascii_words() {
        assert!(handle("ab").is_err());
        assert!(handle("Alice_01").is_ok());
        assert!(handle("al ice").is_err());
        assert!(handle("élise").is_err());
        assert!(handle(&"a".repeat(31)).is_err());
        assert!(handle(&"a".repeat(30)).is_ok());
    }

    #[test]
    fn tags_come_from_the_field_and_the_caption() {
        let tags = post_tags(
            &["#Rain".to_owned(), "night".to_owned()],
            "sounds of #rain and #소리, #x_1!",
        )
        .unwrap();
        assert_eq!(tags, ["rain", "night", "소리", "x_1"]);
        let errors = post_tags(&["two words".to_owned()], "").unwrap_err();
        assert_eq!(errors[0].field, "tags[0]");
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert_eq!(post_tags(&many, "").unwrap_err()[0].field, "tags");
    }

    #[test]
    fn text_limits_count_characters() {
        assert!(text(&"가".repeat(50), 1, 50).is_ok());
        assert!(text(&"가".repeat(51), 1, 50).is_err());
        assert!(text("a\u{0}b", 0, 10).is_err());
        assert!(display_name("   ").is_err());
    }
}
