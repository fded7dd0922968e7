//! Integration tests: each starts the real server on port 0 with a fresh SQLite file and
//! speaks HTTP to it. One test binary (compiles once); one module per area.

mod faulty;
mod helpers;

mod identity;
mod hygiene;
mod accounts;
mod audit;
mod fail_closed;
mod keys;
mod cluster;
mod gateway;
mod serving;
mod upstream_pool;
mod dashboard;
mod unknown_credentials;
