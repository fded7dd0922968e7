//! The `keygate` binary: a thin shell over the `keygate-server` library (see `cli`).
#![forbid(unsafe_code)]

mod admin;
mod cli;
mod demo;
mod demo_upstream;
mod logging;

/// mimalloc rather than glibc's malloc: the hot path allocates small short-lived buffers per
/// request (headers, bodies) and glibc spent ≈ 15 % of the gateway's CPU in malloc/free and
/// `malloc_consolidate` (BENCHMARKS.md). `keygate-alloc` holds the `unsafe` of calling it.
#[global_allocator]
static ALLOCATOR: keygate_alloc::MiMalloc = keygate_alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
