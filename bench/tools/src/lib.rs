//! Shared by the `keygate-bench` binaries (see BENCHMARKS.md).
#![forbid(unsafe_code)]

pub mod seed;
