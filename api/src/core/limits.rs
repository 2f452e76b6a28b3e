//! The rate limiters: failed logins, sign-ups, uploads, chat messages and
//! the other per-user actions that reach people or grow stored state.
//!
//! They live in process memory: each API process counts on its own, and a
//! restart forgets. With N API processes an attacker gets N times the
//! attempts; that bound is still small, and Argon2 keeps each one costly.
//! Client addresses come from [`crate::core::extractors::ClientAddr`], which
//! believes `X-Forwarded-For` only from the trusted proxies.

use crate::core::error::ApiError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events per key (an account, an address, a user) in fixed windows
/// and refuses more (429 with `Retry-After`) once a key reaches the limit,
/// until its window ends. In memory, per process. A limit of 0 means no limit.
pub struct RateLimiter {
    windows: Mutex<Windows>,
}

/// The unlocked counts of a [`RateLimiter`].
struct Windows {
    counts: HashMap<String, Window>,
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
            windows: Mutex::new(Windows::new(limit, window)),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks and counts in one step: refuses at the limit, else counts this event.
    pub fn take(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut windows = self.windows();
        windows.refusal(key, now)?;
        windows.count(key, now);
        Ok(())
    }
}

impl Windows {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            counts: HashMap::new(),
            limit,
            window,
        }
    }

    fn refusal(&self, key: &str, now: Instant) -> Result<(), ApiError> {
        let Some(w) = self.counts.get(key) else {
            return Ok(());
        };
        let elapsed = now.duration_since(w.started);
        if self.limit > 0 && w.count >= self.limit && elapsed < self.window {
            return Err(retry_in(self.window - elapsed));
        }
        Ok(())
    }

    fn count(&mut self, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if self.counts.len() >= SWEEP_AT {
            let window = self.window;
            self.counts
                .retain(|_, w| now.duration_since(w.started) < window);
        }
        let fresh = Window {
            started: now,
            count: 0,
        };
        let w = self.counts.entry(key.to_owned()).or_insert(fresh);
        if now.duration_since(w.started) >= self.window {
            *w = fresh;
        }
        w.count += 1;
    }

    /// Takes back one counted event of `key`.
    fn give_back(&mut self, key: &str) {
        if let Some(w) = self.counts.get_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }

    fn clear(&mut self, key: &str) {
        self.counts.remove(key);
    }
}

/// Login attempts. Every attempt is counted *before* its password is checked,
/// in one step with the checks, so a burst of simultaneous guesses gets no
/// more tries than the same guesses one after another; a success gives its
/// count back. Three limits apply:
///
/// - per account and address: `per_account` attempts per window, then 429
///   until the window ends (one attacker's guesses at one account);
/// - per address: `per_address` attempts per window across accounts (one
///   attacker trying many handles);
/// - per account from anywhere: soft. After `per_account` failures, each
///   further attempt waits twice as long as the one before (1 s, 2 s, 4 s …,
///   at most [`MAX_ACCOUNT_DELAY`]). Guesses from many addresses slow to a
///   trickle, yet nobody can lock a public handle out: its owner, from their
///   own address, waits at most that delay.
///
/// And at most [`MAX_IN_FLIGHT_PER_ACCOUNT`] / [`MAX_IN_FLIGHT_PER_ADDRESS`]
/// checks run at once per account / address. Addresses are keyed by
/// [`address_key`] (an IPv6 client by its /64).
pub struct LoginLimiter {
    book: Mutex<LoginBook>,
    per_account: u32,
}

/// The counts behind [`LoginLimiter`], under one lock so checking and
/// counting are one step.
struct LoginBook {
    pairs: Windows,
    addresses: Windows,
    accounts: HashMap<String, Backoff>,
    in_flight: HashMap<String, u32>,
}

/// An account's failures from any address, and when the last attempt began.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
}

/// The longest wait between attempts on an account under attack.
pub const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(60);
/// Password checks running at once for one account.
pub const MAX_IN_FLIGHT_PER_ACCOUNT: u32 = 2;
/// Password checks running at once from one address.
pub const MAX_IN_FLIGHT_PER_ADDRESS: u32 = 8;

