//! Users, accounts, members and data roles (sessions: `sign_in.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;

use keygate_core::Authority;
use keygate_core::authority::MemberRuleViolation;
use keygate_core::id::{IdKind, new_id};
use keygate_store::*;

use crate::harness::*;

pub async fn register_and_look_up(db: TestDb) {
    let s = &db.store;
    let o = register(s, "ada@example.com", Some("example.com")).await;

    assert_eq!(s.user_by_email("ada@example.com").await.unwrap(), Some(o.user.clone()));
    assert_eq!(s.user_by_email("ADA@Example.com").await.unwrap(), Some(o.user.clone()), "case-insensitive");
    assert_eq!(s.user_by_id(&o.user.id).await.unwrap(), Some(o.user.clone()));
    assert_eq!(s.user_by_id("usr_nope").await.unwrap(), None);
    assert_eq!(s.account_by_id(&o.account.id).await.unwrap(), Some(o.account.clone()));

    let m = s.membership(&o.account.id, &o.user.id).await.unwrap().expect("membership");
    assert_eq!(m.authority, Authority::Owner);
    let ums = s.user_memberships(&o.user.id).await.unwrap();
    assert_eq!(ums.len(), 1);
    assert_eq!(
        (ums[0].account_id.as_str(), ums[0].account_name.as_str()),
        (o.account.id.as_str(), o.account.name.as_str())
    );

    // A second account: memberships are listed oldest first.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let second = account("second", None);
    s.create_account(second.clone(), &o.user.id, vec![audit(&second.id, "account.created", &o.user.id)]).await.unwrap();
    let ids: Vec<_> = s.user_memberships(&o.user.id).await.unwrap().into_iter().map(|m| m.account_id).collect();
    assert_eq!(ids, vec![o.account.id.clone(), second.id.clone()]);

    let renamed = s.update_user_name(&o.user.id, "Ada L.", vec![]).await.unwrap();
    assert_eq!(renamed.name, "Ada L.");
    assert!(matches!(s.update_user_name("usr_nope", "x", vec![]).await, Err(StoreError::NotFound)));

    // The registration was audited in the new account.
    let log = s.list_audit(&o.account.id, &AuditFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].action, "user.registered");
    s.ping().await.unwrap();
}

pub async fn email_and_domain_conflicts(db: TestDb) {
    let s = &db.store;
    let first = register(s, "grace@acme.io", Some("acme.io")).await;

    // Same email in another case: refused, and nothing of the attempt is left behind.
    let dup = user("GRACE@ACME.IO");
    let acc = account("other", None);
    let err = s.register(dup.clone(), acc.clone(), vec![audit(&acc.id, "user.registered", &dup.id)]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::Email))), "{err:?}");
    assert_eq!(s.user_by_id(&dup.id).await.unwrap(), None);
    assert_eq!(s.account_by_id(&acc.id).await.unwrap(), None);
    assert!(s.list_audit(&acc.id, &AuditFilter::default(), &page(10, None)).await.unwrap().items.is_empty());

    // Same company domain (any case): refused, the user is not created either.
    let other = user("alan@acme.io");
    let err = s.register(other.clone(), account("x", Some("ACME.io")), vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::Domain))), "{err:?}");
    assert_eq!(s.user_by_email("alan@acme.io").await.unwrap(), None);
    let err = s.create_account(account("y", Some("acme.io")), &first.user.id, vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::Domain))), "{err:?}");

    // Accounts without a domain never conflict.
    register(s, "a@one.example", None).await;
    register(s, "b@one.example", None).await;

    // Deleting the account releases its domain.
    s.delete_account(&first.account.id, now(), vec![]).await.unwrap();
    register(s, "alan@acme.io", Some("acme.io")).await;
}

