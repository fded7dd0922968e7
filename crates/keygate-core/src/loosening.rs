//! Who may loosen a key (docs/api.md §7 Keys): anyone who may edit a key may **tighten** it;
//! loosening needs administrator+. This module only tells which parts of a change loosen the
//! key, comparing what it lets through before and after; the caller decides who may.
//!
//! "Loosen" means the key lets through something it did not: wider permissions, a higher
//! rate or burst, more credits, more addresses, a longer life. Each comparison errs towards
//! "loosens" when it cannot tell (e.g. widened scopes under a narrowed role).

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::{NamedRateLimit, Permissions, RateLimit, Refill, ScopeSet};

/// What a key lets through, the measure of tightening and loosening.
#[derive(Debug, Clone, PartialEq)]
pub struct Restrictions {
    pub scopes: ScopeSet,
    /// The data role's permissions; `None` = no role (unrestricted within the scopes).
    pub role: Option<ScopeSet>,
    /// The limit that applies: the key's own, or the plan's default. `None` = no limit.
    pub rate_limit: Option<RateLimit>,
    /// The key's named limits, each on top of `rate_limit`.
    pub rate_limits: Vec<NamedRateLimit>,
    /// Total credits; `None` = unlimited.
    pub usage_limit: Option<i64>,
    /// How the credits come back; `None` = never.
    pub refill: Option<Refill>,
    /// Empty = any address.
    pub ip_allowlist: Vec<IpNet>,
    /// The first moment the key works; `None` = from its creation.
    pub starts_at: Option<DateTime<Utc>>,
    /// The moment it stops working (for a pre-staged key: its past expiry); `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One way a change loosens a key; `field` is the body field that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loosening {
    Permissions,
    RateLimit,
    RateLimits,
    UsageLimit,
    Refill,
    IpAllowlist,
    StartsAt,
    ExpiresAt,
}

impl Loosening {
    pub fn field(self) -> &'static str {
        match self {
            Loosening::Permissions => "scopes",
            Loosening::RateLimit => "rate_limit",
            Loosening::RateLimits => "rate_limits",
            Loosening::UsageLimit => "usage_limit",
            Loosening::Refill => "refill",
            Loosening::IpAllowlist => "ip_allowlist",
            Loosening::StartsAt => "starts_at",
            Loosening::ExpiresAt => "expires_at",
        }
    }
}

/// The ways `after` lets through more than `before`, at `now` (a start already past is the
/// same as none). Empty when the change only tightens or keeps things as they were.
pub fn loosenings(before: &Restrictions, after: &Restrictions, now: DateTime<Utc>) -> Vec<Loosening> {
    let mut found = Vec::new();
    if !permissions_within(before, after) {
        found.push(Loosening::Permissions);
    }
    if !rate_within(after.rate_limit, before.rate_limit) {
        found.push(Loosening::RateLimit);
    }
    if !named_within(&after.rate_limits, &before.rate_limits) {
        found.push(Loosening::RateLimits);
    }
    if !at_most(after.usage_limit, before.usage_limit, |a, b| a <= b) {
        found.push(Loosening::UsageLimit);
    }
    // Credits that come back are more credits: adding a refill, a larger amount or a shorter
    // interval loosens; removing it tightens. Without credits (before: unlimited, after: the
    // `UsageLimit` loosening) a refill changes nothing.
    if before.usage_limit.is_some() && after.usage_limit.is_some() && !refill_within(after.refill, before.refill) {
        found.push(Loosening::Refill);
    }
    if !allowlist_within(&after.ip_allowlist, &before.ip_allowlist) {
        found.push(Loosening::IpAllowlist);
    }
    let pending = |s: Option<DateTime<Utc>>| s.filter(|t| *t > now);
    // A later start is tighter: compare as "not before", where none (or past) is the earliest.
    if pending(after.starts_at) < pending(before.starts_at) {
        found.push(Loosening::StartsAt);
    }
    if !at_most(after.expires_at, before.expires_at, |a, b| a <= b) {
        found.push(Loosening::ExpiresAt);
    }
    found
}

/// `Some(limit)` within `ceiling` (`None` = no ceiling): its rate (limit per window) and its
/// burst are both at most the ceiling's. A key with no limit of its own (`None`) is not
/// compared here: it gets the plan's default.
pub fn rate_within(limit: Option<RateLimit>, ceiling: Option<RateLimit>) -> bool {
    at_most(limit, ceiling, |a, b| a.is_within(&b))
}

/// Every named limit `before` had is still there (same name) and no looser; new names only
/// add limits, so they tighten.
fn named_within(after: &[NamedRateLimit], before: &[NamedRateLimit]) -> bool {
    before.iter().all(|b| after.iter().any(|a| a.name == b.name && a.rate().is_within(&b.rate())))
}

