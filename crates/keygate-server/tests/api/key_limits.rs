//! Issue 17: a key's named limits and refilling credits, who may loosen them, and what verify
//! and the gateway tell the company's API (docs/api.md §7 Keys, Verify, Gateway).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn named(name: &str, limit: u32, window_seconds: u32) -> Value {
    json!({ "name": name, "limit": limit, "window_seconds": window_seconds })
}

fn refused_loosening(a: &Answer, field: &str) {
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, "insufficient_authority"), "{}", a.text);
    assert!(a.body["error"]["details"].to_string().contains(field), "{}", a.text);
}

/// Moves a key's last refill back a day in the app's SQLite file: the period boundary passes
/// without waiting for midnight.
async fn a_day_passes_for(app: &TestApp, key_id: &str) {
    let url = format!("sqlite://{}", app.db_path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open the test database");
    sqlx::query("UPDATE api_keys SET refilled_at = refilled_at - 86400000 WHERE id = $1")
        .bind(key_id)
        .execute(&pool)
        .await
        .expect("move refilled_at");
    pool.close().await;
}

#[tokio::test]
async fn every_named_limit_of_a_key_is_checked_and_shown() {
    let app = spawn_app().await;
    let u = app.register().await;
    let limits = json!([named("hour", 3, 3600), named("day", 2, 86_400)]);
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "named", "rate_limits": limits })).await;
    assert_eq!(k["rate_limits"], limits, "{k}");
    assert!(k["rate_limit"].is_null(), "the unnamed limit stays apart (the plan's default applies)");
    let key = key_of(&k);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(app.verify(&key, json!({})).await["code"].clone());
    }
    assert_eq!(got, ["VALID", "VALID", "RATE_LIMITED"], "the tightest named limit (2 a day) refuses the third");
}

#[tokio::test]
async fn named_limits_are_validated_and_held_to_the_plan() {
    let app = spawn_app().await;
    let u = app.register().await;
    let mint = |limits: Value| json!({ "account_id": u.account_id, "name": "k", "rate_limits": limits });
    for (limits, why) in [
        (json!([named("minute", 10, 60), named("minute", 5, 60)]), "duplicate names"),
        (json!([named("Minute", 10, 60)]), "upper case"),
        (json!([named(&"x".repeat(33), 10, 60)]), "too long"),
        (json!([named("", 10, 60)]), "empty"),
        (json!((0..6).map(|i| named(&format!("l{i}"), 10, 60)).collect::<Vec<_>>()), "six limits"),
        (json!([named("zero", 0, 60)]), "limit 0"),
    ] {
        let a = app.post("/v1/keys", Cred::Bearer(&u.token), mint(limits)).await;
        assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{why}: {}", a.text);
    }
    // The trial plan's ceiling is its 600 a minute: each named limit is held to it.
    let over = app.post("/v1/keys", Cred::Bearer(&u.token), mint(json!([named("second", 11, 1)]))).await;
    assert_eq!((over.status, over.code()), (StatusCode::BAD_REQUEST, "limit_exceeds_plan"), "{}", over.text);
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "ok", "rate_limits": [named("minute", 600, 60)] })).await;
    let path = format!("/v1/keys/{}", k["id"].as_str().expect("id"));
    let body = json!({ "account_id": u.account_id, "rate_limits": [named("minute", 601, 60)] });
    assert_eq!(app.patch(&path, Cred::Bearer(&u.token), body).await.code(), "limit_exceeds_plan", "PATCH too");
}

