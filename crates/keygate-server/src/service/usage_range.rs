//! The time range of a usage read (docs/api.md, "Usage"): parsed from `from`/`to` and a
//! granularity into whole buckets, with the limits every usage endpoint shares. Pure.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keygate_store::{Granularity, UsageBucket};

use crate::error::{ApiError, ApiResult};

/// The longest range of days one read covers: `to` at most 366 days after `from`.
pub const MAX_DAYS: i64 = 366;
/// The longest range of hours one read covers: 8 days (hourly counts are kept 8 days).
pub const MAX_HOURS: i64 = 192;

/// Whole buckets from `from` to `to` (both bucket starts, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl UsageRange {
    /// `granularity` is `day` (default) or `hour`. Days: `YYYY-MM-DD`, `to` defaults to today
    /// (UTC) and `from` to 29 days before `to`. Hours: an RFC 3339 time or a date (its
    /// midnight, UTC), cut down to its hour; `to` defaults to the current hour and `from` to
    /// 23 hours before `to`. `from` must not be after `to`, and the range is at most
    /// [`MAX_DAYS`] days or [`MAX_HOURS`] hours long.
    pub fn parse(
        granularity: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now: DateTime<Utc>,
    ) -> ApiResult<UsageRange> {
        let granularity = match granularity {
            None | Some("day") => Granularity::Day,
            Some("hour") => Granularity::Hour,
            Some(_) => return Err(ApiError::invalid_field("granularity", "must be `day` or `hour`")),
        };
        let (from, to) = match granularity {
            Granularity::Day => {
                let to = to.map(|s| day("to", s)).transpose()?.unwrap_or_else(|| now.date_naive());
                let from = from.map(|s| day("from", s)).transpose()?.unwrap_or(to - Duration::days(29));
                if from > to || (to - from).num_days() > MAX_DAYS {
                    return Err(ApiError::invalid_field("from", "must be on or before `to`, at most 366 days apart"));
                }
                (midnight(from), midnight(to))
            }
            Granularity::Hour => {
                let to = to.map(|s| hour("to", s)).transpose()?.unwrap_or_else(|| truncate(now, Granularity::Hour));
                let from = from.map(|s| hour("from", s)).transpose()?.unwrap_or(to - Duration::hours(23));
                if from > to || (to - from).num_hours() > MAX_HOURS {
                    return Err(ApiError::invalid_field("from", "must be on or before `to`, at most 8 days apart"));
                }
                (from, to)
            }
        };
        Ok(UsageRange { granularity, from, to })
    }

    /// Every bucket start of the range, oldest first.
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        let step = Duration::milliseconds(self.granularity.millis());
        let (from, to) = (self.from, self.to);
        std::iter::successors(Some(from), move |t| Some(*t + step)).take_while(move |t| *t <= to)
    }

    /// `found` (buckets with counts, oldest first) with every other bucket of the range
    /// added as zeros: a series lists each bucket once, empty ones included.
    pub fn fill(&self, found: Vec<UsageBucket>) -> Vec<UsageBucket> {
        let mut found = found.into_iter().peekable();
        self.starts()
            .map(|start| match found.next_if(|b| b.start == start) {
                Some(b) => b,
                None => UsageBucket { start, outcomes: Default::default() },
            })
            .collect()
    }
}

fn day(field: &str, s: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid_field(field, "must be a date like 2026-12-31"))
}

