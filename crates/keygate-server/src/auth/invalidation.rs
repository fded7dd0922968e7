//! One mechanism makes cached decisions stale: epochs. Every cached entry remembers the epochs
//! of its account and user (and the global one) when it was filled; a change bumps the epoch
//! and every entry filled before it is ignored on its next use. `Invalidator::invalidate` is
//! the single call every mutating handler makes; the cluster bus (when configured) relays the
//! same event to the other nodes, which apply it with `apply_remote`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Invalidation {
    /// Anything in the account changed: keys, members, roles, plan, deletion.
    Account(String),
    /// The user's sessions or memberships changed (logout, password change).
    User(String),
    /// Forget everything (a node that lost its subscription).
    All,
}

/// The epochs a cached entry was filled under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    global: u64,
    account: u64,
    user: u64,
}

#[derive(Debug, Default)]
pub struct Epochs {
    global: AtomicU64,
    /// Counts every change of any epoch: a cache fill that saw it move during its storage read
    /// does not store what it read (it may predate the change).
    changes: AtomicU64,
    accounts: DashMap<String, u64, crate::FastHash>,
    users: DashMap<String, u64, crate::FastHash>,
    /// Whether the events of other nodes are known to reach this one (see [`Feed`]).
    pub feed: Feed,
}

impl Epochs {
    pub fn stamp(&self, account_id: Option<&str>, user_id: Option<&str>) -> Stamp {
        Stamp {
            global: self.global.load(Ordering::Acquire),
            account: account_id.and_then(|a| self.accounts.get(a).map(|e| *e)).unwrap_or(0),
            user: user_id.and_then(|u| self.users.get(u).map(|e| *e)).unwrap_or(0),
        }
    }

    pub fn is_current(&self, stamp: Stamp, account_id: Option<&str>, user_id: Option<&str>) -> bool {
        self.stamp(account_id, user_id) == stamp
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    pub fn apply(&self, inv: &Invalidation) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        match inv {
            Invalidation::Account(id) => *self.accounts.entry(id.clone()).or_insert(0) += 1,
            Invalidation::User(id) => *self.users.entry(id.clone()).or_insert(0) += 1,
            Invalidation::All => {
                self.global.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// How long a node may go without confirming its invalidation feed and still answer from its
/// cache (docs/api.md, Storage and partitions: "within 1 s even when a node loses its
/// database without a reset").
pub const FEED_MAX_AGE: Duration = Duration::from_secs(1);

/// The liveness of the feed that brings other nodes' invalidations (PostgreSQL `LISTEN`). Its
/// listener confirms it after every round trip that proves the connection delivers (what was
/// sent before that round trip has arrived); the authenticator answers from its caches only
/// while the last confirmation is at most [`FEED_MAX_AGE`] old. A node without a remote feed
/// (SQLite: one node) never watches, and is always fresh.
#[derive(Debug)]
pub struct Feed {
    watched: AtomicBool,
    base: Instant,
    /// Milliseconds from `base` to the start of the last round trip that confirmed the feed.
    confirmed_ms: AtomicU64,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { watched: AtomicBool::new(false), base: Instant::now(), confirmed_ms: AtomicU64::new(0) }
    }
}

impl Feed {
    /// From now on the cache needs confirmations (called once, by a remote feed's listener).
    pub fn watch(&self) {
        self.watched.store(true, Ordering::Release);
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }

    /// Everything sent before `at` has been received. After a gap longer than
    /// [`FEED_MAX_AGE`] the cache is forgotten (answers `true`): events of the gap may be lost.
    pub fn confirm(&self, at: Instant, epochs: &Epochs) -> bool {
        let at = self.ms(at);
        let before = self.confirmed_ms.fetch_max(at, Ordering::AcqRel);
        let stale = at.saturating_sub(before) > FEED_MAX_AGE.as_millis() as u64;
        if stale {
            epochs.apply(&Invalidation::All);
        }
        stale
    }

    /// Whether cached decisions may be used: one load when unwatched, a monotonic clock read
    /// (vDSO, no syscall) and a load otherwise.
    pub fn is_fresh(&self) -> bool {
        if !self.watched.load(Ordering::Acquire) {
            return true;
        }
        let now = self.ms(Instant::now());
        now.saturating_sub(self.confirmed_ms.load(Ordering::Acquire)) <= FEED_MAX_AGE.as_millis() as u64
    }

    /// Watched and not fresh (for `/readyz`).
    pub fn is_stale(&self) -> bool {
        !self.is_fresh()
    }
}

/// Relays invalidations to other nodes (PostgreSQL NOTIFY or Redis pub/sub).
#[async_trait::async_trait]
pub trait InvalidationBus: Send + Sync {
    async fn publish(&self, inv: &Invalidation);
}

#[derive(Clone)]
pub struct Invalidator {
    epochs: Arc<Epochs>,
    bus: Option<Arc<dyn InvalidationBus>>,
}

impl Invalidator {
    pub fn new(epochs: Arc<Epochs>) -> Self {
        Invalidator { epochs, bus: None }
    }

    pub fn with_bus(mut self, bus: Arc<dyn InvalidationBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    pub fn epochs(&self) -> &Arc<Epochs> {
        &self.epochs
    }

    /// Applies here at once, then tells the other nodes.
    pub async fn invalidate(&self, inv: Invalidation) {
        self.epochs.apply(&inv);
        if let Some(bus) = &self.bus {
            bus.publish(&inv).await;
        }
    }

    /// An event from another node.
    pub fn apply_remote(&self, inv: &Invalidation) {
        self.epochs.apply(inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_makes_older_stamps_stale() {
        let e = Epochs::default();
        let s = e.stamp(Some("acc_1"), Some("usr_1"));
        assert!(e.is_current(s, Some("acc_1"), Some("usr_1")));
        e.apply(&Invalidation::Account("acc_2".into()));
        assert!(e.is_current(s, Some("acc_1"), Some("usr_1")));
        e.apply(&Invalidation::Account("acc_1".into()));
        assert!(!e.is_current(s, Some("acc_1"), Some("usr_1")));
        let s = e.stamp(Some("acc_1"), Some("usr_1"));
        e.apply(&Invalidation::User("usr_1".into()));
        assert!(!e.is_current(s, Some("acc_1"), Some("usr_1")));
        let s = e.stamp(None, None);
        e.apply(&Invalidation::All);
        assert!(!e.is_current(s, None, None));
    }

    #[test]
    fn a_watched_feed_is_fresh_only_within_a_second_of_its_last_confirmation() {
        let e = Epochs::default();
        assert!(e.feed.is_fresh(), "nothing to watch: always fresh");
        e.feed.watch();
        let now = Instant::now();
        assert!(!e.feed.confirm(now, &e), "the first confirmation after start is no gap");
        assert!(e.feed.is_fresh());
        e.feed.confirmed_ms.store(0, Ordering::Release);
        let s = e.stamp(None, None);
        std::thread::sleep(FEED_MAX_AGE + Duration::from_millis(50));
        assert!(e.feed.is_stale());
        assert!(e.feed.confirm(Instant::now(), &e), "after a gap, the cache is forgotten");
        assert!(!e.is_current(s, None, None));
        assert!(e.feed.is_fresh());
    }
}
