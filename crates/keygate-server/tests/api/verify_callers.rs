//! Who may call verify (docs/api.md, "Verify callers"): callers from `[verify] anonymous_from`
//! (default loopback) without a credential, anyone else with a verifier token (or the operator
//! token). Only a token's caller may name the end client's `ip`; everyone's unknown keys are
//! throttled, by that `ip` or by the caller's own address.
//!
//! A remote caller is simulated as `unknown_credentials.rs` does: the test speaks from loopback
//! through a trusted local proxy that reports the caller in `X-Forwarded-For`.

use keygate_core::{CredentialKind, KeyFormat};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const VERIFIER: &str = "kgv_a-verifier-token-for-the-company-backend";
/// Configured only as its `sha256:` form.
const HASHED_VERIFIER: &str = "kgv_another-verifier-token-listed-as-digest";
const OPERATOR: &str = "operator-token-of-the-verify-caller-tests";
/// The remote caller (the company's backend, or an attacker), as the trusted proxy reports it.
const REMOTE: &str = "198.51.100.7";
/// An end client somebody would like to lock out.
const VICTIM: &str = "203.0.113.9";

fn made_up() -> String {
    let format = KeyFormat::new("kg_", "kg_org_", "kgs_").expect("default format");
    format.generate(CredentialKind::UserKey).secret.expose().to_owned()
}

/// A trusted proxy on loopback, the two verifier tokens and an operator token.
fn with_tokens(s: &mut keygate_server::Settings) {
    s.trusted_proxies = vec!["127.0.0.1/32".into()];
    s.admin_token = OPERATOR.to_owned().into();
    s.verify.tokens = vec![VERIFIER.to_owned().into(), sha256_form(HASHED_VERIFIER).into()];
}

/// `POST /v1/keys/verify` from `from` (through the trusted proxy; `None`: loopback itself).
async fn verify_from(app: &TestApp, from: Option<&str>, cred: Cred<'_>, body: Value) -> Answer {
    let headers: Vec<(&str, &str)> = from.map(|f| ("x-forwarded-for", f)).into_iter().collect();
    app.call_with(Method::POST, "/v1/keys/verify", cred, Some(body), &headers).await
}

/// The decision's code, insisting on a 200.
fn code(a: &Answer) -> &str {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_caller_from_elsewhere_needs_a_verifier_token() {
    let app = spawn_app_with(with_tokens).await;
    let u = app.register().await;
    let key = app.mint(&u.token, &u.account_id, json!({})).await;
    let body = json!({ "key": key["key"] });

    let none = verify_from(&app, Some(REMOTE), Cred::None, body.clone()).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "missing_credentials"), "{}", none.text);
    let wrong = verify_from(&app, Some(REMOTE), Cred::Bearer("kgv_not-a-token-of-this-deployment"), body.clone()).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "{}", wrong.text);
    let as_api_key = verify_from(&app, Some(REMOTE), Cred::ApiKey(VERIFIER), body.clone()).await;
    assert_eq!(as_api_key.code(), "missing_credentials", "X-API-Key does not carry a verifier token");
    let digest_itself =
        verify_from(&app, Some(REMOTE), Cred::Bearer(&sha256_form(HASHED_VERIFIER)), body.clone()).await;
    assert_eq!(digest_itself.code(), "invalid_credentials", "the configured digest is not the token");

    for token in [VERIFIER, HASHED_VERIFIER, OPERATOR] {
        assert_eq!(code(&verify_from(&app, Some(REMOTE), Cred::Bearer(token), body.clone()).await), "VALID");
    }
    // Loopback is in the default `anonymous_from`: a sidecar needs nothing, but a wrong token
    // it sends is still wrong.
    assert_eq!(code(&verify_from(&app, None, Cred::None, body.clone()).await), "VALID");
    let local_wrong = verify_from(&app, None, Cred::Bearer("kgv_not-a-token-of-this-deployment"), body).await;
    assert_eq!(local_wrong.code(), "invalid_credentials");
}

#[tokio::test]
async fn an_empty_anonymous_from_asks_every_caller_for_a_token() {
    let app = spawn_app_with(|s| {
        with_tokens(s);
        s.verify.anonymous_from = Vec::new();
    })
    .await;
    let body = json!({ "key": made_up() });
    let local = verify_from(&app, None, Cred::None, body.clone()).await;
    assert_eq!((local.status, local.code()), (StatusCode::UNAUTHORIZED, "missing_credentials"), "{}", local.text);
    assert_eq!(code(&verify_from(&app, None, Cred::Bearer(VERIFIER), body).await), "NOT_FOUND");
}

/// The review's attack: 105 anonymous verifies naming a victim's address spent the victim's
/// allowance of unknown keys, and the victim's own real, uncached key was refused with 429.
/// Now an anonymous caller's `ip` is ignored: the calls count against the caller's own address
/// (loopback here, which is this host and never limited).
#[tokio::test]
async fn an_anonymous_caller_naming_a_victims_ip_cannot_lock_the_victim_out() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let u = app.register().await;
    let real = app.mint(&u.token, &u.account_id, json!({})).await;
    let real = real["key"].as_str().expect("key");
    for _ in 0..105 {
        let a = verify_from(&app, None, Cred::None, json!({ "key": made_up(), "ip": VICTIM })).await;
        assert_eq!(code(&a), "NOT_FOUND", "{}", a.text);
    }
    let victim = app.call_with(Method::GET, "/v1/user", Cred::ApiKey(real), None, &[("x-forwarded-for", VICTIM)]).await;
    assert_eq!(victim.status, StatusCode::OK, "the victim's real key still works: {}", victim.text);
}

