//! Typed settings, layered: built-in defaults, then the TOML file, then `KEYGATE_*`
//! environment variables (`__` separates nesting: `KEYGATE_KEYS__USER_PREFIX`), then flags
//! (applied by the binary). `keygate config default` prints `DEFAULT_CONFIG_TOML`.

use std::collections::BTreeMap;
use std::fmt;

use keygate_core::RateLimit;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod load;
pub(crate) mod plan_limits;
pub(crate) mod routes;
pub mod verify;

pub use load::ConfigError;

/// More serving threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 1024;

/// The commented example of docs/api.md §6 Running it, extended with keygate's own settings.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: String,
    /// Serving threads, each with its own event loop, listening socket (`SO_REUSEPORT`) and
    /// upstream connections. 0: one per CPU core.
    pub workers: usize,
    pub database_url: String,
    /// How the store uses the database: pool size, waits, statement time (`[database]`).
    pub database: DatabaseSettings,
    pub redis_url: String,
    #[serde(serialize_with = "expose_for_layering")]
    pub admin_token: SecretString,
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` and `Forwarded` are believed (CIDR list; docs/api.md,
    /// "Client address"). Empty: the socket address is the client.
    pub trusted_proxies: Vec<String>,
    /// A connection must deliver a complete request head within this many seconds of being
    /// accepted (or of the first byte of a later request), or it is closed.
    pub header_read_timeout_seconds: u64,
    /// A keep-alive connection idle between requests this long is closed.
    pub idle_timeout_seconds: u64,
    /// Client connections open at once; at the cap a new one takes an idle one's place.
    /// 0: derived from the open-files limit (`connections::default_max_connections`).
    pub max_connections: usize,
    pub keys: KeySettings,
    pub sessions: SessionSettings,
    pub signup: SignupSettings,
    pub login: LoginSettings,
    pub plans: BTreeMap<String, PlanSettings>,
    pub cache: CacheSettings,
    pub rate_limits: RateLimitSettings,
    pub usage: UsageSettings,
    pub dashboard: DashboardSettings,
    pub gateway: GatewaySettings,
    /// Who may call verify (docs/api.md, "Verify callers").
    pub verify: verify::VerifySettings,
}

fn expose_for_layering<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    // Only used to seed figment with defaults; never reaches logs (Debug is redacted below).
    ser.serialize_str(s.expose_secret())
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("workers", &self.workers)
            .field("database_url", &redact_url(&self.database_url))
            .field("database", &self.database)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("admin_token", &if self.admin_token.expose_secret().is_empty() { "" } else { "[redacted]" })
            .field("max_body_bytes", &self.max_body_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header_read_timeout_seconds", &self.header_read_timeout_seconds)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("max_connections", &self.max_connections)
            .field("keys", &self.keys)
            .field("sessions", &self.sessions)
            .field("signup", &self.signup)
            .field("login", &self.login)
            .field("plans", &self.plans)
            .field("cache", &self.cache)
            .field("rate_limits", &self.rate_limits)
            .field("usage", &self.usage)
            .field("dashboard", &self.dashboard)
            .field("gateway", &self.gateway)
            .field("verify", &self.verify)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[redacted]@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `[database]`. The URL stays the top-level `database_url` (a secret that may come from
/// `KEYGATE_DATABASE_URL_FILE`); these tune how it is used.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Longest a request waits for a database connection; then 503 `unavailable`.
    pub acquire_timeout_ms: u64,
    /// Connections per node (PostgreSQL); reader connections on SQLite (plus one writer).
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// PostgreSQL `statement_timeout` of keygate's statements (not migrations); 0: none.
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        let d = keygate_store::PoolConfig::default();
        DatabaseSettings {
            acquire_timeout_ms: d.acquire_timeout.as_millis() as u64,
            max_connections: d.max_connections,
            min_connections: d.min_connections,
            statement_timeout_ms: d.statement_timeout.as_millis() as u64,
        }
    }
}

impl DatabaseSettings {
    pub fn pool_config(&self) -> keygate_store::PoolConfig {
        keygate_store::PoolConfig {
            max_connections: self.max_connections,
            min_connections: self.min_connections,
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: std::time::Duration::from_millis(self.statement_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    pub user_prefix: String,
    pub org_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    pub prefix: String,
    pub idle_timeout_minutes: u64,
    pub absolute_timeout_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupSettings {
    pub enabled: bool,
    pub block_free_email: bool,
    pub extra_blocked_domains: Vec<String>,
    pub default_plan: String,
    pub min_password_chars: usize,
    /// Sign-ups one client address may make per hour (each costs an argon2 hash and creates
    /// an account); 0: no limit. Per node.
    pub max_per_address_per_hour: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Consecutive failures for one email before attempts are throttled.
    pub max_failures_per_email: u32,
    /// Failures from one client address before attempts are throttled.
    pub max_failures_per_ip: u32,
    /// First back-off; doubles with every further failure.
    pub backoff_base_seconds: u64,
    /// The back-off never grows past this, so nobody is locked out for good.
    pub backoff_max_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlanSettings {
    pub api_access: bool,
    /// Days of the trial after the account's creation; 0 = no end.
    pub trial_days: u32,
    /// An account-wide limit, shared by every key of the account: the one unnamed entry of
    /// `rate_limits` (named `default`; docs/api.md §7 "Plan limits").
    pub rate_limit: Option<RateLimit>,
    /// Account-wide named limits, shared by every key of the account on every node.
    pub rate_limits: Vec<keygate_core::NamedRateLimit>,
    /// Account-wide requests per UTC day or month.
    pub quota: Option<keygate_core::Quota>,
    pub max_keys: Option<u32>,
    /// The loosest rate limit any one key may carry (docs/api.md §7 Keys); when unset,
    /// `rate_limit` is the ceiling.
    pub key_rate_limit_max: Option<RateLimit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Most cached key decisions (positive and negative) kept per node.
    pub max_entries: u64,
    /// Safety net for a missed invalidation: no decision is older than this.
    pub ttl_seconds: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// What a shared (Redis) limit decides while Redis is unreachable.
    pub redis_failure_policy: FailurePolicy,
    /// Distinct unknown keys or session tokens one client address may send per minute before
    /// its cache misses get 429 without a storage read (0: no limit). Per node.
    pub unknown_credentials_per_address: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageSettings {
    pub flush_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    pub enabled: bool,
    /// `Secure` + `__Host-` cookies. Turn off only for plain-HTTP local use.
    pub secure_cookies: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    pub routes: Vec<RouteSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    pub prefix: String,
    pub upstream: String,
    pub resource: String,
    #[serde(default = "all_credentials")]
    pub credentials: Vec<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Units one request on the route spends of every rate limit and the quota (default 1).
    #[serde(default = "default_cost")]
    pub cost: u32,
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub strip_prefix: bool,
}

impl RouteSettings {
    /// A route with the defaults a `[[gateway.routes]]` entry gets for the keys it omits.
    pub fn new(prefix: &str, upstream: &str, resource: &str) -> Self {
        RouteSettings {
            prefix: prefix.into(),
            upstream: upstream.into(),
            resource: resource.into(),
            credentials: all_credentials(),
            rate_limit: None,
            cost: default_cost(),
            actions: BTreeMap::new(),
            timeout_seconds: default_timeout(),
            strip_prefix: false,
        }
    }
}

fn all_credentials() -> Vec<String> {
    vec!["user_key".into(), "org_key".into(), "session".into()]
}

fn default_cost() -> u32 {
    1
}

fn default_timeout() -> u64 {
    30
}

impl Default for Settings {
    fn default() -> Self {
        let mut plans = BTreeMap::new();
        plans.insert(
            "trial".to_owned(),
            PlanSettings {
                api_access: true,
                trial_days: 14,
                rate_limit: Some(RateLimit { limit: 600, window_seconds: 60, burst: None }),
                max_keys: Some(100),
                ..PlanSettings::default()
            },
        );
        plans.insert("free".to_owned(), PlanSettings { api_access: false, ..PlanSettings::default() });
        Settings {
            listen: "127.0.0.1:8080".into(),
            workers: 0,
            database_url: "sqlite://keygate.db".into(),
            database: DatabaseSettings::default(),
            redis_url: String::new(),
            admin_token: SecretString::from(String::new()),
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            header_read_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_connections: 0,
            keys: KeySettings::default(),
            sessions: SessionSettings::default(),
            signup: SignupSettings::default(),
            login: LoginSettings::default(),
            plans,
            cache: CacheSettings::default(),
            rate_limits: RateLimitSettings::default(),
            usage: UsageSettings::default(),
            dashboard: DashboardSettings::default(),
            gateway: GatewaySettings::default(),
            verify: Default::default(),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings { user_prefix: "kg_".into(), org_prefix: "kg_org_".into() }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { prefix: "kgs_".into(), idle_timeout_minutes: 1440, absolute_timeout_hours: 720 }
    }
}

impl Default for SignupSettings {
    fn default() -> Self {
        SignupSettings {
            enabled: true,
            block_free_email: true,
            extra_blocked_domains: Vec::new(),
            default_plan: "trial".into(),
            min_password_chars: 12,
            max_per_address_per_hour: 20,
        }
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            max_failures_per_email: 10,
            max_failures_per_ip: 50,
            backoff_base_seconds: 30,
            backoff_max_seconds: 900,
        }
    }
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            api_access: true,
            trial_days: 0,
            rate_limit: None,
            rate_limits: Vec::new(),
            quota: None,
            max_keys: None,
            key_rate_limit_max: None,
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { max_entries: 1_000_000, ttl_seconds: 60 }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings { redis_failure_policy: FailurePolicy::FailClosed, unknown_credentials_per_address: 100 }
    }
}

impl Default for UsageSettings {
    fn default() -> Self {
        UsageSettings { flush_interval_ms: 500 }
    }
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings { enabled: true, secure_cookies: true }
    }
}
