//! A plan's account-wide limits, as configured: their names and how many (docs/api.md §7
//! "Plan limits"). Checked with the rest of the settings, so `config check` refuses what
//! `serve` would.

use super::PlanSettings;

/// The name of the plan's unnamed `rate_limit`, as an entry of its account-wide `rate_limits`.
pub const DEFAULT_LIMIT_NAME: &str = "default";

/// Most named account-wide limits one plan may set: each is one more bucket per request.
const MAX_NAMED_LIMITS: usize = 8;

/// A plan's account-wide limits and quota are well-formed: names valid and distinct (the
/// unnamed `rate_limit` is `default`), at most `MAX_NAMED_LIMITS`.
fn validate_limits(plan: &PlanSettings) -> Result<(), String> {
    if plan.rate_limits.len() > MAX_NAMED_LIMITS {
        return Err(format!("rate_limits: at most {MAX_NAMED_LIMITS} limits"));
    }
    let mut seen = std::collections::BTreeSet::new();
    if plan.rate_limit.is_some() {
        seen.insert(DEFAULT_LIMIT_NAME);
    }
    for l in &plan.rate_limits {
        l.validate().map_err(|m| format!("rate_limits: {m}"))?;
        if !seen.insert(l.name.as_str()) {
            return Err(format!(
                "rate_limits: the name `{}` is used twice (`rate_limit` is named `{DEFAULT_LIMIT_NAME}`)",
                l.name
            ));
        }
    }
    if let Some(q) = &plan.quota {
        q.validate()?;
    }
    Ok(())
}

/// Every rule one plan's limits must meet; the message starts with the offending key.
pub(crate) fn validate_plan(plan: &PlanSettings) -> Result<(), String> {
    validate_limits(plan)?;
    if let Some(rl) = &plan.rate_limit {
        rl.validate()?;
    }
    if let Some(max) = &plan.key_rate_limit_max {
        max.validate().map_err(|m| format!("key_rate_limit_max: {}", m.replace("rate_limit.", "")))?;
        // Keys without a limit of their own get `rate_limit`: it must fit the ceiling.
        if plan.rate_limit.is_some_and(|d| !d.is_within(max)) {
            return Err("rate_limit (the default for keys) is looser than its key_rate_limit_max".into());
        }
    }
    Ok(())
}