pub async fn soft_delete_hides_everything(db: TestDb) {
    let s = &db.store;
    let o = register(s, "owner@gone.example", Some("gone.example")).await;
    let a = &o.account.id;
    let member = user("member@elsewhere.example");
    s.register(member.clone(), account("m", None), vec![]).await.unwrap();
    s.add_member(a, &member.id, Authority::User, now(), vec![]).await.unwrap();
    let role = Role {
        id: new_id(IdKind::Role),
        account_id: a.clone(),
        name: "reader".into(),
        permissions: vec!["x:read".into()],
        created_at: now(),
        updated_at: now(),
    };
    s.create_role(role.clone(), vec![]).await.unwrap();
    let k = s.create_key(key(a, Some(&member.id)), None, vec![]).await.unwrap();

    s.delete_account(a, now(), vec![audit(a, "account.deleted", &o.user.id)]).await.unwrap();

    assert_eq!(s.account_by_id(a).await.unwrap(), None);
    assert_eq!(s.membership(a, &o.user.id).await.unwrap(), None);
    assert!(s.list_members(a, &page(10, None)).await.unwrap().items.is_empty());
    assert!(s.user_memberships(&o.user.id).await.unwrap().is_empty());
    assert_eq!(s.user_memberships(&member.id).await.unwrap().len(), 1, "the member's own account stays");
    assert_eq!(s.role(a, &role.id).await.unwrap(), None);
    assert!(s.list_roles(a, &page(10, None)).await.unwrap().items.is_empty());
    assert_eq!(s.key_by_handle(a, &k.id).await.unwrap(), None);
    assert_eq!(s.key_by_handle(a, &k.key_part).await.unwrap(), None);
    let keys = s.list_keys(a, &KeyFilter::default(), now(), &page(10, None)).await.unwrap();
    assert!(keys.items.is_empty());
    assert!(!s.list_accounts(&page(100, None)).await.unwrap().items.iter().any(|x| &x.id == a));
    let auth = s.key_auth_by_digest(&k.digest).await.unwrap().expect("the key itself is still found");
    assert_eq!(auth.account, None);

    // Changes to a deleted account's things are NotFound.
    assert!(matches!(s.update_key(a, &k.id, &KeyPatch::default(), vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.revoke_key(a, &k.id, now(), vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.create_key(key(a, None), None, vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.delete_role(a, &role.id, vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.set_plan(a, "pro", vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(s.delete_account(a, now(), vec![]).await, Err(StoreError::NotFound)));
    let err = s.change_member_authority(a, &member.id, Authority::Owner, Authority::Administrator, vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)));

    // The audit log stays, deletion included, and can still be appended to.
    s.append_audit(vec![audit(a, "operator.note", &o.user.id)]).await.unwrap();
    assert_eq!(verify_chain(s, a).await, 3);
}

pub async fn account_update_plan_and_listing(db: TestDb) {
    let s = &db.store;
    let o = register(s, "lin@plan.example", Some("plan.example")).await;
    let a = &o.account.id;

    let renamed = s.update_account(a, Some("Renamed"), None, vec![]).await.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.url.as_deref()), ("Renamed", o.account.url.as_deref()));
    let cleared = s.update_account(a, None, Some(None), vec![]).await.unwrap();
    assert_eq!((cleared.name.as_str(), cleared.url), ("Renamed", None));
    let set = s.update_account(a, None, Some(Some("https://new.example")), vec![]).await.unwrap();
    assert_eq!(set.url.as_deref(), Some("https://new.example"));
    assert_eq!(set.domain.as_deref(), Some("plan.example"));
    let pro = s.set_plan(a, "pro", vec![audit(a, "account.plan_changed", "operator")]).await.unwrap();
    assert_eq!(pro.plan, "pro");
    assert_eq!(s.account_by_id(a).await.unwrap(), Some(pro));
    assert!(matches!(s.update_account("acc_nope", Some("x"), None, vec![]).await, Err(StoreError::NotFound)));

    // Newest first, paged without gaps or repeats.
    let mut made = vec![a.clone()];
    for i in 0..6 {
        let acc = account(&format!("acc {i}"), None);
        s.create_account(acc.clone(), &o.user.id, vec![]).await.unwrap();
        made.push(acc.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_accounts(&page(4, cursor)).await.unwrap();
        assert!(p.items.len() <= 4);
        seen.extend(p.items.into_iter().map(|a| a.id));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    made.sort();
    made.reverse();
    assert_eq!(seen, made);
}

pub async fn membership_rules(db: TestDb) {
    let s = &db.store;
    let o = register(s, "root@rules.example", None).await;
    let a = &o.account.id;
    let admin = register(s, "admin@rules.example", None).await.user;
    let plain = register(s, "plain@rules.example", None).await.user;

    let m = s
        .add_member(a, &admin.id, Authority::Administrator, now(), vec![audit(a, "member.added", &o.user.id)])
        .await
        .unwrap();
    assert_eq!((m.email.as_str(), m.authority), ("admin@rules.example", Authority::Administrator));
    s.add_member(a, &plain.id, Authority::User, now(), vec![]).await.unwrap();
    let err = s.add_member(a, &plain.id, Authority::User, now(), vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::Member))), "{err:?}");
    assert!(matches!(s.add_member(a, "usr_nope", Authority::User, now(), vec![]).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.add_member("acc_nope", &plain.id, Authority::User, now(), vec![]).await,
        Err(StoreError::NotFound)
    ));

    // Administrators cannot touch owners; nobody demotes the last owner or removes them.
    let err = s.change_member_authority(a, &o.user.id, Authority::Administrator, Authority::User, vec![]).await;
    assert!(matches!(err, Err(StoreError::Rule(MemberRuleViolation::InsufficientAuthority))), "{err:?}");
    let err = s.change_member_authority(a, &o.user.id, Authority::Owner, Authority::Administrator, vec![]).await;
    assert!(matches!(err, Err(StoreError::Rule(MemberRuleViolation::LastOwner))), "{err:?}");
    let err = s.remove_member(a, &o.user.id, Authority::Owner, true, vec![]).await;
    assert!(matches!(err, Err(StoreError::Rule(MemberRuleViolation::LastOwner))), "{err:?}");
    let err = s.remove_member(a, &admin.id, Authority::User, false, vec![]).await;
    assert!(matches!(err, Err(StoreError::Rule(MemberRuleViolation::InsufficientAuthority))), "{err:?}");
    let err = s.change_member_authority(a, "usr_nope", Authority::Owner, Authority::User, vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)));

    // With a second owner, the first may step down.
    let m = s.change_member_authority(a, &admin.id, Authority::Owner, Authority::Owner, vec![]).await.unwrap();
    assert_eq!(m.authority, Authority::Owner);
    let m = s.change_member_authority(a, &o.user.id, Authority::Owner, Authority::User, vec![]).await.unwrap();
    assert_eq!(m.authority, Authority::User);

    // A refused change writes nothing, its audit entry included.
    let before = s.list_audit(a, &AuditFilter::default(), &page(100, None)).await.unwrap().items.len();
    let err = s.remove_member(a, &admin.id, Authority::Owner, true, vec![audit(a, "member.removed", &admin.id)]).await;
    assert!(matches!(err, Err(StoreError::Rule(MemberRuleViolation::LastOwner))));
    assert_eq!(s.list_audit(a, &AuditFilter::default(), &page(100, None)).await.unwrap().items.len(), before);

    // Anyone may leave.
    s.remove_member(a, &plain.id, Authority::User, true, vec![audit(a, "member.removed", &plain.id)]).await.unwrap();
    assert_eq!(s.membership(a, &plain.id).await.unwrap(), None);
    assert!(matches!(s.remove_member(a, &plain.id, Authority::Owner, false, vec![]).await, Err(StoreError::NotFound)));
    verify_chain(s, a).await;
}

