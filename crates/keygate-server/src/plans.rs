//! Plans are configuration: the operator names them in `[plans.*]` and assigns them to accounts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keygate_core::{NamedRateLimit, Quota, RateLimit};
use keygate_store::{Account, LimitOverrides};
use serde::Serialize;

use crate::config::PlanSettings;

#[derive(Debug, Clone)]
pub struct Plans {
    plans: BTreeMap<String, PlanSettings>,
}

/// What an account may do right now under its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanAccess {
    pub api_access: bool,
    /// For a key without a limit of its own (and sessions at the gateway).
    pub rate_limit: Option<RateLimit>,
    pub max_keys: Option<u32>,
    /// The loosest limit one key may carry: `key_rate_limit_max`, else `rate_limit`.
    pub key_rate_limit_max: Option<RateLimit>,
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
        effective_limits(self.plans.get(&account.plan), &account.overrides)
    }

    pub fn new(plans: BTreeMap<String, PlanSettings>) -> Self {
        Plans { plans }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&PlanSettings> {
        self.plans.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// A plan that was removed from the configuration grants nothing (fail closed); a trial
    /// that has ended grants no API access until the operator sets another plan.
    pub fn access(&self, account: &Account, now: DateTime<Utc>) -> PlanAccess {
        match self.plans.get(&account.plan) {
            None => PlanAccess { api_access: false, rate_limit: None, max_keys: Some(0), key_rate_limit_max: None },
            Some(p) => {
                // The trial end only binds on a trial plan: once the operator sets a plan
                // without trial days, the account's old `trial_ends_at` no longer matters.
                let trial_over = p.trial_days > 0 && account.trial_ends_at.is_some_and(|end| end <= now);
                PlanAccess {
                    api_access: p.api_access && !trial_over,
                    // A plan with only a ceiling gives keys without a limit of their own the
                    // ceiling, so no key goes unlimited under it.
                    rate_limit: p.rate_limit.or(p.key_rate_limit_max),
                    // The operator's override, when set (docs/api.md, "Plans and trials").
                    max_keys: account.overrides.max_keys.or(p.max_keys),
                    key_rate_limit_max: p.key_rate_limit_max.or(p.rate_limit),
                }
            }
        }
    }

    /// When a new account on `plan` created at `now` ends its trial.
    pub fn trial_end(&self, plan: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.plans.get(plan).filter(|p| p.trial_days > 0).map(|p| now + chrono::Duration::days(i64::from(p.trial_days)))
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
