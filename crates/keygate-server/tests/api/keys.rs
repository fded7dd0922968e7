//! API keys over HTTP: minting, lifecycle, listing, authority and scopes, and cross-account isolation.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn mint_shows_the_secret_once_and_stores_only_its_digest() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "ci" })).await;
    let secret = k["key"].as_str().expect("key").to_owned();
    assert!(secret.starts_with("kg_") && secret.len() == 3 + 38, "{secret}");
    assert_eq!(k["status"], "active");
    assert_eq!(k["class"], "user");
    assert_eq!(k["scopes"], json!(["*:*"]));
    let part = k["key_part"].as_str().expect("key_part");
    assert!(secret.starts_with(part) && part.len() == 3 + 8);
    for handle in [k["id"].as_str().expect("id"), part] {
        let got = app.get(&format!("/v1/keys/{handle}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert!(!got.text.contains(&secret));
        assert!(got.body.get("key").is_none());
    }
    let list = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert!(!list.text.contains(&secret));
    let db_path = app_db(&app);
    app.stop().await;
    let db = std::fs::read(&db_path).unwrap_or_default();
    assert!(!contains(&db, secret.as_bytes()), "the secret is in the database file");
}

fn app_db(app: &TestApp) -> std::path::PathBuf {
    app.db_path.clone()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn key_shapes_follow_the_configured_prefixes() {
    let app = spawn_app_with(|s| {
        s.keys.user_prefix = "trace_".into();
        s.keys.org_prefix = "trace_org_".into();
    })
    .await;
    let u = app.register().await;
    let user = app.mint(&u.token, &u.account_id, json!({})).await;
    let org = app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await;
    assert!(user["key"].as_str().expect("k").starts_with("trace_"));
    assert!(!user["key"].as_str().expect("k").starts_with("trace_org_"));
    assert!(org["key"].as_str().expect("k").starts_with("trace_org_"));
    assert_eq!(app.verify(org["key"].as_str().expect("k"), json!({})).await["class"], "org");
    assert_eq!(app.verify(user["key"].as_str().expect("k"), json!({})).await["class"], "user");
}

#[tokio::test]
async fn revocation_is_honoured_at_once_and_final() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let secret = k["key"].as_str().expect("key");
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", k["id"].as_str().expect("id"), u.account_id),
            Cred::Bearer(&u.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "revoked");
    assert_eq!(app.verify(secret, json!({})).await["code"], "REVOKED");
    let used = app.get("/v1/user", Cred::ApiKey(secret)).await;
    assert_eq!((used.status, used.code()), (StatusCode::UNAUTHORIZED, "api_key_revoked"));
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "name": "again" }),
        )
        .await;
    assert_eq!((p.status, p.code()), (StatusCode::CONFLICT, "key_revoked"));
    let list = app.get(&format!("/v1/keys?account_id={}&status=revoked", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn prestaged_key_is_inactive_until_patched_into_the_future() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "end_date": "2020-01-01" })).await;
    assert_eq!(k["status"], "inactive");
    let secret = k["key"].as_str().expect("key");
    assert_eq!(app.verify(secret, json!({})).await["code"], "INACTIVE");
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["key_part"].as_str().expect("part")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "end_date": "2099-01-01" }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["status"], "active");
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    let later = app.mint(&u.token, &u.account_id, json!({ "starts_at": "2099-01-01T00:00:00Z" })).await;
    assert_eq!(app.verify(later["key"].as_str().expect("k"), json!({})).await["code"], "INACTIVE");
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let p = app
        .patch(
            &format!("/v1/keys/{}", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "expires_at": soon }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let v = app.verify(k["key"].as_str().expect("k"), json!({})).await;
    assert_eq!(v["code"], "EXPIRED");
    let a = app.get("/v1/user", Cred::ApiKey(k["key"].as_str().expect("k"))).await;
    assert_eq!(a.code(), "api_key_expired");
}

