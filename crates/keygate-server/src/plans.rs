//! Plans are configuration: the operator names them in `[plans.*]` and assigns them to accounts.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keygate_core::RateLimit;
use keygate_core::quota::Quota;
use keygate_core::ratelimit::NamedRateLimit;
use keygate_store::Account;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Limits shared by every key of the account (docs/api.md §7 "Plan limits").
    pub account_limits: &'a [AccountLimit],
    pub quota: Option<Quota>,
}

fn account_limits(p: &PlanSettings) -> Vec<AccountLimit> {
    let unnamed = p.rate_limit.map(|limit| AccountLimit { name: DEFAULT_LIMIT_NAME.into(), limit });
    let named = p
        .rate_limits
        .iter()
        .map(|l: &NamedRateLimit| AccountLimit { name: l.name.as_str().into(), limit: l.rate_limit() });
    unnamed.into_iter().chain(named).collect()
}

impl Plans {
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
                account_limits: &[],
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
                    max_keys: p.max_keys,
                    key_rate_limit_max: p.key_rate_limit_max.or(p.rate_limit),
                    account_limits: &plan.account_limits,
                    quota: p.quota,
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
