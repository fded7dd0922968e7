//! keygate's storage: `trait Store` and its SQL implementation for SQLite and PostgreSQL.
#![forbid(unsafe_code)]

pub mod error;
pub mod model;
pub mod store;

pub use error::{StoreError, StoreResult};
pub use model::*;
pub use store::Store;
