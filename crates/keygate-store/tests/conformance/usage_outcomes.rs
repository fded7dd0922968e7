//! Usage by outcome: what nodes flush comes back per key (hourly and daily) and per account
//! (by day and by key), kept apart per account; old hours go in bounded batches.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use keygate_store::*;

use crate::harness::*;

fn at(day: u32, hour: u32) -> Time {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).single().unwrap()
}

fn counts(pairs: &[(Outcome, i64)]) -> OutcomeCounts {
    let mut c = OutcomeCounts::default();
    for (o, n) in pairs {
        c.add(*o, *n);
    }
    c
}

fn delta(key_id: &str, hour: Time, pairs: &[(Outcome, i64)]) -> UsageDelta {
    UsageDelta {
        key_id: key_id.to_owned(),
        hour,
        outcomes: counts(pairs),
        last_used_at: hour + Duration::minutes(30),
        last_used_ip: Some("192.0.2.7".into()),
    }
}

pub async fn usage_is_counted_by_outcome_per_key_and_account(db: TestDb) {
    use Outcome::*;
    let s = &db.store;
    let a = register(s, "outcomes@keys.example", None).await.account.id;
    let b = register(s, "other@keys.example", None).await.account.id;
    let k1 = s.create_key(key(&a, None), None, vec![]).await.unwrap();
    let mut named = key(&a, None);
    named.name = "billing, \"prod\"".into();
    let k2 = s.create_key(named, None, vec![]).await.unwrap();
    let kb = s.create_key(key(&b, None), None, vec![]).await.unwrap();

    // Two nodes flush at once; one batch names a key that does not exist (skipped).
    let first = vec![
        delta(&k1.id, at(10, 10), &[(Valid, 3), (RateLimited, 2)]),
        delta(&k2.id, at(10, 10), &[(UsageExceeded, 5)]),
        delta("key_unknown", at(10, 10), &[(Valid, 9)]),
    ];
    let second = vec![
        delta(&kb.id, at(10, 10), &[(Valid, 100)]),
        delta(&k1.id, at(10, 11), &[(Valid, 1), (Revoked, 4)]),
        delta(&k1.id, at(11, 5), &[(Valid, 7)]),
    ];
    let node2 = db.another_node().await;
    let (s1, s2) = (Arc::clone(s), Arc::clone(&node2));
    let t1 = tokio::spawn(async move { s1.record_usage(&first).await });
    let t2 = tokio::spawn(async move { s2.record_usage(&second).await });
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();

    let k1_after = s.key_by_handle(&a, &k1.id).await.unwrap().unwrap();
    assert_eq!((k1_after.request_count, k1_after.success_count), (17, 11), "every outcome counts; VALID succeeds");
    assert_eq!(k1_after.last_used_at, Some(at(11, 5) + Duration::minutes(30)));
    let k2_after = s.key_by_handle(&a, &k2.id).await.unwrap().unwrap();
    assert_eq!((k2_after.request_count, k2_after.success_count), (5, 0));

    let hours = s.key_usage(&a, &k1.id, Granularity::Hour, at(10, 10), at(10, 11)).await.unwrap();
    assert_eq!(
        hours,
        vec![
            UsageBucket { start: at(10, 10), outcomes: counts(&[(Valid, 3), (RateLimited, 2)]) },
            UsageBucket { start: at(10, 11), outcomes: counts(&[(Valid, 1), (Revoked, 4)]) },
        ]
    );
    let days = s.key_usage(&a, &k1.id, Granularity::Day, at(10, 0), at(11, 0)).await.unwrap();
    assert_eq!(
        days,
        vec![
            UsageBucket { start: at(10, 0), outcomes: counts(&[(Valid, 4), (RateLimited, 2), (Revoked, 4)]) },
            UsageBucket { start: at(11, 0), outcomes: counts(&[(Valid, 7)]) },
        ]
    );
    assert!(s.key_usage(&b, &k1.id, Granularity::Day, at(10, 0), at(11, 0)).await.unwrap().is_empty());
    assert!(s.key_usage(&b, &k1.id, Granularity::Hour, at(10, 0), at(11, 0)).await.unwrap().is_empty());

    let account_days = s.account_usage_by_day(&a, at(10, 0), at(11, 0)).await.unwrap();
    assert_eq!(
        account_days,
        vec![
            UsageBucket {
                start: at(10, 0),
                outcomes: counts(&[(Valid, 4), (RateLimited, 2), (Revoked, 4), (UsageExceeded, 5)]),
            },
            UsageBucket { start: at(11, 0), outcomes: counts(&[(Valid, 7)]) },
        ]
    );
    assert_eq!(s.account_usage_by_day(&a, at(11, 0), at(11, 0)).await.unwrap().len(), 1);
    let b_days = s.account_usage_by_day(&b, at(1, 0), at(31, 0)).await.unwrap();
    assert_eq!(b_days, vec![UsageBucket { start: at(10, 0), outcomes: counts(&[(Valid, 100)]) }]);

    let mut expected = vec![
        KeyUsageTotal {
            key_id: k1.id.clone(),
            name: k1.name.clone(),
            outcomes: counts(&[(Valid, 11), (RateLimited, 2), (Revoked, 4)]),
        },
        KeyUsageTotal { key_id: k2.id.clone(), name: k2.name.clone(), outcomes: counts(&[(UsageExceeded, 5)]) },
    ];
    expected.sort_by(|x, y| x.key_id.cmp(&y.key_id));
    assert_eq!(s.account_usage_by_key(&a, at(10, 0), at(11, 0)).await.unwrap(), expected);
    let later = s.account_usage_by_key(&a, at(11, 0), at(11, 0)).await.unwrap();
    assert_eq!(
        later,
        vec![KeyUsageTotal { key_id: k1.id.clone(), name: k1.name.clone(), outcomes: counts(&[(Valid, 7)]) }]
    );
    assert!(s.account_usage_by_key(&a, at(12, 0), at(20, 0)).await.unwrap().is_empty());
}

pub async fn old_usage_hours_are_pruned_in_bounded_batches(db: TestDb) {
    use Outcome::*;
    let s = &db.store;
    let a = register(s, "prune@keys.example", None).await.account.id;
    let k1 = s.create_key(key(&a, None), None, vec![]).await.unwrap();
    let k2 = s.create_key(key(&a, None), None, vec![]).await.unwrap();
    let old = at(1, 3);
    let recent = at(9, 3);
    let three = [(Valid, 1), (RateLimited, 1), (Expired, 1)];
    s.record_usage(&[delta(&k1.id, old, &three), delta(&k2.id, old, &three), delta(&k1.id, recent, &[(Valid, 2)])])
        .await
        .unwrap();
    let horizon = at(2, 0);
    assert_eq!(s.prune_usage_hours(horizon, 4).await.unwrap(), 4);
    assert_eq!(s.prune_usage_hours(horizon, 4).await.unwrap(), 2);
    assert_eq!(s.prune_usage_hours(horizon, 4).await.unwrap(), 0);
    assert!(s.key_usage(&a, &k1.id, Granularity::Hour, at(1, 0), at(1, 23)).await.unwrap().is_empty());
    let kept = s.key_usage(&a, &k1.id, Granularity::Hour, at(9, 0), at(9, 23)).await.unwrap();
    assert_eq!(kept, vec![UsageBucket { start: recent, outcomes: counts(&[(Valid, 2)]) }]);
    // Days are not pruned.
    let days = s.key_usage(&a, &k1.id, Granularity::Day, at(1, 0), at(9, 0)).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].outcomes, counts(&three));
}
