//! `keygate admin` beside a running `keygate serve` on one SQLite file: the server honours the
//! shell's changes at once (through the invalidation outbox), not after its cache TTL.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{Running, keygate};

/// `keygate <command> --config <config>`.
fn keygate_with(command: &str, config: &Path) -> Command {
    let mut c = keygate();
    c.arg(command).arg("--config").arg(config);
    c
}

/// Runs an admin command; answers its `label: value` lines.
fn admin(config: &Path, args: &[&str], stdin: &str) -> Vec<(String, String)> {
    let mut child = keygate_with("admin", config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn admin");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("admin output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "admin {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn value<'a>(lines: &'a [(String, String)], label: &str) -> &'a str {
    lines.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {label}: {lines:?}"))
}

/// Starts the server and answers it with its address, read from its JSON start-up log line.
fn serve(config: &Path) -> (Running, String) {
    let mut child = keygate_with("serve", config)
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let child = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "keygate listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server says where it listens");
    (child, addr)
}

/// `POST /v1/keys/verify`; answers the decision's code.
fn verify(addr: &str, key: &str) -> String {
    let body = serde_json::json!({ "key": key }).to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(
        s,
        "POST /v1/keys/verify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("verify answered {out}"));
    v["code"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_key_revoked_from_the_shell_is_refused_by_the_running_server_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("keygate.toml");
    let db = dir.path().join("keygate.db");
    // A cache TTL of an hour: only the outbox can make the server notice within the test.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nworkers = 1\ndatabase_url = \"sqlite://{}\"\n[cache]\nttl_seconds = 3600\n",
            db.display()
        ),
    )
    .expect("write config");
    let user = admin(
        &config,
        &["users", "create", "--email", "ops@acme-widgets.com", "--name", "Ops", "--password-stdin"],
        "a long enough passphrase\n",
    );
    let account = value(&user, "account").to_owned();
    let minted = admin(&config, &["keys", "mint", "--account", &account, "--name", "shell"], "");
    let key = value(&minted, "key").to_owned();

    let (_server, addr) = serve(&config);
    assert_eq!(verify(&addr, &key), "VALID");
    assert_eq!(verify(&addr, &key), "VALID", "now answered from the cache");

    admin(&config, &["keys", "revoke", "--account", &account, value(&minted, "key_part")], "");
    let revoked_at = Instant::now();
    let mut code = verify(&addr, &key);
    while code == "VALID" && revoked_at.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        code = verify(&addr, &key);
    }
    assert_eq!(code, "REVOKED", "the server still answered from its cache after 10 s");
}

/// The account's audit log, newest first, read straight from the database file.
fn audit_log(db: &Path, account: &str) -> Vec<keygate_store::AuditEntry> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = keygate_store::open(&format!("sqlite://{}", db.display())).await.expect("open the database");
        let page = keygate_store::PageRequest { limit: 100, cursor: None };
        store.list_audit(account, &keygate_store::AuditFilter::default(), &page).await.expect("audit").items
    })
}

/// A fresh SQLite deployment with one user made from the shell: (folder, config, database,
/// the user's lines, their account).
fn shell_user(
    email: &str,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, Vec<(String, String)>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("keygate.toml");
    let db = dir.path().join("keygate.db");
    std::fs::write(&config, format!("database_url = \"sqlite://{}\"\n", db.display())).expect("write config");
    let user = admin(
        &config,
        &["users", "create", "--email", email, "--name", "Ops", "--password-stdin"],
        "a long enough passphrase\n",
    );
    let account = value(&user, "account").to_owned();
    (dir, config, db, user, account)
}

#[test]
fn the_shell_audits_like_the_operator_api() {
    let (_dir, config, db, user, account) = shell_user("ops@acme-widgets.com");
    let minted = admin(&config, &["keys", "mint", "--account", &account, "--name", "shell", "--scopes", "*:read"], "");
    let set = admin(&config, &["accounts", "set-plan", &account, "free"], "");
    assert!(set.is_empty(), "set-plan prints one sentence, no `label: value` lines: {set:?}");

    let log = audit_log(&db, &account);
    let by_operator = |action: &str| {
        let e = log.iter().find(|e| e.action == action).unwrap_or_else(|| panic!("no {action} entry in {log:?}"));
        assert_eq!(e.actor.kind, keygate_store::ActorType::Operator, "{action} names the operator");
        assert_eq!((e.actor.user_id.as_deref(), e.actor.key_id.as_deref()), (None, None));
        assert_eq!(e.ip, None, "a shell has no client address");
        e
    };
    let registered = by_operator("user.registered");
    assert_eq!(registered.target_id, value(&user, "user"));
    assert_eq!(registered.details["email"], "ops@acme-widgets.com");
    let created = by_operator("key.created");
    assert_eq!(created.target_type, "key");
    assert_eq!(created.target_id, value(&minted, "id"));
    assert_eq!(created.details["key_part"], value(&minted, "key_part"));
    assert_eq!(created.details["scopes"], serde_json::json!(["*:read"]));
    assert_eq!(created.details["authority"], "user");
    let plan = by_operator("account.plan_changed");
    assert_eq!((plan.target_type.as_str(), plan.target_id.as_str()), ("account", account.as_str()));
    assert_eq!(plan.details, serde_json::json!({ "from": "trial", "to": "free" }));
}

/// `keygate admin accounts set-limits` goes through the operator API's service: the same
/// validation, the same audit entry, the same stored overrides.
#[test]
fn the_shell_overrides_an_accounts_limits() {
    let (_dir, config, db, _user, account) = shell_user("ops@limits-widgets.com");
    let args = [
        "accounts",
        "set-limits",
        &account,
        "--max-keys",
        "7",
        "--quota",
        "1000/day",
        "--rate-limit",
        "name=minute,limit=100,window=60",
        "--rate-limit",
        "name=second,limit=5,window=1,burst=10",
    ];
    let set = admin(&config, &args, "");
    assert!(set.iter().any(|(_, v)| v.contains("\"max_keys\":7")), "prints the effective limits: {set:?}");
    let e = audit_log(&db, &account).into_iter().find(|e| e.action == "account.limits_overridden").expect("audited");
    assert_eq!(e.actor.kind, keygate_store::ActorType::Operator);
    assert_eq!(e.details["to"]["quota"], serde_json::json!({ "requests": 1000, "period": "day" }));
    assert_eq!(
        e.details["to"]["rate_limits"][1],
        serde_json::json!({ "name": "second", "limit": 5, "window_seconds": 1, "burst": 10 })
    );
    // --unset and --clear remove them; a bad flag is refused with nothing changed.
    let unset = admin(&config, &["accounts", "set-limits", &account, "--unset", "quota"], "");
    assert!(unset.iter().any(|(_, v)| v.contains("\"quota\":null") && v.contains("\"max_keys\":7")), "{unset:?}");
    let bad = keygate_with("admin", &config)
        .args(["accounts", "set-limits", &account, "--rate-limit", "name=Bad Name,limit=1,window=1"])
        .output()
        .expect("run");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("rate_limits"), "{bad:?}");
    let cleared = admin(&config, &["accounts", "set-limits", &account, "--clear"], "");
    assert!(cleared.iter().any(|(_, v)| v.contains("\"max_keys\":100")), "the plan's 100 again: {cleared:?}");
}
