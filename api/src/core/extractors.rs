//! Who is calling: the [`AuthUser`] extractor (a valid bearer token, else
//! 401) and the client's address ([`ClientAddr`]) for the rate limiters.

use crate::core::error::ApiError;
use crate::core::sessions::{self, Session, Sessions};
use crate::core::time::now_ms;
use crate::core::ttl_cache::TtlCache;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use sori_db::Db;
use std::net::{IpAddr, SocketAddr};

/// The authenticated caller of a request. Extracting it answers 401 for a
/// missing, malformed, expired or revoked token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    token_hash: String,
}

impl AuthUser {
    /// Revokes the token this request came with (logout), here at once and
    /// on other API processes when their cached session expires.
    pub async fn revoke(&self, db: &Db, sessions: &TtlCache<Session>) -> Result<(), ApiError> {
        sessions::revoke(db, sessions, &self.token_hash).await
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Db: FromRef<S>,
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let hash = sessions::token_hash(sessions::bearer_token(&parts.headers)?);
        let cache = Sessions::from_ref(state);
        match sessions::lookup(&Db::from_ref(state), &cache, &hash).await? {
            Some(s) if s.expires_at > now_ms() => Ok(Self {
                id: s.user_id,
                token_hash: hash,
            }),
            Some(_) => Err(ApiError::Unauthorized("token expired")),
            None => Err(ApiError::Unauthorized("unknown or revoked token")),
        }
    }
}

/// The client's address as the server saw it, when the server records it
/// (`into_make_service_with_connect_info`). Proxies' `X-Forwarded-For` is not
/// trusted: behind a proxy every client shares the proxy's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        Ok(Self(addr))
    }
}
