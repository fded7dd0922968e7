//! API keys: minting, listing, status, changes and the plan's key limit (usage: `usage.rs`).

use std::sync::Arc;

use chrono::Duration;
use keygate_core::{Authority, RateLimit};
use keygate_store::*;
use serde_json::json;

use crate::harness::*;

pub async fn keys_create_look_up_and_page(db: TestDb) {
    let s = &db.store;
    let o = register(s, "k@keys.example", None).await;
    let other = register(s, "x@keys.example", None).await;
    let a = &o.account.id;

    let mut nk = key(a, Some(&o.user.id));
    nk.scopes = vec!["companies:read".into(), "lists:*".into()];
    nk.rate_limit = Some(RateLimit { limit: 100, window_seconds: 60, burst: Some(10) });
    nk.ip_allowlist = vec!["10.0.0.0/8".into()];
    nk.metadata = json!({"team": "growth", "n": 3});
    nk.usage_limit = Some(1000);
    nk.expires_at = Some(now() + Duration::days(30));
    nk.authority = Authority::Administrator;
    let created = s.create_key(nk.clone(), None, vec![audit(a, "key.created", &o.user.id)]).await.unwrap();
    let expected = ApiKey {
        id: nk.id.clone(),
        digest: nk.digest.clone(),
        key_part: nk.key_part.clone(),
        class: KeyClass::User,
        name: nk.name.clone(),
        account_id: a.clone(),
        user_id: Some(o.user.id.clone()),
        authority: Authority::Administrator,
        scopes: nk.scopes.clone(),
        role_id: None,
        created_at: nk.created_at,
        created_by: nk.created_by.clone(),
        expires_at: nk.expires_at,
        starts_at: None,
        staged: false,
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
        request_count: 0,
        success_count: 0,
        usage_limit: Some(1000),
        usage_used: 0,
        refill: None,
        refilled_at: None,
        rate_limit: nk.rate_limit,
        rate_limits: vec![],
        ip_allowlist: nk.ip_allowlist.clone(),
        metadata: nk.metadata.clone(),
        rolled_to: None,
    };
    assert_eq!(created, expected);
    assert_eq!(s.key_by_handle(a, &nk.id).await.unwrap(), Some(expected.clone()));
    assert_eq!(s.key_by_handle(a, &nk.key_part).await.unwrap(), Some(expected.clone()));
    assert_eq!(s.key_by_handle(&other.account.id, &nk.id).await.unwrap(), None, "another account's key");
    assert_eq!(s.key_by_handle(a, "key_nope").await.unwrap(), None);

    // key_part names one key.
    let mut dup = key(a, None);
    dup.key_part = nk.key_part.clone();
    let err = s.create_key(dup, None, vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyPart))), "{err:?}");

    // Pages newest first, without gaps; class and user filters.
    let mut ids = vec![created.id.clone()];
    for i in 0..6 {
        let k = if i % 2 == 0 { key(a, None) } else { key(a, Some(&o.user.id)) };
        ids.push(s.create_key(k, None, vec![]).await.unwrap().id);
    }
    s.create_key(key(&other.account.id, None), None, vec![]).await.unwrap();
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_keys(a, &KeyFilter::default(), now(), &page(3, cursor)).await.unwrap();
        seen.extend(p.items.iter().map(|k| k.id.clone()));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let orgs = KeyFilter { class: Some(KeyClass::Org), ..Default::default() };
    let listed = s.list_keys(a, &orgs, now(), &page(100, None)).await.unwrap().items;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|k| k.class == KeyClass::Org));
    let mine = KeyFilter { user_id: Some(o.user.id.clone()), ..Default::default() };
    let listed = s.list_keys(a, &mine, now(), &page(100, None)).await.unwrap().items;
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|k| k.user_id.as_deref() == Some(o.user.id.as_str())));
    let exact = s.list_keys(a, &KeyFilter::default(), now(), &page(7, None)).await.unwrap();
    assert_eq!((exact.items.len(), exact.next_cursor), (7, None), "no cursor when nothing follows");
}

/// One way to shape a key for the status test.
type Variant = Box<dyn Fn(&mut NewKey) + Send + Sync>;