#[tokio::test]
async fn credits_refill_to_the_amount_at_the_period_boundary() {
    let app = spawn_app().await;
    let u = app.register().await;
    let body = json!({ "name": "metered", "usage_limit": 2, "refill": { "amount": 5, "interval": "day" } });
    let k = app.mint(&u.token, &u.account_id, body).await;
    assert_eq!(
        (k["refill"].clone(), k["usage_remaining"].clone()),
        (json!({ "amount": 5, "interval": "day" }), json!(2))
    );
    let (key, id) = (key_of(&k), k["id"].as_str().expect("id").to_owned());
    assert_eq!(app.verify(&key, json!({ "cost": 2 })).await["usage_remaining"], 0);
    assert_eq!(app.verify(&key, json!({})).await["code"], "USAGE_EXCEEDED");
    a_day_passes_for(&app, &id).await;
    let path = format!("/v1/keys/{id}?account_id={}", u.account_id);
    assert_eq!(app.get(&path, Cred::Bearer(&u.token)).await.body["usage_remaining"], 5, "the key object shows it");
    let v = app.verify(&key, json!({}).clone()).await;
    assert_eq!(
        (v["code"].as_str(), v["usage_remaining"].as_i64()),
        (Some("VALID"), Some(4)),
        "replaced by 5, then 1 spent"
    );
    // A refill needs credits to refill.
    let none = json!({ "account_id": u.account_id, "name": "x", "refill": { "amount": 5, "interval": "day" } });
    assert_eq!(app.post("/v1/keys", Cred::Bearer(&u.token), none).await.code(), "invalid_request");
    let bad = json!({ "account_id": u.account_id, "name": "x", "usage_limit": 1, "refill": { "amount": 5, "interval": "week" } });
    assert_eq!(app.post("/v1/keys", Cred::Bearer(&u.token), bad).await.status, StatusCode::BAD_REQUEST);
}

/// An owner's account with a member of authority `user` and the member's key, limited by the owner.
async fn member_key(app: &TestApp) -> (Registered, Registered, String, String) {
    let owner = app.register().await;
    let member = app.register_email(&company_email("member")).await;
    add_member(app, &owner.token, &owner.account_id, &member.email, "user").await;
    let limits = json!({
        "name": "member's", "rate_limits": [named("hour", 100, 3600)],
        "usage_limit": 10, "refill": { "amount": 10, "interval": "month" },
    });
    let k = app.mint(&member.token, &owner.account_id, limits).await;
    (owner, member, k["id"].as_str().expect("id").to_owned(), key_of(&k))
}

#[tokio::test]
async fn only_an_administrator_loosens_named_limits_and_refills() {
    let app = spawn_app().await;
    let (owner, member, id, _) = member_key(&app).await;
    let path = format!("/v1/keys/{id}");
    let patch = async |who: &Registered, mut body: Value| {
        body["account_id"] = json!(owner.account_id);
        app.patch(&path, Cred::Bearer(&who.token), body).await
    };
    refused_loosening(&patch(&member, json!({ "rate_limits": [named("hour", 200, 3600)] })).await, "rate_limits");
    refused_loosening(&patch(&member, json!({ "rate_limits": [] })).await, "rate_limits");
    refused_loosening(&patch(&member, json!({ "rate_limits": null })).await, "rate_limits");
    refused_loosening(&patch(&member, json!({ "refill": { "amount": 11, "interval": "month" } })).await, "refill");
    refused_loosening(&patch(&member, json!({ "refill": { "amount": 10, "interval": "day" } })).await, "refill");
    // Tightening is the member's: a lower limit, another limit added, a smaller or no refill.
    let tighter = json!({ "rate_limits": [named("hour", 50, 3600), named("minute", 5, 60)], "refill": { "amount": 3, "interval": "month" } });
    let t = patch(&member, tighter).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(patch(&member, json!({ "refill": null })).await.status, StatusCode::OK);
    refused_loosening(&patch(&member, json!({ "refill": { "amount": 1, "interval": "month" } })).await, "refill");
    // The owner loosens.
    let loose = json!({ "rate_limits": [], "refill": { "amount": 100, "interval": "day" } });
    let o = patch(&owner, loose).await;
    assert_eq!((o.status, o.body["rate_limits"].clone()), (StatusCode::OK, json!([])), "{}", o.text);
}

#[tokio::test]
async fn a_roll_carries_the_limits_and_the_credits_spent() {
    let app = spawn_app().await;
    let (owner, member, id, key) = member_key(&app).await;
    assert_eq!(app.verify(&key, json!({ "cost": 4 })).await["usage_remaining"], 6);
    let roll = json!({ "account_id": owner.account_id, "old_expires_in_seconds": 60 });
    let r = app.post(&format!("/v1/keys/{id}/roll"), Cred::Bearer(&member.token), roll).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["rate_limits"], json!([named("hour", 100, 3600)]));
    assert_eq!(r.body["refill"], json!({ "amount": 10, "interval": "month" }));
    assert_eq!(r.body["usage_remaining"], 6, "the successor carries on from the 4 spent");
    assert!(r.body["previous_key"]["refill"].is_null(), "the old key gets no credits back in its overlap");
    assert_eq!(r.body["previous_key"]["usage_remaining"], 0);
}

