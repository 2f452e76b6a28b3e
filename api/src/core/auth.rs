//! Who is calling: Argon2id password hashes, random bearer tokens stored as
//! SHA-256 hashes with an expiry, the [`AuthUser`] extractor (sessions
//! cached briefly in memory, see [`crate::core::cache`]), and the rate limiters
//! (failed logins, sign-ups, uploads, chat messages).
//!
//! The rate limiters live in process memory: each API process counts on its
//! own, and a restart forgets. With N API processes an attacker gets N times
//! the attempts; that bound is still small, and Argon2 keeps each one costly.

use crate::core::cache::TtlCache;
use crate::core::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Argon2, Params};
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sori_pipeline::Db;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a token stays valid after login.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Random bytes in a token: 256 bits, so guessing is hopeless and a fast
/// unsalted hash is enough to store it.
const TOKEN_BYTES: usize = 32;

pub use sori_pipeline::clock::now_ms;

/// A password computation for a hashing thread.
type HashJob = Box<dyn FnOnce() + Send>;

/// Password hashes run on their own threads, one per core, fed by a queue.
/// Each Argon2 run takes 19 MiB and a core: more at once adds no throughput,
/// and on the shared blocking pool successive runs landed on ever new threads,
/// each leaving its 19 MiB in its own allocator arena (2 000 sign-ups left
/// the process at ~800 MB). A fixed thread reuses its arena's buffer.
fn hashing_threads() -> &'static mpsc::Sender<HashJob> {
    static JOBS: OnceLock<mpsc::Sender<HashJob>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<HashJob>();
        let queue = Arc::new(Mutex::new(queue));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for n in 0..cores {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sori-argon2-{n}"))
                .spawn(move || run_hash_jobs(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        jobs
    })
}

/// One hashing thread's loop, until the queue is gone.
fn run_hash_jobs(queue: &Mutex<mpsc::Receiver<HashJob>>) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // A panicking job drops its answer (the caller sees an error); the
        // thread carries on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Why a password computation gave no answer: no hashing thread could take
/// it, or it panicked.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is unavailable")]
struct HashingUnavailable;

/// Runs one Argon2 computation on a [`hashing_threads`] thread.
async fn argon2_job<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingUnavailable> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = answer.send(job());
    });
    hashing_threads()
        .send(job)
        .map_err(|_| HashingUnavailable)?;
    answered.await.map_err(|_| HashingUnavailable)
}

/// A PHC-format Argon2id hash (OWASP's parameters: 19 MiB, 2 passes). CPU
/// heavy, so it runs on a hashing thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    argon2_job(move || phc_hash(password.as_bytes()))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| ApiError::Internal(e.to_string().into()))
}

/// Checks a password against a stored hash, or against a dummy hash when the
/// account does not exist, so both cases take the same time.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let checked = argon2_job(move || {
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        phc_matches(password.as_bytes(), &hash) && hash != dummy_hash()
    })
    .await;
    checked.unwrap_or(false)
}

thread_local! {
    /// Argon2's working memory (19 MiB at the default parameters), kept by
    /// each hashing thread for its next run instead of allocated per run:
    /// freed and allocated again, it fragments the allocator's heap, which
    /// then keeps most of it (~350 KiB of resident memory per sign-up).
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The raw Argon2 output of `password` and `salt`, `len` bytes, computed in
/// this thread's [`ARGON2_MEMORY`].
fn argon2_output(
    argon: &Argon2,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        memory.resize(argon.params().block_count(), argon2::Block::default());
        Output::init_with(len, |out| {
            Ok(argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])?)
        })
    })
}

/// A new PHC-format Argon2id hash of `password` (the default parameters,
/// a random salt): what `Argon2::hash_password` writes.
fn phc_hash(password: &[u8]) -> password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::default();
    let output = argon2_output(&argon, password, salt.as_salt(), Params::DEFAULT_OUTPUT_LEN)?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::default().ident(),
        version: Some(argon2::Version::default().into()),
        params: ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC hash `stored`, with the algorithm,
/// version and parameters the hash names (as `PasswordVerifier` does);
/// the outputs are compared in constant time.
fn phc_matches(password: &[u8], stored: &str) -> bool {
    let check = || -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(stored)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .map(argon2::Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let argon = Argon2::new(
            argon2::Algorithm::try_from(parsed.algorithm)?,
            version,
            Params::try_from(&parsed)?,
        );
        Ok(argon2_output(&argon, password, salt, expected.len())? == expected)
    };
    check().unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| phc_hash(b"no account has this password").unwrap_or_default())
}

