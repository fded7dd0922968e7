//! What the authenticator touches: usage limits and counters, and the one lookup on a miss.

use std::sync::Arc;

use keygate_core::Authority;
use keygate_core::id::{IdKind, new_id};
use keygate_store::*;

use crate::harness::*;

pub async fn consume_usage_is_exact_under_concurrency(db: TestDb) {
    let s = &db.store;
    let o = register(s, "use@keys.example", None).await;
    let mut nk = key(&o.account.id, None);
    nk.usage_limit = Some(10);
    let k = s.create_key(nk, None, vec![]).await.unwrap();
    let node2 = db.another_node().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = if i % 2 == 0 { Arc::clone(s) } else { Arc::clone(&node2) };
        let id = k.id.clone();
        tasks.push(tokio::spawn(async move { s.consume_usage(&id, 1, now()).await.expect("consume") }));
    }
    let mut remaining = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            remaining.push(r);
        }
    }
    remaining.sort();
    assert_eq!(remaining, (0..10).collect::<Vec<i64>>(), "exactly 10 spends, each seeing its own remainder");
    let after = s.key_by_handle(&o.account.id, &k.id).await.unwrap().unwrap();
    assert_eq!((after.usage_used, after.usage_remaining()), (10, Some(0)));

    // A spend larger than what is left spends nothing.
    let mut nk = key(&o.account.id, None);
    nk.usage_limit = Some(5);
    let k2 = s.create_key(nk, None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&k2.id, 3, now()).await.unwrap(), Some(2));
    assert_eq!(s.consume_usage(&k2.id, 3, now()).await.unwrap(), None);
    assert_eq!(s.consume_usage(&k2.id, 2, now()).await.unwrap(), Some(0));

    let unlimited = s.create_key(key(&o.account.id, None), None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&unlimited.id, 1, now()).await.unwrap(), Some(i64::MAX));
    assert!(matches!(s.consume_usage("key_nope", 1, now()).await, Err(StoreError::NotFound)));
}

