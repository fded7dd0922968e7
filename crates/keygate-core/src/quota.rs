//! Quotas: a number of requests per calendar period (a UTC day or month), shared by every key
//! of an account. Pure arithmetic on the period; the counting lives in the server's limits.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// `{requests, period}`: at most `requests` units (a request's cost) per UTC calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: u64,
    pub period: QuotaPeriod,
}

impl Quota {
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.requests == 0 || self.requests > 1_000_000_000_000 {
            return Err("quota.requests must be 1..=1000000000000");
        }
        Ok(())
    }
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(QuotaPeriod::Day),
            "month" => Some(QuotaPeriod::Month),
            _ => None,
        }
    }

    /// Longer periods come later: a month refills less often than a day.
    fn rank(self) -> u8 {
        match self {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Month => 1,
        }
    }

    /// `self` refills no more often than `other`.
    pub fn no_more_often_than(self, other: QuotaPeriod) -> bool {
        self.rank() >= other.rank()
    }

    /// The start (00:00 UTC) of the period `now` falls in.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let d = now.date_naive();
        let first = match self {
            QuotaPeriod::Day => d,
            QuotaPeriod::Month => d.with_day(1).unwrap_or(d),
        };
        midnight(first)
    }

    /// The start of the next period: when a spent quota is whole again.
    pub fn next_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let d = now.date_naive();
        let next = match self {
            QuotaPeriod::Day => d.succ_opt(),
            QuotaPeriod::Month => {
                let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            }
        };
        // Past the end of chrono's calendar only: a far future that never resets.
        next.map(midnight).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whole seconds from `now` to the next period's start, at least 1 (`Retry-After`).
    pub fn seconds_left(self, now: DateTime<Utc>) -> u64 {
        let ms = (self.next_start(now) - now).num_milliseconds().max(0) as u64;
        ms.div_ceil(1000).max(1)
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("a valid time")
    }

    #[test]
    fn a_day_runs_from_midnight_to_midnight_utc() {
        let now = at(2026, 3, 14, 23, 59, 30);
        assert_eq!(QuotaPeriod::Day.start(now), at(2026, 3, 14, 0, 0, 0));
        assert_eq!(QuotaPeriod::Day.next_start(now), at(2026, 3, 15, 0, 0, 0));
        assert_eq!(QuotaPeriod::Day.seconds_left(now), 30);
        assert_eq!(QuotaPeriod::Day.start(at(2026, 3, 15, 0, 0, 0)), at(2026, 3, 15, 0, 0, 0));
    }

    #[test]
    fn a_month_runs_from_the_first_to_the_first_across_years_and_leap_days() {
        assert_eq!(QuotaPeriod::Month.start(at(2026, 2, 28, 12, 0, 0)), at(2026, 2, 1, 0, 0, 0));
        assert_eq!(QuotaPeriod::Month.next_start(at(2028, 2, 29, 12, 0, 0)), at(2028, 3, 1, 0, 0, 0));
        assert_eq!(QuotaPeriod::Month.next_start(at(2026, 12, 31, 23, 0, 0)), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(QuotaPeriod::Month.seconds_left(at(2026, 12, 31, 23, 0, 0)), 3600);
    }

    #[test]
    fn a_quota_has_at_least_one_request() {
        assert!(Quota { requests: 0, period: QuotaPeriod::Day }.validate().is_err());
        assert!(Quota { requests: 5, period: QuotaPeriod::Month }.validate().is_ok());
    }
}