/// The stored form of a token: hex SHA-256, so a database leak yields no usable token.
fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A freshly issued bearer token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// Creates a token for `user_id` and stores its hash.
pub async fn issue_token(db: &Db, user_id: &str) -> Result<IssuedToken, ApiError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let now = now_ms();
    let expires_at = now + TOKEN_TTL.as_millis() as i64;
    sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
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

/// The sessions cache of [`crate::core::state::AppState`], keyed by token hash.
pub type Sessions = Arc<TtlCache<Session>>;

/// The session of a token hash: from `sessions` while fresh, else from the
/// database (then kept). `None` for an unknown or revoked token.
async fn lookup(
    db: &Db,
    sessions: &TtlCache<Session>,
    hash: &str,
) -> Result<Option<Session>, ApiError> {
    if let Some(session) = sessions.get(hash) {
        return Ok(Some(session));
    }
    let generation = sessions.generation(hash);
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT user_id, expires_at FROM auth_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(db.pool())
            .await?;
    let session = row.map(|(user_id, expires_at)| Session {
        user_id,
        expires_at,
    });
    if let Some(session) = &session {
        sessions.store(hash, generation, |_| session.clone());
    }
    Ok(session)
}

/// The session of a bearer token, if it is known and unexpired; for code
/// outside the extractor (e.g. [`crate::core::cache::forget_writer`]).
pub async fn session(state: &crate::core::state::AppState, token: &str) -> Option<Session> {
    let session = lookup(&state.db, &state.sessions, &token_hash(token))
        .await
        .ok()??;
    (session.expires_at > now_ms()).then_some(session)
}

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
        sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
            .bind(&self.token_hash)
            .execute(db.pool())
            .await?;
        sessions.forget(&self.token_hash);
        Ok(())
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
        let hash = token_hash(bearer_token(&parts.headers)?);
        let sessions = Sessions::from_ref(state);
        match lookup(&Db::from_ref(state), &sessions, &hash).await? {
            Some(s) if s.expires_at > now_ms() => Ok(Self {
                id: s.user_id,
                token_hash: hash,
            }),
            Some(_) => Err(ApiError::Unauthorized("token expired")),
            None => Err(ApiError::Unauthorized("unknown or revoked token")),
        }
    }
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

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
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

/// Counts events per key (an account, an address, a user) in fixed windows
/// and refuses more (429 with `Retry-After`) once a key reaches the limit,
/// until its window ends. In memory, per process. A limit of 0 means no limit.
pub struct RateLimiter {
    windows: Mutex<HashMap<String, Window>>,
    limit: u32,
    window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// Tracked keys past which expired windows are swept, bounding memory.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            limit,
            window,
        }
    }

    /// Refuses while `key` is at its limit.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.refusal(windows.get(key), Instant::now())
    }

    /// Counts one event against `key`.
    pub fn hit(&self, key: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.count(&mut windows, key, Instant::now());
    }

    /// Checks and counts in one step: refuses at the limit, else counts this event.
    pub fn take(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.refusal(windows.get(key), now)?;
        self.count(&mut windows, key, now);
        Ok(())
    }

    /// Forgets `key`'s count.
    pub fn clear(&self, key: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(key);
    }

    fn refusal(&self, window: Option<&Window>, now: Instant) -> Result<(), ApiError> {
        let Some(w) = window else { return Ok(()) };
        let elapsed = now.duration_since(w.started);
        if self.limit > 0 && w.count >= self.limit && elapsed < self.window {
            let left = self.window - elapsed;
            let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            return Err(ApiError::TooManyRequests { retry_after });
        }
        Ok(())
    }

    fn count(&self, windows: &mut HashMap<String, Window>, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
        }
        let fresh = Window {
            started: now,
            count: 0,
        };
        let w = windows.entry(key.to_owned()).or_insert(fresh);
        if now.duration_since(w.started) >= self.window {
            *w = fresh;
        }
        w.count += 1;
    }
}

/// Failed logins, per account and per client address: one [`RateLimiter`] each.
pub struct LoginLimiter {
    accounts: RateLimiter,
    addresses: RateLimiter,
}

impl Default for LoginLimiter {
    /// 5 failures per account and 50 per address in 15 minutes.
    fn default() -> Self {
        Self::new(5, 50, Duration::from_secs(15 * 60))
    }
}

