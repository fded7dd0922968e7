//! Loading the settings (defaults, then the file, then `KEYGATE_*`) and checking them as a
//! whole: what `serve` and `config check` both refuse.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

use super::{MAX_WORKERS, Settings, plan_limits, routes};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("configuration: {0}")]
    Layer(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// `workers`, with 0 resolved to the machine's cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// Defaults, then `file` (if any), then `KEYGATE_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
            // Parsed once on its own first: the toml crate names the key *and the line*.
            toml::from_str::<Settings>(&text).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string().trim().to_owned(),
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        // Environment last: `KEYGATE_KEYS__USER_PREFIX=x` sets `keys.user_prefix`. The binary
        // passes `std::env::vars()`; tests pass their own list.
        for (k, v) in env {
            let Some(name) = k.strip_prefix("KEYGATE_") else { continue };
            if name.is_empty() || name.starts_with("TEST_") {
                continue;
            }
            let key = name.to_lowercase().replace("__", ".");
            figment = figment.merge((key, parse_env_value(&v)));
        }
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Layer(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that cross fields and formats; called by `load`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(format!("listen: `{}` is not an address like 127.0.0.1:8080", self.listen));
        }
        if self.workers > MAX_WORKERS {
            return bad(format!("workers: at most {MAX_WORKERS} (0 means one per CPU core)"));
        }
        if keygate_core::KeyFormat::new(&self.keys.user_prefix, &self.keys.org_prefix, &self.sessions.prefix).is_err() {
            return bad(
                "keys.user_prefix, keys.org_prefix and sessions.prefix must be distinct, non-empty, of [A-Za-z0-9_-]"
                    .into(),
            );
        }
        if !self.plans.contains_key(&self.signup.default_plan) {
            return bad(format!("signup.default_plan: no plan named `{}` under [plans]", self.signup.default_plan));
        }
        for (name, plan) in &self.plans {
            plan_limits::validate_plan(plan).map_err(|m| ConfigError::Invalid(format!("plans.{name}.{m}")))?;
        }
        if self.signup.min_password_chars < 8 || self.signup.min_password_chars > 256 {
            return bad("signup.min_password_chars must be 8..=256".into());
        }
        for p in &self.trusted_proxies {
            if keygate_core::net::parse_cidr(p).is_none() {
                return bad(format!("trusted_proxies: `{p}` is not an IP address or CIDR"));
            }
        }
        if !(1..=3600).contains(&self.header_read_timeout_seconds) {
            return bad("header_read_timeout_seconds must be 1..=3600".into());
        }
        if !(1..=86_400).contains(&self.idle_timeout_seconds) {
            return bad("idle_timeout_seconds must be 1..=86400".into());
        }
        if self.max_connections > 10_000_000 {
            return bad("max_connections must be at most 10000000 (0 = from the open-files limit)".into());
        }
        let db = &self.database;
        if !(1..=600_000).contains(&db.acquire_timeout_ms) {
            return bad("database.acquire_timeout_ms must be 1..=600000".into());
        }
        if db.max_connections == 0 || db.min_connections > db.max_connections {
            return bad("database.max_connections must be positive and at least database.min_connections".into());
        }
        if db.statement_timeout_ms > i32::MAX as u64 {
            return bad(format!("database.statement_timeout_ms must be at most {}", i32::MAX));
        }
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes must be positive".into());
        }
        if self.sessions.idle_timeout_minutes == 0 || self.sessions.absolute_timeout_hours == 0 {
            return bad("sessions timeouts must be positive".into());
        }
        if !self.redis_url.is_empty()
            && !self.redis_url.starts_with("redis://")
            && !self.redis_url.starts_with("rediss://")
        {
            return bad("redis_url must start with redis:// or rediss://".into());
        }
        routes::validate_routes(&self.gateway.routes).map_err(ConfigError::Invalid)?;
        self.verify.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

/// Environment values are strings; numbers and booleans are given their natural type.
fn parse_env_value(v: &str) -> figment::value::Value {
    if let Ok(b) = v.parse::<bool>() {
        return b.into();
    }
    if let Ok(n) = v.parse::<i64>() {
        return n.into();
    }
    v.to_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG_TOML;
    use keygate_core::RateLimit;
    use secrecy::SecretString;

    use crate::config::verify;

    #[test]
    fn defaults_are_valid_and_match_the_printed_example() {
        let s = Settings::default();
        assert!(s.validate().is_ok());
        let from_example: Settings = toml::from_str(DEFAULT_CONFIG_TOML).expect("example parses");
        assert_eq!(from_example.listen, s.listen);
        assert_eq!(from_example.plans, s.plans);
        assert_eq!(from_example.verify.anonymous_from, s.verify.anonymous_from);
    }

    #[test]
    fn a_bad_file_names_the_key_and_the_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nmax_body_bytes = \"lots\"\n").expect("write");
        let err = Settings::load(Some(&path), Vec::new()).expect_err("must fail").to_string();
        assert!(err.contains("max_body_bytes"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let err = Settings::load(Some(&path), Vec::new()).expect_err("must fail").to_string();
        assert!(err.contains("lisen") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[keys]\nuser_prefix = \"trace_\"\n").expect("write");
        let env = vec![
            ("KEYGATE_LISTEN".to_owned(), "127.0.0.1:2".to_owned()),
            ("KEYGATE_KEYS__ORG_PREFIX".to_owned(), "trace_org_".to_owned()),
            ("KEYGATE_MAX_BODY_BYTES".to_owned(), "1000".to_owned()),
        ];
        let s = Settings::load(Some(&path), env).expect("loads");
        assert_eq!(s.listen, "127.0.0.1:2");
        assert_eq!(s.keys.user_prefix, "trace_");
        assert_eq!(s.keys.org_prefix, "trace_org_");
        assert_eq!(s.max_body_bytes, 1000);
    }

    #[test]
    fn a_plans_default_key_limit_must_fit_its_ceiling() {
        let mut s = Settings::default();
        let trial = s.plans.get_mut("trial").expect("trial");
        trial.key_rate_limit_max = Some(RateLimit { limit: 600, window_seconds: 60, burst: Some(100) });
        let err = s.validate().expect_err("600 at once is past a burst of 100").to_string();
        assert!(err.contains("plans.trial.rate_limit"), "{err}");
        let trial = s.plans.get_mut("trial").expect("trial");
        trial.key_rate_limit_max = Some(RateLimit { limit: 0, window_seconds: 60, burst: None });
        assert!(s.validate().expect_err("limit 0").to_string().contains("key_rate_limit_max"));
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Settings {
            admin_token: SecretString::from("operator-secret-123".to_owned()),
            database_url: "postgres://kg:pw-secret@db/kg".into(),
            verify: verify::VerifySettings {
                tokens: vec![SecretString::from("verifier-secret-0123456789abcdefghij".to_owned())],
                ..Default::default()
            },
            ..Settings::default()
        };
        let d = format!("{s:?}");
        assert!(!d.contains("operator-secret-123") && !d.contains("pw-secret"), "{d}");
        assert!(!d.contains("verifier-secret"), "{d}");
    }
}
