//! Issue 15 (attack review): a key is rolled once, and a member can tighten a key but only an
//! administrator can loosen it, never past the plan's ceiling (docs/api.md §7 Keys).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn roll_path(id: &str) -> String {
    format!("/v1/keys/{id}/roll")
}

async fn live_keys(app: &TestApp, u: &Registered) -> Vec<serde_json::Value> {
    let list = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    list.body["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|k| k["status"] == "active").collect()
}

#[tokio::test]
async fn rolling_a_rolled_key_again_is_refused_and_mints_nothing() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "ci" })).await;
    let id = k["id"].as_str().expect("id");
    let body = json!({ "account_id": u.account_id, "old_expires_in_seconds": 3600 });
    let first = app.post(&roll_path(id), Cred::Bearer(&u.token), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let successor = first.body["id"].as_str().expect("successor id");
    // The same request again (a retry, a reloaded page): 409, and no third live key.
    for _ in 0..2 {
        let again = app.post(&roll_path(id), Cred::Bearer(&u.token), body.clone()).await;
        assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "key_rolled"), "{}", again.text);
        assert!(!again.text.contains("\"key\""), "no secret in the refusal");
    }
    assert_eq!(first.body["previous_key"]["rolled_to"], successor, "{}", first.text);
    let got = app.get(&format!("/v1/keys/{id}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!((got.body["status"].as_str(), got.body["rolled_to"].as_str()), (Some("active"), Some(successor)));
    assert_eq!(live_keys(&app, &u).await.len(), 2, "the old key (in its overlap) and one successor");
    // Rolled with an API key as the caller, too.
    let as_key = app.post(&roll_path(id), Cred::ApiKey(k["key"].as_str().expect("k")), json!({})).await;
    assert_eq!(as_key.code(), "key_rolled");
}

#[tokio::test]
async fn concurrent_rolls_of_one_key_mint_exactly_one_successor() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "raced" })).await;
    let id = k["id"].as_str().expect("id").to_owned();
    let body = json!({ "account_id": u.account_id, "old_expires_in_seconds": 3600 });
    let path = roll_path(&id);
    let tries = (0..6).map(|_| app.post(&path, Cred::Bearer(&u.token), body.clone()));
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{:?}", answers.iter().map(|a| (a.status, a.code().to_owned())).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.status == StatusCode::CREATED || a.code() == "key_rolled"));
    assert_eq!(live_keys(&app, &u).await.len(), 2);
}

/// An owner's account with a member of authority `user`, and a key that member minted.
struct Team {
    owner: Registered,
    member: Registered,
    key_id: String,
    key: String,
}

async fn team(app: &TestApp, key: serde_json::Value) -> Team {
    let owner = app.register().await;
    let member = app.register_email(&company_email("member")).await;
    add_member(app, &owner.token, &owner.account_id, &member.email, "user").await;
    let k = app.mint(&member.token, &owner.account_id, key).await;
    Team { key_id: k["id"].as_str().expect("id").to_owned(), key: key_of(&k), owner, member }
}

impl Team {
    fn path(&self) -> String {
        format!("/v1/keys/{}", self.key_id)
    }

    async fn patch_as(&self, app: &TestApp, who: &Registered, mut body: serde_json::Value) -> Answer {
        body["account_id"] = json!(self.owner.account_id);
        app.patch(&self.path(), Cred::Bearer(&who.token), body).await
    }

    async fn current(&self, app: &TestApp) -> serde_json::Value {
        let path = format!("{}?account_id={}", self.path(), self.owner.account_id);
        app.get(&path, Cred::Bearer(&self.owner.token)).await.body
    }
}

fn refused_loosening(a: &Answer, field: &str) {
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, "insufficient_authority"), "{}", a.text);
    assert!(a.body["error"]["details"].to_string().contains(field), "{}", a.text);
}

#[tokio::test]
async fn a_user_authority_member_cannot_raise_their_own_key_past_the_plan() {
    let app = spawn_app().await;
    let t = team(&app, json!({ "rate_limit": { "limit": 60, "window_seconds": 60 } })).await;
    // The attack: 1e9 requests a second, far past the plan's 600 a minute.
    let huge = json!({ "rate_limit": { "limit": 1_000_000_000, "window_seconds": 1 } });
    let a = t.patch_as(&app, &t.member, huge.clone()).await;
    assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "limit_exceeds_plan"), "{}", a.text);
    assert_eq!(t.patch_as(&app, &t.owner, huge).await.code(), "limit_exceeds_plan", "no one goes past the plan");
    // Within the plan, raising is still loosening: administrators only.
    let raise = json!({ "rate_limit": { "limit": 600, "window_seconds": 60 } });
    refused_loosening(&t.patch_as(&app, &t.member, raise.clone()).await, "rate_limit");
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "rate_limit": null })).await, "rate_limit");
    assert_eq!(t.current(&app).await["rate_limit"]["limit"], 60, "unchanged");
    // Tightening is anyone's: the same rate in a smaller window, a lower one.
    let tighter = json!({ "rate_limit": { "limit": 1, "window_seconds": 1 } });
    assert_eq!(t.patch_as(&app, &t.member, tighter).await.status, StatusCode::OK);
    assert_eq!(t.patch_as(&app, &t.owner, raise).await.status, StatusCode::OK, "an administrator loosens");
    // Minting past the plan is refused too.
    let mint = json!({ "account_id": t.owner.account_id, "name": "greedy", "rate_limit": { "limit": 601, "window_seconds": 60 } });
    let m = app.post("/v1/keys", Cred::Bearer(&t.member.token), mint).await;
    assert_eq!((m.status, m.code()), (StatusCode::BAD_REQUEST, "limit_exceeds_plan"), "{}", m.text);
}

