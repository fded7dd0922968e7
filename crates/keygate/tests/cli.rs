//! The binary as a user runs it: configuration errors, the printed example, and the demo.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

mod common;
use common::{Running, keygate};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_bad_config_file_names_the_key_and_line_and_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keygate.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nmax_body_bytes = \"lots\"\n").expect("write");
    let out = keygate().args(["serve", "--config"]).arg(&path).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("max_body_bytes") && err.contains("line 2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(
        &path,
        "[[gateway.routes]]\nprefix = \"/v1/keys\"\nupstream = \"http://127.0.0.1:9\"\nresource = \"k\"\n",
    )
    .expect("write");
    let out = keygate().args(["config", "check", "--config"]).arg(&path).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("gateway.routes[0]") && err.contains("/v1/keys"), "{err}");

    let out = keygate().args(["serve", "--listen", "nowhere"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn config_default_prints_a_valid_example() {
    let out = keygate().args(["config", "default"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[keys]") && text.contains("user_prefix") && text.contains("gateway.routes"), "{text}");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("k.toml");
    std::fs::write(&path, text.as_bytes()).expect("write");
    let check = keygate().args(["config", "check", "--config"]).arg(&path).output().expect("run");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

/// One request over a plain connection; answers the status line and the body.
fn get(addr: &str, path: &str, key: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn the_demo_prints_its_lines_and_guards_the_sample_api() {
    let mut child = keygate()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.starts_with("Everything lives");
        lines.push(line);
        if done {
            break;
        }
    }
    let value = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no `{label}` in {lines:#?}"))
    };
    let base = value("listening: http://");
    let org = value("org key: ");
    let user = value("user key: ");
    assert!(value("email: ").contains('@'));
    assert!(value("password: ").len() >= 12);
    assert!(lines.iter().any(|l| l.starts_with("curl ")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("Dashboard: http://") && l.contains("/app")), "{lines:#?}");

    let (status, body) = get(&base, "/v1/companies", &org);
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"credential\":\"org_key\""), "{body}");
    let (status, body) = get(&base, "/v1/lists", &org);
    assert!(status.contains(" 403 ") && body.contains("user_credential_required"), "{status} {body}");
    let (status, _) = get(&base, "/v1/lists", &user);
    assert!(status.contains(" 200 "), "{status}");
    let verifier = value("verifier token: ");
    assert!(verifier.starts_with("kgv_") && verifier.len() == 42, "{verifier}");
    assert!(
        lines.iter().any(|l| l.starts_with("curl ") && l.contains("/v1/keys/verify") && l.contains(&verifier)),
        "a curl line uses the verifier token: {lines:#?}"
    );
    // The sandbox account's plan: its daily quota of 10 is shared by its two keys, then
    // 429 quota_exceeded (the printed loop); the printed lines name both limits.
    let sandbox = value("sandbox keys: ");
    let (first, second) = sandbox.split_once(' ').expect("two sandbox keys");
    for i in 0..10 {
        let (status, body) = get(&base, "/v1/companies", if i % 2 == 0 { first } else { second });
        assert!(status.contains(" 200 "), "request {i}: {status} {body}");
    }
    let (status, body) = get(&base, "/v1/companies", second);
    assert!(status.contains(" 429 ") && body.contains("quota_exceeded"), "{status} {body}");
    assert!(lines.iter().any(|l| l.contains("429 rate_limited")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("curl ") && l.contains(first)), "{lines:#?}");
}

#[test]
fn verifier_token_prints_a_token_and_the_entry_to_configure() {
    let out = keygate().arg("verifier-token").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| text.lines().find_map(|l| l.strip_prefix(label)).map(str::to_owned);
    let token = field("verifier token: ").expect("the token line");
    let entry = field("config entry: ").expect("the config line");
    assert!(token.starts_with("kgv_") && token.len() == 42, "{token}");
    assert_eq!(entry, format!("sha256:{}", keygate_core::Digest::of(&token).to_hex()));
    let again = keygate().arg("verifier-token").output().expect("run");
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&token), "a fresh token every time");
}

/// The README's first command is `cargo run --release -- demo` from the workspace root. Once
/// the bench tools (binaries too) joined the workspace, that command stopped knowing which
/// binary to run; `default-members` makes it keygate's. Checked through `cargo metadata`, as
/// cargo itself resolves it, without building anything.
#[test]
fn cargo_run_at_the_root_has_exactly_one_binary_to_run() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        // From the root, as a user types it: inside a member, cargo defaults to that member.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let defaults = meta["workspace_default_members"].as_array().expect("cargo ≥ 1.71 lists default members");
    let bins: Vec<&str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| defaults.contains(&p["id"]))
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(bins, ["keygate"], "`cargo run` at the root must find keygate's binary alone");
}
