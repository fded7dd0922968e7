//! What every handler shares. It sits below the front ends (`routes/`, `dashboard/`,
//! `gateway/`) that take it; what it holds is defined beside it or further down.

use std::sync::Arc;

use ipnet::IpNet;
use keygate_core::KeyFormat;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::service::Services;

pub(crate) mod submissions;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    /// The management rules' context: handlers call `service::…` with it and never touch the
    /// store themselves.
    pub(crate) services: Services,
    pub(crate) auth: Authenticator,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) gateway: Option<crate::gateway::Gateway>,
    /// The dashboard's one-time form tokens.
    pub(crate) submissions: submissions::Submissions,
    /// Who may call verify (`[verify]` and the operator token).
    pub(crate) verify_callers: crate::auth::verifier::VerifyCallers,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub(crate) fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    pub(crate) fn format(&self) -> &KeyFormat {
        &self.auth.format
    }
}

impl crate::auth::principal::HasAuthenticator for AppState {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}
