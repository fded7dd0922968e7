//! Limits: what one caller may spend, and what is refused when it has spent it. One home for
//! every limit keygate enforces; the arithmetic (GCRA) stays pure in `keygate_core::ratelimit`.
//!
//! - [`rate`]: rate limits per bucket (a key, a key on a route, a session user), in memory or
//!   shared through [`redis`]. The authenticator calls `RateLimiter::check(bucket, limit,
//!   cost)` once per limit that applies to a request; a new kind of limit (account-wide, a
//!   quota) is one more bucket name and one more call there.
//! - [`address`]: allowances per client address (unknown credentials, sign-ups).
//! - [`login`]: the login throttle (consecutive failures per email and per address, in the
//!   database every node shares).

pub mod address;
pub mod login;
pub mod rate;
pub mod redis;

use keygate_core::ratelimit::Decision;

pub use self::address::AddressAllowance;
pub use self::login::LoginThrottle;
pub use self::rate::{RateLimiter, SharedLimiter};

/// The decision with less room left: its numbers go into the `RateLimit-*` headers.
pub fn tighter(a: Option<Decision>, b: Decision) -> Decision {
    match a {
        Some(a) if a.remaining <= b.remaining => a,
        _ => b,
    }
}