pub async fn key_status_filters_follow_api_key_status(db: TestDb) {
    let s = &db.store;
    let o = register(s, "st@keys.example", None).await;
    let a = &o.account.id;
    let t = now();
    let mut made = Vec::new();
    let variants: Vec<Variant> = vec![
        Box::new(|_| {}),
        Box::new(move |k| k.expires_at = Some(t + Duration::hours(1))),
        Box::new(move |k| k.expires_at = Some(t - Duration::hours(1))),
        Box::new(move |k| k.expires_at = Some(t)), // expires_at <= now: expired
        Box::new(move |k| k.starts_at = Some(t + Duration::hours(1))),
        Box::new(move |k| k.starts_at = Some(t)), // started exactly now: active
        Box::new(move |k| {
            k.staged = true;
            k.expires_at = Some(t - Duration::hours(1));
        }),
        Box::new(move |k| {
            k.starts_at = Some(t + Duration::hours(1));
            k.expires_at = Some(t - Duration::hours(1));
        }),
    ];
    for v in &variants {
        let mut k = key(a, None);
        v(&mut k);
        made.push(s.create_key(k, None, vec![]).await.unwrap());
    }
    let revoked = s.create_key(key(a, None), None, vec![]).await.unwrap();
    made.push(s.revoke_key(a, &revoked.id, t, vec![]).await.unwrap());

    let mut total = 0;
    for status in [KeyStatus::Active, KeyStatus::Inactive, KeyStatus::Expired, KeyStatus::Revoked] {
        let filter = KeyFilter { status: Some(status), ..Default::default() };
        let listed = s.list_keys(a, &filter, t, &page(100, None)).await.unwrap().items;
        let mut want: Vec<_> = made.iter().filter(|k| k.status(t) == status).map(|k| k.id.clone()).collect();
        want.sort();
        want.reverse();
        assert_eq!(listed.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), want, "{status:?}");
        assert!(!want.is_empty(), "{status:?} is exercised");
        total += want.len();
    }
    assert_eq!(total, made.len());
}

pub async fn key_update_revoke_roll(db: TestDb) {
    let s = &db.store;
    let o = register(s, "u@roll.example", None).await;
    let other = register(s, "v@roll.example", None).await;
    let a = &o.account.id;
    let mut nk = key(a, Some(&o.user.id));
    nk.role_id = Some("rol_x".into());
    nk.rate_limit = Some(RateLimit { limit: 5, window_seconds: 1, burst: None });
    nk.usage_limit = Some(10);
    nk.expires_at = Some(now() + Duration::days(1));
    let k = s.create_key(nk, None, vec![]).await.unwrap();

    // Some(None) clears, None leaves alone.
    let patch = KeyPatch {
        name: Some("renamed".into()),
        expires_at: Some(None),
        role_id: Some(None),
        rate_limit: Some(None),
        usage_limit: Some(None),
        scopes: Some(vec!["a:read".into()]),
        metadata: Some(json!({"m": true})),
        ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
        staged: Some(true),
        starts_at: Some(Some(now())),
        rate_limits: None,
        refill: None,
    };
    let u = s.update_key(a, &k.id, &patch, vec![audit(a, "key.updated", &o.user.id)]).await.unwrap();
    assert_eq!((u.name.as_str(), u.expires_at, u.role_id.as_deref()), ("renamed", None, None));
    assert_eq!((u.rate_limit, u.usage_limit, u.staged), (None, None, true));
    assert_eq!((u.scopes.clone(), u.metadata.clone()), (vec!["a:read".to_owned()], json!({"m": true})));
    assert_eq!(u.ip_allowlist, vec!["192.0.2.0/24".to_owned()]);
    assert_eq!(u.starts_at, patch.starts_at.flatten());
    let same = s.update_key(a, &k.id, &KeyPatch::default(), vec![]).await.unwrap();
    assert_eq!(same, u);
    let err = s.update_key(&other.account.id, &k.id, &patch, vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "another account's key");
    assert!(matches!(s.update_key(a, "key_nope", &patch, vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.revoke_key(&other.account.id, &k.id, now(), vec![]).await, Err(StoreError::NotFound)));

    // Revoke keeps the first time; a revoked key cannot be changed or rolled.
    let t1 = now();
    let r = s.revoke_key(a, &k.id, t1, vec![audit(a, "key.revoked", &o.user.id)]).await.unwrap();
    assert_eq!(r.revoked_at, Some(t1));
    let r2 = s.revoke_key(a, &k.id, t1 + ms(500), vec![]).await.unwrap();
    assert_eq!(r2.revoked_at, Some(t1));
    let err = s.update_key(a, &k.id, &patch, vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyRevoked))), "{err:?}");
    let err = s.roll_key(a, &k.id, key(a, Some(&o.user.id)), None, now(), vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyRevoked))), "{err:?}");

    // Roll without grace: the old key is revoked at `at`.
    let old = s.create_key(key(a, Some(&o.user.id)), None, vec![]).await.unwrap();
    let at = now();
    let succ = key(a, Some(&o.user.id));
    let (new, old_after) =
        s.roll_key(a, &old.id, succ.clone(), None, at, vec![audit(a, "key.rolled", &o.user.id)]).await.unwrap();
    assert_eq!((new.id.as_str(), new.revoked_at, new.rolled_to.as_deref()), (succ.id.as_str(), None, None));
    assert_eq!((old_after.revoked_at, old_after.expires_at), (Some(at), None));
    assert_eq!(old_after.rolled_to.as_deref(), Some(succ.id.as_str()), "the old key names its successor");

    // Roll with grace: the old key expires at the earlier of its expiry and the grace end.
    let mut with_expiry = key(a, None);
    with_expiry.expires_at = Some(at + Duration::hours(1));
    let old = s.create_key(with_expiry, None, vec![]).await.unwrap();
    let (_, old_after) = s.roll_key(a, &old.id, key(a, None), Some(at + Duration::days(7)), at, vec![]).await.unwrap();
    assert_eq!((old_after.revoked_at, old_after.expires_at), (None, Some(at + Duration::hours(1))));
    let old = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let (_, old_after) =
        s.roll_key(a, &old.id, key(a, None), Some(at + Duration::minutes(5)), at, vec![]).await.unwrap();
    assert_eq!((old_after.revoked_at, old_after.expires_at), (None, Some(at + Duration::minutes(5))));

    // A failed roll changes nothing: no successor, the old key untouched, no audit entry.
    let old = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let old_after = old.clone();
    let mut ghost = key(a, None);
    ghost.key_part = k.key_part.clone();
    let err = s.roll_key(a, &old.id, ghost.clone(), None, at, vec![audit(a, "key.rolled", &o.user.id)]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyPart))), "{err:?}");
    assert_eq!(s.key_by_handle(a, &ghost.id).await.unwrap(), None);
    assert_eq!(s.key_by_handle(a, &old.id).await.unwrap().unwrap(), old_after);
    let err = s.roll_key(&other.account.id, &old.id, key(&other.account.id, None), None, at, vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "another account's key");
    assert_eq!(verify_chain(s, a).await, 4);
}

