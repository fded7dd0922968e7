//! What every handler shares.

use std::sync::Arc;

use ipnet::IpNet;
use keygate_core::KeyFormat;
use keygate_store::{NewAudit, Store};

use crate::auth::{Authenticator, Invalidation, Invalidator};
use crate::config::Settings;
use crate::limits::{AddressAllowance, LoginThrottle};
use crate::metrics::Metrics;
use crate::password::Passwords;
use crate::plans::Plans;
use crate::usage::UsageRecorder;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub invalidator: Invalidator,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    /// Sign-ups per client address (`signup.max_per_address_per_hour`).
    pub signups: AddressAllowance,
    pub usage: Arc<UsageRecorder>,
    pub metrics: Arc<Metrics>,
    pub plans: Arc<Plans>,
    pub trusted_proxies: Vec<IpNet>,
    pub gateway: Option<crate::gateway::Gateway>,
    /// The dashboard's one-time form tokens.
    pub submissions: crate::dashboard::submissions::Submissions,
    /// Who may call verify (`[verify]` and the operator token).
    pub verify_callers: crate::auth::verifier::VerifyCallers,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    pub fn format(&self) -> &KeyFormat {
        &self.auth.format
    }

    /// Call after every committed change that could make a cached decision stale.
    pub async fn invalidate(&self, inv: Invalidation) {
        self.invalidator.invalidate(inv).await;
    }
}

/// Builds audit entries with the fields every entry shares.
pub fn audit(
    account_id: &str,
    actor: &keygate_store::Actor,
    action: &str,
    target: (&str, &str),
    ip: std::net::IpAddr,
    details: serde_json::Value,
) -> NewAudit {
    NewAudit {
        account_id: account_id.to_owned(),
        actor: actor.clone(),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        ip: Some(ip.to_string()),
        details,
    }
}
