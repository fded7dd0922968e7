//! Login throttling (SPEC §4): after `max_failures_per_email` consecutive failures for one
//! email, or `max_failures_per_ip` from one client address, further attempts get 429 with a
//! growing back-off, whatever the password. Unknown and known emails are counted alike, so the
//! answer tells nothing about whether an account exists.
//!
//! Nobody is locked out for good: the back-off is capped at `backoff_max_seconds`, and an
//! address that has signed in to an email successfully before is exempt from that email's
//! counter (an attacker elsewhere cannot lock the owner out of their usual address; the
//! per-address counter still applies to it).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::{DashMap, DashSet};

use crate::config::LoginSettings;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginThrottle {
    settings: LoginSettings,
    by_email: DashMap<String, Failures>,
    by_ip: DashMap<IpAddr, Failures>,
    known: DashSet<(String, IpAddr)>,
}

const MAX_TRACKED: usize = 200_000;

impl LoginThrottle {
    pub fn new(settings: LoginSettings) -> Self {
        LoginThrottle { settings, by_email: DashMap::new(), by_ip: DashMap::new(), known: DashSet::new() }
    }

    fn wait(&self, f: Option<Failures>, threshold: u32, now: Instant) -> Option<u64> {
        let f = f?;
        if f.count < threshold {
            return None;
        }
        let doublings = (f.count - threshold).min(20);
        let backoff = self.settings.backoff_base_seconds.max(1).saturating_mul(1 << doublings).min(self.settings.backoff_max_seconds.max(1));
        let until = f.last + Duration::from_secs(backoff);
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// `Err(seconds)` when this attempt must be refused before looking at the password.
    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let ip_wait = self.wait(self.by_ip.get(&ip).map(|f| *f), self.settings.max_failures_per_ip, now);
        let email_wait = if self.known.contains(&(email.to_owned(), ip)) {
            None
        } else {
            self.wait(self.by_email.get(email).map(|f| *f), self.settings.max_failures_per_email, now)
        };
        match ip_wait.max(email_wait) {
            Some(s) => Err(s),
            None => Ok(()),
        }
    }

    pub fn failure(&self, email: &str, ip: IpAddr) {
        let now = Instant::now();
        if self.by_email.len() > MAX_TRACKED || self.by_ip.len() > MAX_TRACKED {
            self.prune();
        }
        let bump = |f: &mut Failures| {
            f.count = f.count.saturating_add(1);
            f.last = now;
        };
        bump(&mut self.by_email.entry(email.to_owned()).or_insert(Failures { count: 0, last: now }));
        bump(&mut self.by_ip.entry(ip).or_insert(Failures { count: 0, last: now }));
    }

    pub fn success(&self, email: &str, ip: IpAddr) {
        self.by_email.remove(email);
        if self.known.len() < MAX_TRACKED {
            self.known.insert((email.to_owned(), ip));
        }
    }

    /// Forgets counters idle for longer than twice the longest back-off.
    pub fn prune(&self) {
        let horizon = Duration::from_secs(self.settings.backoff_max_seconds.max(60) * 2);
        let now = Instant::now();
        self.by_email.retain(|_, f| now.duration_since(f.last) < horizon);
        self.by_ip.retain(|_, f| now.duration_since(f.last) < horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(LoginSettings {
            max_failures_per_email: 3,
            max_failures_per_ip: 5,
            backoff_base_seconds: 1,
            backoff_max_seconds: 60,
        })
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn email_is_throttled_after_its_threshold() {
        let t = throttle();
        for _ in 0..3 {
            assert!(t.check("a@x.com", ip(1)).is_ok());
            t.failure("a@x.com", ip(1));
        }
        assert!(t.check("a@x.com", ip(2)).is_err());
        assert!(t.check("b@x.com", ip(2)).is_ok());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let t = throttle();
        for _ in 0..40 {
            t.failure("a@x.com", ip(1));
        }
        let wait = t.check("a@x.com", ip(9)).expect_err("throttled");
        assert!((59..=60).contains(&wait), "{wait}");
    }

    #[test]
    fn address_is_throttled_across_emails() {
        let t = throttle();
        for i in 0..5 {
            t.failure(&format!("u{i}@x.com"), ip(7));
        }
        assert!(t.check("new@x.com", ip(7)).is_err());
        assert!(t.check("new@x.com", ip(8)).is_ok());
    }

    #[test]
    fn attacker_cannot_lock_out_the_owners_usual_address() {
        let t = throttle();
        t.success("a@x.com", ip(1));
        for _ in 0..10 {
            t.failure("a@x.com", ip(66));
        }
        assert!(t.check("a@x.com", ip(66)).is_err());
        assert!(t.check("a@x.com", ip(1)).is_ok());
    }
}