pub async fn record_usage_from_two_nodes_adds_up(db: TestDb) {
    let s = &db.store;
    let o = register(s, "cnt@keys.example", None).await;
    let a = &o.account.id;
    let k1 = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let k2 = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let node2 = db.another_node().await;
    let t0 = now();
    let day1 = t0.date_naive();
    let day2 = day1.succ_opt().unwrap();
    let mut tasks = Vec::new();
    for i in 0..10i64 {
        let node = if i % 2 == 0 { Arc::clone(s) } else { Arc::clone(&node2) };
        let (id1, id2) = (k1.id.clone(), k2.id.clone());
        tasks.push(tokio::spawn(async move {
            let delta = |key_id: &str, day, n, at_ms: i64| UsageDelta {
                key_id: key_id.to_owned(),
                hour: midnight(day),
                outcomes: OutcomeCounts::of(Outcome::Valid, n),
                last_used_at: t0 + ms(at_ms),
                last_used_ip: Some(format!("198.51.100.{at_ms}")),
            };
            // Batches name both keys in different orders, plus an unknown key that is skipped.
            let batch = if i % 2 == 0 {
                vec![delta(&id1, day1, 1, i), delta(&id2, day1, 2, i), delta(&id1, day2, 3, i)]
            } else {
                vec![
                    delta(&id2, day1, 2, i),
                    delta("key_unknown", day1, 9, i),
                    delta(&id1, day1, 1, i),
                    delta(&id1, day2, 3, i),
                ]
            };
            node.record_usage(&batch).await.expect("record");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.record_usage(&[]).await.unwrap();
    let k1_after = s.key_by_handle(a, &k1.id).await.unwrap().unwrap();
    let k2_after = s.key_by_handle(a, &k2.id).await.unwrap().unwrap();
    assert_eq!((k1_after.request_count, k2_after.request_count), (40, 20));
    assert_eq!(k1_after.last_used_at, Some(t0 + ms(9)), "the newest use wins, whatever the order");
    assert_eq!(k1_after.last_used_ip.as_deref(), Some("198.51.100.9"));

    // An older delta arriving late adds its count but does not move last_used back.
    let late = UsageDelta {
        key_id: k1.id.clone(),
        hour: midnight(day1),
        outcomes: OutcomeCounts::of(Outcome::Valid, 5),
        last_used_at: t0,
        last_used_ip: Some("192.0.2.1".into()),
    };
    s.record_usage(&[late]).await.unwrap();
    let k1_after = s.key_by_handle(a, &k1.id).await.unwrap().unwrap();
    assert_eq!((k1_after.request_count, k1_after.last_used_at), (45, Some(t0 + ms(9))));
    assert_eq!(k1_after.last_used_ip.as_deref(), Some("198.51.100.9"));

    // The daily counts (the shape changed with usage by outcome; the numbers did not).
    let daily = s.key_usage(a, &k1.id, Granularity::Day, midnight(day1), midnight(day2)).await.unwrap();
    assert_eq!(
        daily,
        vec![
            UsageBucket { start: midnight(day1), outcomes: OutcomeCounts::of(Outcome::Valid, 15) },
            UsageBucket { start: midnight(day2), outcomes: OutcomeCounts::of(Outcome::Valid, 30) },
        ]
    );
    let day2_only = |id| s.key_usage(a, id, Granularity::Day, midnight(day2), midnight(day2));
    assert_eq!(day2_only(&k1.id).await.unwrap().len(), 1);
    assert!(day2_only(&k2.id).await.unwrap().is_empty());
}

fn midnight(day: chrono::NaiveDate) -> Time {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

pub async fn key_auth_joins(db: TestDb) {
    let s = &db.store;
    let o = register(s, "auth@keys.example", Some("keys.example")).await;
    let a = &o.account.id;
    let member = register(s, "member@else.example", None).await.user;
    s.add_member(a, &member.id, Authority::Administrator, now(), vec![]).await.unwrap();
    let role = Role {
        id: new_id(IdKind::Role),
        account_id: a.clone(),
        name: "intake".into(),
        permissions: vec!["leads:create".into()],
        created_at: now(),
        updated_at: now(),
    };
    s.create_role(role.clone(), vec![]).await.unwrap();
    let mut uk = key(a, Some(&member.id));
    uk.role_id = Some(role.id.clone());
    let uk = s.create_key(uk, None, vec![]).await.unwrap();
    let ok = s.create_key(key(a, None), None, vec![]).await.unwrap();

    let auth = s.key_auth_by_digest(&uk.digest).await.unwrap().expect("found");
    assert_eq!(auth.key, uk);
    assert_eq!(auth.role_permissions, Some(vec!["leads:create".to_owned()]));
    assert_eq!(auth.account, Some(o.account.clone()));
    assert_eq!(auth.member_authority, Some(Authority::Administrator));
    let org = s.key_auth_by_digest(&ok.digest).await.unwrap().expect("found");
    assert_eq!((org.role_permissions, org.member_authority), (None, None));
    assert_eq!(org.account, Some(o.account.clone()));
    assert_eq!(s.key_auth_by_digest(&digest()).await.unwrap(), None);

    // Demotion shows at once; a deleted role grants nothing; a removed member has no authority.
    s.change_member_authority(a, &member.id, Authority::Owner, Authority::User, vec![]).await.unwrap();
    let auth = s.key_auth_by_digest(&uk.digest).await.unwrap().unwrap();
    assert_eq!(auth.member_authority, Some(Authority::User));
    s.delete_role(a, &role.id, vec![]).await.unwrap();
    let auth = s.key_auth_by_digest(&uk.digest).await.unwrap().unwrap();
    assert_eq!(auth.role_permissions, Some(vec![]));
    s.remove_member(a, &member.id, Authority::Owner, false, vec![]).await.unwrap();
    let auth = s.key_auth_by_digest(&uk.digest).await.unwrap().unwrap();
    assert_eq!(auth.member_authority, None);

    // The account goes: the key is still found, without its account.
    s.delete_account(a, now(), vec![]).await.unwrap();
    let auth = s.key_auth_by_digest(&ok.digest).await.unwrap().unwrap();
    assert_eq!(auth.account, None);
}
