//! The authenticator's caches of storage reads (keys, unknown digests, sessions, memberships),
//! with the one staleness rule they share: an entry is used only while the invalidation feed
//! is confirmed and no epoch it depends on moved since it was filled (`invalidation`), and an
//! entry is kept only when no invalidation happened during the read that filled it.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::Digest;
use keygate_store::{Account, Membership, SessionAuth};
use moka::sync::Cache;

use super::cached_key::CachedKey;
use super::invalidation::{Epochs, Stamp};
use crate::FastHash;
use crate::error::ApiError;

/// What a cached value's staleness depends on: the account and the user whose invalidations
/// make it stale (the global epoch always does).
pub trait Scoped<K> {
    fn scope<'a>(&'a self, key: &'a K) -> (Option<&'a str>, Option<&'a str>);
}

/// A cache of values of `V` by `K`, each stamped with the epochs it was filled under.
pub struct StampedCache<K, V> {
    entries: Cache<K, (V, Stamp), FastHash>,
}

impl<K, V> StampedCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Scoped<K> + Clone + Send + Sync + 'static,
{
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        StampedCache {
            entries: Cache::builder()
                .max_capacity(max_entries.max(1))
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
        }
    }

    /// The value for `key` while it is current; `None` when there is none or it is stale.
    /// `Err(unavailable)` when the feed is not confirmed: see `feed_confirmed`.
    pub fn get(&self, key: &K, epochs: &Epochs) -> Result<Option<V>, ApiError> {
        feed_confirmed(epochs)?;
        Ok(self.entries.get(key).and_then(|(value, stamp)| {
            let (account, user) = value.scope(key);
            epochs.is_current(stamp, account, user).then_some(value)
        }))
    }

    /// Keeps what a read found, unless an invalidation happened since `before` (the
    /// `Epochs::changes` taken before the read): the value may predate it.
    pub fn keep(&self, key: K, value: V, epochs: &Epochs, before: u64) {
        let (account, user) = value.scope(&key);
        let stamp = epochs.stamp(account, user);
        if epochs.changes() == before {
            self.entries.insert(key, (value, stamp));
        }
    }

    /// Replaces the value for `key` with one made here rather than read (a session's new
    /// activity time), stamped now.
    pub fn put(&self, key: K, value: V, epochs: &Epochs) {
        let (account, user) = value.scope(&key);
        let stamp = epochs.stamp(account, user);
        self.entries.insert(key, (value, stamp));
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// Before any cached decision is used: a node that has not confirmed its invalidation feed
/// within `FEED_MAX_AGE` may have missed a revocation, so it answers 503 `unavailable` until
/// it hears again (docs/api.md, Storage and partitions). Not a storage read instead: the
/// database is most likely what it lost, and the read would hang. One atomic load on a node
/// without a remote feed; a monotonic clock read and a load with one.
fn feed_confirmed(epochs: &Epochs) -> Result<(), ApiError> {
    if epochs.feed.is_fresh() {
        return Ok(());
    }
    tracing::debug!("invalidation feed not confirmed within 1 s: cache not used");
    Err(ApiError::unavailable())
}

/// A key depends on its account and, for a user key, its user.
impl Scoped<Digest> for Arc<CachedKey> {
    fn scope<'a>(&'a self, _: &'a Digest) -> (Option<&'a str>, Option<&'a str>) {
        (Some(self.key.account_id.as_str()), self.key.user_id.as_deref())
    }
}

/// An unknown digest depends on nothing but the global epoch.
impl Scoped<Digest> for () {
    fn scope<'a>(&'a self, _: &'a Digest) -> (Option<&'a str>, Option<&'a str>) {
        (None, None)
    }
}

/// A session depends on its user; an unknown token on nothing but the global epoch.
impl Scoped<Digest> for Option<Arc<SessionAuth>> {
    fn scope<'a>(&'a self, _: &'a Digest) -> (Option<&'a str>, Option<&'a str>) {
        (None, self.as_ref().map(|a| a.user.id.as_str()))
    }
}

/// A user's membership in an account with the account; `None`: not a member, or no account.
pub type FoundMembership = Option<Arc<(Account, Membership)>>;

/// A membership (or its absence) by (account, user) depends on both.
impl Scoped<(String, String)> for FoundMembership {
    fn scope<'a>(&'a self, key: &'a (String, String)) -> (Option<&'a str>, Option<&'a str>) {
        (Some(key.0.as_str()), Some(key.1.as_str()))
    }
}
