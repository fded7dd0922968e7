//! The `keygate` binary: a thin shell over the `keygate-server` library (see `cli`).
#![forbid(unsafe_code)]

mod admin;
mod cli;
mod demo;
mod demo_upstream;
mod logging;

fn main() -> std::process::ExitCode {
    cli::main()
}
