//! Login throttling (SPEC §4): after `max_failures_per_email` consecutive failures for one
//! email, or `max_failures_per_ip` from one client address, further attempts get 429 with a
//! growing back-off, whatever the password. Unknown and known emails are counted alike, so the
//! answer tells nothing about whether an account exists.
//!
//! Nobody is locked out for good: the back-off is capped at `backoff_max_seconds`, and an
//! address that has signed in to an email successfully before is exempt from that email's
//! counter (an attacker elsewhere cannot lock the owner out of their usual address; the
//! per-address counter still applies to it).
//!
//! The counters live in the database (`Store::login_failures` and its siblings), which every
//! node of a cluster shares: N nodes allow no more guesses than one, and a restart forgets
//! nothing. A sign-in costs an argon2 verification (tens of milliseconds), so the one read per
//! attempt and the one write per failure are noise. Emails are kept as digests only. When the
//! database cannot be read, sign-in fails closed (503), as it would without the throttle.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{Duration, Utc};
use keygate_store::{FailureRun, LoginFailures, Store, Time};

use crate::config::LoginSettings;
use crate::error::{ApiError, ApiResult};

/// How long an address stays known to an email after its last sign-in there.
const KNOWN_PAIR_DAYS: i64 = 90;
/// Idle counters are pruned at most this often per node.
const PRUNE_EVERY_SECONDS: i64 = 3600;

pub struct LoginThrottle {
    settings: LoginSettings,
    store: Arc<dyn Store>,
    /// Unix seconds of this node's last prune.
    last_prune: AtomicI64,
}

impl LoginThrottle {
    pub fn new(settings: LoginSettings, store: Arc<dyn Store>) -> Self {
        LoginThrottle { settings, store, last_prune: AtomicI64::new(0) }
    }

    /// `Err(rate_limited)` with `Retry-After` when this attempt must be refused before the
    /// password is looked at.
    pub async fn check(&self, email: &str, ip: IpAddr) -> ApiResult<()> {
        let failures = self.store.login_failures(&email_key(email), &ip.to_string()).await?;
        match decide(&self.settings, &failures, Utc::now()) {
            Ok(()) => Ok(()),
            Err(wait) => Err(ApiError::login_throttled(wait)),
        }
    }

    pub async fn failure(&self, email: &str, ip: IpAddr) -> ApiResult<()> {
        let now = Utc::now();
        self.store.record_login_failure(&email_key(email), &ip.to_string(), now).await?;
        self.prune_now_and_then(now);
        Ok(())
    }

    pub async fn success(&self, email: &str, ip: IpAddr) -> ApiResult<()> {
        self.store.record_login_success(&email_key(email), &ip.to_string(), Utc::now()).await?;
        Ok(())
    }

    /// Forgets counters idle for longer than twice the longest back-off (a run that old is
    /// no longer "consecutive"), and known addresses unseen for `KNOWN_PAIR_DAYS`. At most
    /// hourly per node, in a task of its own: the failing request does not wait for it (a
    /// failed prune waits for the next hour).
    fn prune_now_and_then(&self, now: Time) {
        let last = self.last_prune.load(Ordering::Relaxed);
        if now.timestamp() - last < PRUNE_EVERY_SECONDS
            || self.last_prune.compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let runs_before = now - horizon(&self.settings);
        let pairs_before = now - Duration::days(KNOWN_PAIR_DAYS);
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            if let Err(e) = store.prune_login_failures(runs_before, pairs_before).await {
                tracing::warn!(error = %e, "could not prune the login throttle's counters");
            }
        });
    }
}

/// What the throttle stores for an email: a digest, so the database never holds addresses
/// that someone merely typed (typos of real ones included).
fn email_key(email: &str) -> String {
    keygate_core::Digest::of(&format!("keygate login throttle\0{email}")).to_hex()
}

fn horizon(settings: &LoginSettings) -> Duration {
    Duration::seconds(i64::try_from(settings.backoff_max_seconds.max(60)).unwrap_or(i64::MAX / 4).saturating_mul(2))
}

