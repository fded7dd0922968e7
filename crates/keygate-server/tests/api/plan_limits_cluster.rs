//! Plan limits are exact across nodes (docs/api.md §7 "Plan limits"): two nodes on one
//! PostgreSQL database and one Redis, three keys of one account, concurrent clients on both
//! nodes. Needs `KEYGATE_TEST_POSTGRES_URL` and `KEYGATE_TEST_REDIS_URL`; skips loudly without.

use keygate_core::quota::{Quota, QuotaPeriod};
use keygate_core::ratelimit::NamedRateLimit;
use keygate_server::config::{FailurePolicy, PlanSettings};
use serde_json::json;

use crate::cluster::{drop_db, env, fresh_db, node_with};
use crate::helpers::*;

/// Sends `total` verifies, spread over both nodes and every key, 16 at a time; answers how
/// many were VALID and the other codes seen.
async fn hammer(a: &TestApp, b: &TestApp, keys: &[String], total: usize) -> (usize, Vec<String>) {
    let mut valid = 0;
    let mut others = Vec::new();
    for chunk in (0..total).collect::<Vec<_>>().chunks(16) {
        let calls = chunk.iter().map(|&i| {
            let node = if i % 2 == 0 { a } else { b };
            let key = &keys[i % keys.len()];
            async move { node.verify(key, json!({})).await }
        });
        for answer in futures::future::join_all(calls).await {
            match answer["code"].as_str() {
                Some("VALID") => valid += 1,
                other => others.push(other.unwrap_or("?").to_owned()),
            }
        }
    }
    (valid, others)
}

async fn two_nodes_with(env: &crate::cluster::Env, plan: PlanSettings) -> (crate::cluster::TestDb, TestApp, TestApp) {
    let db = fresh_db(&env.postgres).await;
    let configure = |plan: PlanSettings| {
        move |s: &mut keygate_server::Settings| {
            s.plans.insert("metered".into(), plan);
            s.signup.default_plan = "metered".into();
        }
    };
    let a = node_with(&db, &env.redis, FailurePolicy::FailClosed, configure(plan.clone())).await;
    let b = node_with(&db, &env.redis, FailurePolicy::FailClosed, configure(plan)).await;
    (db, a, b)
}

#[tokio::test]
async fn an_account_limit_lets_exactly_its_allowance_through_two_nodes_and_three_keys() {
    let Some(env) = env("account limit across nodes") else { return };
    // 30 an hour: one unit refills every 2 minutes, so nothing refills during the test.
    let limit = NamedRateLimit { name: "hour".into(), limit: 30, window_seconds: 3600, burst: None };
    let (db, a, b) = two_nodes_with(&env, PlanSettings { rate_limits: vec![limit], ..PlanSettings::default() }).await;
    let u = a.register().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(key_of(&a.mint(&u.token, &u.account_id, json!({})).await));
    }
    let (valid, others) = hammer(&a, &b, &keys, 90).await;
    assert_eq!(valid, 30, "exactly the account's 30 across both nodes and three keys");
    assert!(others.iter().all(|c| c == "RATE_LIMITED"), "{others:?}");
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}

#[tokio::test]
async fn a_quota_lets_exactly_its_requests_through_two_nodes_and_three_keys() {
    let Some(env) = env("quota across nodes") else { return };
    let plan =
        PlanSettings { quota: Some(Quota { requests: 25, period: QuotaPeriod::Day }), ..PlanSettings::default() };
    let (db, a, b) = two_nodes_with(&env, plan).await;
    let u = a.register().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(key_of(&a.mint(&u.token, &u.account_id, json!({})).await));
    }
    let (valid, others) = hammer(&a, &b, &keys, 80).await;
    assert_eq!(valid, 25, "exactly the quota across both nodes and three keys");
    assert!(others.iter().all(|c| c == "QUOTA_EXCEEDED"), "{others:?}");
    let last = b.verify(&keys[0], json!({})).await;
    assert_eq!(last["quota"]["remaining"], 0, "{last}");
    a.stop().await;
    b.stop().await;
    drop_db(db).await;
}
