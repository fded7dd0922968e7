//! What a request spends of its limits (docs/api.md §7 "Plan limits"): the key's own rate
//! limit and its named ones, the route's, the account's named limits, then the account's quota
//! (the account's being its plan's with the operator's overrides applied) — in that order,
//! every one must allow. The first refusal wins and the ones already spent are given back
//! (`RateLimiter::refund`, `QuotaCounter::refund`), so a refused request spends nothing. The
//! quota comes last: a rate refusal never touches it, and a quota refusal gives back the rate
//! units it took.

use std::sync::{Arc, LazyLock};

use keygate_core::RateLimit;
use keygate_core::quota::Quota;
use keygate_core::ratelimit::Decision;

use super::authenticator::Authenticator;
use super::cached_key::CachedKey;
use super::checks::Refusal;
use crate::error::ApiError;
use crate::limits::{QuotaDecision, tighter};
use crate::plans::{AccountLimit, PlanAccess};

/// Whose a limit is, in verify's `ratelimits` (`scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Key,
    Route,
    Account,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::Route => "route",
            LimitScope::Account => "account",
        }
    }
}

/// The name of an unnamed limit (a key's `rate_limit`, a route's).
pub static UNNAMED: LazyLock<Arc<str>> = LazyLock::new(|| crate::plans::DEFAULT_LIMIT_NAME.into());

/// One rate limit a request spends.
#[derive(Debug, Clone, Copy)]
pub struct LimitUse<'a> {
    pub name: &'a Arc<str>,
    pub scope: LimitScope,
    pub bucket: &'a str,
    pub limit: RateLimit,
}

/// A limit that applied, for verify's `ratelimits`.
#[derive(Debug, Clone)]
pub struct Applied {
    pub name: Arc<str>,
    pub scope: LimitScope,
    pub decision: Decision,
}

/// What a request spent.
#[derive(Debug, Clone, Default)]
pub struct Spent {
    /// The tightest decision (rate limits and the quota), for `RateLimit-*`.
    pub rate: Option<Decision>,
    pub quota: Option<QuotaDecision>,
    /// Every rate limit that applied, in order; filled only when asked (verify).
    pub applied: Vec<Applied>,
}

/// A refusal by a limit, with what refused (for verify's `ratelimits`).
pub struct LimitRefusal {
    pub refusal: Refusal,
    pub applied: Option<Applied>,
}

impl Authenticator {
    /// `cost` spent against each limit of `limits`, then `quota` (an account and its plan's
    /// quota). `Ok(Ok(spent))` when every one allows; `Ok(Err(refused))` for the first refusal,
    /// with everything already spent given back; `Err` when a limit could not be decided
    /// (Redis down under `fail_closed`).
    pub(super) async fn spend<'a, I>(
        &self,
        limits: I,
        quota: Option<(&str, &Quota)>,
        cost: u32,
        report: bool,
    ) -> Result<Result<Spent, LimitRefusal>, ApiError>
    where
        I: Iterator<Item = LimitUse<'a>> + Clone,
    {
        let mut spent = Spent::default();
        let mut taken = 0;
        for l in limits.clone() {
            let d = match self.limiter.check(l.bucket, &l.limit, cost).await {
                Ok(d) => d,
                Err(e) => {
                    self.give_back(limits.take(taken), None, cost).await;
                    return Err(e);
                }
            };
            if !d.allowed {
                self.give_back(limits.take(taken), None, cost).await;
                let applied = report.then(|| Applied { name: Arc::clone(l.name), scope: l.scope, decision: d });
                return Ok(Err(LimitRefusal { refusal: Refusal::RateLimited(d), applied }));
            }
            taken += 1;
            spent.rate = Some(tighter(spent.rate, d));
            if report {
                spent.applied.push(Applied { name: Arc::clone(l.name), scope: l.scope, decision: d });
            }
        }
        if let Some((account_id, q)) = quota {
            let decided = match self.quotas.spend(account_id, q, cost).await {
                Ok(d) => d,
                Err(e) => {
                    self.give_back(limits.take(taken), None, cost).await;
                    return Err(e);
                }
            };
            if !decided.allowed {
                self.give_back(limits.take(taken), None, cost).await;
                return Ok(Err(LimitRefusal { refusal: Refusal::QuotaExceeded(decided), applied: None }));
            }
            let as_rate = decided.as_rate();
            if as_rate.limit > 0 {
                spent.rate = Some(tighter(spent.rate, as_rate));
            }
            spent.quota = Some(decided);
        }
        Ok(Ok(spent))
    }

    /// Gives back what `spend` took (a later check refused the request).
    pub(super) async fn give_back<'a>(
        &self,
        limits: impl Iterator<Item = LimitUse<'a>>,
        quota: Option<(&str, &QuotaDecision)>,
        cost: u32,
    ) {
        if cost == 0 {
            return;
        }
        for l in limits {
            self.limiter.refund(l.bucket, &l.limit, cost).await;
        }
        if let Some((account_id, spent)) = quota {
            self.quotas.refund(account_id, spent, cost).await;
        }
    }
}

/// The limits a key spends, in order: its own (or the plan's per-key default), its named ones
/// (`rate_limits`), the route's,
/// the account's (`account_buckets`: their bucket names, in the same order).
pub(super) fn key_limits<'a>(
    key: &'a CachedKey,
    plan: &'a PlanAccess<'_>,
    route: Option<(&'a str, &'a RateLimit)>,
    account_buckets: &'a [Box<str>],
) -> impl Iterator<Item = LimitUse<'a>> + Clone + 'a {
    let own = key.key.rate_limit.or(plan.key_default).map(|limit| LimitUse {
        name: &UNNAMED,
        scope: LimitScope::Key,
        bucket: key.rate_bucket(),
        limit,
    });
    let named = key.named_limits.iter().map(|(name, bucket, limit)| LimitUse {
        name,
        scope: LimitScope::Key,
        bucket,
        limit: *limit,
    });
    let route =
        route.map(|(bucket, limit)| LimitUse { name: &UNNAMED, scope: LimitScope::Route, bucket, limit: *limit });
    let account = account_limits(&plan.account_limits, account_buckets);
    own.into_iter().chain(named).chain(route).chain(account)
}

fn account_limits<'a>(
    limits: &'a [AccountLimit],
    buckets: &'a [Box<str>],
) -> impl Iterator<Item = LimitUse<'a>> + Clone + 'a {
    limits.iter().zip(buckets.iter()).map(|(l, bucket)| LimitUse {
        name: &l.name,
        scope: LimitScope::Account,
        bucket,
        limit: l.limit,
    })
}

/// The bucket of an account-wide limit: `a:<account id>:<limit name>`, the same on every node.
pub fn account_bucket(account_id: &str, name: &str) -> Box<str> {
    format!("a:{account_id}:{name}").into()
}

/// The buckets of `limits` for `account_id`, made per request (sessions, which have no cached
/// key to keep them in).
pub(super) fn account_buckets(account_id: &str, limits: &[AccountLimit]) -> Vec<Box<str>> {
    limits.iter().map(|l| account_bucket(account_id, &l.name)).collect()
}

pub(super) fn account_limit_uses<'a>(
    limits: &'a [AccountLimit],
    buckets: &'a [Box<str>],
) -> impl Iterator<Item = LimitUse<'a>> + Clone + 'a {
    account_limits(limits, buckets)
}
