//! Plans are configuration: the operator names them in `[plans.*]` and assigns them to accounts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keygate_core::{NamedRateLimit, Quota, RateLimit};
use keygate_store::{Account, LimitOverrides};
use serde::Serialize;

use crate::config::PlanSettings;

pub use crate::config::plan_limits::DEFAULT_LIMIT_NAME;

#[derive(Debug, Clone)]
pub struct Plans {
    plans: BTreeMap<String, Plan>,
}

/// A plan as configured, with its account-wide limits gathered once.
#[derive(Debug, Clone)]
struct Plan {
    settings: PlanSettings,
    /// `rate_limit` (as `default`) followed by `rate_limits`.
    account_limits: Vec<AccountLimit>,
}

/// One account-wide limit as the hot path spends it: its name is shared (`Arc`), so a verify
/// answer that lists it costs no copy of the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLimit {
    pub name: Arc<str>,
    pub limit: RateLimit,
}

/// What an account may do right now under its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAccess<'a> {
    pub api_access: bool,
    /// What a key without a limit of its own is held to at most, for the loosening rule:
    /// the plan's `rate_limit`, else `key_rate_limit_max`.
    pub rate_limit: Option<RateLimit>,
    /// The per-key limit of a key without a limit of its own (its own bucket, beside the
    /// account's): the plan's `key_rate_limit_max` when set, so no key exceeds the ceiling.
    pub key_default: Option<RateLimit>,
    pub max_keys: Option<u32>,
    /// The loosest limit one key may carry: `key_rate_limit_max`, else `rate_limit`.
    pub key_rate_limit_max: Option<RateLimit>,
    /// Limits shared by every key of the account (docs/api.md §7 "Plan limits"): the plan's,
    /// or with an operator's `rate_limits` override, the plan's `rate_limit` and the override.
    pub account_limits: Cow<'a, [AccountLimit]>,
    /// The plan's quota, or the operator's override.
    pub quota: Option<Quota>,
}

fn account_limits(p: &PlanSettings) -> Vec<AccountLimit> {
    account_limits_with(p, &p.rate_limits)
}

/// The plan's `rate_limit` (as `default`) followed by `named`.
fn account_limits_with(p: &PlanSettings, named: &[NamedRateLimit]) -> Vec<AccountLimit> {
    let unnamed = p.rate_limit.map(|limit| AccountLimit { name: DEFAULT_LIMIT_NAME.into(), limit });
    let named = named.iter().map(|l: &NamedRateLimit| AccountLimit { name: l.name.as_str().into(), limit: l.rate() });
    unnamed.into_iter().chain(named).collect()
}

/// The limits an account lives under: its plan's, with the operator's overrides applied
/// (docs/api.md, "Plans and trials"). What the account object shows as `limits`, and what
/// account-wide enforcement reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EffectiveLimits {
    /// Shared by every key of the account.
    #[schema(value_type = Vec<Object>)]
    pub rate_limits: Vec<NamedRateLimit>,
    /// `{requests, period: "day" | "month"}`, account-wide.
    #[schema(value_type = Option<Object>)]
    pub quota: Option<Quota>,
    pub max_keys: Option<u32>,
    /// The loosest limit one key may carry.
    #[schema(value_type = Option<Object>)]
    pub key_rate_limit_max: Option<RateLimit>,
}

/// `plan` (`None`: not configured, which grants nothing) merged with `overrides`: each override
/// set replaces the plan's value whole (a `rate_limits` override is the whole list).
pub fn effective_limits(plan: Option<&PlanSettings>, overrides: &LimitOverrides) -> EffectiveLimits {
    let Some(p) = plan else {
        return EffectiveLimits { max_keys: Some(0), ..EffectiveLimits::default() };
    };
    EffectiveLimits {
        rate_limits: overrides.rate_limits.clone().unwrap_or_else(|| p.rate_limits.clone()),
        quota: overrides.quota.or(p.quota),
        max_keys: overrides.max_keys.or(p.max_keys),
        key_rate_limit_max: p.key_rate_limit_max.or(p.rate_limit),
    }
}