/// A refill no looser than `ceiling`, where `None` means no refill (the tightest).
fn refill_within(refill: Option<Refill>, ceiling: Option<Refill>) -> bool {
    match (refill, ceiling) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a.amount <= b.amount && a.interval.no_more_often_than(b.interval),
    }
}

/// Whether `a` is no looser than `b`, where `None` means unlimited (the loosest).
fn at_most<T: Copy>(a: Option<T>, b: Option<T>, within: impl Fn(T, T) -> bool) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => within(a, b),
    }
}

/// The key's effective permissions (scopes ∩ role) after stay within those before: it is
/// enough that either its new scopes or its new role fit, since it gets their intersection
/// (the rule minting uses against the minter).
fn permissions_within(before: &Restrictions, after: &Restrictions) -> bool {
    let was = Permissions { scopes: before.scopes.clone(), role: before.role.clone() };
    was.covers_all(&after.scopes) || after.role.as_ref().is_some_and(|r| was.covers_all(r))
}

/// Every address `after` admits, `before` admitted. An empty list admits every address.
fn allowlist_within(after: &[IpNet], before: &[IpNet]) -> bool {
    if before.is_empty() {
        return true;
    }
    !after.is_empty() && after.iter().all(|a| before.iter().any(|b| b.contains(a)))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::QuotaPeriod;
    use crate::net::parse_cidr;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().expect("a time")
    }

    fn scopes(s: &[&str]) -> ScopeSet {
        ScopeSet::parse_all(s.iter().copied()).expect("scopes")
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|c| parse_cidr(c).expect("cidr")).collect()
    }

    fn rl(limit: u32, window_seconds: u32, burst: Option<u32>) -> Option<RateLimit> {
        Some(RateLimit { limit, window_seconds, burst })
    }

    fn named(name: &str, limit: u32, window_seconds: u32) -> NamedRateLimit {
        NamedRateLimit { name: name.into(), limit, window_seconds, burst: None }
    }

    /// An owner-configured key: narrowed scopes, limits, an allowlist, an expiry.
    fn base() -> Restrictions {
        Restrictions {
            scopes: scopes(&["companies:read", "lists:write"]),
            role: None,
            rate_limit: rl(600, 60, None),
            rate_limits: vec![named("hour", 1000, 3600)],
            usage_limit: Some(3),
            refill: Some(crate::Refill { amount: 3, interval: QuotaPeriod::Month }),
            ip_allowlist: nets(&["10.0.0.0/8"]),
            starts_at: None,
            expires_at: Some(now() + Duration::days(30)),
        }
    }

    #[test]
    fn each_change_is_tightening_or_loosening() {
        use Loosening::*;
        type Edit = fn(&mut Restrictions);
        let table: &[(&str, Edit, &[Loosening])] = &[
            ("no change", |_| {}, &[]),
            // permissions
            ("narrower scopes", |r| r.scopes = scopes(&["companies:read"]), &[]),
            ("wider scopes", |r| r.scopes = scopes(&["*:*"]), &[Permissions]),
            ("another resource", |r| r.scopes = scopes(&["leads:read"]), &[Permissions]),
            ("write narrowed to create", |r| r.scopes = scopes(&["lists:create"]), &[]),
            ("a role added", |r| r.role = Some(scopes(&["lists:create"])), &[]),
            (
                "wider scopes under a fitting role",
                |r| {
                    r.scopes = scopes(&["*:*"]);
                    r.role = Some(scopes(&["companies:read"]));
                },
                &[],
            ),
            // rate limits: compared as rates, and burst too
            ("lower rate", |r| r.rate_limit = rl(300, 60, None), &[]),
            ("same rate, smaller window", |r| r.rate_limit = rl(10, 1, None), &[]),
            ("higher rate", |r| r.rate_limit = rl(1_000_000_000, 1, None), &[RateLimit]),
            ("same rate, bigger burst", |r| r.rate_limit = rl(6000, 600, None), &[RateLimit]),
            ("explicit bigger burst", |r| r.rate_limit = rl(600, 60, Some(601)), &[RateLimit]),
            ("explicit smaller burst", |r| r.rate_limit = rl(600, 60, Some(10)), &[]),
            ("rate limit removed", |r| r.rate_limit = None, &[RateLimit]),
            // named limits: by name, each compared as a rate
            ("a named limit lowered", |r| r.rate_limits = vec![named("hour", 500, 3600)], &[]),
            ("a named limit added", |r| r.rate_limits.push(named("day", 5000, 86_400)), &[]),
            ("a named limit raised", |r| r.rate_limits = vec![named("hour", 2000, 3600)], &[RateLimits]),
            ("a named limit removed", |r| r.rate_limits = vec![], &[RateLimits]),
            ("a named limit renamed", |r| r.rate_limits = vec![named("hourly", 1000, 3600)], &[RateLimits]),
            // credits and their refill
            ("fewer credits", |r| r.usage_limit = Some(1), &[]),
            ("smaller refill", |r| r.refill = Some(crate::Refill { amount: 1, interval: QuotaPeriod::Month }), &[]),
            ("refill removed", |r| r.refill = None, &[]),
            (
                "larger refill",
                |r| r.refill = Some(crate::Refill { amount: 4, interval: QuotaPeriod::Month }),
                &[Refill],
            ),
            ("daily refill", |r| r.refill = Some(crate::Refill { amount: 3, interval: QuotaPeriod::Day }), &[Refill]),
            ("more credits", |r| r.usage_limit = Some(4), &[UsageLimit]),
            ("credits removed", |r| r.usage_limit = None, &[UsageLimit]),
            // allowlist
            ("narrower allowlist", |r| r.ip_allowlist = nets(&["10.1.0.0/16", "10.2.3.4"]), &[]),
            ("wider allowlist", |r| r.ip_allowlist = nets(&["10.0.0.0/7"]), &[IpAllowlist]),
            ("another network", |r| r.ip_allowlist = nets(&["10.0.0.0/8", "192.0.2.0/24"]), &[IpAllowlist]),
            ("allowlist removed", |r| r.ip_allowlist = vec![], &[IpAllowlist]),
            ("other family", |r| r.ip_allowlist = nets(&["::/0"]), &[IpAllowlist]),
            // life
            ("sooner expiry", |r| r.expires_at = Some(now() + Duration::days(1)), &[]),
            ("later expiry", |r| r.expires_at = Some(now() + Duration::days(31)), &[ExpiresAt]),
            ("expiry removed", |r| r.expires_at = None, &[ExpiresAt]),
            ("later start", |r| r.starts_at = Some(now() + Duration::days(1)), &[]),
            ("start in the past", |r| r.starts_at = Some(now() - Duration::days(1)), &[]),
            // several at once
            (
                "everything lifted",
                |r| {
                    r.scopes = scopes(&["*:*"]);
                    r.rate_limit = None;
                    r.rate_limits = vec![];
                    r.usage_limit = None;
                    r.ip_allowlist = vec![];
                    r.expires_at = None;
                },
                &[Permissions, RateLimit, RateLimits, UsageLimit, IpAllowlist, ExpiresAt],
            ),
        ];
        for (name, edit, want) in table {
            let mut after = base();
            edit(&mut after);
            assert_eq!(loosenings(&base(), &after, now()), *want, "{name}");
        }
    }

    #[test]
    fn from_no_restriction_anything_is_tightening() {
        let open = Restrictions {
            scopes: scopes(&["*:*"]),
            role: None,
            rate_limit: None,
            rate_limits: vec![],
            usage_limit: None,
            refill: None,
            ip_allowlist: vec![],
            starts_at: None,
            expires_at: None,
        };
        assert_eq!(loosenings(&open, &base(), now()), vec![]);
        assert_eq!(loosenings(&base(), &open, now()).len(), 6);
        let mut refilled = open.clone();
        refilled.usage_limit = Some(3);
        refilled.refill = Some(crate::Refill { amount: 3, interval: QuotaPeriod::Day });
        let mut credits = refilled.clone();
        credits.refill = None;
        assert_eq!(loosenings(&credits, &refilled, now()), vec![Loosening::Refill], "a refill added");
    }

    #[test]
    fn removing_a_role_or_moving_a_pending_start_earlier_loosens() {
        let mut with_role = base();
        with_role.role = Some(scopes(&["lists:create"]));
        assert_eq!(loosenings(&with_role, &base(), now()), vec![Loosening::Permissions]);
        let mut later = base();
        later.starts_at = Some(now() + Duration::days(2));
        let mut sooner = base();
        sooner.starts_at = Some(now() + Duration::days(1));
        assert_eq!(loosenings(&later, &sooner, now()), vec![Loosening::StartsAt]);
        assert_eq!(loosenings(&later, &base(), now()), vec![Loosening::StartsAt]);
    }

    #[test]
    fn the_plan_ceiling_compares_rates_and_bursts() {
        let ceiling = rl(500, 60, None);
        assert!(rate_within(rl(500, 60, None), ceiling));
        assert!(rate_within(rl(8, 1, None), ceiling), "8/s < 500/min, burst 8 < 500");
        assert!(!rate_within(rl(9, 1, None), ceiling), "9/s > 500/min");
        assert!(!rate_within(rl(500, 60, Some(501)), ceiling));
        assert!(!rate_within(None, ceiling), "no limit is above any ceiling");
        assert!(rate_within(rl(1_000_000_000, 1, None), None), "no ceiling");
    }
}
