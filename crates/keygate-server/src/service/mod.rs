//! The management rules, one home for each: who may do what, what a change writes, its audit
//! entry and the cached decisions it drops. The JSON API (`routes/`), the dashboard
//! (`dashboard/`) and the operator's shell (`keygate admin`) all call these functions; none of
//! them touches the store itself. Each function takes the narrow [`Services`] context (not
//! the HTTP server's state), the caller already resolved in its account (`Caller`) where there
//! is one, and answers domain values or an `ApiError` that each front end renders its way.

pub(crate) mod accounts;
pub(crate) mod audit;
pub mod identity;
pub(crate) mod input;
pub(crate) mod key_limits;
pub(crate) mod key_usage;
pub mod keys;
pub(crate) mod members;
pub mod operator;
pub(crate) mod roles;
/// `pub` for the usage analytics bench, as `keys` is for the admin CLI.
pub mod usage;
pub mod usage_range;
pub(crate) mod user;

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::KeyFormat;
use keygate_store::{Actor, NewAudit, Store};

use crate::auth::invalidation::Epochs;
use crate::auth::{Invalidation, Invalidator};
use crate::config::{SessionSettings, Settings, SignupSettings};
use crate::limits::AddressAllowance;
use crate::limits::LoginThrottle;
use crate::password::Passwords;
use crate::plans::Plans;

/// What the rules need, and nothing of HTTP: the server holds one in its state, the admin CLI
/// builds its own beside no server at all (its invalidator relays through NOTIFY or the
/// SQLite outbox, `cluster::outbox`).
pub struct Services {
    pub(crate) store: Arc<dyn Store>,
    /// Drops cached decisions here and tells the other nodes (or the server, from the CLI).
    pub(crate) invalidator: Invalidator,
    pub(crate) plans: Arc<Plans>,
    pub(crate) passwords: Passwords,
    /// Key and session prefixes: new secrets and the shape of a `key_part`.
    pub(crate) format: KeyFormat,
    pub(crate) signup: SignupSettings,
    pub(crate) sessions: SessionSettings,
    /// Sign-in and password-change guesses, per email and per client address.
    pub(crate) throttle: LoginThrottle,
    /// Sign-ups per client address (`signup.max_per_address_per_hour`).
    pub(crate) signups: AddressAllowance,
}

impl Services {
    /// Everything from the settings but the store and the invalidator, which the caller wires
    /// (the server to its epochs and bus, the CLI to its relay).
    pub(crate) fn new(settings: &Settings, store: Arc<dyn Store>, invalidator: Invalidator) -> anyhow::Result<Self> {
        let format = KeyFormat::new(&settings.keys.user_prefix, &settings.keys.org_prefix, &settings.sessions.prefix)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Services {
            passwords: Passwords::new().map_err(|e| anyhow::anyhow!("password hasher: {}", e.message))?,
            throttle: LoginThrottle::new(settings.login.clone(), Arc::clone(&store)),
            signups: AddressAllowance::new(settings.signup.max_per_address_per_hour, 3600),
            plans: Arc::new(Plans::new(settings.plans.clone())),
            signup: settings.signup.clone(),
            sessions: settings.sessions.clone(),
            format,
            store,
            invalidator,
        })
    }

    /// The context of a process beside the servers (`keygate admin`): no cache of its own to
    /// keep, its invalidations relayed to the running servers (`cluster::relay`).
    pub fn standalone(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let relay = crate::cluster::relay(settings, &store)?;
        let invalidator = Invalidator::new(Arc::new(Epochs::default())).with_bus(relay);
        Self::new(settings, store, invalidator)
    }

    /// A new account on the sign-up plan (its trial starting `now`), not yet stored: for
    /// sign-up and for `POST /v1/accounts` alike.
    pub(crate) fn new_account(
        &self,
        name: String,
        url: Option<String>,
        domain: Option<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> keygate_store::Account {
        let plan = self.signup.default_plan.clone();
        keygate_store::Account {
            id: keygate_core::id::new_id(keygate_core::id::IdKind::Account),
            name,
            url,
            domain,
            trial_ends_at: self.plans.trial_end(&plan, now),
            plan,
            created_at: now,
            overrides: Default::default(),
        }
    }

    /// Call after every committed change that could make a cached decision stale.
    pub(crate) async fn invalidate(&self, inv: Invalidation) {
        self.invalidator.invalidate(inv).await;
    }
}

/// Builds audit entries with the fields every entry shares. `ip` is the client's address;
/// the operator's shell has none.
pub(crate) fn audit(
    account_id: &str,
    actor: &Actor,
    action: &str,
    target: (&str, &str),
    ip: impl Into<Option<IpAddr>>,
    details: serde_json::Value,
) -> NewAudit {
    NewAudit {
        account_id: account_id.to_owned(),
        actor: actor.clone(),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        ip: ip.into().map(|ip| ip.to_string()),
        details,
    }
}
