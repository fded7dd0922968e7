//! keygate's HTTP application as a library: `build` it from settings, bind its `Listeners`,
//! `serve` it until a shutdown future fires (tests bind port 0 and run many).
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod limits;
pub mod metrics;
pub mod password;
pub mod plans;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod service;
pub mod state;
pub mod usage;
pub mod views;

/// The hasher of the in-memory maps a request consults (the authenticator's caches, epochs,
/// usage counters, local rate limits): foldhash, seeded per process. std's SipHash cost a few
/// hundred instructions per lookup on the hot path. The keys are digests and ids (server-made,
/// or named by a client and format-checked first); a per-process seed leaves an attacker no
/// precomputed collisions to flood a map with. Maps keyed by free text a client chooses (the
/// login throttle's emails) keep std's SipHash.
pub type FastHash = foldhash::fast::RandomState;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::auth::authenticator::AuthenticatorParts;
use crate::auth::invalidation::Epochs;
use crate::auth::{Authenticator, Invalidator};
pub use crate::config::Settings;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
pub use crate::server::Listeners;
use crate::state::{AppState, Inner};
use crate::usage::UsageRecorder;

pub struct App {
    state: AppState,
    service: routes::HttpService,
    background: Background,
}

/// Tasks that live as long as the server: the usage flusher, the cluster listener (the
/// pruners end with `stop` and need no join).
struct Background {
    stop: CancellationToken,
    flusher: tokio::task::JoinHandle<()>,
}

/// Connects storage (running migrations), wires every component, builds the router.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    settings.validate().context("invalid settings")?;
    let store = keygate_store::open_with(&settings.database_url, &settings.database.pool_config())
        .await
        .with_context(|| format!("cannot open the database {}", config::redact_url(&settings.database_url)))?;
    build_with_store(settings, store).await
}

pub async fn build_with_store(settings: Settings, store: Arc<dyn keygate_store::Store>) -> anyhow::Result<App> {
    build_with_clock(settings, store, limits::quota::system_clock()).await
}

/// `build_with_store` with the wall clock that quota periods are counted by (tests drive it
/// across a day or month without sleeping).
pub async fn build_with_clock(
    settings: Settings,
    store: Arc<dyn keygate_store::Store>,
    clock: limits::Clock,
) -> anyhow::Result<App> {
    let metrics = Arc::new(Metrics::new());
    let epochs = Arc::new(Epochs::default());
    let stop = CancellationToken::new();
    let cluster = cluster::start(&settings, &store, Arc::clone(&epochs), Arc::clone(&metrics), stop.clone()).await?;
    let limiter = Arc::new(RateLimiter::new(
        cluster.shared_limiter,
        settings.rate_limits.redis_failure_policy,
        Arc::clone(&metrics),
    ));
    limiter.spawn_pruner();
    let quotas = Arc::new(limits::QuotaCounter::new(
        cluster.shared_quota,
        settings.rate_limits.redis_failure_policy,
        clock,
        Arc::clone(&metrics),
    ));
    quotas.spawn_pruner();
    let usage = Arc::new(UsageRecorder::new(Arc::clone(&store), Arc::clone(&metrics)));
    let flusher = usage.spawn_flusher(Duration::from_millis(settings.usage.flush_interval_ms.max(10)), stop.clone());
    usage::retention::spawn_pruner(Arc::clone(&store), stop.clone());
    let mut invalidator = Invalidator::new(Arc::clone(&epochs));
    if let Some(bus) = cluster.bus {
        invalidator = invalidator.with_bus(bus);
    }
    let services = service::Services::new(&settings, Arc::clone(&store), invalidator)?;
    let auth = Authenticator::new(AuthenticatorParts {
        format: services.format.clone(),
        store,
        epochs,
        plans: Arc::clone(&services.plans),
        limiter,
        quotas,
        usage: Arc::clone(&usage),
        metrics: Arc::clone(&metrics),
        cache_max_entries: settings.cache.max_entries,
        cache_ttl: Duration::from_secs(settings.cache.ttl_seconds.max(1)),
        session_idle: chrono::Duration::minutes(settings.sessions.idle_timeout_minutes as i64),
        unknown_per_address_per_minute: settings.rate_limits.unknown_credentials_per_address,
    });
    let trusted_proxies = settings.trusted_proxies.iter().filter_map(|p| keygate_core::net::parse_cidr(p)).collect();
    let gateway = gateway::Gateway::from_settings(&settings.gateway.routes)?;
    let state = AppState::new(Inner {
        verify_callers: auth::verifier::VerifyCallers::new(&settings.verify, &settings.admin_token),
        settings,
        services,
        auth,
        metrics,
        trusted_proxies,
        gateway,
        submissions: Default::default(),
    });
    let service = routes::service(state.clone());
    Ok(App { state, service, background: Background { stop, flusher } })
}

pub mod cluster;

impl App {
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
