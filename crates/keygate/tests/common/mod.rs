//! What the binary's tests share: the command, clean of the developer's settings, and a child
//! process that cannot outlive its test.
#![allow(dead_code)] // each test file uses its own part

use std::process::{Child, Command};

/// `keygate` as built for these tests, without the developer's own KEYGATE_* settings.
pub fn keygate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") {
            c.env_remove(k);
        }
    }
    c
}

/// A running keygate (server or demo), killed when the test ends — a failed assertion
/// included, so no server is left behind holding a port.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
