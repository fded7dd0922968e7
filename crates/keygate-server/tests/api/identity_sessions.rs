//! Identity over HTTP once signed up: sign-in and its throttling, sessions and logout, password
//! changes, and the user.

use std::time::{Duration, Instant};

use keygate_core::Authority;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Everything of an error answer except the request id, which differs by design.
fn error_without_request_id(a: &Answer) -> (StatusCode, Value) {
    (a.status, a.body["error"].clone())
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_alike() {
    let app = spawn_app().await;
    let u = app.register().await;
    let unknown = company_email("nobody");
    let mut wrong_times = Vec::new();
    let mut unknown_times = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let a = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": "wrong password 123" })).await;
        wrong_times.push(t.elapsed());
        answers.push(error_without_request_id(&a));
        let t = Instant::now();
        let b = app.post("/v1/login", Cred::None, json!({ "email": unknown, "password": "wrong password 123" })).await;
        unknown_times.push(t.elapsed());
        answers.push(error_without_request_id(&b));
        assert_eq!(a.headers.get("www-authenticate"), b.headers.get("www-authenticate"));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(answers[0].1["code"], "login_error");
    assert!(answers.iter().all(|x| *x == answers[0]), "identical answers: {answers:?}");
    // Timing: an unknown email still runs a (dummy) argon2 verification, so it is not
    // dramatically faster than a wrong password.
    let wrong = wrong_times.iter().min().copied().unwrap_or_default();
    let unknown = unknown_times.iter().min().copied().unwrap_or_default();
    assert!(unknown * 4 >= wrong, "unknown email {unknown:?} vs wrong password {wrong:?}");
    assert!(unknown >= Duration::from_millis(2), "a dummy hash takes time: {unknown:?}");
    // A malformed email is just another unknown one.
    let c =
        app.post("/v1/login", Cred::None, json!({ "email": "not an email", "password": "wrong password 123" })).await;
    assert_eq!(error_without_request_id(&c), answers[0]);
}

#[tokio::test]
async fn login_is_throttled_after_ten_failures_without_revealing_the_email() {
    // A back-off long enough that a slow, busy test machine cannot outlast it.
    let app = spawn_app_with(|s| s.login.backoff_base_seconds = 60).await;
    let u = app.register().await;
    let unknown = company_email("ghost");
    let mut throttled = Vec::new();
    for email in [&u.email, &unknown] {
        for i in 0..10 {
            let a = app.post("/v1/login", Cred::None, json!({ "email": email, "password": "not the password" })).await;
            assert_eq!(a.code(), "login_error", "attempt {i}: {}", a.text);
        }
        // The eleventh attempt is refused before the password is looked at: even the right one.
        throttled.push(app.post("/v1/login", Cred::None, json!({ "email": email, "password": PASSWORD })).await);
    }
    let (real, ghost) = (&throttled[0], &throttled[1]);
    for a in [real, ghost] {
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
        assert_eq!(a.code(), "rate_limited");
        let retry: u64 = a.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!(retry >= 1);
    }
    assert_eq!(real.body["error"], ghost.body["error"], "a throttled answer does not tell whether the email exists");
    // Other emails are unaffected (the address stays below its own threshold).
    let other = app.register().await;
    login(&app, &other.email, PASSWORD).await;
    // And the user's existing session still works.
    assert_eq!(app.get("/v1/user", Cred::Bearer(&u.token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    let app = spawn_app().await;
    let u = app.register().await;
    let second = login(&app, &u.email, PASSWORD).await;
    // Warm the caches so that "at once" is tested against them.
    assert_eq!(app.get("/v1/user", Cred::Bearer(&u.token)).await.status, StatusCode::OK);
    let out = app.post("/v1/logout", Cred::Bearer(&u.token), json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let after = app.get("/v1/user", Cred::Bearer(&u.token)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "session_expired");
    let again = app.post("/v1/logout", Cred::Bearer(&u.token), json!({})).await;
    assert_eq!(again.code(), "session_expired");
    // Only that session ended.
    assert_eq!(app.get("/v1/user", Cred::Bearer(&second)).await.status, StatusCode::OK);
    // An API key cannot log out, and logout needs a credential.
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    let a = app.post("/v1/logout", Cred::ApiKey(&key.secret), json!({})).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let a = app.post("/v1/logout", Cred::None, json!({})).await;
    assert_eq!(a.code(), "missing_credentials");
}

#[tokio::test]
async fn password_change_revokes_every_session() {
    let app = spawn_app().await;
    let u = app.register().await;
    let second = login(&app, &u.email, PASSWORD).await;
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    for t in [&u.token, &second] {
        assert_eq!(app.get("/v1/user", Cred::Bearer(t)).await.status, StatusCode::OK);
    }
    let new_password = "an even better passphrase";
    let a = app
        .patch("/v1/user", Cred::Bearer(&second), json!({ "current_password": PASSWORD, "new_password": new_password }))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let fresh = a.body["token"].as_str().expect("new token").to_owned();
    assert!(fresh.starts_with("kgs_") && fresh != second && fresh != u.token);
    for old in [&u.token, &second] {
        let r = app.get("/v1/user", Cred::Bearer(old)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.code(), "session_expired");
    }
    assert_eq!(app.get("/v1/user", Cred::Bearer(&fresh)).await.status, StatusCode::OK);
    // The old password is gone, the new one works.
    let old = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": PASSWORD })).await;
    assert_eq!(old.code(), "login_error");
    login(&app, &u.email, new_password).await;
    // API keys are unaffected.
    let me = app.get("/v1/user", Cred::ApiKey(&key.secret)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    // Recorded, without the passwords.
    let log = app
        .get(&format!("/v1/audit?account_id={}&action=user.password_changed", u.account_id), Cred::Bearer(&fresh))
        .await;
    assert_eq!(log.body["items"].as_array().map(Vec::len), Some(1), "{}", log.text);
    assert!(!log.text.contains(new_password) && !log.text.contains(PASSWORD));
}

#[tokio::test]
async fn password_change_needs_the_current_password() {
    let app = spawn_app_with(|s| s.login.backoff_base_seconds = 60).await;
    let u = app.register().await;
    let a = app
        .patch(
            "/v1/user",
            Cred::Bearer(&u.token),
            json!({ "current_password": "not my password", "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    assert_eq!(a.code(), "login_error");
    // Nothing changed: the session lives, the old password still works.
    assert_eq!(app.get("/v1/user", Cred::Bearer(&u.token)).await.status, StatusCode::OK);
    login(&app, &u.email, PASSWORD).await;
    // Without current_password at all: 400 naming the field.
    let a = app.patch("/v1/user", Cred::Bearer(&u.token), json!({ "new_password": "a brand new passphrase" })).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["details"][0]["field"], "current_password");
    // A weak new password is refused even with the right current one.
    let a = app
        .patch("/v1/user", Cred::Bearer(&u.token), json!({ "current_password": PASSWORD, "new_password": "short" }))
        .await;
    assert_eq!(a.body["error"]["details"][0]["field"], "new_password", "{}", a.text);
    // Only a session may change the password: not an API key of the user.
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    let a = app
        .patch(
            "/v1/user",
            Cred::ApiKey(&key.secret),
            json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    // Guessing the current password through a stolen session is throttled like sign-in.
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        let a = app
            .patch(
                "/v1/user",
                Cred::Bearer(&u.token),
                json!({ "current_password": "guess guess guess", "new_password": "a brand new passphrase" }),
            )
            .await;
        last = a.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn user_can_rename_and_sees_only_a_keys_account_through_a_key() {
    let app = spawn_app().await;
    let u = app.register().await;
    let a = app.patch("/v1/user", Cred::Bearer(&u.token), json!({ "name": "  Grace Hopper " })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "Grace Hopper");
    assert_eq!(app.get("/v1/user", Cred::Bearer(&u.token)).await.body["name"], "Grace Hopper");
    let second = app.post("/v1/accounts", Cred::Bearer(&u.token), json!({ "name": "Side project" })).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let me = app.get("/v1/user", Cred::Bearer(&u.token)).await;
    assert_eq!(me.body["memberships"].as_array().map(Vec::len), Some(2));
    // A user key is bound to one account: it sees that one only.
    let key = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["user:read"]).await;
    let me = app.get("/v1/user", Cred::ApiKey(&key.secret)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.body["memberships"],
        json!([{ "account_id": u.account_id, "account_name": "Test Co", "authority": "owner" }])
    );
    // A key without `user:read` may not read the user; an org key never acts as a user.
    let narrow = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["keys:read"]).await;
    assert_eq!(app.get("/v1/user", Cred::ApiKey(&narrow.secret)).await.code(), "insufficient_scope");
    let org = insert_key(&app, &u.account_id, None, Authority::Administrator, &["*:*"]).await;
    let a = app.get("/v1/user", Cred::ApiKey(&org.secret)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "user_credential_required");
}
