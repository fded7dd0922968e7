//! The audit log and the operator API over HTTP.

use keygate_core::Authority;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn actions(a: &Answer) -> Vec<String> {
    a.body["items"]
        .as_array()
        .map(|i| i.iter().filter_map(|e| e["action"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn audit_log_records_changes_and_verifies() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let other = app.register().await;
    let acc = &owner.account_id;
    login(&app, &owner.email, PASSWORD).await;
    let _ = app.post("/v1/login", Cred::None, json!({ "email": owner.email, "password": "wrong password!!" })).await;
    // The failed sign-in is written after its answer: wait for it, so the order below is fixed.
    let path = format!("/v1/audit?account_id={acc}");
    let recorded = eventually(5.0, async || {
        actions(&app.get(&path, Cred::Bearer(&owner.token)).await).contains(&"user.login_failed".to_owned())
    })
    .await;
    assert!(recorded, "user.login_failed is recorded");
    app.patch(&format!("/v1/accounts/{acc}"), Cred::Bearer(&owner.token), json!({ "name": "Renamed Co" })).await;
    add_member(&app, &owner.token, acc, &other.email, "user").await;
    app.patch(
        &format!("/v1/accounts/{acc}/members/{}", other.user_id),
        Cred::Bearer(&owner.token),
        json!({ "authority": "administrator" }),
    )
    .await;
    let role = app
        .post(
            &format!("/v1/accounts/{acc}/roles"),
            Cred::Bearer(&owner.token),
            json!({ "name": "ro", "permissions": ["*:read"] }),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED);

    let expected = [
        "role.created",
        "member.updated",
        "member.added",
        "account.updated",
        "user.login_failed",
        "user.login",
        "user.registered",
    ];
    let log = app.get(&path, Cred::Bearer(&owner.token)).await;
    assert_eq!(log.status, StatusCode::OK);
    assert_eq!(actions(&log), expected, "newest first");
    let items = log.body["items"].as_array().expect("items");
    let seqs: Vec<i64> = items.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=7).rev().collect::<Vec<_>>());
    for e in items {
        for field in
            ["id", "seq", "at", "account_id", "actor", "action", "target", "ip", "details", "prev_hash", "hash"]
        {
            assert!(e.get(field).is_some(), "entry field {field}: {e}");
        }
        assert_eq!(e["account_id"], json!(acc));
        assert_eq!(e["ip"], "127.0.0.1");
    }
    // Each entry links to the one before.
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
    }
    let first = &items[6];
    assert_eq!(first["prev_hash"], "0".repeat(64));
    assert_eq!(first["actor"], json!({ "type": "user", "user_id": owner.user_id }));
    assert_eq!(first["target"], json!({ "type": "user", "id": owner.user_id }));
    let added = &items[2];
    assert_eq!(added["target"], json!({ "type": "user", "id": other.user_id }));
    assert_eq!(added["details"]["authority"], "user");

    // Filters and pages.
    let members = app.get(&format!("{path}&action=member.*"), Cred::Bearer(&owner.token)).await;
    assert_eq!(actions(&members), vec!["member.updated", "member.added"]);
    let exact = app.get(&format!("{path}&action=user.login"), Cred::Bearer(&owner.token)).await;
    assert_eq!(actions(&exact), vec!["user.login"]);
    let by_actor = app.get(&format!("{path}&actor={}", owner.user_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(actions(&by_actor).len(), 7);
    let by_other = app.get(&format!("{path}&actor={}", other.user_id), Cred::Bearer(&owner.token)).await;
    assert!(actions(&by_other).is_empty());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}&limit=3"),
            Some(c) => format!("{path}&limit=3&cursor={c}"),
        };
        let page = app.get(&url, Cred::Bearer(&owner.token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen.extend(actions(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // The chain verifies…
    let verify = app.get(&format!("/v1/audit/verify?account_id={acc}"), Cred::Bearer(&owner.token)).await;
    assert_eq!(verify.status, StatusCode::OK, "{}", verify.text);
    assert_eq!(verify.body["valid"], true);
    assert_eq!(verify.body["entries_checked"], 7);
    // …and any edit of a stored entry is found.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", app.db_path.display()))
        .await
        .expect("open db");
    sqlx::query("UPDATE audit_log SET details = '{\"name\":\"Evil Co\"}' WHERE account_id = ? AND seq = 4")
        .bind(acc)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;
    let verify = app.get(&format!("/v1/audit/verify?account_id={acc}"), Cred::Bearer(&owner.token)).await;
    assert_eq!(verify.body["valid"], false, "{}", verify.text);
    assert_eq!(verify.body["first_invalid_seq"], 4);
    // Another account's chain is unaffected.
    let theirs =
        app.get(&format!("/v1/audit/verify?account_id={}", other.account_id), Cred::Bearer(&other.token)).await;
    assert_eq!(theirs.body["valid"], true, "{}", theirs.text);
}

#[tokio::test]
async fn audit_log_never_contains_secrets() {
    let app = spawn_app().await;
    let u = app.register().await;
    let second = login(&app, &u.email, PASSWORD).await;
    let wrong = "my-wrong-password-guess";
    let _ = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": wrong })).await;
    let new_password = "the new secret passphrase";
    let changed = app
        .patch("/v1/user", Cred::Bearer(&second), json!({ "current_password": PASSWORD, "new_password": new_password }))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let fresh = changed.body["token"].as_str().expect("token").to_owned();
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    assert_eq!(app.get("/v1/user", Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = app.get(&format!("/v1/audit?account_id={}&limit=100", u.account_id), Cred::Bearer(&fresh)).await;
    assert_eq!(log.status, StatusCode::OK);
    assert!(actions(&log).contains(&"user.password_changed".to_owned()));
    assert!(actions(&log).contains(&"user.login_failed".to_owned()));
    let secrets =
        [PASSWORD, wrong, new_password, u.token.as_str(), second.as_str(), fresh.as_str(), key.secret.as_str()];
    for s in secrets {
        assert!(!log.text.contains(s), "the audit log contains a secret: {s}");
        assert!(!database_contains(&app, s), "the database file contains a secret: {s}");
    }
    // Password hashes never leave the server either.
    for path in ["/v1/user".to_owned(), format!("/v1/accounts/{}/members", u.account_id)] {
        let a = app.get(&path, Cred::Bearer(&fresh)).await;
        assert!(!a.text.contains("argon2") && !a.text.contains("password"), "{path}: {}", a.text);
    }
    assert!(!log.text.contains("argon2"));
}

#[tokio::test]
async fn audit_log_is_for_administrators_and_org_keys_with_audit_read() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let member = app.register().await;
    let acc = &owner.account_id;
    add_member(&app, &owner.token, acc, &member.email, "user").await;
    let path = format!("/v1/audit?account_id={acc}");
    // A session without account_id is asked for one.
    let a = app.get("/v1/audit", Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "account_id_required");
    // A member with authority `user`: no.
    let a = app.get(&path, Cred::Bearer(&member.token)).await;
    assert_eq!(a.code(), "insufficient_authority");
    let a = app.get(&format!("/v1/audit/verify?account_id={acc}"), Cred::Bearer(&member.token)).await;
    assert_eq!(a.code(), "insufficient_authority");
    // Their user key with every scope: still no (capped by the member's authority).
    let mkey = insert_key(&app, acc, Some(&member.user_id), Authority::Owner, &["*:*"]).await;
    assert_eq!(app.get("/v1/audit", Cred::ApiKey(&mkey.secret)).await.code(), "insufficient_authority");
    // An owner's user key needs `audit:read`.
    let okey = insert_key(&app, acc, Some(&owner.user_id), Authority::Owner, &["keys:write"]).await;
    assert_eq!(app.get("/v1/audit", Cred::ApiKey(&okey.secret)).await.code(), "insufficient_scope");
    let okey = insert_key(&app, acc, Some(&owner.user_id), Authority::Administrator, &["audit:read"]).await;
    assert_eq!(app.get("/v1/audit", Cred::ApiKey(&okey.secret)).await.status, StatusCode::OK);
    // Org keys: `audit:read` (a `*:read` key has it) is what counts.
    let reader = insert_key(&app, acc, None, Authority::User, &["*:read"]).await;
    let a = app.get("/v1/audit", Cred::ApiKey(&reader.secret)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(app.get("/v1/audit/verify", Cred::ApiKey(&reader.secret)).await.body["valid"], true);
    let blind = insert_key(&app, acc, None, Authority::Administrator, &["companies:read"]).await;
    assert_eq!(app.get("/v1/audit", Cred::ApiKey(&blind.secret)).await.code(), "insufficient_scope");
    // Bad filters are 400, not 500.
    let a = app.get(&format!("{path}&limit=1000"), Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app.get(&format!("{path}&cursor=../../x"), Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app.get(&format!("{path}&bogus=1"), Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

const ADMIN_TOKEN: &str = "operator-token-for-tests-0123456789";

#[tokio::test]
async fn operator_sets_plan_with_admin_token() {
    let app = spawn_app_with(|s| s.admin_token = ADMIN_TOKEN.to_owned().into()).await;
    let u = app.register().await;
    let acc = &u.account_id;
    let key = insert_key(&app, acc, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    assert_eq!(app.get(&format!("/v1/accounts/{acc}"), Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);

    let list = app.get("/v1/admin/accounts", Cred::Bearer(ADMIN_TOKEN)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.body["items"].as_array().expect("items").iter().any(|a| a["id"] == json!(acc)));
    assert!(list.body.get("next_cursor").is_some());

    let path = format!("/v1/admin/accounts/{acc}");
    let a = app.patch(&path, Cred::Bearer(ADMIN_TOKEN), json!({ "plan": "free" })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["plan"], "free");
    assert_eq!(a.body["api_access"], false);
    // The account's keys follow the plan at once; its sessions still manage it.
    let k = app.get(&format!("/v1/accounts/{acc}"), Cred::ApiKey(&key.secret)).await;
    assert_eq!(k.status, StatusCode::FORBIDDEN, "{}", k.text);
    assert_eq!(k.code(), "plan_required");
    let s = app.get(&format!("/v1/accounts/{acc}"), Cred::Bearer(&u.token)).await;
    assert_eq!(s.body["plan"], "free");
    let a = app.patch(&path, Cred::Bearer(ADMIN_TOKEN), json!({ "plan": "trial" })).await;
    assert_eq!(a.body["api_access"], true);
    assert_eq!(app.get(&format!("/v1/accounts/{acc}"), Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);

    // Only configured plans; only existing accounts; only the operator.
    let a = app.patch(&path, Cred::Bearer(ADMIN_TOKEN), json!({ "plan": "platinum" })).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["details"][0]["field"], "plan");
    let a = app
        .patch("/v1/admin/accounts/acc_0000000000000000000A", Cred::Bearer(ADMIN_TOKEN), json!({ "plan": "free" }))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = app.patch(&path, Cred::Bearer("operator-token-for-tests-012345678X"), json!({ "plan": "free" })).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "invalid_credentials");
    let a = app.get("/v1/admin/accounts", Cred::None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Not a session of the account's owner, nor an API key.
    assert_eq!(app.get("/v1/admin/accounts", Cred::Bearer(&u.token)).await.code(), "invalid_credentials");
    assert_eq!(app.get("/v1/admin/accounts", Cred::ApiKey(&key.secret)).await.status, StatusCode::UNAUTHORIZED);

    // Recorded as the operator's doing.
    let log = app.get(&format!("/v1/audit?account_id={acc}&action=account.plan_changed"), Cred::Bearer(&u.token)).await;
    let items = log.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", log.text);
    assert_eq!(items[0]["actor"], json!({ "type": "operator" }));
    assert_eq!(items[0]["details"], json!({ "from": "free", "to": "trial" }));
    assert!(!log.text.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn operator_api_disabled_without_token() {
    let app = spawn_app().await;
    let u = app.register().await;
    for cred in [Cred::None, Cred::Bearer(""), Cred::Bearer("anything"), Cred::Bearer(&u.token)] {
        let a = app.get("/v1/admin/accounts", cred).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
        assert_eq!(a.code(), "not_found");
    }
    let a = app
        .patch(&format!("/v1/admin/accounts/{}", u.account_id), Cred::Bearer("anything"), json!({ "plan": "free" }))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let acc: Value = app.get(&format!("/v1/accounts/{}", u.account_id), Cred::Bearer(&u.token)).await.body;
    assert_eq!(acc["plan"], "trial");
}

#[tokio::test]
async fn operator_lifts_an_ended_trial_by_setting_another_plan() {
    let app = spawn_app_with(|s| {
        s.admin_token = ADMIN_TOKEN.to_owned().into();
        s.plans.insert(
            "pro".into(),
            keygate_server::config::PlanSettings {
                api_access: true,
                trial_days: 0,
                rate_limit: None,
                max_keys: None,
                key_rate_limit_max: None,
                ..Default::default()
            },
        );
    })
    .await;
    let u = app.register().await;
    let acc = &u.account_id;
    // The trial ended yesterday.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", app.db_path.display()))
        .await
        .expect("open db");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).timestamp_millis();
    sqlx::query("UPDATE accounts SET trial_ends_at = ? WHERE id = ?")
        .bind(yesterday)
        .bind(acc)
        .execute(&pool)
        .await
        .expect("end trial");
    pool.close().await;
    let key = insert_key(&app, acc, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    let path = format!("/v1/accounts/{acc}");
    assert_eq!(app.get(&path, Cred::ApiKey(&key.secret)).await.code(), "plan_required");
    let a = app.patch(&format!("/v1/admin/accounts/{acc}"), Cred::Bearer(ADMIN_TOKEN), json!({ "plan": "pro" })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["api_access"], true);
    assert_eq!(app.get(&path, Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);
}