impl Default for LoginLimiter {
    /// 5 attempts per account and address and 50 per address in 15 minutes.
    fn default() -> Self {
        Self::new(5, 50, Duration::from_secs(15 * 60))
    }
}

impl LoginLimiter {
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        Self {
            book: Mutex::new(LoginBook {
                pairs: Windows::new(per_account, window),
                addresses: Windows::new(per_address, window),
                accounts: HashMap::new(),
                in_flight: HashMap::new(),
            }),
            per_account,
        }
    }

    /// Admits one attempt on `account` from `addr` and counts it, or refuses
    /// it (429 with `Retry-After`) when any limit is reached. The attempt's
    /// password check runs while the returned guard lives.
    pub fn begin(&self, account: &str, addr: Option<IpAddr>) -> Result<LoginAttempt<'_>, ApiError> {
        let now = Instant::now();
        let address = addr.map(address_key);
        let pair = format!("{account} {}", address.as_deref().unwrap_or("-"));
        let account_flight = format!("account {account}");
        let address_flight = address.as_ref().map(|a| format!("address {a}"));
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.refuse_in_flight(&account_flight, MAX_IN_FLIGHT_PER_ACCOUNT)?;
        if let Some(key) = &address_flight {
            book.refuse_in_flight(key, MAX_IN_FLIGHT_PER_ADDRESS)?;
        }
        book.pairs.refusal(&pair, now)?;
        if let Some(a) = &address {
            book.addresses.refusal(a, now)?;
        }
        self.account_refusal(&book, account, now)?;
        book.pairs.count(&pair, now);
        if let Some(a) = &address {
            book.addresses.count(a, now);
        }
        self.count_account(&mut book, account, now);
        let mut flights = vec![account_flight];
        flights.extend(address_flight);
        for key in &flights {
            *book.in_flight.entry(key.clone()).or_default() += 1;
        }
        Ok(LoginAttempt {
            limiter: self,
            account: account.to_owned(),
            pair,
            address,
            flights,
        })
    }

    fn account_refusal(
        &self,
        book: &LoginBook,
        account: &str,
        now: Instant,
    ) -> Result<(), ApiError> {
        let Some(b) = book.accounts.get(account) else {
            return Ok(());
        };
        if self.per_account == 0 || b.failures < self.per_account {
            return Ok(());
        }
        let wait = account_delay(b.failures - self.per_account);
        let since = now.duration_since(b.last);
        if since < wait && since < book.pairs.window {
            return Err(retry_in(wait - since));
        }
        Ok(())
    }

    fn count_account(&self, book: &mut LoginBook, account: &str, now: Instant) {
        if self.per_account == 0 {
            return;
        }
        let window = book.pairs.window;
        if book.accounts.len() >= SWEEP_AT {
            book.accounts
                .retain(|_, b| now.duration_since(b.last) < window);
        }
        let fresh = Backoff {
            failures: 0,
            last: now,
        };
        let b = book.accounts.entry(account.to_owned()).or_insert(fresh);
        if now.duration_since(b.last) >= window {
            *b = fresh;
        }
        b.failures += 1;
        b.last = now;
    }
}

impl LoginBook {
    fn refuse_in_flight(&self, key: &str, cap: u32) -> Result<(), ApiError> {
        if self.in_flight.get(key).copied().unwrap_or(0) >= cap {
            return Err(ApiError::TooManyRequests { retry_after: 1 });
        }
        Ok(())
    }
}

/// How long an account waits after `extra` failures past the free ones:
/// 1 s doubling, at most [`MAX_ACCOUNT_DELAY`].
fn account_delay(extra: u32) -> Duration {
    Duration::from_secs(1u64 << extra.min(16)).min(MAX_ACCOUNT_DELAY)
}

/// One admitted login attempt ([`LoginLimiter::begin`]): counted as a
/// failure unless [`LoginAttempt::succeeded`] is called.
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    account: String,
    pair: String,
    address: Option<String>,
    flights: Vec<String>,
}

