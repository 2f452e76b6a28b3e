//! Who is calling: the [`AuthUser`] extractor (a valid bearer token, else
//! 401) and the client's address ([`ClientAddr`]) for the rate limiters.

use crate::core::error::ApiError;
use crate::core::proxies::TrustedProxies;
use crate::core::sessions::{self, SessionClient, Sessions};
use crate::core::state::AppState;
use crate::core::time::now_ms;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use sori_db::Db;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The authenticated caller of a request. Extracting it answers 401 for a
/// missing, malformed, expired or revoked token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    token_hash: String,
    /// Unix milliseconds after which the token is refused.
    pub expires_at: i64,
}

impl AuthUser {
    /// The caller of a session known by its token hash (an event socket
    /// opened with a ticket).
    pub fn of_session(user_id: String, token_hash: String, expires_at: i64) -> Self {
        Self {
            id: user_id,
            token_hash,
            expires_at,
        }
    }

    /// Revokes the token this request came with (logout) and ends its
    /// session on every process ([`sessions::ended`]).
    pub async fn revoke(&self, state: &AppState) -> Result<(), ApiError> {
        sessions::revoke(state.ending(), &self.id, &self.token_hash).await
    }

    /// The stored hash of the caller's token: what names the session.
    pub fn session_hash(&self) -> &str {
        &self.token_hash
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
                expires_at: s.expires_at,
            }),
            Some(_) => Err(ApiError::Unauthorized("token expired")),
            None => Err(ApiError::Unauthorized("unknown or revoked token")),
        }
    }
}

/// The client's address: the TCP peer as the server recorded it
/// (`into_make_service_with_connect_info`), or, when the peer is one of the
/// trusted proxies (`SORI_TRUSTED_PROXIES`), the client it names in
/// `X-Forwarded-For` ([`TrustedProxies::client`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<TrustedProxies>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let proxies = Arc::<TrustedProxies>::from_ref(state);
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| proxies.client(a.ip(), &parts.headers));
        Ok(Self(addr))
    }
}

/// The client a login or sign-up comes from, recorded with the session it
/// creates ([`SessionClient`]): its `User-Agent` and [`ClientAddr`]'s network.
impl<S> FromRequestParts<S> for SessionClient
where
    Arc<TrustedProxies>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddr(addr) = ClientAddr::from_request_parts(parts, state).await?;
        Ok(SessionClient::new(&parts.headers, addr))
    }
}
