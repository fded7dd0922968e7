//! Rate limits as GCRA (generic cell rate algorithm): one timestamp per key, exact, O(1).
//! `limit` requests per `window_seconds`, with up to `burst` (default `limit`) at once.
//! The same arithmetic runs in memory and, for shared limits, in Redis (see the server's
//! Lua script), so both answer alike.

use chrono::{DateTime, Utc};

use crate::quota::QuotaPeriod;
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

/// At most this many named limits on one key (docs/api.md §7 Keys).
pub const MAX_NAMED_LIMITS: usize = 5;

/// A rate limit with a name: one of a key's `rate_limits` (and of a plan's, account-wide).
/// The name tells the limits apart (in answers, in buckets): 1–32 of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedRateLimit {
    pub name: String,
    pub limit: u32,
    pub window_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl NamedRateLimit {
    /// The limit without its name, for the GCRA arithmetic.
    pub fn rate(&self) -> RateLimit {
        RateLimit { limit: self.limit, window_seconds: self.window_seconds, burst: self.burst }
    }

    /// A valid name and limit; the message never repeats the name.
    pub fn validate(&self) -> Result<(), &'static str> {
        let n = self.name.len();
        if n == 0
            || n > 32
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("rate_limits[].name must be 1 to 32 characters of a-z, 0-9, _ and -");
        }
        self.rate().validate()
    }

    /// A list of at most [`MAX_NAMED_LIMITS`] valid limits with distinct names.
    pub fn validate_all(list: &[NamedRateLimit]) -> Result<(), &'static str> {
        if list.len() > MAX_NAMED_LIMITS {
            return Err("rate_limits may hold at most 5 limits");
        }
        for (i, l) in list.iter().enumerate() {
            l.validate()?;
            if list[..i].iter().any(|o| o.name == l.name) {
                return Err("rate_limits[].name must be unique");
            }
        }
        Ok(())
    }
}

/// A key's credits refill: at each start of `interval` (UTC) the credits left are *replaced*
/// by `amount`, not added to (docs/api.md §7 Keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    pub amount: i64,
    pub interval: QuotaPeriod,
}