#[tokio::test]
async fn roll_with_overlap_keeps_the_old_key_for_the_window_only() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k =
        app.mint(&u.token, &u.account_id, json!({ "scopes": ["companies:read"], "metadata": { "team": "ops" } })).await;
    let old = k["key"].as_str().expect("k");
    let r = app
        .post(
            &format!("/v1/keys/{}/roll", k["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id, "old_expires_in_seconds": 60 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new = r.body["key"].as_str().expect("new key");
    assert_ne!(new, old);
    assert_eq!(r.body["scopes"], json!(["companies:read"]));
    assert_eq!(r.body["metadata"], json!({ "team": "ops" }));
    assert_eq!(app.verify(new, json!({})).await["code"], "VALID");
    assert_eq!(app.verify(old, json!({})).await["code"], "VALID");
    let r2 = app
        .post(
            &format!("/v1/keys/{}/roll", r.body["id"].as_str().expect("id")),
            Cred::Bearer(&u.token),
            json!({ "account_id": u.account_id }),
        )
        .await;
    assert_eq!(r2.status, StatusCode::CREATED);
    assert_eq!(app.verify(new, json!({})).await["code"], "REVOKED");
}

#[tokio::test]
async fn read_only_key_cannot_change_anything() {
    let app = spawn_app().await;
    let u = app.register().await;
    let ro = app.mint(&u.token, &u.account_id, json!({ "scopes": ["*:read"] })).await;
    let key = ro["key"].as_str().expect("k");
    assert_eq!(app.get("/v1/keys", Cred::ApiKey(key)).await.status, StatusCode::OK);
    let m = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "escalate", "scopes": ["*:*"] })).await;
    assert_eq!((m.status, m.code()), (StatusCode::FORBIDDEN, "insufficient_scope"));
    let v = app.verify(key, json!({ "permissions": ["lists:write"] })).await;
    assert_eq!(v["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(app.verify(key, json!({ "permissions": ["lists:read"] })).await["code"], "VALID");
}

#[tokio::test]
async fn authority_and_scopes_cannot_be_escalated() {
    let app = spawn_app().await;
    let u = app.register().await;
    let narrow =
        app.mint(&u.token, &u.account_id, json!({ "scopes": ["companies:read", "keys:write", "keys:read"] })).await;
    let key = narrow["key"].as_str().expect("k");
    let wider = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "w", "scopes": ["lists:read"] })).await;
    assert_eq!(wider.code(), "insufficient_scope");
    let higher = app
        .post(
            "/v1/keys",
            Cred::ApiKey(key),
            json!({ "name": "h", "authority": "administrator", "scopes": ["companies:read"] }),
        )
        .await;
    assert_eq!(higher.code(), "insufficient_authority");
    let org = app
        .post("/v1/keys", Cred::ApiKey(key), json!({ "name": "o", "class": "org", "scopes": ["companies:read"] }))
        .await;
    assert_eq!(org.code(), "insufficient_authority");
    let ok = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "ok", "scopes": ["companies:read"] })).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.body["user_id"], json!(u.user_id));
}

#[tokio::test]
async fn api_key_cannot_reach_another_account() {
    let app = spawn_app().await;
    let a = app.register().await;
    let b = app.register().await;
    let ka = app.mint(&a.token, &a.account_id, json!({})).await;
    let kb = app.mint(&b.token, &b.account_id, json!({})).await;
    let key = ka["key"].as_str().expect("k");
    let r = app.get(&format!("/v1/keys?account_id={}", b.account_id), Cred::ApiKey(key)).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = app.get(&format!("/v1/keys/{}", kb["id"].as_str().expect("id")), Cred::ApiKey(key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", kb["id"].as_str().expect("id"), a.account_id),
            Cred::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(
            &format!("/v1/keys/{}?account_id={}", kb["id"].as_str().expect("id"), b.account_id),
            Cred::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.verify(kb["key"].as_str().expect("k"), json!({})).await["code"], "VALID");
}

#[tokio::test]
async fn org_keys_cannot_act_for_a_user() {
    let app = spawn_app().await;
    let u = app.register().await;
    let org = app.mint(&u.token, &u.account_id, json!({ "class": "org" })).await;
    let key = org["key"].as_str().expect("k");
    assert_eq!(org["user_id"], json!(null));
    let v = app.verify(key, json!({ "user_scoped": true })).await;
    assert_eq!(v["code"], "USER_CREDENTIAL_REQUIRED");
    let r = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "u" })).await;
    assert_eq!(r.code(), "user_credential_required");
    let r = app.get("/v1/user", Cred::ApiKey(key)).await;
    assert_eq!(r.code(), "user_credential_required");
}

