//! The dashboard in a real browser, as part of `cargo test`: runs `e2e/dashboard.mjs` (Node,
//! playwright-core, Debian's Chromium headless) against this build's `keygate` binary. It
//! signs up, creates a key, uses it against the API, revokes it through the dialog and sees
//! it refused.
//!
//! Skipped, loudly, where the browser tooling is missing: `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`), `node`, or `e2e/node_modules` (`npm ci --prefix e2e`).
//! The screenshot goes to the target directory; with `E2E_UPDATE_SCREENSHOT=1` it replaces
//! `docs/screenshot-keys.png`, the one the README shows.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tooling(root: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return Some("node is missing".into());
    }
    if !root.join("e2e/node_modules/playwright-core").exists() {
        return Some("e2e/node_modules is missing (npm ci --prefix e2e)".into());
    }
    None
}

#[test]
fn dashboard_in_a_real_browser() {
    let root = repo_root();
    if let Some(why) = missing_tooling(&root) {
        eprintln!("SKIPPED: the dashboard browser test did not run: {why}");
        return;
    }
    let screenshot = if std::env::var_os("E2E_UPDATE_SCREENSHOT").is_some() {
        root.join("docs/screenshot-keys.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshot-keys.png")
    };
    let out = Command::new("node")
        .arg(root.join("e2e/dashboard.mjs"))
        .env("E2E_KEYGATE_BIN", env!("CARGO_BIN_EXE_keygate"))
        .env("E2E_SCREENSHOT", &screenshot)
        .current_dir(&root)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "the browser test failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(screenshot.exists(), "a screenshot at {}", screenshot.display());
}
