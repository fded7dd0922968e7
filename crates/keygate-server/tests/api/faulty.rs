//! A `Store` that can be made to fail like an unreachable database, to show that keygate
//! fails closed (503) instead of allowing. Delegates everything else to a real store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keygate_store::intercept::{Intercepted, Interceptor};
use keygate_store::{StoreError, StoreResult};

/// While `down`, every call fails as an unreachable database would.
#[derive(Default)]
pub struct Outage {
    pub down: AtomicBool,
}

impl Interceptor for Outage {
    fn before(&self, _method: &'static str) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("test: database is down".into()))
        } else {
            Ok(())
        }
    }
}

pub type FaultyStore = Intercepted<Outage>;

/// A server on a `FaultyStore`, and the store, to take it down and up again.
pub async fn spawn_app_with_faulty_store() -> (crate::helpers::TestApp, Arc<FaultyStore>) {
    let slot: Arc<std::sync::OnceLock<Arc<FaultyStore>>> = Arc::new(std::sync::OnceLock::new());
    let filled = Arc::clone(&slot);
    let app = crate::helpers::spawn_with_store(move |inner| {
        let f = Arc::new(FaultyStore::new(inner, Outage::default()));
        let _ = filled.set(Arc::clone(&f));
        f
    })
    .await;
    let store = Arc::clone(slot.get().expect("the store was built"));
    (app, store)
}