#[tokio::test]
async fn list_is_paginated_newest_first() {
    let app = spawn_app().await;
    let u = app.register().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.mint(&u.token, &u.account_id, json!({ "name": format!("k{i}") })).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/keys?account_id={}&limit=2{}",
            u.account_id,
            if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") }
        );
        let page = app.get(&path, Cred::Bearer(&u.token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for item in page.body["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let bad = app.get(&format!("/v1/keys?account_id={}&limit=500", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(bad.code(), "invalid_request");
    let bad = app.get(&format!("/v1/keys?account_id={}&status=sleepy", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(bad.code(), "invalid_request");
}

#[tokio::test]
async fn mint_rejects_bad_input_with_details() {
    let app = spawn_app().await;
    let u = app.register().await;
    for body in [
        json!({ "account_id": u.account_id }),
        json!({ "account_id": u.account_id, "name": "" }),
        json!({ "account_id": u.account_id, "name": "x", "class": "robot" }),
        json!({ "account_id": u.account_id, "name": "x", "scopes": ["nope"] }),
        json!({ "account_id": u.account_id, "name": "x", "expires_at": "tomorrow" }),
        json!({ "account_id": u.account_id, "name": "x", "rate_limit": { "limit": 0, "window_seconds": 1 } }),
        json!({ "account_id": u.account_id, "name": "x", "usage_limit": -1 }),
        json!({ "account_id": u.account_id, "name": "x", "metadata": [1, 2] }),
        json!({ "account_id": u.account_id, "name": "x", "surprise": true }),
    ] {
        let r = app.post("/v1/keys", Cred::Bearer(&u.token), body.clone()).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{body}: {}", r.text);
        assert!(r.body["request_id"].is_string());
    }
    let r = app.post("/v1/keys", Cred::Bearer(&u.token), json!({ "name": "x" })).await;
    assert_eq!(r.code(), "account_id_required");
}

#[tokio::test]
async fn a_user_key_is_capped_by_its_users_membership() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let domain = owner.email.split('@').nth(1).expect("domain").to_owned();
    // A second user of another company, invited into the owner's account.
    let member = app.register().await;
    let add = app
        .post(
            &format!("/v1/accounts/{}/members", owner.account_id),
            Cred::Bearer(&owner.token),
            json!({ "email": member.email, "authority": "administrator" }),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED, "{} ({domain})", add.text);
    let k = app.mint(&member.token, &owner.account_id, json!({ "authority": "administrator" })).await;
    let key = k["key"].as_str().expect("k");
    assert_eq!(app.verify(key, json!({})).await["authority"], "administrator");
    let demote = app
        .patch(
            &format!("/v1/accounts/{}/members/{}", owner.account_id, member.user_id),
            Cred::Bearer(&owner.token),
            json!({ "authority": "user" }),
        )
        .await;
    assert_eq!(demote.status, StatusCode::OK, "{}", demote.text);
    assert_eq!(app.verify(key, json!({})).await["authority"], "user");
    let org = app.post("/v1/keys", Cred::ApiKey(key), json!({ "name": "o", "class": "org" })).await;
    assert_eq!(org.code(), "insufficient_authority");
    // A plain user sees only their own keys.
    app.mint(&owner.token, &owner.account_id, json!({ "name": "owner's" })).await;
    let list = app.get("/v1/keys", Cred::ApiKey(key)).await;
    let items = list.body["items"].as_array().expect("items");
    assert!(items.iter().all(|i| i["user_id"] == json!(member.user_id)), "{}", list.text);
    let removed = app
        .delete(&format!("/v1/accounts/{}/members/{}", owner.account_id, member.user_id), Cred::Bearer(&owner.token))
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    assert_eq!(app.verify(key, json!({})).await["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_session_may_name_a_key_without_its_account_but_never_reach_anothers() {
    let app = spawn_app().await;
    let a = app.register().await;
    let b = app.register().await;
    let ka = app.mint(&a.token, &a.account_id, json!({})).await;
    let kb = app.mint(&b.token, &b.account_id, json!({})).await;
    let got = app.get(&format!("/v1/keys/{}", ka["key_part"].as_str().expect("part")), Cred::Bearer(&a.token)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let other = app.get(&format!("/v1/keys/{}", kb["key_part"].as_str().expect("part")), Cred::Bearer(&a.token)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other = app.delete(&format!("/v1/keys/{}", kb["id"].as_str().expect("id")), Cred::Bearer(&a.token)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let r = app.delete(&format!("/v1/keys/{}", ka["id"].as_str().expect("id")), Cred::Bearer(&a.token)).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("revoked")));
    assert_eq!(app.verify(ka["key"].as_str().expect("k"), json!({})).await["code"], "REVOKED");
    assert_eq!(app.verify(kb["key"].as_str().expect("k"), json!({})).await["code"], "VALID");
}
