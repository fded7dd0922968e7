//! Failure throttling per client address for credentials that match nothing (ARCHITECTURE.md,
//! "The hot path": failed lookups are cheap to repeat and bounded).
//!
//! A made-up key with a valid checksum passes every offline check and costs one indexed read;
//! the negative cache only helps when the same one comes back. So one address may send
//! `per_minute` distinct unknown credentials a minute. Beyond that, its cache misses are
//! refused with 429 before they reach storage, until the allowance refills at the same rate.
//! Credentials already in the cache answer as before: the throttle guards storage, and a
//! legitimate client behind the same address keeps working with the keys it used lately.
//!
//! Counted per node, in memory, over at most `MAX_ADDRESSES` addresses (idle ones drop out
//! after a minute). IPv6 addresses count per /64, the block one subscriber usually holds, so
//! rotating through one's own addresses gains nothing.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use keygate_core::RateLimit;
use keygate_core::ratelimit::{Decision, check};
use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::FastHash;

const WINDOW_SECONDS: u32 = 60;
/// Addresses tracked at once; a flood from more of them evicts the idlest.
const MAX_ADDRESSES: u64 = 100_000;

pub struct UnknownThrottle {
    /// `None` when the operator turned the throttle off (`per_minute = 0`).
    limit: Option<RateLimit>,
    /// Address block → GCRA theoretical arrival time, ns since `epoch`.
    tats: Cache<IpAddr, u64, FastHash>,
    epoch: Instant,
}

impl UnknownThrottle {
    pub fn new(per_minute: u32) -> Self {
        let limit =
            (per_minute > 0).then_some(RateLimit { limit: per_minute, window_seconds: WINDOW_SECONDS, burst: None });
        UnknownThrottle {
            limit,
            // A TAT is at most one window ahead of its last update, so an entry idle for a
            // window holds nothing a fresh one would not.
            tats: Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_idle(Duration::from_secs(u64::from(WINDOW_SECONDS)))
                .build_with_hasher(FastHash::default()),
            epoch: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        // Offset by one window so no stored time is ever zero.
        self.epoch.elapsed().as_nanos() as u64 + u64::from(WINDOW_SECONDS) * 1_000_000_000
    }

    /// The refusal for a lookup from `ip` when its allowance is spent; `None` lets it through.
    pub fn refusal(&self, ip: IpAddr) -> Option<Decision> {
        let limit = self.limit.as_ref()?;
        let tat = self.tats.get(&block(ip))?;
        let (decision, _) = check(Some(tat), self.now_ns(), limit, 1);
        (!decision.allowed).then_some(decision)
    }

    /// Counts one lookup from `ip` that found nothing.
    pub fn charge(&self, ip: IpAddr) {
        let Some(limit) = self.limit else { return };
        let now = self.now_ns();
        self.tats.entry(block(ip)).and_compute_with(|entry| {
            let (_, new_tat) = check(entry.map(|e| e.into_value()), now, &limit, 1);
            match new_tat {
                Some(t) => Op::Put(t),
                None => Op::Nop,
            }
        });
    }
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
        let t = UnknownThrottle::new(3);
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
        let t = UnknownThrottle::new(2);
        t.charge(ip("2001:db8:1:2::1"));
        t.charge(ip("2001:db8:1:2:ffff::9"));
        assert!(t.refusal(ip("2001:db8:1:2::abcd")).is_some(), "the same /64");
        assert!(t.refusal(ip("2001:db8:1:3::1")).is_none(), "the next /64");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let t = UnknownThrottle::new(1);
        t.charge(ip("::ffff:198.51.100.4"));
        assert!(t.refusal(ip("198.51.100.4")).is_some());
    }

    #[test]
    fn zero_turns_the_throttle_off() {
        let t = UnknownThrottle::new(0);
        let a = ip("192.0.2.1");
        for _ in 0..1000 {
            t.charge(a);
        }
        assert!(t.refusal(a).is_none());
    }
}
