//! An allowance per client address: `limit` events a `window`, refilled at the same rate
//! (GCRA from keygate-core), for what one address must not do without bound. Two users:
//!
//! - **unknown credentials** (ARCHITECTURE.md, "The hot path": failed lookups are cheap to
//!   repeat and bounded). A made-up key with a valid checksum passes every offline check and
//!   costs one indexed read; the negative cache only helps when the same one comes back. So one
//!   address may send `rate_limits.unknown_credentials_per_address` distinct unknown
//!   credentials a minute; beyond that, its cache misses are refused with 429 before they reach
//!   storage. Credentials already in the cache answer as before: a legitimate client behind the
//!   same address keeps working with the keys it used lately.
//! - **sign-ups**: each costs an argon2 hash and creates an account, so one address may sign up
//!   `signup.max_per_address_per_hour` times an hour.
//!
//! Counted per node, in memory, over at most `MAX_ADDRESSES` addresses (an entry idle for a
//! window drops out). IPv6 addresses count per /64, the block one subscriber usually holds, so
//! rotating through one's own addresses gains nothing. Loopback is never limited: it is this
//! host, i.e. a local proxy whose clients keygate cannot tell apart (`trusted_proxies` not
//! set: limiting it would limit every client at once) or a test; no remote sender has it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use keygate_core::RateLimit;
use keygate_core::ratelimit::{Decision, check};
use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::FastHash;

/// Addresses tracked at once; a flood from more of them evicts the idlest.
const MAX_ADDRESSES: u64 = 100_000;

pub struct AddressAllowance {
    /// `None` when the operator turned it off (a limit of 0).
    limit: Option<RateLimit>,
    /// Address block → GCRA theoretical arrival time, ns since `epoch`.
    tats: Cache<IpAddr, u64, FastHash>,
    epoch: Instant,
}

impl AddressAllowance {
    /// `limit` events per `window_seconds` per address block; 0 means no limit.
    pub fn new(limit: u32, window_seconds: u32) -> Self {
        let window_seconds = window_seconds.max(1);
        let limit = (limit > 0).then_some(RateLimit { limit, window_seconds, burst: None });
        AddressAllowance {
            limit,
            // A TAT is at most one window ahead of its last update, so an entry idle for a
            // window holds nothing a fresh one would not.
            tats: Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_idle(Duration::from_secs(u64::from(window_seconds)))
                .build_with_hasher(FastHash::default()),
            epoch: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        // Offset by a day, the longest window used, so no stored time is ever zero.
        self.epoch.elapsed().as_nanos() as u64 + 86_400 * 1_000_000_000
    }

    /// The refusal for an event from `ip` when its allowance is spent; `None` lets it through
    /// and spends nothing (see `charge` and `take`).
    pub fn refusal(&self, ip: IpAddr) -> Option<Decision> {
        let limit = self.limit.as_ref().filter(|_| !is_local(ip))?;
        let tat = self.tats.get(&block(ip))?;
        let (decision, _) = check(Some(tat), self.now_ns(), limit, 1);
        (!decision.allowed).then_some(decision)
    }

    /// Spends one unit of `ip`'s allowance, when it happened regardless (a lookup that found
    /// nothing).
    pub fn charge(&self, ip: IpAddr) {
        let _ = self.take(ip);
    }

    /// Spends one unit of `ip`'s allowance if there is one left; otherwise the refusal.
    pub fn take(&self, ip: IpAddr) -> Option<Decision> {
        let limit = self.limit.filter(|_| !is_local(ip))?;
        let now = self.now_ns();
        let mut refused = None;
        self.tats.entry(block(ip)).and_compute_with(|entry| {
            let (decision, new_tat) = check(entry.map(|e| e.into_value()), now, &limit, 1);
            match new_tat {
                Some(t) => Op::Put(t),
                None => {
                    refused = Some(decision);
                    Op::Nop
                }
            }
        });
        refused
    }
}

fn is_local(ip: IpAddr) -> bool {
    keygate_core::net::canonical(ip).is_loopback()
}

/// The unit an allowance belongs to: an IPv4 address, or an IPv6 address's /64.
fn block(ip: IpAddr) -> IpAddr {
    match keygate_core::net::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn an_address_is_refused_once_its_allowance_is_spent() {
        let t = AddressAllowance::new(3, 60);
        let a = ip("203.0.113.7");
        for _ in 0..3 {
            assert!(t.refusal(a).is_none());
            t.charge(a);
        }
        let refused = t.refusal(a).expect("the fourth unknown credential is refused");
        assert!(!refused.allowed);
        assert!((1..=20).contains(&refused.retry_after_seconds), "one unit refills in 20 s: {refused:?}");
        assert!(t.refusal(ip("203.0.113.8")).is_none(), "other addresses keep their own allowance");
    }

    #[test]
    fn an_ipv6_subscriber_counts_as_one_block() {
        let t = AddressAllowance::new(2, 60);
        t.charge(ip("2001:db8:1:2::1"));
        t.charge(ip("2001:db8:1:2:ffff::9"));
        assert!(t.refusal(ip("2001:db8:1:2::abcd")).is_some(), "the same /64");
        assert!(t.refusal(ip("2001:db8:1:3::1")).is_none(), "the next /64");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let t = AddressAllowance::new(1, 60);
        t.charge(ip("::ffff:198.51.100.4"));
        assert!(t.refusal(ip("198.51.100.4")).is_some());
    }

    #[test]
    fn take_spends_until_the_allowance_is_gone_then_refuses() {
        let t = AddressAllowance::new(2, 3600);
        let a = ip("192.0.2.9");
        assert!(t.take(a).is_none() && t.take(a).is_none());
        let refused = t.take(a).expect("the third in an hour is refused");
        assert!((1..=1800).contains(&refused.retry_after_seconds), "one refills in 30 min: {refused:?}");
        assert!(t.refusal(a).is_some(), "a refusal spends nothing, and changes nothing");
    }

    #[test]
    fn loopback_is_never_limited() {
        let t = AddressAllowance::new(1, 60);
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            for _ in 0..3 {
                assert!(t.take(ip(local)).is_none(), "{local}");
            }
            assert!(t.refusal(ip(local)).is_none(), "{local}");
        }
    }

    #[test]
    fn zero_turns_the_throttle_off() {
        let t = AddressAllowance::new(0, 60);
        let a = ip("192.0.2.1");
        for _ in 0..1000 {
            t.charge(a);
        }
        assert!(t.refusal(a).is_none());
    }
}