fn hour(field: &str, s: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(midnight(d));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| truncate(t.with_timezone(&Utc), Granularity::Hour))
        .map_err(|_| ApiError::invalid_field(field, "must be a time like 2026-12-31T14:00:00Z or a date"))
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The start of the bucket `t` falls in.
pub fn truncate(t: DateTime<Utc>, granularity: Granularity) -> DateTime<Utc> {
    let step = granularity.millis();
    let ms = t.timestamp_millis().div_euclid(step) * step;
    DateTime::from_timestamp_millis(ms).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).single().expect("time")
    }

    fn parse(g: Option<&str>, from: Option<&str>, to: Option<&str>) -> ApiResult<UsageRange> {
        UsageRange::parse(g, from, to, t(10, 14, 35))
    }

    /// (granularity, from, to) → (granularity, from, to, buckets)
    type Accepted<'a> =
        ((Option<&'a str>, Option<&'a str>, Option<&'a str>), (Granularity, DateTime<Utc>, DateTime<Utc>, usize));

    #[test]
    fn ranges_that_are_accepted() {
        let cases: &[Accepted] = &[
            // defaults: 30 days, 24 hours, both ending now
            ((None, None, None), (Granularity::Day, t(10, 0, 0) - Duration::days(29), t(10, 0, 0), 30)),
            ((Some("hour"), None, None), (Granularity::Hour, t(9, 15, 0), t(10, 14, 0), 24)),
            ((Some("day"), Some("2026-03-01"), Some("2026-03-01")), (Granularity::Day, t(1, 0, 0), t(1, 0, 0), 1)),
            // a time is cut down to its hour (offsets become UTC)
            (
                (Some("hour"), Some("2026-03-09T12:30:00+02:00"), Some("2026-03-09T12:00:00Z")),
                (Granularity::Hour, t(9, 10, 0), t(9, 12, 0), 3),
            ),
            // the longest ranges
            (
                (Some("hour"), Some("2026-03-01T00:00:00Z"), Some("2026-03-09T00:00:00Z")),
                (Granularity::Hour, t(1, 0, 0), t(9, 0, 0), 193),
            ),
            (
                (None, Some("2025-03-10"), Some("2026-03-11")),
                (Granularity::Day, t(11, 0, 0) - Duration::days(366), t(11, 0, 0), 367),
            ),
        ];
        for ((g, from, to), (granularity, want_from, want_to, buckets)) in cases {
            let r = parse(*g, *from, *to).expect("accepted");
            assert_eq!((r.granularity, r.from, r.to), (*granularity, *want_from, *want_to), "{g:?} {from:?} {to:?}");
            assert_eq!(r.starts().count(), *buckets, "{g:?} {from:?} {to:?}");
        }
    }

    #[test]
    fn a_series_lists_every_bucket_once() {
        use keygate_store::{Outcome, OutcomeCounts};
        let r = parse(Some("hour"), Some("2026-03-09T10:00:00Z"), Some("2026-03-09T13:00:00Z")).expect("range");
        let b = |h, n| UsageBucket { start: t(9, h, 0), outcomes: OutcomeCounts::of(Outcome::Valid, n) };
        let filled = r.fill(vec![b(11, 2), b(13, 5)]);
        assert_eq!(filled, vec![b(10, 0), b(11, 2), b(12, 0), b(13, 5)]);
    }

    #[test]
    fn ranges_that_are_refused() {
        for (g, from, to, field) in [
            (Some("week"), None, None, "granularity"),
            (None, Some("2026-03-11"), Some("2026-03-10"), "from"),
            (None, Some("2025-03-08"), Some("2026-03-10"), "from"),
            (None, Some("yesterday"), None, "from"),
            (None, None, Some("2026-03-10T00:00:00Z"), "to"),
            (Some("hour"), Some("2026-03-01T00:00:00Z"), Some("2026-03-09T01:00:00Z"), "from"),
            (Some("hour"), Some("2026-03-09T11:00:00Z"), Some("2026-03-09T10:59:00Z"), "from"),
            (Some("hour"), Some("soon"), None, "from"),
            // a date is its midnight: 10:59 is after it
            (Some("hour"), Some("2026-03-09T10:59:59Z"), Some("2026-03-09"), "from"),
        ] {
            let e = parse(g, from, to).expect_err("refused");
            assert_eq!(
                e.details.as_ref().map(|d| d[0]["field"].clone()),
                Some(serde_json::json!(field)),
                "{from:?} {to:?}"
            );
        }
    }
}