pub async fn key_limit(db: TestDb) {
    let s = &db.store;
    let o = register(s, "lim@keys.example", None).await;
    let a = &o.account.id;
    let k1 = s.create_key(key(a, None), Some(2), vec![]).await.unwrap();
    s.create_key(key(a, None), Some(2), vec![]).await.unwrap();
    let audited = vec![audit(a, "key.created", &o.user.id)];
    assert!(matches!(s.create_key(key(a, None), Some(2), audited).await, Err(StoreError::KeyLimitReached)));
    assert_eq!(verify_chain(s, a).await, 1, "a refused mint writes no audit entry");
    s.create_key(key(a, None), None, vec![]).await.unwrap();
    assert!(matches!(s.create_key(key(a, None), Some(3), vec![]).await, Err(StoreError::KeyLimitReached)));

    // Revoked and expired keys do not count; future-dated and staged ones do.
    s.revoke_key(a, &k1.id, now(), vec![]).await.unwrap();
    let mut expired = key(a, None);
    expired.expires_at = Some(now() - Duration::hours(1));
    s.create_key(expired, None, vec![]).await.unwrap();
    s.create_key(key(a, None), Some(3), vec![]).await.unwrap();
    assert!(matches!(s.create_key(key(a, None), Some(3), vec![]).await, Err(StoreError::KeyLimitReached)));
}

