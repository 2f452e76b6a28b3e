//! People as other answers show them: the byline [`Author`], pages of
//! people, the existence check before acting on someone, and the folded form
//! names are stored and searched in.

use crate::core::error::ApiError;
use crate::core::media_urls::UrlSigner;
use crate::core::pagination::{Cursor, Page};
use serde::Serialize;
use sori_db::Db;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

/// Who posted, enough to render the byline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Author {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// Their avatar (a 256 px square JPEG), a signed URL that works without
    /// a token until it expires; `null` without one.
    pub avatar_url: Option<String>,
}

impl Author {
    /// The actor of a left-joined row (a notification's, an audit entry's):
    /// `None` when the row has none, its avatar URL signed by `urls`.
    pub fn joined(
        id: Option<String>,
        handle: Option<String>,
        display_name: Option<String>,
        avatar_version: Option<i64>,
        urls: &UrlSigner,
    ) -> Option<Self> {
        let (id, handle, display_name) = (id?, handle?, display_name?);
        Some(Author {
            avatar_url: urls.avatar(&id, avatar_version),
            id,
            handle,
            display_name,
        })
    }
}

/// A person in a list of people (followers, search results), with the time
/// the list is ordered by (when they followed, when they signed up).
#[derive(sqlx::FromRow)]
pub struct AuthorRow {
    id: String,
    handle: String,
    display_name: String,
    avatar_version: Option<i64>,
    created_at: i64,
}

/// A page of people from up to `limit + 1` [`AuthorRow`]s in list order,
/// their avatar URLs signed by `urls`.
pub fn author_page(rows: Vec<AuthorRow>, limit: u32, urls: &UrlSigner) -> Page<Author> {
    let page = Page::from_rows(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id.clone(),
    });
    let items = page
        .items
        .into_iter()
        .map(|r| Author {
            avatar_url: urls.avatar(&r.id, r.avatar_version),
            id: r.id,
            handle: r.handle,
            display_name: r.display_name,
        })
        .collect();
    Page {
        items,
        next_cursor: page.next_cursor,
    }
}

/// 404 unless the user exists and is not removed: the check before acting
/// on someone (following, blocking, listing their posts).
pub async fn require_user(db: &Db, id: &str) -> Result<(), ApiError> {
    let found: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1 AND hidden_at IS NULL")
            .bind(id)
            .fetch_one(db.pool())
            .await?;
    if found == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// The form names are stored and searched in: compatibility-decomposed,
/// combining marks dropped, lowercased ("Élodie" and "elodie" match).
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding_drops_case_and_accents() {
        assert_eq!(fold("Élodie"), "elodie");
        assert_eq!(fold("JOSÉ_Ñ"), "jose_n");
        assert_eq!(fold("ﬁne"), "fine");
        assert_eq!(fold("東京"), "東京");
    }
}
