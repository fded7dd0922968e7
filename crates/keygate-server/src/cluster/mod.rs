//! Several nodes as one service (docs/operations.md):
//!
//! - **Cross-node invalidation** when `database_url` is PostgreSQL: `LISTEN/NOTIFY` on the
//!   database the nodes already share ([`pg_bus`]).
//! - **Shared rate limits** when `redis_url` is set: one atomic Lua script per decision
//!   (`limits::redis`).
//!
//! On SQLite there is no bus, even with `redis_url`: SQLite is the single-node store (several
//! servers on one file are not a supported topology), and a lone node invalidates its own
//! cache directly. It still polls the [`outbox`], where `keygate admin` records the changes
//! it makes beside the running server.

pub(crate) mod outbox;
pub(crate) mod pg_bus;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::invalidation::{Epochs, Invalidation, InvalidationBus};
use crate::config::{Settings, redact_url};
use crate::limits::SharedLimiter;
use crate::limits::redis::RedisLimiter;
use crate::metrics::Metrics;

#[derive(Default)]
pub(crate) struct Cluster {
    pub(crate) bus: Option<Arc<dyn InvalidationBus>>,
    pub(crate) shared_limiter: Option<Arc<dyn SharedLimiter>>,
}

/// Wires what the settings ask for. Fails only on settings that can never work (a malformed
/// URL); an unreachable Redis or a lost subscription is survived and logged, never fatal.
pub(crate) async fn start(
    settings: &Settings,
    store: &Arc<dyn keygate_store::Store>,
    epochs: Arc<Epochs>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::default();
    if !settings.redis_url.is_empty() {
        let limiter = RedisLimiter::new(&settings.redis_url)?;
        let redis = redact_url(&settings.redis_url);
        let policy = settings.rate_limits.redis_failure_policy;
        match limiter.ping().await {
            Ok(()) => tracing::info!(%redis, ?policy, "rate limits shared through Redis"),
            Err(cause) => {
                tracing::warn!(%redis, ?policy, %cause, "Redis unreachable at start; the failure policy applies until it answers")
            }
        }
        cluster.shared_limiter = Some(Arc::new(limiter));
    }
    if is_postgres(&settings.database_url) {
        cluster.bus = Some(Arc::new(pg_bus::PgBus::new(&settings.database_url)?));
        pg_bus::spawn_listener(settings.database_url.clone(), epochs, metrics, stop).await;
        tracing::info!(channel = pg_bus::CHANNEL, "cross-node invalidation through PostgreSQL LISTEN/NOTIFY");
    } else {
        outbox::spawn_poller(Arc::clone(store), epochs, metrics, stop).await;
    }
    Ok(cluster)
}

/// How a process beside the servers (`keygate admin`) tells them of its changes: PostgreSQL
/// nodes hear a NOTIFY, a lone SQLite server polls the [`outbox`].
pub(crate) fn relay(
    settings: &Settings,
    store: &Arc<dyn keygate_store::Store>,
) -> anyhow::Result<Arc<dyn InvalidationBus>> {
    if is_postgres(&settings.database_url) {
        Ok(Arc::new(pg_bus::PgBus::new(&settings.database_url)?))
    } else {
        Ok(Arc::new(outbox::OutboxBus::new(Arc::clone(store))))
    }
}

/// Whether `url` names a PostgreSQL database (the backend with a cross-node bus).
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// An invalidation another process sent (a NOTIFY, an outbox entry), applied here.
pub(crate) fn receive(payload: &str, epochs: &Epochs, metrics: &Metrics) {
    match serde_json::from_str::<Invalidation>(payload) {
        Ok(inv) => {
            epochs.apply(&inv);
            metrics.invalidations_received.inc();
            tracing::debug!(?inv, "invalidation received");
        }
        // Something keygate did not send (or a newer version's kind): forgetting everything
        // is the only safe reading of a change we cannot parse.
        Err(e) => {
            tracing::warn!(error = %e, "unreadable invalidation; clearing the cache");
            epochs.apply(&Invalidation::All);
            metrics.invalidations_received.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_ones_clear_everything() {
        let inv = Invalidation::Account("acc_1".into());
        let json = serde_json::to_string(&inv).expect("json");
        assert_eq!(json, r#"{"kind":"account","id":"acc_1"}"#);
        let (epochs, metrics) = (Epochs::default(), Metrics::new());
        let account = epochs.stamp(Some("acc_1"), None);
        let other = epochs.stamp(Some("acc_2"), None);
        receive(&json, &epochs, &metrics);
        assert!(!epochs.is_current(account, Some("acc_1"), None));
        assert!(epochs.is_current(other, Some("acc_2"), None));
        receive(r#"{"kind":"galaxy"}"#, &epochs, &metrics);
        assert!(!epochs.is_current(other, Some("acc_2"), None));
        assert_eq!(metrics.invalidations_received.get(), 2);
    }
}
