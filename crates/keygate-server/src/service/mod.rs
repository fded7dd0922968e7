//! Management operations shared by the JSON API and the dashboard. Each takes the caller
//! already resolved in its account (`Caller`) and answers domain values or an `ApiError`, so
//! both front ends apply one set of rules and write one set of audit entries.

pub mod audit;
pub mod identity;
pub mod keys;
pub mod members;