/// Two owners demote each other (and remove each other) at the same moment, many times over:
/// the owner count is read inside the transaction, so exactly one wins each time.
pub async fn last_owner_rule_holds_under_concurrency(db: TestDb) {
    let node2 = db.another_node().await;
    for round in 0..5 {
        let s = &db.store;
        let o = register(s, &format!("o{round}@race.example"), None).await;
        let a = o.account.id.clone();
        let second = register(s, &format!("p{round}@race.example"), None).await.user;
        s.add_member(&a, &second.id, Authority::Owner, now(), vec![]).await.unwrap();

        let (s1, s2) = (Arc::clone(s), Arc::clone(&node2));
        let (a1, a2, u1, u2) = (a.clone(), a.clone(), o.user.id.clone(), second.id.clone());
        let t1 = tokio::spawn(async move {
            s1.change_member_authority(&a1, &u1, Authority::Owner, Authority::Administrator, vec![]).await
        });
        let t2 = tokio::spawn(async move { s2.remove_member(&a2, &u2, Authority::Owner, true, vec![]).await });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        assert!(r1.is_ok() != r2.is_ok(), "exactly one wins: {r1:?} {r2:?}");
        let refused = if r1.is_err() { r1.err() } else { r2.err() };
        assert!(matches!(refused, Some(StoreError::Rule(MemberRuleViolation::LastOwner))));
        let owners = s.list_members(&a, &page(10, None)).await.unwrap();
        assert_eq!(owners.items.iter().filter(|m| m.authority == Authority::Owner).count(), 1);
    }
}