impl LoginAttempt<'_> {
    /// The password was right: the account's counts are cleared and the
    /// address gets this attempt back.
    pub fn succeeded(self) {
        let mut book = self.limiter.book.lock().unwrap_or_else(|p| p.into_inner());
        book.pairs.clear(&self.pair);
        book.accounts.remove(&self.account);
        if let Some(a) = &self.address {
            book.addresses.give_back(a);
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        let mut book = self.limiter.book.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.flights {
            if let Some(n) = book.in_flight.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    book.in_flight.remove(key);
                }
            }
        }
    }
}

/// The key an address is limited by: an IPv4 address itself; an IPv6
/// address by its /64, since one subscriber gets a whole /64 and can pick a
/// new address in it for every request. An IPv4-mapped IPv6 address counts
/// as the IPv4 address.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A 429 telling the client to retry after `left` (rounded up to seconds).
fn retry_in(left: Duration) -> ApiError {
    let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    ApiError::TooManyRequests { retry_after }
}

/// Limits on creating things: sign-ups per client address, and per user
/// the actions that reach other people or grow stored state. Sign-ups,
/// uploads and the actions below count in a one-hour window, chat messages in
/// a one-minute one. They bound how fast one address can mint accounts and
/// one account can fill the store and the queue, flood others' rooms,
/// notifications and push gateways, or grow tables. A limit of 0 lifts it.
pub struct CreationLimits {
    pub signups: RateLimiter,
    pub media: RateLimiter,
    pub messages: RateLimiter,
    /// Comments: each notifies the author and up to 10 mentioned users.
    pub comments: RateLimiter,
    /// Reports filed: each lands in the moderators' queue.
    pub reports: RateLimiter,
    /// Chat rooms opened (or looked up by `POST /v1/chats`).
    pub rooms: RateLimiter,
    /// Playlists created and posts added to playlists.
    pub playlist_writes: RateLimiter,
    /// Push devices registered or updated.
    pub devices: RateLimiter,
    /// Socket tickets issued, so reconnection loops stay bounded.
    pub socket_tickets: RateLimiter,
    /// Mails asked for (verification codes, password resets) per recipient
    /// address: nobody's inbox can be flooded through Sori.
    pub mails_per_recipient: RateLimiter,
    /// The same per client address, so one client cannot spray many inboxes.
    pub mails_per_client: RateLimiter,
    /// Data exports started: each reads everything an account holds.
    pub exports: RateLimiter,
}

/// The window of [`CreationLimits`]' sign-ups, uploads and per-user actions.
pub const CREATION_WINDOW: Duration = Duration::from_secs(3600);

/// The window of [`CreationLimits`]' chat messages.
pub const MESSAGE_WINDOW: Duration = Duration::from_secs(60);

/// Chat messages one user may send per minute by default: two a second
/// sustained, far above anyone typing or recording, low enough to stop a script.
pub const DEFAULT_MESSAGES_PER_MINUTE: u32 = 120;

/// Live event sockets one user may hold across all processes: phones,
/// tablets and browser tabs, with room to spare; more is a script.
pub const MAX_SOCKETS_PER_USER: i64 = 20;

impl CreationLimits {
    /// `signups_per_address` and `media_per_user` per hour, and the default
    /// limits on messages and the other per-user actions; 0 lifts a limit.
    pub fn per_hour(signups_per_address: u32, media_per_user: u32) -> Self {
        let hourly = |limit| RateLimiter::new(limit, CREATION_WINDOW);
        Self {
            signups: hourly(signups_per_address),
            media: hourly(media_per_user),
            messages: RateLimiter::new(DEFAULT_MESSAGES_PER_MINUTE, MESSAGE_WINDOW),
            // Several a minute for an hour: a lively thread, not a bot.
            comments: hourly(200),
            reports: hourly(30),
            rooms: hourly(60),
            playlist_writes: hourly(600),
            devices: hourly(30),
            // One reconnection every six seconds, all hour long.
            socket_tickets: hourly(600),
            mails_per_recipient: hourly(5),
            mails_per_client: hourly(30),
            exports: hourly(3),
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
            Some(ip) => self.signups.take(&address_key(ip)),
            None => Ok(()),
        }
    }
}

