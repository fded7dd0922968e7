//! Plans are configuration: the operator names them in `[plans.*]` and assigns them to accounts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keygate_core::RateLimit;
use keygate_store::Account;

use crate::config::PlanSettings;

#[derive(Debug, Clone)]
pub struct Plans {
    plans: BTreeMap<String, PlanSettings>,
}

/// What an account may do right now under its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanAccess {
    pub(crate) api_access: bool,
    /// For a key without a limit of its own (and sessions at the gateway).
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_keys: Option<u32>,
    /// The loosest limit one key may carry: `key_rate_limit_max`, else `rate_limit`.
    pub(crate) key_rate_limit_max: Option<RateLimit>,
}

impl Plans {
    pub fn new(plans: BTreeMap<String, PlanSettings>) -> Self {
        Plans { plans }
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// A plan that was removed from the configuration grants nothing (fail closed); a trial
    /// that has ended grants no API access until the operator sets another plan.
    pub(crate) fn access(&self, account: &Account, now: DateTime<Utc>) -> PlanAccess {
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
                    max_keys: p.max_keys,
                    key_rate_limit_max: p.key_rate_limit_max.or(p.rate_limit),
                }
            }
        }
    }

    /// When a new account on `plan` created at `now` ends its trial.
    pub(crate) fn trial_end(&self, plan: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.plans.get(plan).filter(|p| p.trial_days > 0).map(|p| now + chrono::Duration::days(i64::from(p.trial_days)))
    }
}