pub async fn key_limit_holds_under_concurrency(db: TestDb) {
    let o = register(&db.store, "race@keys.example", None).await;
    let node2 = db.another_node().await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = if i % 2 == 0 { Arc::clone(&db.store) } else { Arc::clone(&node2) };
        let a = o.account.id.clone();
        tasks.push(tokio::spawn(async move { s.create_key(key(&a, None), Some(5), vec![]).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::KeyLimitReached) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
}

/// Issue 15, finding 11: a rolled key keeps working through its overlap, yet it is rolled
/// once. Rolled again (a reloaded page, a retry) it answers `Conflict::KeyRolled` and mints
/// nothing; of concurrent rolls from two nodes exactly one mints a successor.
pub async fn a_key_is_rolled_once_even_under_concurrency(db: TestDb) {
    let s = &db.store;
    let o = register(s, "once@roll.example", None).await;
    let a = &o.account.id;
    let at = now();
    let old = s.create_key(key(a, None), None, vec![]).await.unwrap();
    let first = key(a, None);
    let (new, old_after) =
        s.roll_key(a, &old.id, first.clone(), Some(at + Duration::hours(1)), at, vec![]).await.unwrap();
    assert_eq!((old_after.revoked_at, old_after.rolled_to.as_deref()), (None, Some(new.id.as_str())));
    let again = key(a, None);
    let audited = vec![audit(a, "key.rolled", &o.user.id)];
    let err = s.roll_key(a, &old.id, again.clone(), Some(at + Duration::hours(1)), at, audited).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyRolled))), "{err:?}");
    assert_eq!(s.key_by_handle(a, &again.id).await.unwrap(), None, "no second successor");
    assert_eq!(s.key_by_handle(a, &old.id).await.unwrap().unwrap(), old_after, "the old key is untouched");
    let err = s.roll_key(a, &old.id, key(a, None), None, at, vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::KeyRolled))), "revoking through a second roll: {err:?}");
    assert_eq!(verify_chain(s, a).await, 1, "the refused roll wrote no audit entry");
    // The successor itself may be rolled (once).
    s.roll_key(a, &new.id, key(a, None), None, at, vec![]).await.unwrap();

    let node2 = db.another_node().await;
    for _ in 0..3 {
        let target = s.create_key(key(a, None), None, vec![]).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let st = if i % 2 == 0 { Arc::clone(&db.store) } else { Arc::clone(&node2) };
            let (a, id) = (a.clone(), target.id.clone());
            tasks.push(tokio::spawn(async move {
                let succ = key(&a, None);
                st.roll_key(&a, &id, succ, Some(now() + Duration::hours(1)), now(), vec![]).await
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok((n, _)) => won.push(n.id),
                Err(StoreError::Conflict(Conflict::KeyRolled)) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one concurrent roll wins");
        let stored = s.key_by_handle(a, &target.id).await.unwrap().unwrap();
        assert_eq!(stored.rolled_to.as_ref(), won.first());
    }
}

/// Issue 15, finding 12: rolling is no way to refill a usage limit. The successor carries on
/// from the credits spent; an old key kept through an overlap hands its remaining ones over.
pub async fn a_roll_hands_over_credits_and_never_refills_them(db: TestDb) {
    let s = &db.store;
    let o = register(s, "credits@roll.example", None).await;
    let a = &o.account.id;
    let at = now();
    let mut limited = key(a, None);
    limited.usage_limit = Some(3);
    let old = s.create_key(limited, None, vec![]).await.unwrap();
    assert_eq!(s.consume_usage(&old.id, 2, now()).await.unwrap(), Some(1));
    let mut succ = key(a, None);
    succ.usage_limit = old.usage_limit;
    let (new, old_after) = s.roll_key(a, &old.id, succ, Some(at + Duration::hours(1)), at, vec![]).await.unwrap();
    assert_eq!((new.usage_limit, new.usage_used, new.usage_remaining()), (Some(3), 2, Some(1)));
    assert_eq!(old_after.usage_remaining(), Some(0), "the overlap spends no credits twice");
    assert_eq!(s.consume_usage(&old.id, 1, now()).await.unwrap(), None);
    assert_eq!(s.consume_usage(&new.id, 1, now()).await.unwrap(), Some(0));
    assert_eq!(s.consume_usage(&new.id, 1, now()).await.unwrap(), None);
    // Without an overlap the old key is revoked and keeps its own count.
    let mut limited = key(a, None);
    limited.usage_limit = Some(5);
    let old = s.create_key(limited, None, vec![]).await.unwrap();
    s.consume_usage(&old.id, 1, now()).await.unwrap();
    let mut succ = key(a, None);
    succ.usage_limit = old.usage_limit;
    let (new, old_after) = s.roll_key(a, &old.id, succ, None, at, vec![]).await.unwrap();
    assert_eq!((new.usage_used, old_after.usage_used), (1, 1));
}
