//! Made-up credentials with valid checksums: each costs one storage read, so one address may
//! send only so many unknown ones a minute (`rate_limits.unknown_credentials_per_address`),
//! after which its cache misses get 429 without a read. Cached credentials keep working.

use std::sync::atomic::Ordering;

use keygate_core::{CredentialKind, KeyFormat};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::faulty::spawn_app_with_faulty_store;
use crate::helpers::*;

/// A credential of the default format that nobody was ever given.
fn made_up(kind: CredentialKind) -> String {
    let format = KeyFormat::new("kg_", "kg_org_", "kgs_").expect("default format");
    format.generate(kind).secret.expose().to_owned()
}

/// Verify as the company's backend (a verifier token), naming the key's sender.
async fn verify_from(app: &TestApp, key: &str, ip: &str) -> Value {
    let a = app.post("/v1/keys/verify", Cred::Bearer(TEST_VERIFIER), json!({ "key": key, "ip": ip })).await;
    assert_eq!(a.status, StatusCode::OK, "verify: {}", a.text);
    a.body
}

#[tokio::test]
async fn an_address_past_its_allowance_is_refused_without_a_storage_read() {
    let (app, store) = spawn_app_with_faulty_store().await;
    let u = app.register().await;
    let real = app.mint(&u.token, &u.account_id, json!({})).await;
    let real = real["key"].as_str().expect("key");
    let (sender, other) = ("203.0.113.9", "198.51.100.20");
    assert_eq!(verify_from(&app, real, sender).await["code"], "VALID");

    // The default allowance: 100 distinct unknown keys a minute.
    for _ in 0..100 {
        assert_eq!(verify_from(&app, &made_up(CredentialKind::UserKey), sender).await["code"], "NOT_FOUND");
    }
    let refused = verify_from(&app, &made_up(CredentialKind::OrgKey), sender).await;
    assert_eq!(
        (refused["valid"].as_bool(), refused["code"].as_str()),
        (Some(false), Some("RATE_LIMITED")),
        "{refused}"
    );
    assert_eq!(refused["ratelimit"]["remaining"], 0);

    // With storage down, the refusal still comes (it never needed a read) and the cached key
    // still passes, while another address's unknown key reaches storage and fails closed.
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(verify_from(&app, &made_up(CredentialKind::UserKey), sender).await["code"], "RATE_LIMITED");
    assert_eq!(verify_from(&app, real, sender).await["code"], "VALID", "cached keys are not throttled");
    let elsewhere = app
        .post(
            "/v1/keys/verify",
            Cred::Bearer(TEST_VERIFIER),
            json!({ "key": made_up(CredentialKind::UserKey), "ip": other }),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::SERVICE_UNAVAILABLE, "{}", elsewhere.text);
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(verify_from(&app, &made_up(CredentialKind::UserKey), other).await["code"], "NOT_FOUND");
}

/// Requests from `CLIENT`, as a trusted proxy on loopback reports it (`trusted_proxies`):
/// loopback itself is never limited, so the limited sender must be a remote one.
const CLIENT: &str = "198.51.100.7";

fn behind_a_local_proxy(s: &mut keygate_server::Settings) {
    s.trusted_proxies = vec!["127.0.0.1/32".into()];
}

async fn get_user_as_client(app: &TestApp, cred: Cred<'_>) -> Answer {
    app.call_with(reqwest::Method::GET, "/v1/user", cred, None, &[("x-forwarded-for", CLIENT)]).await
}

#[tokio::test]
async fn the_management_api_answers_429_with_retry_after_for_keys_and_tokens() {
    let app = spawn_app_with(|s| {
        behind_a_local_proxy(s);
        s.rate_limits.unknown_credentials_per_address = 2;
    })
    .await;
    let u = app.register().await;
    assert_eq!(get_user_as_client(&app, Cred::Bearer(&u.token)).await.status, StatusCode::OK);
    for _ in 0..2 {
        let a = get_user_as_client(&app, Cred::ApiKey(&made_up(CredentialKind::UserKey))).await;
        assert_eq!((a.status, a.code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "{}", a.text);
    }
    for cred in [made_up(CredentialKind::UserKey), made_up(CredentialKind::Session)] {
        let a = get_user_as_client(&app, Cred::Bearer(&cred)).await;
        assert_eq!((a.status, a.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{}", a.text);
        let retry: u64 = a.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
        assert!((1..=30).contains(&retry), "one unit refills in 30 s: {retry}");
    }
    assert_eq!(get_user_as_client(&app, Cred::Bearer(&u.token)).await.status, StatusCode::OK, "a cached session works");
    let local = app.get("/v1/user", Cred::ApiKey(&made_up(CredentialKind::UserKey))).await;
    assert_eq!(local.code(), "invalid_credentials", "the proxy's own address is not limited");
    let metrics = app.get("/metrics", Cred::None).await.text;
    assert!(metrics.contains("keygate_unknown_credentials_throttled_total 2"), "{metrics}");
}

#[tokio::test]
async fn zero_turns_the_throttle_off() {
    let app = spawn_app_with(|s| {
        behind_a_local_proxy(s);
        s.rate_limits.unknown_credentials_per_address = 0;
    })
    .await;
    for _ in 0..101 {
        let a = get_user_as_client(&app, Cred::ApiKey(&made_up(CredentialKind::OrgKey))).await;
        assert_eq!(a.code(), "invalid_credentials", "{}", a.text);
    }
}
