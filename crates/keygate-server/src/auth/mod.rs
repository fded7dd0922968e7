//! Authentication: the hot-path authenticator (one credential dispatch, its verdicts, its
//! caches and status checks), cache invalidation, and the management API's view of the caller.
//! Limits it applies live in `crate::limits`.

pub mod authenticator;
pub mod cache;
pub mod cached_key;
pub mod checks;
pub mod headers;
pub mod invalidation;
pub mod principal;
pub mod sessions;
pub mod verdict;
pub mod verifier;

pub use authenticator::Authenticator;
pub use cached_key::CachedKey;
pub use checks::{NO_REQUIREMENTS, Refusal, Requirements};
pub use invalidation::{Invalidation, Invalidator};
pub use principal::{Caller, Principal};
pub use verdict::{Accept, AuthContext, Authenticated, Granted, Refused, Verdict};
