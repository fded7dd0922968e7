//! Rate limits as GCRA (generic cell rate algorithm): one timestamp per key, exact, O(1).
//! `limit` requests per `window_seconds`, with up to `burst` (default `limit`) at once.
//! The same arithmetic runs in memory and, for shared limits, in Redis (see the server's
//! Lua script), so both answer alike.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub limit: u32,
    pub window_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.limit == 0 || self.limit > 1_000_000_000 {
            return Err("rate_limit.limit must be 1..=1000000000");
        }
        if self.window_seconds == 0 || self.window_seconds > 86_400 * 31 {
            return Err("rate_limit.window_seconds must be 1..=2678400");
        }
        if self.burst.is_some_and(|b| b == 0 || b > 1_000_000_000) {
            return Err("rate_limit.burst must be 1..=1000000000");
        }
        Ok(())
    }

    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.limit)
    }

    /// No looser than `other`: a sustained rate (limit per window, compared exactly by
    /// cross-multiplying) and a burst both at most `other`'s.
    pub fn is_within(&self, other: &RateLimit) -> bool {
        let rate = u64::from(self.limit) * u64::from(other.window_seconds);
        let other_rate = u64::from(other.limit) * u64::from(self.window_seconds);
        rate <= other_rate && self.burst() <= other.burst()
    }

    /// Nanoseconds between two requests at the sustained rate.
    pub fn emission_interval_ns(&self) -> u64 {
        (u64::from(self.window_seconds) * 1_000_000_000) / u64::from(self.limit.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again (`RateLimit-Reset`).
    pub reset_seconds: u64,
    /// Seconds to wait before a retry can succeed (≥ 1 when refused).
    pub retry_after_seconds: u64,
}

/// One GCRA step. `tat` is the stored theoretical arrival time (ns, any fixed epoch), `now` the
/// current time on the same clock. Returns the decision and the new `tat` to store when allowed.
pub fn check(tat: Option<u64>, now: u64, limit: &RateLimit, cost: u32) -> (Decision, Option<u64>) {
    let t = limit.emission_interval_ns();
    let capacity = t.saturating_mul(u64::from(limit.burst()));
    let base = tat.unwrap_or(now).max(now);
    let new_tat = base.saturating_add(t.saturating_mul(u64::from(cost)));
    let ahead = new_tat - now;
    if ahead <= capacity {
        let remaining = (capacity - ahead).checked_div(t).map_or(limit.burst(), |r| r as u32);
        let d = Decision {
            allowed: true,
            limit: limit.limit,
            remaining,
            reset_seconds: ceil_secs(ahead),
            retry_after_seconds: 0,
        };
        (d, Some(new_tat))
    } else {
        let current_ahead = base - now;
        let remaining = capacity.saturating_sub(current_ahead).checked_div(t).map_or(0, |r| r as u32);
        let d = Decision {
            allowed: false,
            limit: limit.limit,
            remaining,
            reset_seconds: ceil_secs(current_ahead),
            retry_after_seconds: ceil_secs(ahead - capacity).max(1),
        };
        (d, None)
    }
}

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn run(limit: RateLimit, times: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (d, new) = check(tat, now, &limit, 1);
                if let Some(n) = new {
                    tat = Some(n);
                }
                d.allowed
            })
            .collect()
    }

    #[test]
    fn exactly_limit_requests_pass_at_once() {
        let l = RateLimit { limit: 10, window_seconds: 60, burst: None };
        let got = run(l, &[SEC; 12]);
        assert_eq!(got.iter().filter(|a| **a).count(), 10);
        assert!(!got[10] && !got[11]);
    }

    #[test]
    fn allowance_refills_at_the_sustained_rate() {
        let l = RateLimit { limit: 2, window_seconds: 2, burst: None };
        // 1 request per second sustained, burst 2
        assert_eq!(run(l, &[0, 0, 0, SEC, SEC]), vec![true, true, false, true, false]);
    }

    #[test]
    fn refusals_say_when_to_retry() {
        let l = RateLimit { limit: 1, window_seconds: 10, burst: None };
        let (first, tat) = check(None, 0, &l, 1);
        assert!(first.allowed && first.remaining == 0);
        let (second, none) = check(tat, SEC, &l, 1);
        assert!(!second.allowed && none.is_none());
        assert_eq!(second.retry_after_seconds, 9);
        assert!(second.retry_after_seconds >= 1);
    }

    #[test]
    fn cost_consumes_several_units() {
        let l = RateLimit { limit: 10, window_seconds: 10, burst: None };
        let (d, _) = check(None, 0, &l, 4);
        assert!(d.allowed);
        assert_eq!(d.remaining, 6);
        let (d, _) = check(None, 0, &l, 11);
        assert!(!d.allowed);
    }

    #[test]
    fn burst_bounds_the_spike() {
        let l = RateLimit { limit: 100, window_seconds: 100, burst: Some(3) };
        assert_eq!(run(l, &[0; 5]), vec![true, true, true, false, false]);
    }
}
