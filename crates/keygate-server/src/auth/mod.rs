//! Authentication: the hot-path authenticator, its checks and cache invalidation, and the
//! management API's view of the caller.

pub mod authenticator;
pub mod checks;
pub mod headers;
pub mod invalidation;
pub mod principal;
pub mod resolved;
pub mod verifier;

pub use authenticator::{AuthContext, Authenticator, Granted, Refused};
pub use checks::{NO_REQUIREMENTS, Refusal, Requirements};
pub use invalidation::{Invalidation, Invalidator};
pub use principal::{Caller, Principal};
