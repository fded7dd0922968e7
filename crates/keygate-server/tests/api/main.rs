//! Integration tests: each starts the real server on port 0 with a fresh SQLite file and
//! speaks HTTP to it. One test binary (compiles once); one module per area.

mod faulty;
mod helpers;
mod proxy;

mod accounts;
mod audit;
mod client_address;
mod cluster;
mod control_chars;
mod dashboard;
mod fail_closed;
mod gateway;
mod gateway_auth;
mod hygiene;
mod identity;
mod identity_sessions;
mod key_checks;
mod key_limits;
mod key_rules;
mod keys;
mod layers;
mod limits_in_use;
mod operator_limits;
mod partition;
mod plan_limits;
mod plan_limits_cluster;
mod serving;
mod slow_clients;
mod unknown_credentials;
mod upstream_pool;
mod usage;
mod verify_callers;