pub async fn members_page_without_gaps(db: TestDb) {
    let s = &db.store;
    let o = register(s, "boss@team.example", None).await;
    let a = &o.account.id;
    let at = now();
    let mut expected = BTreeSet::from([o.user.id.clone()]);
    for i in 0..7 {
        let u = register(s, &format!("m{i}@team.example"), None).await.user;
        // Several members join within the same millisecond: the cursor must still be exact.
        s.add_member(a, &u.id, Authority::User, at, vec![]).await.unwrap();
        expected.insert(u.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_members(a, &page(3, cursor)).await.unwrap();
        seen.extend(p.items.into_iter().map(|m| m.user_id));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected.len(), "no repeats: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(s.list_members(a, &page(3, Some("not-a-cursor".into()))).await.unwrap().items.is_empty());
}

pub async fn roles(db: TestDb) {
    let s = &db.store;
    let o = register(s, "r@roles.example", None).await;
    let other = register(s, "x@roles.example", None).await;
    let a = &o.account.id;
    let mk = |name: &str| Role {
        id: new_id(IdKind::Role),
        account_id: a.clone(),
        name: name.into(),
        permissions: vec!["leads:create".into()],
        created_at: now(),
        updated_at: now(),
    };
    let r1 = mk("lead-intake");
    s.create_role(r1.clone(), vec![audit(a, "role.created", &o.user.id)]).await.unwrap();
    assert_eq!(s.role(a, &r1.id).await.unwrap(), Some(r1.clone()));
    assert_eq!(s.role(&other.account.id, &r1.id).await.unwrap(), None, "another account's role");
    let err = s.create_role(mk("lead-intake"), vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::RoleName))), "{err:?}");
    let mut same_name_elsewhere = mk("lead-intake");
    same_name_elsewhere.account_id = other.account.id.clone();
    s.create_role(same_name_elsewhere, vec![]).await.unwrap();

    let mut ids = vec![r1.id.clone()];
    for i in 0..4 {
        let r = mk(&format!("role {i}"));
        ids.push(r.id.clone());
        s.create_role(r, vec![]).await.unwrap();
    }
    let first = s.list_roles(a, &page(3, None)).await.unwrap();
    let rest = s.list_roles(a, &page(3, first.next_cursor.clone())).await.unwrap();
    assert!(rest.next_cursor.is_none());
    let listed: Vec<_> = first.items.iter().chain(&rest.items).map(|r| r.id.clone()).collect();
    ids.sort();
    ids.reverse();
    assert_eq!(listed, ids);

    let perms = vec!["leads:read".to_owned(), "leads:create".to_owned()];
    let later = now() + ms(5);
    let u = s.update_role(a, &r1.id, None, Some(&perms), later, vec![]).await.unwrap();
    assert_eq!((u.name.as_str(), &u.permissions, u.updated_at), ("lead-intake", &perms, later));
    let err = s.update_role(a, &r1.id, Some("role 0"), None, later, vec![]).await;
    assert!(matches!(err, Err(StoreError::Conflict(Conflict::RoleName))), "{err:?}");
    let err = s.update_role(&other.account.id, &r1.id, Some("x"), None, later, vec![]).await;
    assert!(matches!(err, Err(StoreError::NotFound)));

    s.delete_role(a, &r1.id, vec![audit(a, "role.deleted", &o.user.id)]).await.unwrap();
    assert_eq!(s.role(a, &r1.id).await.unwrap(), None);
    assert!(matches!(s.delete_role(a, &r1.id, vec![]).await, Err(StoreError::NotFound)));
    assert_eq!(verify_chain(s, a).await, 3);
}