impl Plans {
    /// The account's effective limits (see [`effective_limits`]).
    pub fn limits(&self, account: &Account) -> EffectiveLimits {
        effective_limits(self.plans.get(&account.plan).map(|p| &p.settings), &account.overrides)
    }

    pub fn new(plans: BTreeMap<String, PlanSettings>) -> Self {
        let plans = plans
            .into_iter()
            .map(|(name, settings)| (name, Plan { account_limits: account_limits(&settings), settings }))
            .collect();
        Plans { plans }
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&PlanSettings> {
        self.plans.get(name).map(|p| &p.settings)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// A plan that was removed from the configuration grants nothing (fail closed); a trial
    /// that has ended grants no API access until the operator sets another plan.
    pub fn access(&self, account: &Account, now: DateTime<Utc>) -> PlanAccess<'_> {
        match self.plans.get(&account.plan) {
            None => PlanAccess {
                api_access: false,
                rate_limit: None,
                key_default: None,
                max_keys: Some(0),
                key_rate_limit_max: None,
                account_limits: Cow::Borrowed(&[]),
                quota: None,
            },
            Some(plan) => {
                let p = &plan.settings;
                // The trial end only binds on a trial plan: once the operator sets a plan
                // without trial days, the account's old `trial_ends_at` no longer matters.
                let trial_over = p.trial_days > 0 && account.trial_ends_at.is_some_and(|end| end <= now);
                PlanAccess {
                    api_access: p.api_access && !trial_over,
                    // A plan with only a ceiling gives keys without a limit of their own the
                    // ceiling, so no key goes unlimited under it.
                    rate_limit: p.rate_limit.or(p.key_rate_limit_max),
                    key_default: p.key_rate_limit_max,
                    // The operator's overrides, when set (docs/api.md, "Plans and trials").
                    max_keys: account.overrides.max_keys.or(p.max_keys),
                    key_rate_limit_max: p.key_rate_limit_max.or(p.rate_limit),
                    account_limits: match &account.overrides.rate_limits {
                        Some(named) => Cow::Owned(account_limits_with(p, named)),
                        None => Cow::Borrowed(&plan.account_limits),
                    },
                    quota: account.overrides.quota.or(p.quota),
                }
            }
        }
    }

    /// When a new account on `plan` created at `now` ends its trial.
    pub fn trial_end(&self, plan: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.plans
            .get(plan)
            .filter(|p| p.settings.trial_days > 0)
            .map(|p| now + chrono::Duration::days(i64::from(p.settings.trial_days)))
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::QuotaPeriod;

    use super::*;

    fn named(name: &str, limit: u32) -> NamedRateLimit {
        NamedRateLimit { name: name.into(), limit, window_seconds: 60, burst: None }
    }

    #[test]
    fn overrides_replace_the_plans_limits_one_by_one() {
        let plan = PlanSettings {
            max_keys: Some(10),
            rate_limit: Some(RateLimit { limit: 600, window_seconds: 60, burst: None }),
            rate_limits: vec![named("minute", 1000), named("second", 50)],
            quota: Some(Quota { requests: 100_000, period: QuotaPeriod::Month }),
            ..PlanSettings::default()
        };
        let none = LimitOverrides::default();
        let plain = effective_limits(Some(&plan), &none);
        assert_eq!((plain.rate_limits.len(), plain.max_keys), (2, Some(10)));
        assert_eq!(plain.key_rate_limit_max, plan.rate_limit, "without a ceiling, rate_limit is it");
        let over = LimitOverrides { rate_limits: Some(vec![named("minute", 5000)]), quota: None, max_keys: Some(500) };
        let got = effective_limits(Some(&plan), &over);
        assert_eq!(got.rate_limits, vec![named("minute", 5000)], "the whole list is replaced");
        assert_eq!((got.quota, got.max_keys), (plan.quota, Some(500)), "the quota stays the plan's");
        let cleared = LimitOverrides { rate_limits: Some(vec![]), ..LimitOverrides::default() };
        assert!(effective_limits(Some(&plan), &cleared).rate_limits.is_empty(), "an empty override lifts them");
        assert_eq!(effective_limits(None, &over).max_keys, Some(0), "an unknown plan grants nothing");
    }
}
