//! The invalidation outbox: sequence numbers grow, a poller reads each entry once, in order,
//! and pruning forgets only old entries.

use std::sync::Arc;

use crate::harness::TestDb;

pub async fn invalidation_outbox(db: TestDb) {
    let s = &db.store;
    let t0 = chrono::Utc::now();
    let at = move |secs: i64| t0 + chrono::Duration::seconds(secs);
    assert_eq!(s.last_invalidation().await.unwrap(), 0, "an empty outbox starts at 0");
    assert!(s.invalidations_after(0, 10).await.unwrap().is_empty());

    let first = s.append_invalidation(r#"{"kind":"account","id":"acc_1"}"#, at(0)).await.unwrap();
    let second = s.append_invalidation(r#"{"kind":"user","id":"usr_1"}"#, at(10)).await.unwrap();
    assert!(first > 0 && second > first, "{first} then {second}");
    assert_eq!(s.last_invalidation().await.unwrap(), second);
    assert_eq!(
        s.invalidations_after(0, 10).await.unwrap(),
        vec![
            (first, r#"{"kind":"account","id":"acc_1"}"#.to_owned()),
            (second, r#"{"kind":"user","id":"usr_1"}"#.to_owned())
        ]
    );
    assert_eq!(s.invalidations_after(first, 10).await.unwrap().len(), 1, "only what came after");
    assert_eq!(s.invalidations_after(0, 1).await.unwrap()[0].0, first, "the limit keeps the oldest");

    // Another process (the admin CLI) appends; this one sees it on its next poll.
    let cli = db.another_node().await;
    let third = cli.append_invalidation(r#"{"kind":"all"}"#, at(20)).await.unwrap();
    assert_eq!(s.invalidations_after(second, 10).await.unwrap(), vec![(third, r#"{"kind":"all"}"#.to_owned())]);

    // Appends at once from several tasks all land, each with its own number.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = Arc::clone(s);
            tokio::spawn(async move { s.append_invalidation("{}", at(30)).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 10);
    assert!(seqs[0] > third);

    assert_eq!(s.prune_invalidations(at(15)).await.unwrap(), 2, "the two entries before 15 s");
    let left = s.invalidations_after(0, 100).await.unwrap();
    assert_eq!(left.len(), 11);
    assert_eq!(left[0].0, third);
    assert_eq!(s.last_invalidation().await.unwrap(), *seqs.last().unwrap(), "pruning keeps the numbering");
}