impl LoginLimiter {
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        Self {
            accounts: RateLimiter::new(per_account, window),
            addresses: RateLimiter::new(per_address, window),
        }
    }

    /// Refuses the attempt while the account or the address is over its limit.
    pub fn check(&self, account: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        self.accounts.check(account)?;
        match addr {
            Some(ip) => self.addresses.check(&ip.to_string()),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt against the account and the address.
    pub fn failed(&self, account: &str, addr: Option<IpAddr>) {
        self.accounts.hit(account);
        if let Some(ip) = addr {
            self.addresses.hit(&ip.to_string());
        }
    }

    /// A successful login clears the account's count (not the address's).
    pub fn succeeded(&self, account: &str) {
        self.accounts.clear(account);
    }
}

/// Sign-ups per client address and new uploads per user, each in a one-hour
/// window, and chat messages per user in a one-minute window: they bound how
/// fast one address can mint accounts, one account can fill the store and the
/// queue, and one account can flood others' rooms and push gateways.
pub struct CreationLimits {
    pub signups: RateLimiter,
    pub media: RateLimiter,
    pub messages: RateLimiter,
}

/// The window of [`CreationLimits`]' sign-ups and uploads.
pub const CREATION_WINDOW: Duration = Duration::from_secs(3600);

/// The window of [`CreationLimits`]' chat messages.
pub const MESSAGE_WINDOW: Duration = Duration::from_secs(60);

/// Chat messages one user may send per minute by default: two a second
/// sustained, far above anyone typing or recording, low enough to stop a script.
pub const DEFAULT_MESSAGES_PER_MINUTE: u32 = 120;

impl CreationLimits {
    /// `signups_per_address` and `media_per_user` per hour, and the default
    /// messages per minute; 0 lifts a limit.
    pub fn per_hour(signups_per_address: u32, media_per_user: u32) -> Self {
        Self {
            signups: RateLimiter::new(signups_per_address, CREATION_WINDOW),
            media: RateLimiter::new(media_per_user, CREATION_WINDOW),
            messages: RateLimiter::new(DEFAULT_MESSAGES_PER_MINUTE, MESSAGE_WINDOW),
        }
    }

    /// Replaces the chat message limit: `per_user` messages a minute (0: none).
    pub fn with_messages_per_minute(mut self, per_user: u32) -> Self {
        self.messages = RateLimiter::new(per_user, MESSAGE_WINDOW);
        self
    }

    /// Counts a sign-up from `addr`, refusing at the limit. Without a known
    /// address (a router built without connection info) nothing is counted.
    pub fn signup(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        match addr {
            Some(ip) => self.signups.take(&ip.to_string()),
            None => Ok(()),
        }
    }
}

impl Default for CreationLimits {
    /// 20 sign-ups per address and 60 uploads per user an hour, 120 messages
    /// per user a minute.
    fn default() -> Self {
        Self::per_hour(20, 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_the_limit_and_says_when_to_retry() {
        let limiter = LoginLimiter::new(2, 3, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        limiter.failed("a", Some(ip));
        assert!(limiter.check("a", Some(ip)).is_ok());
        limiter.failed("a", Some(ip));
        match limiter.check("a", Some(ip)) {
            Err(ApiError::TooManyRequests { retry_after }) => assert!(retry_after <= 60),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another account from the same address: the address limit (3) is next.
        assert!(limiter.check("b", Some(ip)).is_ok());
        limiter.failed("b", Some(ip));
        assert!(limiter.check("b", Some(ip)).is_err());
        assert!(limiter.check("b", None).is_ok());
        limiter.succeeded("a");
        assert!(limiter.check("a", None).is_ok());
    }

    #[test]
    fn zero_means_no_limit_and_take_counts() {
        let open = RateLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            assert!(open.take("k").is_ok());
        }
        let two = RateLimiter::new(2, Duration::from_secs(60));
        assert!(two.take("k").is_ok());
        assert!(two.take("k").is_ok());
        assert!(two.take("k").is_err());
        assert!(two.take("other").is_ok());
    }

    #[test]
    fn windows_expire() {
        let limiter = LoginLimiter::new(1, 1, Duration::from_millis(1));
        limiter.failed("a", None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.check("a", None).is_ok());
    }

    /// The hashes written with reused memory are the standard PHC strings:
    /// the argon2 crate's own verifier accepts them, and the hashes it wrote
    /// (every account created before) still verify here.
    #[test]
    fn password_hashes_match_the_reference_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let ours = phc_hash(b"correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
        assert!(phc_matches(b"correct horse", &ours));
        assert!(!phc_matches(b"wrong", &ours));

        let salt = SaltString::generate(&mut OsRng);
        let reference = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(phc_matches(b"battery staple", &reference));
        assert!(!phc_matches(b"battery stapler", &reference));
        // Other parameters (a smaller memory cost) are read from the hash.
        let light = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"light", &salt)
        .unwrap()
        .to_string();
        assert!(phc_matches(b"light", &light));
        assert!(!phc_matches(b"heavy", &light));
        assert!(!phc_matches(b"light", "not a hash"));
    }

    #[test]
    fn tokens_are_stored_hashed() {
        let h = token_hash("abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, token_hash("abd"));
    }
}
