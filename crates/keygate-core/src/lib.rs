//! keygate's domain: pure code, no I/O. Every rule here is unit-tested beside it.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authority;
pub mod base62;
pub mod base64url;
pub mod credential;
pub mod forwarded;
pub mod id;
pub mod loosening;
pub mod net;
pub mod quota;
pub mod ratelimit;
pub mod scope;
pub mod validate;

pub use authority::Authority;
pub use credential::{CredentialKind, Digest, KeyFormat, Parsed, Secret};
pub use quota::{Quota, QuotaPeriod};
pub use ratelimit::{NamedRateLimit, RateLimit, Refill};
pub use scope::{Permissions, Scope, ScopeSet};