impl CreationLimits {
    /// Counts a mail to `recipient` asked for from `addr`, refusing at
    /// either limit (429 with `Retry-After`).
    pub fn mail(&self, recipient: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(ip) = addr {
            self.mails_per_client.take(&address_key(ip))?;
        }
        self.mails_per_recipient.take(recipient)
    }
}

impl Default for CreationLimits {
    /// 20 sign-ups per address and 60 uploads per user an hour, 120 messages
    /// per user a minute, and the per-user action limits of [`Self::per_hour`].
    fn default() -> Self {
        Self::per_hour(20, 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<LoginAttempt<'_>, ApiError>) -> u64 {
        match r {
            Err(ApiError::TooManyRequests { retry_after }) => retry_after,
            Err(e) => panic!("expected 429, got {e:?}"),
            Ok(_) => panic!("expected 429, got admitted"),
        }
    }

    #[test]
    fn attempts_count_before_the_check_and_a_success_gives_them_back() {
        let limiter = LoginLimiter::new(2, 3, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        drop(limiter.begin("a", Some(ip)).unwrap());
        drop(limiter.begin("a", Some(ip)).unwrap());
        let retry = refused(limiter.begin("a", Some(ip)));
        assert!((1..=60).contains(&retry), "{retry}");
        // Another account from the same address: the address limit (3) is next.
        drop(limiter.begin("b", Some(ip)).unwrap());
        refused(limiter.begin("b", Some(ip)));
        // A success clears the account and gives the address its attempt back.
        let other: IpAddr = [10, 0, 0, 2].into();
        limiter.begin("c", Some(other)).unwrap().succeeded();
        limiter.begin("c", Some(other)).unwrap().succeeded();
        limiter.begin("c", Some(other)).unwrap().succeeded();
        limiter.begin("c", Some(other)).unwrap().succeeded();
    }

    #[test]
    fn simultaneous_attempts_are_capped() {
        let limiter = LoginLimiter::new(100, 100, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let held: Vec<_> = (0..MAX_IN_FLIGHT_PER_ACCOUNT)
            .map(|_| limiter.begin("a", Some(ip)).unwrap())
            .collect();
        assert_eq!(refused(limiter.begin("a", Some(ip))), 1);
        drop(held);
        let held: Vec<_> = (0..MAX_IN_FLIGHT_PER_ADDRESS)
            .map(|n| limiter.begin(&format!("u{n}"), Some(ip)).unwrap())
            .collect();
        refused(limiter.begin("another", Some(ip)));
        drop(held);
        drop(limiter.begin("another", Some(ip)).unwrap());
    }

    #[test]
    fn the_account_lockout_is_a_growing_delay_not_a_wall() {
        let limiter = LoginLimiter::new(3, 100, Duration::from_secs(900));
        // Failures from many addresses: three free, then each waits longer.
        for n in 0..3u8 {
            drop(limiter.begin("pub", Some([10, 0, 0, n].into())).unwrap());
        }
        let owner: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(refused(limiter.begin("pub", Some(owner))), 1);
        // Past the delay the owner gets in, from their own address.
        let mut book = limiter.book.lock().unwrap();
        book.accounts.get_mut("pub").unwrap().last -= Duration::from_millis(1100);
        drop(book);
        drop(limiter.begin("pub", Some(owner)).unwrap());
        assert_eq!(refused(limiter.begin("pub", Some(owner))), 2);
        assert_eq!(account_delay(5), Duration::from_secs(32));
        assert_eq!(account_delay(6), MAX_ACCOUNT_DELAY);
        assert_eq!(account_delay(40), MAX_ACCOUNT_DELAY);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(
            address_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1"
        );
        let limiter = LoginLimiter::new(5, 2, Duration::from_secs(60));
        drop(limiter.begin("x", Some(a)).unwrap());
        drop(limiter.begin("y", Some(b)).unwrap());
        refused(limiter.begin("z", Some("2001:db8:1:2::77".parse().unwrap())));
        drop(limiter.begin("z", Some(c)).unwrap());
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
        drop(limiter.begin("a", None).unwrap());
        std::thread::sleep(Duration::from_millis(5));
        drop(limiter.begin("a", None).unwrap());
    }
}
