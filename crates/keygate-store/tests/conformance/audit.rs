//! The audit log: hash chain, paging, filters, concurrent appends.

use std::sync::Arc;

use keygate_store::*;
use serde_json::json;

use crate::harness::*;

pub async fn audit_chain_hashes_and_pages(db: TestDb) {
    let s = &db.store;
    let o = register(s, "aud@log.example", None).await;
    let a = &o.account.id;
    let other = register(s, "other@log.example", None).await;

    let by_key = NewAudit {
        actor: Actor { kind: ActorType::ApiKey, user_id: None, key_id: Some("key_abc".into()) },
        target_type: "key".into(),
        target_id: "key_xyz".into(),
        ip: None,
        details: json!({}),
        ..audit(a, "key.created", "")
    };
    s.append_audit(vec![
        audit(a, "member.added", &o.user.id),
        by_key.clone(),
        NewAudit { action: "key.revoked".into(), ..by_key.clone() },
        audit(a, "key.updated", &o.user.id),
        // An entry for another account in the same batch starts that account's own chain.
        audit(&other.account.id, "account.updated", &other.user.id),
    ])
    .await
    .unwrap();
    s.append_audit(vec![]).await.unwrap();

    assert_eq!(verify_chain(s, a).await, 5);
    assert_eq!(verify_chain(s, &other.account.id).await, 2);

    // Entries read back exactly as written.
    let all = s.list_audit(a, &AuditFilter::default(), &page(100, None)).await.unwrap();
    let seqs: Vec<_> = all.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![5, 4, 3, 2, 1], "newest first");
    let created = all.items.iter().find(|e| e.action == "key.created").unwrap();
    assert_eq!(created.actor, by_key.actor);
    assert_eq!(
        (created.target_type.as_str(), created.target_id.as_str(), created.ip.as_deref()),
        ("key", "key_xyz", None)
    );
    let first = all.items.last().unwrap();
    assert_eq!(first.details, json!({"z": 1, "a": [1, 2, {"k": "v"}]}));
    assert_eq!(first.ip.as_deref(), Some("203.0.113.7"));

    // Paging by seq.
    let p1 = s.list_audit(a, &AuditFilter::default(), &page(2, None)).await.unwrap();
    assert_eq!(p1.items.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 4]);
    let p2 = s.list_audit(a, &AuditFilter::default(), &page(2, p1.next_cursor)).await.unwrap();
    assert_eq!(p2.items.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 2]);
    let p3 = s.list_audit(a, &AuditFilter::default(), &page(2, p2.next_cursor)).await.unwrap();
    assert_eq!(p3.items.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(p3.next_cursor, None);
    let bad = s.list_audit(a, &AuditFilter::default(), &page(2, Some("nope".into()))).await.unwrap();
    assert!(bad.items.is_empty());

    // Filters: exact action, action prefix, actor by user id or key id.
    let f = |action: Option<&str>, actor: Option<&str>| AuditFilter {
        action: action.map(str::to_owned),
        actor: actor.map(str::to_owned),
    };
    let count = |filter: AuditFilter| {
        let s = Arc::clone(s);
        let a = a.clone();
        async move { s.list_audit(&a, &filter, &page(100, None)).await.unwrap().items.len() }
    };
    assert_eq!(count(f(Some("key.created"), None)).await, 1);
    assert_eq!(count(f(Some("key."), None)).await, 3);
    assert_eq!(count(f(Some("key.*"), None)).await, 3);
    assert_eq!(count(f(Some("key"), None)).await, 0);
    assert_eq!(count(f(None, Some("key_abc"))).await, 2);
    assert_eq!(count(f(None, Some(&o.user.id))).await, 3);
    assert_eq!(count(f(Some("key.*"), Some(&o.user.id))).await, 1);
}

/// Many tasks on two nodes append to the same account at once: the chain stays one chain.
pub async fn concurrent_appends_keep_the_chain(db: TestDb) {
    let o = register(&db.store, "busy@log.example", None).await;
    let second = register(&db.store, "busy2@log.example", None).await;
    let node2 = db.another_node().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { Arc::clone(&db.store) } else { Arc::clone(&node2) };
        let (a, b, u) = (o.account.id.clone(), second.account.id.clone(), o.user.id.clone());
        tasks.push(tokio::spawn(async move {
            for j in 0..4 {
                // Batches that touch both accounts, in both orders, must not deadlock.
                let batch = if (i + j) % 2 == 0 {
                    vec![audit(&a, "key.used", &u), audit(&b, "key.used", &u)]
                } else {
                    vec![audit(&b, "key.used", &u), audit(&a, "key.used", &u)]
                };
                s.append_audit(batch).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(verify_chain(&db.store, &o.account.id).await, 1 + 16 * 4);
    assert_eq!(verify_chain(&db.store, &second.account.id).await, 1 + 16 * 4);
}