/// Where an operator opens verify to everyone, an anonymous attacker from elsewhere still
/// spends only its own address's allowance, whatever `ip` it names.
#[tokio::test]
async fn an_anonymous_remote_caller_spends_only_its_own_allowance() {
    let app = spawn_app_with(|s| {
        with_tokens(s);
        s.verify.anonymous_from = vec!["0.0.0.0/0".into(), "::/0".into()];
        // A small allowance refills slowly (one unit per 6 s), so a loaded machine running the
        // loop below for a second does not hand the attacker an extra unit mid-way.
        s.rate_limits.unknown_credentials_per_address = 10;
    })
    .await;
    let u = app.register().await;
    let real = app.mint(&u.token, &u.account_id, json!({})).await;
    let real = real["key"].as_str().expect("key");
    let mut throttled = 0;
    for _ in 0..15 {
        let a = verify_from(&app, Some(REMOTE), Cred::None, json!({ "key": made_up(), "ip": VICTIM })).await;
        if code(&a) == "RATE_LIMITED" {
            throttled += 1;
        }
    }
    assert_eq!(throttled, 5, "the attacker's own address is throttled after its 10");
    let for_victim =
        verify_from(&app, Some(REMOTE), Cred::Bearer(VERIFIER), json!({ "key": real, "ip": VICTIM })).await;
    assert_eq!(code(&for_victim), "VALID", "the victim's allowance is whole: {}", for_victim.text);
}

/// Without `ip` there used to be no throttle at all (300 of 300 made-up keys looked up). Now
/// the caller's own address answers for them, anonymous or with a token; with a token's `ip`,
/// that address does.
#[tokio::test]
async fn made_up_keys_without_ip_are_throttled_by_the_callers_address() {
    let app = spawn_app_with(|s| {
        with_tokens(s);
        s.verify.anonymous_from = vec!["198.51.100.0/24".into()];
        s.rate_limits.unknown_credentials_per_address = 3;
    })
    .await;
    let codes = |answers: Vec<Answer>| answers.iter().map(|a| code(a).to_owned()).collect::<Vec<_>>();
    let mut anonymous = Vec::new();
    for _ in 0..4 {
        anonymous.push(verify_from(&app, Some(REMOTE), Cred::None, json!({ "key": made_up() })).await);
    }
    assert_eq!(codes(anonymous), ["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]);

    let backend = "192.0.2.50";
    let mut with_token = Vec::new();
    for _ in 0..4 {
        with_token.push(verify_from(&app, Some(backend), Cred::Bearer(VERIFIER), json!({ "key": made_up() })).await);
    }
    assert_eq!(codes(with_token), ["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]);
    // The backend naming its end client: that client's allowance, not the backend's.
    let named =
        verify_from(&app, Some(backend), Cred::Bearer(VERIFIER), json!({ "key": made_up(), "ip": VICTIM })).await;
    assert_eq!(code(&named), "NOT_FOUND");
}

#[tokio::test]
async fn only_a_verifier_tokens_ip_is_believed_for_allowlists() {
    let app = spawn_app_with(with_tokens).await;
    let u = app.register().await;
    let key = app.mint(&u.token, &u.account_id, json!({ "ip_allowlist": ["203.0.113.0/24"] })).await;
    let key = key["key"].as_str().expect("key");
    let inside = json!({ "key": key, "ip": VICTIM });
    let outside = json!({ "key": key, "ip": "192.0.2.1" });
    assert_eq!(code(&verify_from(&app, Some(REMOTE), Cred::Bearer(VERIFIER), inside.clone()).await), "VALID");
    assert_eq!(code(&verify_from(&app, Some(REMOTE), Cred::Bearer(HASHED_VERIFIER), inside.clone()).await), "VALID");
    assert_eq!(code(&verify_from(&app, Some(REMOTE), Cred::Bearer(VERIFIER), outside).await), "IP_NOT_ALLOWED");
    // An anonymous sidecar cannot claim an allowed address: its own (loopback) is checked.
    assert_eq!(code(&verify_from(&app, None, Cred::None, inside).await), "IP_NOT_ALLOWED");
    let bad = verify_from(&app, None, Cred::Bearer(VERIFIER), json!({ "key": key, "ip": "not-an-address" })).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{}", bad.text);
}

#[tokio::test]
async fn openapi_shows_verify_takes_a_verifier_token() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Cred::None).await.body;
    let op = &doc["paths"]["/v1/keys/verify"]["post"];
    assert_eq!(op["security"], json!([{}, { "verifier_token": [] }]), "{}", op["security"]);
    assert!(op["responses"]["401"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["verifier_token"]["scheme"], "bearer");
}
