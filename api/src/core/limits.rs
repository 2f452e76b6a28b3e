//! The rate limiters: failed logins, sign-ups, uploads and chat messages.
//!
//! They live in process memory: each API process counts on its own, and a
//! restart forgets. With N API processes an attacker gets N times the
//! attempts; that bound is still small, and Argon2 keeps each one costly.

use crate::core::error::ApiError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}
