//! Warnings about what a remote did, rate-limited per remote and reason, so a misbehaving
//! client cannot turn the replica's log into a disk-filling channel.
//!
//! The first warning of a (remote, reason) pair in a [`WARN_WINDOW`] is logged; the rest of the
//! window's are counted, and the next one logged says how many were left out. The table is
//! bounded: past [`MAX_TRACKED`] pairs it starts again (the worst case is a few more lines).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One warning per remote and reason per this long.
pub const WARN_WINDOW: Duration = Duration::from_secs(10);
/// Most (remote, reason) pairs remembered.
const MAX_TRACKED: usize = 4096;

#[derive(Default)]
pub struct WarnLimiter {
    seen: Mutex<HashMap<(String, &'static str), Window>>,
}

struct Window {
    start: Instant,
    left_out: u64,
}

impl WarnLimiter {
    /// `Some(left_out)` if a warning about `remote` for `reason` may be logged at `now`
    /// (`left_out`: how many were left out since the last one); `None` if it is counted only.
    pub fn allow(&self, remote: &str, reason: &'static str, now: Instant) -> Option<u64> {
        let mut seen = match self.seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.len() >= MAX_TRACKED {
            seen.clear();
        }
        let key = (remote.to_string(), reason);
        match seen.get_mut(&key) {
            Some(w) if now.duration_since(w.start) < WARN_WINDOW => {
                w.left_out += 1;
                None
            }
            Some(w) => {
                let left_out = std::mem::take(&mut w.left_out);
                w.start = now;
                Some(left_out)
            }
            None => {
                seen.insert(
                    key,
                    Window {
                        start: now,
                        left_out: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_remote_and_reason_per_window_with_a_count() {
        let limiter = WarnLimiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.allow("alice", "unauthorized", t0), Some(0));
        for k in 1..=1000 {
            let now = t0 + Duration::from_millis(k);
            assert_eq!(limiter.allow("alice", "unauthorized", now), None);
        }
        assert_eq!(
            limiter.allow("bob", "unauthorized", t0),
            Some(0),
            "per remote"
        );
        assert_eq!(
            limiter.allow("alice", "bad frame", t0),
            Some(0),
            "per reason"
        );
        let later = t0 + WARN_WINDOW + Duration::from_millis(1);
        assert_eq!(limiter.allow("alice", "unauthorized", later), Some(1000));
    }
}
