//! `Store` with a call counter in front: the benchmark shows that malformed and bad-checksum
//! credentials never reach storage (the counter stays at zero while they are refused).

use std::sync::atomic::{AtomicU64, Ordering};

use keygate_store::StoreResult;
use keygate_store::intercept::{Intercepted, Interceptor};

pub type CountingStore = Intercepted<Calls>;

#[derive(Default)]
pub struct Calls {
    calls: AtomicU64,
    key_lookups: AtomicU64,
}

impl Calls {
    /// Every store call so far, of any method.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// `key_auth_by_digest` calls so far: the authenticator's one read on a cache miss.
    pub fn key_lookups(&self) -> u64 {
        self.key_lookups.load(Ordering::SeqCst)
    }
}

impl Interceptor for Calls {
    fn before(&self, method: &'static str) -> StoreResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if method == "key_auth_by_digest" {
            self.key_lookups.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}