impl Refill {
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.amount < 1 || self.amount > 1_000_000_000_000 {
            return Err("refill.amount must be 1..=1000000000000");
        }
        Ok(())
    }

    /// The credits left at `now` of a key with `usage_limit` and `usage_used` last refilled
    /// in the period starting `refilled_at`: `amount` when a period boundary has passed since,
    /// else what is left. Never below zero. The store's conditional spend does the same in SQL.
    pub fn remaining(
        refill: Option<Refill>,
        usage_limit: i64,
        usage_used: i64,
        refilled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> i64 {
        match refill {
            Some(r) if refilled_at.is_none_or(|t| t < r.interval.start(now)) => r.amount.max(0),
            _ => (usage_limit - usage_used).max(0),
        }
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

/// The TAT to decide with, for a bucket whose TAT was last written under the emission interval
/// `written_interval_ns` (docs/api.md, "Rate limits": a changed limit takes effect at once).
///
/// The units still outstanding carry over, not the time: a debt of `d` ns under the old
/// interval is `d / old` units, which under the new interval is `d · new / old` ns. Then the
/// debt is capped at the new limit's capacity (a whole burst spent), which also covers a
/// lowered burst. So a key that spent its 10 a minute and is raised to 1000 a second has spent
/// 10 of the 1000 (not 60 s of time), and a key lowered from 1000/s to 10/min after 5 uses has
/// 5 of its 10 spent. With an unchanged limit this is the identity: a stored TAT is never more
/// than one capacity ahead. `written_interval_ns` 0 means "unknown" and keeps the debt as time.
pub fn carry_over(tat: u64, now: u64, written_interval_ns: u64, limit: &RateLimit) -> u64 {
    let t = limit.emission_interval_ns();
    let debt = tat.saturating_sub(now);
    if debt == 0 {
        return tat;
    }
    let debt = if written_interval_ns == 0 || written_interval_ns == t {
        debt
    } else {
        u64::try_from(u128::from(debt) * u128::from(t) / u128::from(written_interval_ns)).unwrap_or(u64::MAX)
    };
    now.saturating_add(debt.min(t.saturating_mul(u64::from(limit.burst()))))
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
    fn a_raised_limit_keeps_the_units_spent_not_the_time() {
        let slow = RateLimit { limit: 10, window_seconds: 60, burst: None };
        let fast = RateLimit { limit: 1000, window_seconds: 1, burst: None };
        let mut tat = None;
        for _ in 0..10 {
            tat = check(tat, 0, &slow, 1).1;
        }
        let tat = tat.expect("ten allowed");
        assert!(!check(Some(tat), SEC, &slow, 1).0.allowed, "the old limit is spent");
        // Without carrying over, 59 s of debt would refuse the new limit for 58 s more.
        assert!(!check(Some(tat), SEC, &fast, 1).0.allowed);
        let carried = carry_over(tat, SEC, slow.emission_interval_ns(), &fast);
        let (d, _) = check(Some(carried), SEC, &fast, 1);
        // 59 s of debt at 1 s is 9⅚ units; under 1000/s that is 9.83 ms, plus this one.
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.remaining, 989);
    }

    #[test]
    fn a_lowered_limit_is_spent_at_most_whole_and_unchanged_limits_are_untouched() {
        let fast = RateLimit { limit: 1000, window_seconds: 1, burst: None };
        let slow = RateLimit { limit: 10, window_seconds: 60, burst: None };
        let (_, tat) = check(None, 0, &fast, 500);
        let tat = tat.expect("allowed");
        let carried = carry_over(tat, 0, fast.emission_interval_ns(), &slow);
        assert_eq!(carried, 60 * SEC, "500 units outstanding cap at the 10 of the new limit");
        assert_eq!(carry_over(tat, 0, fast.emission_interval_ns(), &fast), tat);
        assert_eq!(carry_over(tat, 0, 0, &fast), tat, "unknown interval: the debt stays as time");
        assert_eq!(carry_over(5, 10, 1, &slow), 5, "no debt, nothing to carry");
        let lower_burst = RateLimit { burst: Some(100), ..fast };
        assert_eq!(carry_over(tat, 0, fast.emission_interval_ns(), &lower_burst), 100 * fast.emission_interval_ns());
    }

    #[test]
    fn burst_bounds_the_spike() {
        let l = RateLimit { limit: 100, window_seconds: 100, burst: Some(3) };
        assert_eq!(run(l, &[0; 5]), vec![true, true, true, false, false]);
    }

    #[test]
    fn named_limits_have_unique_short_names() {
        let l = |name: &str| NamedRateLimit { name: name.into(), limit: 10, window_seconds: 60, burst: None };
        assert!(NamedRateLimit::validate_all(&[l("minute"), l("burst_1"), l("a-b")]).is_ok());
        assert!(NamedRateLimit::validate_all(&[l("minute"), l("minute")]).is_err(), "duplicate");
        for bad in ["", "Minute", "a b", "é", &"x".repeat(33)] {
            assert!(l(bad).validate().is_err(), "{bad:?}");
        }
        assert!(l(&"x".repeat(32)).validate().is_ok());
        let six: Vec<_> = (0..6).map(|i| l(&format!("l{i}"))).collect();
        assert!(NamedRateLimit::validate_all(&six).is_err(), "at most five");
        assert!(NamedRateLimit { limit: 0, ..l("zero") }.validate().is_err());
    }

    #[test]
    fn periods_start_at_midnight_utc_and_refills_replace_the_balance() {
        use chrono::TimeZone;
        let t = |d, h| Utc.with_ymd_and_hms(2026, 3, d, h, 30, 0).single().expect("a time");
        let midnight = |d| Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).single().expect("a time");
        assert_eq!(QuotaPeriod::Day.start(t(15, 13)), midnight(15));
        assert_eq!(QuotaPeriod::Month.start(t(15, 13)), midnight(1));
        let daily = Some(Refill { amount: 5, interval: QuotaPeriod::Day });
        // Same period: what is left. Next day: the amount, whatever was left (not added).
        assert_eq!(Refill::remaining(daily, 10, 8, Some(midnight(15)), t(15, 23)), 2);
        assert_eq!(Refill::remaining(daily, 10, 8, Some(midnight(15)), t(16, 0)), 5);
        assert_eq!(Refill::remaining(daily, 10, 0, Some(midnight(15)), t(16, 0)), 5, "replaced, not added");
        let monthly = Some(Refill { amount: 5, interval: QuotaPeriod::Month });
        assert_eq!(Refill::remaining(monthly, 10, 8, Some(midnight(1)), t(31, 23)), 2);
        assert_eq!(Refill::remaining(None, 10, 12, None, t(16, 0)), 0, "never below zero");
        assert!(QuotaPeriod::Month.no_more_often_than(QuotaPeriod::Day));
        assert!(!QuotaPeriod::Day.no_more_often_than(QuotaPeriod::Month));
    }
}
