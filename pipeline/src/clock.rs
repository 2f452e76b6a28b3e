//! Time as the database stores it: Unix milliseconds in a BIGINT column.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating well below `i64::MAX` so that adding
/// it to a timestamp cannot overflow.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}
