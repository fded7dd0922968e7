//! Cross-node invalidation over PostgreSQL `LISTEN/NOTIFY`: the database every node already
//! shares is the bus, so a cluster needs nothing more to honour a revocation everywhere.
//!
//! - **Publish:** `SELECT pg_notify('keygate_invalidate', <json>)` on a small pool of its own,
//!   so a busy store pool never delays an invalidation.
//! - **Listen:** one dedicated connection per node. Notifications are not queued for a
//!   connection that is gone, so whenever the subscription is lost the node forgets every
//!   cached decision (`Invalidation::All`), resubscribes with back-off, and forgets everything
//!   once more when the new subscription is in place (anything published in between is lost).
//!   A silently dead connection (no RST) is found by a periodic round trip on it.
//! - **Confirm:** that round trip, every [`HEALTH_EVERY`], is also the feed's heartbeat. Its
//!   answer follows every notification sent before it on the same connection, so once it is
//!   back (and the notifications read with it applied) the node knows it missed nothing sent
//!   before the round trip began, and records that instant in [`Feed`]. A node cut off
//!   without a reset stops confirming, and its authenticator stops answering from the cache
//!   one second after the last confirmation (docs/api.md, Storage and partitions).
//!
//! A node receives its own events too and applies them twice: harmless, epochs just move on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::auth::invalidation::{Epochs, Feed, Invalidation, InvalidationBus};
use crate::metrics::Metrics;

pub(crate) const CHANNEL: &str = "keygate_invalidate";
/// A mutation's response waits at most this long for its notification to be sent.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the subscription proves it is alive (confirming the feed, see [`Feed`]): a
/// quarter of `FEED_MAX_AGE`, so a round trip or two may be slow before the cache is refused.
const HEALTH_EVERY: Duration = Duration::from_millis(250);
/// A round trip unanswered this long means the connection is dead: resubscribe. (The cache is
/// refused well before, after `FEED_MAX_AGE` without confirmation.)
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) struct PgBus {
    pool: PgPool,
}

impl PgBus {
    /// Connects lazily: publishing is the first use.
    pub(crate) fn new(database_url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(PUBLISH_TIMEOUT)
            .connect_lazy(database_url)
            .map_err(|e| anyhow::anyhow!("invalidation bus: {e}"))?;
        Ok(PgBus { pool })
    }
}

#[async_trait::async_trait]
impl InvalidationBus for PgBus {
    async fn publish(&self, inv: &Invalidation) {
        let payload = match serde_json::to_string(inv) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an invalidation");
                return;
            }
        };
        let send = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&self.pool);
        match tokio::time::timeout(PUBLISH_TIMEOUT, send).await {
            Ok(Ok(_)) => tracing::debug!(%payload, "invalidation published"),
            // The change itself is committed; other nodes catch up through the cache TTL.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %payload, "invalidation not published; other nodes rely on the cache TTL")
            }
            Err(_) => tracing::warn!(%payload, "invalidation not published in time; other nodes rely on the cache TTL"),
        }
    }
}

/// Subscribes once before returning (so a node that answers requests already hears every
/// later change), then keeps the subscription alive in the background until `stop`.
pub(crate) async fn spawn_listener(
    database_url: String,
    epochs: Arc<Epochs>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    epochs.feed.watch();
    let started = Instant::now();
    let first = match subscribe(&database_url).await {
        Ok(l) => {
            epochs.feed.confirm(started, &epochs);
            Some(l)
        }
        Err(cause) => {
            tracing::warn!(%cause, "cannot subscribe to invalidations yet; retrying in the background");
            None
        }
    };
    tokio::spawn(run(database_url, first, epochs, metrics, stop));
}

/// The listening connection's `application_name`, so operators (and the tests) can tell it
/// apart in `pg_stat_activity`: its last query is usually the health round trip, not `LISTEN`.
pub const LISTENER_APPLICATION_NAME: &str = "keygate-listener";

async fn subscribe(url: &str) -> Result<PgListener, String> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}application_name={LISTENER_APPLICATION_NAME}");
    let attempt = async {
        let mut listener = PgListener::connect(&url).await?;
        // A lost connection must come back to `run`, which clears the cache before anything
        // is cached again, rather than be reconnected silently inside sqlx.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

async fn run(
    url: String,
    first: Option<PgListener>,
    epochs: Arc<Epochs>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut listener = first;
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut current = match listener.take() {
            Some(l) => l,
            None => {
                let started = Instant::now();
                let attempt = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = subscribe(&url) => a,
                };
                match attempt {
                    Ok(l) => {
                        epochs.apply(&Invalidation::All);
                        epochs.feed.confirm(started, &epochs);
                        tracing::info!("resubscribed to invalidations; cache cleared");
                        backoff = BACKOFF_MIN;
                        l
                    }
                    Err(cause) => {
                        tracing::warn!(%cause, retry_in_ms = backoff.as_millis() as u64, "cannot subscribe to invalidations");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
        };
        match listen_until_lost(&mut current, &epochs, &metrics, &stop).await {
            None => return,
            Some(cause) => {
                epochs.apply(&Invalidation::All);
                tracing::warn!(%cause, "lost the invalidation subscription; cache cleared, resubscribing");
            }
        }
    }
}

enum Event {
    Stop,
    Received(Result<Option<PgNotification>, sqlx::Error>),
    HealthCheck,
}

/// Applies notifications until the connection fails (answers why) or `stop` (answers None).
async fn listen_until_lost(
    listener: &mut PgListener,
    epochs: &Epochs,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Option<String> {
    let mut health = tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `try_recv` is cancel-safe (sqlx reads whole messages only), so losing the race to
        // the health tick drops nothing.
        let event = tokio::select! {
            _ = stop.cancelled() => Event::Stop,
            r = listener.try_recv() => Event::Received(r),
            _ = health.tick() => Event::HealthCheck,
        };
        match event {
            Event::Stop => return None,
            Event::Received(Ok(Some(n))) => super::receive(n.payload(), epochs, metrics),
            Event::Received(Ok(None)) => return Some("connection closed".into()),
            Event::Received(Err(e)) => return Some(e.to_string()),
            Event::HealthCheck => {
                // Notifications arriving meanwhile are buffered by the listener, not lost.
                let sent = Instant::now();
                match tokio::time::timeout(HEALTH_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *listener)).await {
                    Ok(Ok(_)) => {
                        // Applied before the confirmation, which vouches for them.
                        while let Some(n) = listener.next_buffered() {
                            super::receive(n.payload(), epochs, metrics);
                        }
                        confirm(&epochs.feed, sent, epochs);
                    }
                    Ok(Err(e)) => return Some(format!("health check: {e}")),
                    Err(_) => return Some("health check timed out".into()),
                }
            }
        }
    }
}

fn confirm(feed: &Feed, sent: Instant, epochs: &Epochs) {
    if feed.confirm(sent, epochs) {
        tracing::warn!("invalidation feed confirmed again after a gap; cache cleared");
    }
}