#[tokio::test]
async fn a_user_authority_key_mints_no_key_looser_than_itself() {
    let app = spawn_app().await;
    let (owner, _member, _, key) = member_key(&app).await;
    let mint = async |body: Value| app.post("/v1/keys", Cred::ApiKey(&key), body).await;
    // Re-minting without credits, or with more, or a looser named limit: refused.
    refused_loosening(&mint(json!({ "name": "no credits" })).await, "usage_limit");
    refused_loosening(
        &mint(json!({ "name": "more", "usage_limit": 11, "refill": { "amount": 10, "interval": "month" } })).await,
        "usage_limit",
    );
    let looser = json!({ "name": "n", "usage_limit": 10, "refill": { "amount": 10, "interval": "month" }, "rate_limits": [named("hour", 101, 3600)] });
    refused_loosening(&mint(looser).await, "rate_limits");
    let daily = json!({ "name": "d", "usage_limit": 10, "refill": { "amount": 10, "interval": "day" } });
    refused_loosening(&mint(daily).await, "refill");
    // As tight: allowed, and the named limits are passed on by default.
    let same = mint(json!({ "name": "same", "usage_limit": 5, "refill": { "amount": 5, "interval": "month" } })).await;
    assert_eq!(same.status, StatusCode::CREATED, "{}", same.text);
    assert_eq!(same.body["rate_limits"], json!([named("hour", 100, 3600)]));
    // A user-authority member re-minting with a session is held to the plan like anyone.
    let m = json!({ "account_id": owner.account_id, "name": "re", "rate_limits": [named("s", 11, 1)] });
    let member_token = &_member.token;
    let over = app.post("/v1/keys", Cred::Bearer(member_token), m).await;
    assert_eq!(over.code(), "limit_exceeds_plan", "{}", over.text);
}

#[tokio::test]
async fn verify_answers_the_keys_metadata_and_the_accounts_plan() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "m", "metadata": { "tier": "gold", "n": 3 } })).await;
    let v = app.verify(&key_of(&k), json!({})).await;
    assert_eq!((v["metadata"].clone(), v["plan"].clone()), (json!({ "tier": "gold", "n": 3 }), json!("trial")), "{v}");
    let plain = app.mint(&u.token, &u.account_id, json!({ "name": "plain" })).await;
    assert_eq!(app.verify(&key_of(&plain), json!({})).await["metadata"], json!({}));
    let unknown = app.verify("kg_nope", json!({})).await;
    assert!(unknown["metadata"].is_null() && unknown["plan"].is_null());
}

#[tokio::test]
async fn the_gateway_tells_the_upstream_the_plan_and_the_metadata() {
    let (app, _) = gateway_app(|_| {}).await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "m", "metadata": { "tier": "gold" } })).await;
    let forged = [("X-Keygate-Plan", "enterprise"), ("X-Keygate-Metadata", "e30")];
    let r = app.call_with(reqwest::Method::GET, "/v1/companies", Cred::ApiKey(&key_of(&k)), None, &forged).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.body["headers"];
    assert_eq!(h["x-keygate-plan"], "trial");
    // base64url without padding of {"tier":"gold"}
    assert_eq!(h["x-keygate-metadata"], "eyJ0aWVyIjoiZ29sZCJ9");
    let plain = app.mint(&u.token, &u.account_id, json!({ "name": "plain" })).await;
    let r = app.call_with(reqwest::Method::GET, "/v1/companies", Cred::ApiKey(&key_of(&plain)), None, &forged).await;
    assert!(r.body["headers"].get("x-keygate-metadata").is_none(), "absent when empty, the forged one dropped");
    assert_eq!(r.body["headers"]["x-keygate-plan"], "trial");
}
