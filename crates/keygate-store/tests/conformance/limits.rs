//! Limits a company can sell, as stored: named limits, credits that refill, the operator's
//! overrides of an account's plan. The clock is passed in: no test waits for a boundary.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use keygate_core::{NamedRateLimit, Quota, QuotaPeriod, Refill};
use keygate_store::*;

use crate::harness::*;

fn at(day: u32, hour: u32) -> Time {
    Utc.with_ymd_and_hms(2030, 1, day, hour, 0, 0).single().expect("a time")
}

fn named(name: &str, limit: u32) -> NamedRateLimit {
    NamedRateLimit { name: name.into(), limit, window_seconds: 60, burst: None }
}

/// Credits with a daily refill of 3: spent down on day 1, the balance is *replaced* by 3 at
/// the next midnight (not added), once, even when two nodes race across the boundary.
pub async fn credits_refill_at_each_period_boundary_exactly_once(db: TestDb) {
    let s = &db.store;
    let o = register(s, "refill@limits.example", None).await;
    let a = &o.account.id;
    let mut nk = key(a, None);
    nk.usage_limit = Some(10);
    nk.refill = Some(Refill { amount: 3, interval: QuotaPeriod::Day });
    nk.refilled_at = Some(at(1, 0));
    let k = s.create_key(nk, None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&k.id, 9, at(1, 10)).await.unwrap(), Some(1), "the first day has usage_limit");
    assert_eq!(s.consume_usage(&k.id, 2, at(1, 23)).await.unwrap(), None, "never below zero");
    let stored = s.key_by_handle(a, &k.id).await.unwrap().unwrap();
    assert_eq!(stored.usage_remaining_at(at(1, 23)), Some(1));
    assert_eq!(stored.usage_remaining_at(at(2, 0)), Some(3), "readers see the refill before any spend");

    // Day 2, two nodes, 20 spends of 1: exactly the 3 refilled pass.
    let node2 = db.another_node().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let st = if i % 2 == 0 { Arc::clone(s) } else { Arc::clone(&node2) };
        let id = k.id.clone();
        tasks.push(tokio::spawn(async move { st.consume_usage(&id, 1, at(2, 0)).await.expect("consume") }));
    }
    let mut left = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            left.push(r);
        }
    }
    left.sort();
    assert_eq!(left, vec![0, 1, 2], "replaced by 3, once: not 3 per node, not 1 + 3");
    let stored = s.key_by_handle(a, &k.id).await.unwrap().unwrap();
    assert_eq!(stored.refilled_at, Some(at(2, 0)));

    // Nothing left over carries into day 3: 1 spent of 3 on day 2... then day 3 starts at 3.
    let mut nk = key(a, None);
    nk.usage_limit = Some(10);
    nk.refill = Some(Refill { amount: 3, interval: QuotaPeriod::Day });
    nk.refilled_at = Some(at(1, 0));
    let k2 = s.create_key(nk, None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&k2.id, 1, at(2, 5)).await.unwrap(), Some(2), "10 unspent became 3");
    assert_eq!(s.consume_usage(&k2.id, 1, at(3, 5)).await.unwrap(), Some(2), "2 unspent became 3");
    // A spend larger than the refill is refused and spends nothing.
    assert_eq!(s.consume_usage(&k2.id, 4, at(4, 5)).await.unwrap(), None);
    assert_eq!(s.consume_usage(&k2.id, 3, at(4, 6)).await.unwrap(), Some(0));

    // Monthly: the whole month is one period.
    let mut nk = key(a, None);
    nk.usage_limit = Some(2);
    nk.refill = Some(Refill { amount: 2, interval: QuotaPeriod::Month });
    nk.refilled_at = Some(at(1, 0));
    let k3 = s.create_key(nk, None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&k3.id, 2, at(1, 1)).await.unwrap(), Some(0));
    assert_eq!(s.consume_usage(&k3.id, 1, at(31, 23)).await.unwrap(), None, "no refill within the month");
    let feb = Utc.with_ymd_and_hms(2030, 2, 1, 0, 0, 0).single().expect("a time");
    assert_eq!(s.consume_usage(&k3.id, 1, feb).await.unwrap(), Some(1));
}

