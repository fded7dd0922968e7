//! Identity over HTTP: sign-up, sign-in, throttling, sessions, the user, and the error shape.

use std::time::{Duration, Instant};

use keygate_core::Authority;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn register_creates_user_account_and_session() {
    let app = spawn_app().await;
    let email = company_email("Ada.Lovelace");
    let a = app
        .post(
            "/v1/register",
            Cred::None,
            json!({ "email": email, "password": PASSWORD, "name": "Ada Lovelace", "url": "https://www.acme.com" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let b = &a.body;
    let token = b["token"].as_str().expect("token");
    assert!(token.starts_with("kgs_") && token.len() == 4 + 38, "{token}");
    assert_eq!(b["user"]["email"], json!(email.to_lowercase()), "emails are stored lower-cased");
    assert_eq!(b["user"]["name"], "Ada Lovelace");
    assert!(b["user"]["id"].as_str().expect("id").starts_with("usr_"));
    assert!(b["user"]["created_at"].as_str().expect("created_at").ends_with('Z'));
    let account_id = b["default_account_id"].as_str().expect("account");
    assert!(account_id.starts_with("acc_"));
    assert_eq!(
        b["user"]["memberships"],
        json!([{ "account_id": account_id, "account_name": "Ada Lovelace", "authority": "owner" }])
    );
    assert_eq!(b["account"]["id"], json!(account_id));
    assert_eq!(b["account"]["name"], "Ada Lovelace");
    assert_eq!(b["account"]["url"], "https://www.acme.com");
    assert_eq!(b["account"]["plan"], "trial");
    assert_eq!(b["account"]["api_access"], true);
    let trial_end = chrono::DateTime::parse_from_rfc3339(b["account"]["trial_ends_at"].as_str().expect("trial end"))
        .expect("rfc3339");
    let days = (trial_end.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((13 * 24..=14 * 24).contains(&days), "a 14-day trial, got {days} hours");
    assert!(!a.text.contains("password"), "no password or hash in the answer: {}", a.text);

    // The token works at once, for the user and the account.
    let me = app.get("/v1/user", Cred::Bearer(token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], b["user"]["id"]);
    assert_eq!(me.body["memberships"][0]["authority"], "owner");
    let acc = app.get(&format!("/v1/accounts/{account_id}"), Cred::Bearer(token)).await;
    assert_eq!(acc.status, StatusCode::OK, "{}", acc.text);
    for field in ["id", "name", "url", "plan", "api_access", "trial_ends_at", "created_at"] {
        assert!(acc.body.get(field).is_some(), "account field {field}: {}", acc.text);
    }
    // And it was recorded.
    let log = app.get(&format!("/v1/audit?account_id={account_id}"), Cred::Bearer(token)).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert_eq!(log.body["items"][0]["action"], "user.registered");
    // Signing in works with any case of the email.
    login(&app, &email.to_uppercase(), PASSWORD).await;
}

#[tokio::test]
async fn register_rejects_free_webmail_with_user_message() {
    let app = spawn_app_with(|s| s.signup.extra_blocked_domains = vec!["competitor.example".into()]).await;
    for email in ["someone@gmail.com", "someone@Mailinator.com", "x@yopmail.com", "x@mail.competitor.example"] {
        let a =
            app.post("/v1/register", Cred::None, json!({ "email": email, "password": PASSWORD, "name": "X" })).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{email}: {}", a.text);
        assert_eq!(a.code(), "email_format_register");
        let m = a.body["error"]["user_message"].as_str().expect("user_message");
        assert!(m.contains("work email"), "{m}");
    }
    // Nothing was created: the same address still cannot sign in.
    let a = app.post("/v1/login", Cred::None, json!({ "email": "someone@gmail.com", "password": PASSWORD })).await;
    assert_eq!(a.code(), "login_error");

    // A deployment may allow free webmail; its own extra list still applies.
    let open = spawn_app_with(|s| {
        s.signup.block_free_email = false;
        s.signup.extra_blocked_domains = vec!["competitor.example".into()];
    })
    .await;
    open.register_email(&format!("{}@gmail.com", unique("someone"))).await;
    let a = open
        .post("/v1/register", Cred::None, json!({ "email": "x@competitor.example", "password": PASSWORD, "name": "X" }))
        .await;
    assert_eq!(a.code(), "email_format_register");
}

#[tokio::test]
async fn register_email_taken_is_case_insensitive() {
    let app = spawn_app().await;
    let u = app.register().await;
    let shouted = u.email.to_uppercase();
    let a =
        app.post("/v1/register", Cred::None, json!({ "email": shouted, "password": PASSWORD, "name": "Again" })).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "email_taken");
    let a = app
        .post(
            "/v1/register",
            Cred::None,
            json!({ "email": format!("  {} ", u.email), "password": PASSWORD, "name": "Again" }),
        )
        .await;
    assert_eq!(a.code(), "email_taken");
}

#[tokio::test]
async fn register_domain_taken_tells_to_ask_for_invitation() {
    let app = spawn_app().await;
    let domain = format!("{}.example-corp.com", unique("acme"));
    app.register_email(&format!("founder@{domain}")).await;
    let a = app
        .post("/v1/register", Cred::None, json!({ "email": format!("colleague@{}", domain.to_uppercase()), "password": PASSWORD, "name": "Colleague" }))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "domain_taken");
    let m = a.body["error"]["user_message"].as_str().expect("user_message").to_lowercase();
    assert!(m.contains("administrator") && m.contains("invite"), "{m}");
    // Nothing half-created: the colleague has no user.
    let a = app
        .post("/v1/login", Cred::None, json!({ "email": format!("colleague@{domain}"), "password": PASSWORD }))
        .await;
    assert_eq!(a.code(), "login_error");
}

#[tokio::test]
async fn weak_password_is_rejected_with_details() {
    let app = spawn_app().await;
    let fields = |a: &Answer| -> Vec<String> {
        a.body["error"]["details"]
            .as_array()
            .map(|d| d.iter().map(|x| x["field"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    };
    let short = app
        .post("/v1/register", Cred::None, json!({ "email": company_email("a"), "password": "short", "name": "A" }))
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.text);
    assert_eq!(short.code(), "invalid_request");
    assert_eq!(fields(&short), vec!["password"]);
    assert!(short.body["error"]["details"][0]["message"].as_str().unwrap_or("").contains("12"), "{}", short.text);

    let long = app
        .post(
            "/v1/register",
            Cred::None,
            json!({ "email": company_email("a"), "password": "x".repeat(257), "name": "A" }),
        )
        .await;
    assert_eq!(long.code(), "invalid_request");
    assert_eq!(fields(&long), vec!["password"]);

    // Every bad field is listed at once.
    let all = app
        .post(
            "/v1/register",
            Cred::None,
            json!({ "email": "not-an-email", "password": "short", "name": "", "url": "javascript:alert(1)" }),
        )
        .await;
    assert_eq!(all.status, StatusCode::BAD_REQUEST);
    let mut f = fields(&all);
    f.sort();
    assert_eq!(f, vec!["email", "name", "password", "url"]);

    // The minimum is configurable.
    let strict = spawn_app_with(|s| s.signup.min_password_chars = 40).await;
    let a = strict
        .post("/v1/register", Cred::None, json!({ "email": company_email("a"), "password": PASSWORD, "name": "A" }))
        .await;
    assert_eq!(fields(&a), vec!["password"]);
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_400() {
    let app = spawn_app().await;
    let raw = |body: &'static str, content_type: &'static str| {
        let client = app.client.clone();
        let url = format!("{}/v1/register", app.base);
        async move {
            let r = client.post(url).header("content-type", content_type).body(body).send().await.expect("send");
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v)
        }
    };
    let (s, v) = raw("{\"email\": ", "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_request");
    let (s, v) = raw("email=a@b.com", "application/x-www-form-urlencoded").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_request");
    let (s, v) = raw("{}", "text/plain").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_request");
    // A valid value followed by anything else is not a JSON body (it was once accepted).
    let (s, v) =
        raw(r#"{"email":"t@trailing.example","password":"correct horse battery","name":"T"} junk"#, "application/json")
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["details"][0]["field"], "body");
    // Media types are compared without regard to case; `+json` suffixes are JSON.
    let (s, v) = raw(r#"{"email": 5}"#, "Application/JSON; charset=utf-8").await;
    assert_eq!((s, v["error"]["details"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")), "{v}");
    let (s, v) = raw(r#"{"email": 5}"#, "application/vnd.api+json").await;
    assert_eq!((s, v["error"]["details"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")), "{v}");
    // Wrong types and missing fields name the field.
    let a = app.post("/v1/register", Cred::None, json!({ "email": 5, "password": PASSWORD, "name": "A" })).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["details"][0]["field"], "email", "{}", a.text);
    let a = app.post("/v1/login", Cred::None, json!({ "email": "a@acme.com" })).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "invalid_request");
    // Unknown fields are refused where a typo would silently change nothing.
    let u = app.register().await;
    let a = app.patch("/v1/user", Cred::Bearer(&u.token), json!({ "nmae": "typo" })).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "invalid_request");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let big = json!({ "email": company_email("a"), "password": PASSWORD, "name": "x".repeat(70 * 1024) });
    let a = app.post("/v1/register", Cred::None, big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.code(), "payload_too_large");
    let u = app.register().await;
    let a = app.patch("/v1/user", Cred::Bearer(&u.token), json!({ "name": "y".repeat(100 * 1024) })).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

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

#[tokio::test]
async fn every_error_has_the_contract_shape_and_request_id() {
    let app = spawn_app().await;
    let u = app.register().await;
    let other = app.register().await;
    let answers = vec![
        app.get("/v1/user", Cred::None).await,
        app.get("/v1/user", Cred::Bearer("kgs_not_a_real_token")).await,
        app.get("/v1/user", Cred::ApiKey("kg_0000000000000000000000000000000000000000")).await,
        app.call(Method::GET, "/v1/nothing-here", Cred::None, None).await,
        app.call(Method::PUT, "/v1/user", Cred::Bearer(&u.token), None).await,
        app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": "wrong password!" })).await,
        app.post("/v1/register", Cred::None, json!({ "email": u.email, "password": PASSWORD, "name": "X" })).await,
        app.post("/v1/register", Cred::None, json!({ "email": "a@gmail.com", "password": PASSWORD, "name": "X" }))
            .await,
        app.post("/v1/register", Cred::None, json!({})).await,
        app.get(&format!("/v1/accounts/{}", other.account_id), Cred::Bearer(&u.token)).await,
        app.get("/v1/accounts/acc_../../etc/passwd", Cred::Bearer(&u.token)).await,
        app.get("/v1/audit", Cred::Bearer(&u.token)).await,
        app.get("/v1/admin/accounts", Cred::Bearer("anything")).await,
    ];
    let mut seen = std::collections::HashSet::new();
    for a in &answers {
        assert!(a.status.is_client_error(), "{} {}", a.status, a.text);
        let code = a.code();
        assert!(!code.is_empty(), "error.code: {}", a.text);
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error.message: {}", a.text);
        let rid = a.body["request_id"].as_str().expect("request_id");
        assert!(!rid.is_empty());
        assert_eq!(a.header("x-request-id"), Some(rid), "X-Request-Id matches the body: {}", a.text);
        assert!(a.header("content-type").is_some_and(|c| c.starts_with("application/json")));
        seen.insert(code.to_owned());
    }
    for code in [
        "missing_credentials",
        "invalid_credentials",
        "not_found",
        "login_error",
        "email_taken",
        "email_format_register",
        "invalid_request",
        "account_id_required",
    ] {
        assert!(seen.contains(code), "{code} among {seen:?}");
    }
    // Successes carry X-Request-Id too.
    let ok = app.get("/v1/user", Cred::Bearer(&u.token)).await;
    assert!(ok.header("x-request-id").is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn signup_can_be_disabled() {
    let app = spawn_app_with(|s| s.signup.enabled = false).await;
    let a = app
        .post("/v1/register", Cred::None, json!({ "email": company_email("a"), "password": PASSWORD, "name": "A" }))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "signup_disabled");
}
