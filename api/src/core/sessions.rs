//! Bearer tokens and the sessions they stand for: random tokens stored as
//! SHA-256 hashes with an expiry, looked up through a short-lived in-memory
//! cache ([`Sessions`], see [`crate::core::cache`]) and revoked at logout;
//! what a session owns (its sockets, its push devices) ends with it.

use crate::core::error::ApiError;
use crate::core::realtime::{Event, Realtime};
use crate::core::time::now_ms;
use crate::core::ttl_cache::TtlCache;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sori_db::Db;
use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a token stays valid after login.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Random bytes in a token: 256 bits, so guessing is hopeless and a fast
/// unsalted hash is enough to store it.
const TOKEN_BYTES: usize = 32;
/// The stored form of a token: hex SHA-256, so a database leak yields no usable token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A freshly issued bearer token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// 256 random bits, base64url: a bearer token or a socket ticket.
pub fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The client a session was issued to, as its owner sees it in the list of
/// their sessions: the `User-Agent` it sent and a coarse address.
#[derive(Debug, Clone, Default)]
pub struct SessionClient {
    pub user_agent: String,
    /// [`coarse_address`] of the client's address; empty when unknown.
    pub address: String,
}

/// Characters of a `User-Agent` kept: enough to tell devices apart.
const MAX_USER_AGENT: usize = 200;

impl SessionClient {
    pub fn new(headers: &HeaderMap, addr: Option<IpAddr>) -> Self {
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT)
            .collect();
        Self {
            user_agent,
            address: addr.map(coarse_address).unwrap_or_default(),
        }
    }
}

/// The network an address is in, not the address: an IPv4 /24 or an IPv6
/// /48 (`203.0.113.0/24`), enough for "a session from an unfamiliar place"
/// without keeping where someone is exactly.
pub fn coarse_address(addr: IpAddr) -> String {
    match addr.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{network}/48")
        }
    }
}

/// Creates a token for `user_id`, issued to `client`, and stores its hash.
pub async fn issue_token(
    db: &Db,
    user_id: &str,
    client: &SessionClient,
) -> Result<IssuedToken, ApiError> {
    let token = random_token();
    let now = now_ms();
    let expires_at = now + TOKEN_TTL.as_millis() as i64;
    sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at, id, \
         last_used_at, user_agent, address) VALUES ($1, $2, $3, $4, $5, $3, $6, $7)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&client.user_agent)
    .bind(&client.address)
    .execute(db.pool())
    .await?;
    Ok(IssuedToken { token, expires_at })
}

/// What a token stands for: its user and when it stops working.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub expires_at: i64,
}

/// The sessions a process knows: its cache of looked-up tokens, keyed by
/// token hash (read through as the cache itself), and the last uses it
/// noticed and has not written yet.
#[derive(Clone)]
pub struct Sessions {
    cache: Arc<TtlCache<Session>>,
    pub last_uses: LastUses,
}

impl Sessions {
    /// Sessions cached for `ttl` (zero: not at all), about `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            cache: Arc::new(TtlCache::new(ttl, capacity)),
            last_uses: LastUses::default(),
        }
    }
}

impl Deref for Sessions {
    type Target = TtlCache<Session>;

    fn deref(&self) -> &TtlCache<Session> {
        &self.cache
    }
}

/// Sessions whose last use this process noticed (token hashes) and has not
/// written: a lookup only marks its session here, and one task of the
/// process writes all marked ones as used now every [`LAST_USED_FLUSH`]
/// (`crate::accounts::sessions::flush_last_uses`), so a population of
/// viewers opening the app costs one write a second, not one per opening.
/// A crash forgets at most that second's, which is harmless.
#[derive(Clone, Default)]
pub struct LastUses(Arc<Mutex<HashSet<String>>>);

/// How often [`LastUses`] are written.
pub const LAST_USED_FLUSH: Duration = Duration::from_secs(1);

impl LastUses {
    fn mark(&self, hash: &str) {
        self.lock().insert(hash.to_owned());
    }

