//! Keyset pagination: opaque cursors over `(created_at, id)`, the `?limit=&cursor=`
//! parameters and the `{"items": [...], "next_cursor": ...}` envelope.
//!
//! A page query asks for rows strictly before the cursor in
//! `(created_at DESC, id DESC)` order and fetches one row more than the limit
//! to learn whether another page exists; no list ever uses OFFSET.

use crate::core::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 100;

/// A position in a newest-first list: the last item a page returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// The position before every row: where the first page starts.
    pub fn start() -> Self {
        Self {
            created_at: i64::MAX,
            id: String::new(),
        }
    }

    /// base64url of `created_at:id`; clients must treat it as opaque.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    /// Parses a cursor this module encoded; anything else is a 422 on `cursor`.
    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid("cursor", "not a cursor this API returned");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (time, id) = text.split_once(':').ok_or_else(invalid)?;
        let created_at = time.parse().map_err(|_| invalid())?;
        // Ids are printable: a control character (PostgreSQL refuses NUL in
        // text) cannot come from a cursor this API encoded.
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(invalid());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// `?limit=&cursor=` of every list route.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page this query names, in one canonical form (a cache key):
    /// queries that differ only in spelling (`limit` absent or 20) share it.
    pub fn key(&self) -> Result<String, ApiError> {
        let (limit, cursor) = self.resolve()?;
        Ok(format!("{limit}:{}:{}", cursor.created_at, cursor.id))
    }

    /// The validated limit and starting position.
    pub fn resolve(&self) -> Result<(u32, Cursor), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be 1 to {MAX_LIMIT}"),
            ));
        }
        let cursor = match self.cursor.as_deref() {
            None | Some("") => Cursor::start(),
            Some(raw) => Cursor::decode(raw)?,
        };
        Ok((limit, cursor))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in list order: the
    /// extra row only proves there is a next page and is dropped.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = match rows.last() {
            Some(last) if more => Some(key(last).encode()),
            _ => None,
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: 1_700_000_000_123,
            id: "0190a0b0-0000-7000-8000-000000000001".to_owned(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        // The last two: `1:\0` and `1:a\u{1}b`, ids with control characters.
        for bad in ["", "!!", "bm9jb2xvbg", "eDp5", "MToA", "MTphAWI"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let rows: Vec<i64> = vec![5, 4, 3];
        let key = |n: &i64| Cursor {
            created_at: *n,
            id: n.to_string(),
        };
        let page = Page::from_rows(rows.clone(), 2, key);
        assert_eq!(page.items, [5, 4]);
        assert_eq!(Cursor::decode(&page.next_cursor.unwrap()).unwrap(), key(&4));
        let last = Page::from_rows(rows, 3, key);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_are_bounded() {
        let q = |limit| PageQuery {
            limit: Some(limit),
            cursor: None,
        };
        assert!(q(0).resolve().is_err());
        assert!(q(101).resolve().is_err());
        assert_eq!(q(100).resolve().unwrap().0, 100);
        assert_eq!(PageQuery::default().resolve().unwrap().0, DEFAULT_LIMIT);
    }
}