/// `Err(seconds to wait)` when the attempt is refused.
fn decide(settings: &LoginSettings, f: &LoginFailures, now: Time) -> Result<(), u64> {
    let ip_wait = wait(settings, f.ip, settings.max_failures_per_ip, now);
    let email_wait = if f.known_pair { None } else { wait(settings, f.email, settings.max_failures_per_email, now) };
    match ip_wait.max(email_wait) {
        Some(s) => Err(s),
        None => Ok(()),
    }
}

/// The back-off still to wait after `run`: none below `threshold`, then the base doubling
/// with each failure beyond it, capped; counted from the run's last failure. A run idle past
/// the horizon is over (pruning may not have removed it yet).
fn wait(settings: &LoginSettings, run: Option<FailureRun>, threshold: u32, now: Time) -> Option<u64> {
    let run = run?;
    if run.count < threshold || now - run.last_at >= horizon(settings) {
        return None;
    }
    let doublings = (run.count - threshold).min(20);
    let backoff =
        settings.backoff_base_seconds.max(1).saturating_mul(1 << doublings).min(settings.backoff_max_seconds.max(1));
    let until = run.last_at + Duration::seconds(i64::try_from(backoff).unwrap_or(i64::MAX / 4));
    (until > now).then(|| u64::try_from((until - now).num_seconds()).unwrap_or(0).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginSettings {
        LoginSettings {
            max_failures_per_email: 3,
            max_failures_per_ip: 5,
            backoff_base_seconds: 1,
            backoff_max_seconds: 60,
        }
    }

    fn run(count: u32, seconds_ago: i64, now: Time) -> Option<FailureRun> {
        Some(FailureRun { count, last_at: now - Duration::seconds(seconds_ago) })
    }

    #[test]
    fn email_is_throttled_from_its_threshold() {
        let (s, now) = (settings(), Utc::now());
        let below = LoginFailures { email: run(2, 0, now), ..Default::default() };
        assert!(decide(&s, &below, now).is_ok());
        let at = LoginFailures { email: run(3, 0, now), ..Default::default() };
        assert_eq!(decide(&s, &at, now), Err(1));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (s, now) = (settings(), Utc::now());
        let f = |count| LoginFailures { email: run(count, 0, now), ..Default::default() };
        assert_eq!(decide(&s, &f(4), now), Err(2));
        assert_eq!(decide(&s, &f(6), now), Err(8));
        assert_eq!(decide(&s, &f(40), now), Err(60));
    }

    #[test]
    fn the_wait_counts_from_the_last_failure_and_a_stale_run_is_over() {
        let (s, now) = (settings(), Utc::now());
        let f = |ago| LoginFailures { email: run(9, ago, now), ..Default::default() };
        assert_eq!(decide(&s, &f(20), now), Err(40), "60 s capped back-off, 20 s of it gone");
        assert!(decide(&s, &f(61), now).is_ok(), "the back-off has passed");
        assert!(decide(&s, &f(1000), now).is_ok(), "past the horizon the run is over");
    }

    #[test]
    fn address_is_throttled_whatever_the_email() {
        let (s, now) = (settings(), Utc::now());
        let f = LoginFailures { ip: run(5, 0, now), known_pair: true, ..Default::default() };
        assert!(decide(&s, &f, now).is_err(), "the per-address counter applies to known pairs too");
    }

    #[test]
    fn the_owners_usual_address_is_exempt_from_the_emails_counter() {
        let (s, now) = (settings(), Utc::now());
        let f = LoginFailures { email: run(10, 0, now), known_pair: true, ..Default::default() };
        assert!(decide(&s, &f, now).is_ok());
    }

    #[test]
    fn emails_are_stored_as_digests() {
        let k = email_key("ada@example.com");
        assert_eq!(k.len(), 64);
        assert!(!k.contains("ada"));
        assert_ne!(k, email_key("ada@example.org"));
    }
}
