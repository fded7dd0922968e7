//! What the authenticator is asked and what it answers. A decision against a credential is a
//! [`Verdict`]; an `Err` beside it means only that no decision could be made (storage or the
//! invalidation feed unavailable: 503, fail closed), as unkey's verifier separates system
//! failures from refusals.

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::ratelimit::Decision;
use keygate_store::SessionAuth;

use super::cached_key::CachedKey;
use super::checks::{Refusal, Requirements};
use crate::error::ApiError;

/// What a request brings besides its credential. Borrowed, not owned: a gateway request's
/// requirements and limit are its route's, compiled once, and must not be copied per request.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// The sender: its address is checked against IP allowlists and answers for unknown
    /// credentials (`AddressAllowance`, always).
    pub ip: IpAddr,
    pub requirements: &'a Requirements,
    /// Units of rate limit and usage this request spends (verify's `cost`; 1 elsewhere).
    pub cost: u32,
    /// An extra limit on top of the key's own: (bucket name, limit), e.g. a gateway route's.
    pub extra_limit: Option<&'a (String, keygate_core::RateLimit)>,
}

/// Which credentials a caller decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Verify: anything that is not a key, session tokens included, is an unknown key
    /// (NOT_FOUND), decided offline.
    KeysOnly,
    /// The gateway and the management API.
    KeysAndSessions,
}

/// The credential dispatch's answer (`Authenticator::authenticate`).
#[derive(Debug)]
pub enum Authenticated {
    Key(Verdict),
    /// A valid session (its refusals are still errors: `authenticate_parsed_session`).
    Session(Arc<SessionAuth>),
    /// Not a credential of this deployment (format, checksum), under `KeysAndSessions`:
    /// the caller answers 401 `invalid_credentials`. Nothing was read or counted.
    Unreadable,
}

/// The decision on a key.
#[derive(Debug, Clone)]
pub enum Verdict {
    Granted(Granted),
    Refused(Refused),
}

impl Verdict {
    /// For callers that answer a refusal as an error (the gateway, the management API)
    /// rather than as a decision (verify).
    pub fn admit(self) -> Result<Granted, ApiError> {
        match self {
            Verdict::Granted(g) => Ok(g),
            Verdict::Refused(r) => Err(r.refusal.to_api_error()),
        }
    }

    pub fn is_granted(&self) -> bool {
        matches!(self, Verdict::Granted(_))
    }
}

/// A key that may proceed, with what the caller needs to answer.
#[derive(Debug, Clone)]
pub struct Granted {
    pub key: Arc<CachedKey>,
    /// The tightest limit that applied (for `RateLimit-*` headers); `None` when unlimited.
    pub rate: Option<Decision>,
    pub usage_remaining: Option<i64>,
}

/// A refusal, with the key when it was found (verify reports its id and account).
#[derive(Debug, Clone)]
pub struct Refused {
    pub refusal: Refusal,
    pub key: Option<Arc<CachedKey>>,
}