    /// Every marked session, unmarking them: what a flush writes.
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.lock())
    }

    /// Marks again the sessions of a flush that failed, for the next try.
    pub fn restore(&self, hashes: HashSet<String>) {
        self.lock().extend(hashes);
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set holds no invariant a panicking holder could break.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The session of a token hash: from `sessions` while fresh, else from the
/// database (then kept). `None` for an unknown or revoked token, and for the
/// token of a user a moderator removed: a login racing the removal may mint
/// a token after the removal deleted the others, and it must not work.
pub(crate) async fn lookup(
    db: &Db,
    sessions: &Sessions,
    hash: &str,
) -> Result<Option<Session>, ApiError> {
    if let Some(session) = sessions.get(hash) {
        return Ok(Some(session));
    }
    let generation = sessions.generation(hash);
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT t.user_id, t.expires_at, COALESCE(t.last_used_at, t.created_at) \
             FROM auth_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND u.hidden_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(db.pool())
    .await?;
    let Some((user_id, expires_at, last_used_at)) = row else {
        return Ok(None);
    };
    touch(&sessions.last_uses, hash, last_used_at);
    let session = Session {
        user_id,
        expires_at,
    };
    sessions.store(hash, generation, |_| session.clone());
    Ok(Some(session))
}

/// How stale a session's `last_used_at` may get: it is marked for writing
/// when a lookup finds it older than this, so an active session costs one
/// write per interval, not one per request.
pub const LAST_USED_GRANULARITY: Duration = Duration::from_secs(5 * 60);

/// Marks the session `hash` as in use ([`LastUses`]) when its
/// `last_used_at` is older than [`LAST_USED_GRANULARITY`].
fn touch(last_uses: &LastUses, hash: &str, last_used_at: i64) {
    if now_ms() - last_used_at >= LAST_USED_GRANULARITY.as_millis() as i64 {
        last_uses.mark(hash);
    }
}

/// The session of a bearer token, if it is known and unexpired; for code
/// outside the extractor (e.g. [`crate::core::cache::forget_writer`]).
pub async fn session(db: &Db, sessions: &Sessions, token: &str) -> Option<Session> {
    let session = lookup(db, sessions, &token_hash(token)).await.ok()??;
    (session.expires_at > now_ms()).then_some(session)
}

/// Deletes the token whose hash is `hash` (logout) and ends its session
/// ([`ended`]).
pub(crate) async fn revoke(ends: Ending<'_>, user_id: &str, hash: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
        .bind(hash)
        .execute(ends.db.pool())
        .await?;
    ended(ends, user_id, &[hash.to_owned()]).await
}

/// Deletes every token of `user_id` except the one whose hash is `keep`
/// (none: all of them) and ends their sessions ([`ended`]): after a
/// password change, "log out everywhere", account deletion. Returns how many
/// ended.
pub async fn revoke_all(
    ends: Ending<'_>,
    user_id: &str,
    keep: Option<&str>,
) -> Result<usize, ApiError> {
    let hashes: Vec<String> = sqlx::query_scalar(
        "DELETE FROM auth_tokens WHERE user_id = $1 AND token_hash <> $2 RETURNING token_hash",
    )
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .fetch_all(ends.db.pool())
    .await?;
    ended(ends, user_id, &hashes).await?;
    Ok(hashes.len())
}

/// Expired tokens deleted per statement by [`purge_expired`].
const PURGE_BATCH: i64 = 500;

/// Deletes tokens past their expiry with the push devices registered with
/// them (an expired session pushes no more than a revoked one), and socket
/// tickets past theirs. Returns the tokens deleted. Run by the API role's
/// cleanup task; batched, so a large backlog never holds one long lock.
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let expired = "SELECT token_hash FROM auth_tokens WHERE expires_at <= $1 LIMIT $2";
    let mut purged = 0;
    loop {
        sqlx::query(&format!(
            "DELETE FROM devices WHERE session_hash IN ({expired})"
        ))
        .bind(now)
        .bind(PURGE_BATCH)
        .execute(db.pool())
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM auth_tokens WHERE token_hash IN ({expired})"
        ))
        .bind(now)
        .bind(PURGE_BATCH)
        .execute(db.pool())
        .await?;
        purged += done.rows_affected();
        if done.rows_affected() < PURGE_BATCH as u64 {
            break;
        }
    }
    sqlx::query("DELETE FROM ws_tickets WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(purged)
}

/// What ending a session touches: the database, this process's session
/// cache, and the fanout to the others.
#[derive(Clone, Copy)]
pub struct Ending<'a> {
    pub db: &'a Db,
    pub sessions: &'a TtlCache<Session>,
    pub realtime: &'a Realtime,
}

/// The kind of the fanout event that ends sessions on every process; never
/// sent to a client.
pub const SESSIONS_ENDED: &str = "sessions.ended";

/// What ends with sessions whose tokens are already deleted (`hashes`, all
/// of `user_id`): the push devices they registered are unregistered, and
/// every API process forgets them from its session cache and closes their
/// WebSockets ([`SESSIONS_ENDED`] through the fanout, this process included).
pub async fn ended(ends: Ending<'_>, user_id: &str, hashes: &[String]) -> Result<(), ApiError> {
    if hashes.is_empty() {
        return Ok(());
    }
    for hash in hashes {
        sqlx::query("DELETE FROM devices WHERE session_hash = $1")
            .bind(hash)
            .execute(ends.db.pool())
            .await?;
        ends.sessions.forget(hash);
    }
    let data = serde_json::json!({ "sessions": hashes });
    ends.realtime
        .publish(vec![user_id.to_owned()], Event::new(SESSIONS_ENDED, data))
        .await;
    Ok(())
}

/// Whether the request's `Authorization: Bearer` value is `expected` (a
/// shared secret such as the metrics token, any format). Compared as SHA-256
/// digests, so the time taken says nothing about how much of it matched.
pub fn bearer_is(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    given.is_some_and(|given| Sha256::digest(given) == Sha256::digest(expected))
}

/// The request's well-formed bearer token, if any.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    bearer_token(headers).ok().map(str::to_owned)
}

/// The request's bearer token, checked for the shape this API issues; 401
/// when it is missing or malformed.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer token",
        ))?;
    let malformed = ApiError::Unauthorized("malformed Authorization header");
    let value = value.to_str().map_err(|_| malformed)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|b| b.len() == TOKEN_BYTES);
    if well_formed {
        Ok(token)
    } else {
        Err(ApiError::Unauthorized("malformed Authorization header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_as_their_network() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(coarse_address(v4), "203.0.113.0/24");
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(coarse_address(v6), "2001:db8:abcd::/48");
        let mapped: IpAddr = "::ffff:198.51.100.9".parse().unwrap();
        assert_eq!(coarse_address(mapped), "198.51.100.0/24");
    }

    #[test]
    fn tokens_are_stored_hashed() {
        let h = token_hash("abc");
        // SHA-256's own test vector, lowercase hex: stored hashes stay valid.
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(h, token_hash("abd"));
    }
}