/// Named limits and a refill survive every write: mint, PATCH, roll (the successor carries
/// them and the period; the old key kept through an overlap loses its refill).
pub async fn named_limits_and_refill_are_kept_patched_and_rolled(db: TestDb) {
    let s = &db.store;
    let o = register(s, "named@limits.example", None).await;
    let a = &o.account.id;
    let mut nk = key(a, None);
    nk.rate_limits = vec![named("minute", 100), named("burst", 5)];
    nk.usage_limit = Some(10);
    nk.refill = Some(Refill { amount: 10, interval: QuotaPeriod::Month });
    nk.refilled_at = Some(at(1, 0));
    let k = s.create_key(nk, None, vec![]).await.unwrap();
    let got = s.key_by_handle(a, &k.id).await.unwrap().unwrap();
    assert_eq!(got.rate_limits, vec![named("minute", 100), named("burst", 5)]);
    assert_eq!(
        (got.refill, got.refilled_at),
        (Some(Refill { amount: 10, interval: QuotaPeriod::Month }), Some(at(1, 0)))
    );

    let patch = KeyPatch {
        rate_limits: Some(vec![named("minute", 50)]),
        refill: Some((Some(Refill { amount: 4, interval: QuotaPeriod::Day }), Some(at(5, 0)))),
        ..KeyPatch::default()
    };
    let p = s.update_key(a, &k.id, &patch, vec![]).await.unwrap();
    assert_eq!(p.rate_limits, vec![named("minute", 50)]);
    assert_eq!((p.refill.map(|r| r.amount), p.refilled_at), (Some(4), Some(at(5, 0))));
    let cleared = KeyPatch { rate_limits: Some(vec![]), refill: Some((None, None)), ..KeyPatch::default() };
    let c = s.update_key(a, &k.id, &cleared, vec![]).await.unwrap();
    assert_eq!((c.rate_limits.len(), c.refill, c.refilled_at), (0, None, None));
    let p = s.update_key(a, &k.id, &patch, vec![]).await.unwrap();

    let mut succ = key(a, None);
    succ.usage_limit = p.usage_limit;
    succ.rate_limits = p.rate_limits.clone();
    succ.refill = p.refill;
    succ.refilled_at = p.refilled_at;
    let (new, old) = s.roll_key(a, &k.id, succ, Some(now() + Duration::hours(1)), now(), vec![]).await.unwrap();
    assert_eq!((new.rate_limits.clone(), new.refill, new.refilled_at), (p.rate_limits, p.refill, p.refilled_at));
    assert_eq!(old.refill, None, "an old key kept through its overlap gets no credits back");
}

/// The operator's overrides: stored beside the plan, replaced whole, cleared when empty, and
/// seen by the hot path's lookup.
pub async fn account_limit_overrides_are_set_and_cleared(db: TestDb) {
    let s = &db.store;
    let o = register(s, "over@limits.example", None).await;
    let a = &o.account.id;
    assert!(o.account.overrides.is_empty());
    let over = LimitOverrides {
        rate_limits: Some(vec![named("minute", 1000)]),
        quota: Some(Quota { requests: 5000, period: QuotaPeriod::Month }),
        max_keys: Some(7),
    };
    let set = s.set_account_limits(a, Some("pro"), Some(&over), vec![]).await.unwrap();
    assert_eq!((set.plan.as_str(), &set.overrides), ("pro", &over));
    assert_eq!(s.account_by_id(a).await.unwrap().unwrap().overrides, over);
    // Only the plan: overrides stay.
    let plan_only = s.set_account_limits(a, Some("free"), None, vec![]).await.unwrap();
    assert_eq!((plan_only.plan.as_str(), &plan_only.overrides), ("free", &over));
    let k = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let auth = s.key_auth_by_digest(&k.digest).await.unwrap().unwrap();
    assert_eq!(auth.account.map(|acc| acc.overrides), Some(over));
    let cleared = s.set_account_limits(a, None, Some(&LimitOverrides::default()), vec![]).await.unwrap();
    assert_eq!((cleared.plan.as_str(), cleared.overrides.is_empty()), ("free", true));
    assert!(matches!(s.set_account_limits("acc_nope", None, None, vec![]).await, Err(StoreError::NotFound)));
}
