//! keygate's storage: `trait Store` and its SQL implementation for SQLite and PostgreSQL.
//!
//! The server calls [`open`] (or [`SqlStore::connect`]) with its `database_url`; the backend is
//! chosen by the URL's scheme and migrations run before the store is handed out.
#![forbid(unsafe_code)]

pub mod error;
pub mod intercept;
pub mod model;
pub mod sql;
pub mod store;
pub mod usage;

pub use error::{Conflict, StoreError, StoreResult};
pub use model::*;
pub use sql::{Dialect, PoolConfig, SqlStore, open, open_with};
pub use store::Store;
pub use usage::*;