#[tokio::test]
async fn a_plans_key_rate_limit_max_is_the_ceiling_when_set() {
    let app = spawn_app_with(|s| {
        let trial = s.plans.get_mut("trial").expect("trial plan");
        trial.key_rate_limit_max = Some(keygate_core::RateLimit { limit: 1200, window_seconds: 60, burst: Some(600) });
    })
    .await;
    let u = app.register().await;
    let mint = |limit: u32, burst: Option<u32>| json!({ "account_id": u.account_id, "name": "k", "rate_limit": { "limit": limit, "window_seconds": 60, "burst": burst } });
    let ok = app.post("/v1/keys", Cred::Bearer(&u.token), mint(1200, Some(600))).await;
    assert_eq!(ok.status, StatusCode::CREATED, "above rate_limit, within key_rate_limit_max: {}", ok.text);
    assert_eq!(app.post("/v1/keys", Cred::Bearer(&u.token), mint(1201, Some(600))).await.code(), "limit_exceeds_plan");
    let burst = app.post("/v1/keys", Cred::Bearer(&u.token), mint(1200, None)).await;
    assert_eq!(burst.code(), "limit_exceeds_plan", "a burst of 1200 is past the ceiling's 600");
}

#[tokio::test]
async fn a_member_cannot_remove_an_owner_set_usage_limit() {
    let app = spawn_app().await;
    let t = team(&app, json!({})).await;
    assert_eq!(t.patch_as(&app, &t.owner, json!({ "usage_limit": 3 })).await.status, StatusCode::OK);
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "usage_limit": null })).await, "usage_limit");
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "usage_limit": 1000 })).await, "usage_limit");
    assert_eq!(t.current(&app).await["usage_limit"], 3);
    assert_eq!(t.patch_as(&app, &t.member, json!({ "usage_limit": 2 })).await.status, StatusCode::OK, "tightening");
    // Nor refill the credits by rolling: the successor carries on from what was spent.
    assert_eq!(app.verify(&t.key, json!({})).await["code"], "VALID");
    let roll = json!({ "account_id": t.owner.account_id, "old_expires_in_seconds": 60 });
    let r = app.post(&format!("{}/roll", t.path()), Cred::Bearer(&t.member.token), roll).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!((r.body["usage_limit"].as_i64(), r.body["usage_remaining"].as_i64()), (Some(2), Some(1)));
    assert_eq!(r.body["previous_key"]["usage_remaining"], 0, "the overlap spends nothing twice");
    // An administrator may lift it.
    let successor = format!("/v1/keys/{}", r.body["id"].as_str().expect("id"));
    let lifted = app
        .patch(
            &successor,
            Cred::Bearer(&t.owner.token),
            json!({ "account_id": t.owner.account_id, "usage_limit": null }),
        )
        .await;
    assert_eq!((lifted.status, lifted.body["usage_limit"].is_null()), (StatusCode::OK, true), "{}", lifted.text);
}

#[tokio::test]
async fn a_member_cannot_widen_scopes_an_owner_narrowed() {
    let app = spawn_app().await;
    let t = team(&app, json!({})).await;
    let narrowed = t.patch_as(&app, &t.owner, json!({ "scopes": ["companies:read"] })).await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "scopes": ["*:*"] })).await, "scopes");
    refused_loosening(
        &t.patch_as(&app, &t.member, json!({ "scopes": ["companies:read", "lists:write"] })).await,
        "scopes",
    );
    assert_eq!(app.verify(&t.key, json!({ "permissions": ["lists:write"] })).await["code"], "INSUFFICIENT_SCOPE");
    // Other changes that widen nothing stay the member's to make.
    let renamed = t.patch_as(&app, &t.member, json!({ "name": "renamed", "scopes": ["companies:read"] })).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let later = (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    assert_eq!(t.patch_as(&app, &t.owner, json!({ "expires_at": later })).await.status, StatusCode::OK);
    let sooner = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    assert_eq!(t.patch_as(&app, &t.member, json!({ "expires_at": sooner })).await.status, StatusCode::OK);
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "expires_at": later })).await, "expires_at");
    refused_loosening(&t.patch_as(&app, &t.member, json!({ "expires_at": null })).await, "expires_at");
    // An administrator may widen them again.
    assert_eq!(t.patch_as(&app, &t.owner, json!({ "scopes": ["*:*"] })).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_user_authority_org_key_cannot_remove_its_own_allowlist() {
    let app = spawn_app().await;
    let u = app.register().await;
    let body = json!({ "class": "org", "authority": "user", "ip_allowlist": ["127.0.0.0/8"] });
    let org = app.mint(&u.token, &u.account_id, body).await;
    let (secret, path) = (key_of(&org), format!("/v1/keys/{}", org["id"].as_str().expect("id")));
    let removed = app.patch(&path, Cred::ApiKey(&secret), json!({ "ip_allowlist": [] })).await;
    refused_loosening(&removed, "ip_allowlist");
    let widened = app.patch(&path, Cred::ApiKey(&secret), json!({ "ip_allowlist": ["0.0.0.0/0"] })).await;
    refused_loosening(&widened, "ip_allowlist");
    let stored = app.get(&format!("{path}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(stored.body["ip_allowlist"], json!(["127.0.0.0/8"]), "unchanged");
    // It may narrow its own allowlist; its owner (an administrator+) may lift it.
    let narrowed = app.patch(&path, Cred::ApiKey(&secret), json!({ "ip_allowlist": ["127.0.0.1"] })).await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    let lifted =
        app.patch(&path, Cred::Bearer(&u.token), json!({ "account_id": u.account_id, "ip_allowlist": [] })).await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text);
}
