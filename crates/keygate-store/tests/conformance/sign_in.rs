//! Signing in: sessions, password changes and the login throttle's counters.

use std::sync::Arc;

use keygate_core::id::{IdKind, new_id};
use keygate_store::*;

use crate::harness::*;

pub async fn sessions_and_password_change(db: TestDb) {
    let s = &db.store;
    let o = register(s, "sam@sessions.example", None).await;
    let mk = |created: Time| Session {
        id: new_id(IdKind::Session),
        user_id: o.user.id.clone(),
        digest: digest(),
        created_at: created,
        last_seen_at: created,
        expires_at: created + chrono::Duration::days(30),
        revoked_at: None,
    };
    let t0 = now();
    let s1 = mk(t0);
    let s2 = mk(t0);
    s.create_session(s1.clone(), vec![audit(&o.account.id, "user.login", &o.user.id)]).await.unwrap();
    s.create_session(s2.clone(), vec![]).await.unwrap();
    let found = s.session_by_digest(&s1.digest).await.unwrap().expect("session");
    assert_eq!(found.session, s1);
    assert_eq!(found.user, o.user);
    assert_eq!(s.session_by_digest(&digest()).await.unwrap(), None);

    // last_seen_at only moves forward.
    s.touch_session(&s1.id, t0 + ms(100)).await.unwrap();
    s.touch_session(&s1.id, t0 + ms(50)).await.unwrap();
    let seen = s.session_by_digest(&s1.digest).await.unwrap().unwrap().session.last_seen_at;
    assert_eq!(seen, t0 + ms(100));

    // Revocation keeps its first time; a revoked session is still found (the caller says 401).
    s.revoke_session(&s2.id, t0 + ms(10)).await.unwrap();
    s.revoke_session(&s2.id, t0 + ms(20)).await.unwrap();
    let revoked = s.session_by_digest(&s2.digest).await.unwrap().unwrap().session;
    assert_eq!(revoked.revoked_at, Some(t0 + ms(10)));

    // A password change ends every other session and starts the new one, in one go.
    let fresh = mk(t0 + ms(200));
    let audit_entry = vec![audit(&o.account.id, "user.password_changed", &o.user.id)];
    s.change_password(&o.user.id, "$argon2id$new", fresh.clone(), audit_entry).await.unwrap();
    let s1_after = s.session_by_digest(&s1.digest).await.unwrap().unwrap().session;
    assert_eq!(s1_after.revoked_at, Some(fresh.created_at));
    let s2_after = s.session_by_digest(&s2.digest).await.unwrap().unwrap().session;
    assert_eq!(s2_after.revoked_at, Some(t0 + ms(10)), "an earlier revocation is kept");
    let fresh_found = s.session_by_digest(&fresh.digest).await.unwrap().unwrap();
    assert_eq!(fresh_found.session.revoked_at, None);
    assert_eq!(fresh_found.user.password_hash, "$argon2id$new");
    let err = s.change_password("usr_nope", "h", mk(t0), vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)));
    assert_eq!(verify_chain(s, &o.account.id).await, 3);
}

pub async fn login_throttle_counters(db: TestDb) {
    let s = &db.store;
    let t0 = chrono::Utc::now();
    let at = move |secs: i64| t0 + chrono::Duration::seconds(secs);
    assert_eq!(s.login_failures("e1", "10.0.0.1").await.unwrap(), LoginFailures::default());

    s.record_login_failure("e1", "10.0.0.1", at(1)).await.unwrap();
    s.record_login_failure("e1", "10.0.0.2", at(2)).await.unwrap();
    let f = s.login_failures("e1", "10.0.0.1").await.unwrap();
    assert_eq!(f.email.map(|r| r.count), Some(2), "the email's run counts every address");
    assert_eq!(f.ip.map(|r| r.count), Some(1));
    assert_eq!(f.email.unwrap().last_at.timestamp_millis(), at(2).timestamp_millis());
    assert!(!f.known_pair);
    // An email key and an address that look alike are different subjects.
    assert_eq!(s.login_failures("10.0.0.1", "e1").await.unwrap(), LoginFailures::default());

    // Failures recorded at once (by several nodes) all count.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(
                async move { s.record_login_failure("e2", &format!("10.0.1.{}", i % 2), at(3)).await.unwrap() },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let f = s.login_failures("e2", "10.0.1.0").await.unwrap();
    assert_eq!((f.email.unwrap().count, f.ip.unwrap().count), (20, 10));

    // A success ends the email's run (not the address's) and makes the pair known.
    s.record_login_success("e1", "10.0.0.1", at(4)).await.unwrap();
    let f = s.login_failures("e1", "10.0.0.1").await.unwrap();
    assert_eq!(f.email, None);
    assert_eq!(f.ip.map(|r| r.count), Some(1));
    assert!(f.known_pair);
    assert!(!s.login_failures("e1", "10.0.0.2").await.unwrap().known_pair, "known to that address only");
    s.record_login_success("e1", "10.0.0.1", at(5)).await.unwrap(); // again: no conflict

    // Pruning forgets idle runs and stale pairs only.
    s.record_login_failure("e3", "10.0.0.3", at(100)).await.unwrap();
    let gone = s.prune_login_failures(at(50), at(5)).await.unwrap();
    assert_eq!(
        gone, 5,
        "e2 and the addresses 10.0.0.1, 10.0.0.2, 10.0.1.0, 10.0.1.1 are idle; the pair, seen at 5, stays"
    );
    assert!(s.login_failures("e2", "10.0.1.0").await.unwrap().email.is_none());
    assert_eq!(s.login_failures("e3", "10.0.0.3").await.unwrap().email.map(|r| r.count), Some(1));
    assert!(s.login_failures("e1", "10.0.0.1").await.unwrap().known_pair);
    s.prune_login_failures(at(50), at(6)).await.unwrap();
    assert!(!s.login_failures("e1", "10.0.0.1").await.unwrap().known_pair);
}
