//! Identity over HTTP: sign-up, its input checks, and the error shape.

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

/// Each sign-up costs an argon2 hash and creates an account: one address gets
/// `signup.max_per_address_per_hour`, then 429. Refused input (400, 409) spends nothing, and
/// loopback (a local proxy's own address, or a test) is never limited.
#[tokio::test]
async fn sign_ups_from_one_address_are_bounded() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.signup.max_per_address_per_hour = 2;
    })
    .await;
    let sign_up = async |email: &str| {
        let body = json!({ "email": email, "password": PASSWORD, "name": "Co" });
        app.call_with(Method::POST, "/v1/register", Cred::None, Some(body), &[("x-forwarded-for", "203.0.113.50")])
            .await
    };
    let first = company_email("a");
    assert_eq!(sign_up(&first).await.status, StatusCode::CREATED);
    assert_eq!(sign_up("not-an-email").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(sign_up(&first).await.status, StatusCode::CONFLICT);
    assert_eq!(sign_up(&company_email("b")).await.status, StatusCode::CREATED);
    let third = sign_up(&company_email("c")).await;
    assert_eq!((third.status, third.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{}", third.text);
    let retry: u64 = third.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=1800).contains(&retry), "one sign-up refills in 30 minutes: {retry}");
    assert!(!login(&app, &first, PASSWORD).await.is_empty(), "signing in is not signing up");
    app.register().await; // from loopback itself: not limited
}

// ---- issue 15, finding 13: look-alike emails ----

#[tokio::test]
async fn a_fullwidth_look_alike_of_a_registered_email_is_the_same_user() {
    let app = spawn_app().await;
    let domain = format!("{}.example-corp.com", unique("co"));
    let ada = app.register_email(&format!("ada@{domain}")).await;
    let fullwidth = format!("ａｄａ@{domain}");
    let body = json!({ "email": fullwidth, "password": "another long password", "name": "Mallory" });
    let again = app.post("/v1/register", Cred::None, body).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "email_taken"), "{}", again.text);
    // Signing in with the look-alike reaches the one user there is.
    let login = app.post("/v1/login", Cred::None, json!({ "email": fullwidth, "password": PASSWORD })).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert_eq!(login.body["user"]["id"], ada.user_id.as_str());
    assert_eq!(login.body["user"]["email"], format!("ada@{domain}"));
}

#[tokio::test]
async fn invisible_and_mixed_script_emails_are_refused() {
    let app = spawn_app().await;
    let domain = format!("{}.example-corp.com", unique("co"));
    for (local, what) in [
        ("a\u{200B}da", "a zero-width space"),
        ("ada\u{202E}", "a right-to-left override"),
        ("a\u{00AD}da", "a soft hyphen"),
        ("\u{0430}da", "a Cyrillic а among Latin letters"),
    ] {
        let body = json!({ "email": format!("{local}@{domain}"), "password": PASSWORD, "name": "Mallory" });
        let a = app.post("/v1/register", Cred::None, body).await;
        assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{what}: {}", a.text);
        assert_eq!(a.body["error"]["details"][0]["field"], "email", "{what}");
    }
    // None of them took the address: the real one signs up.
    app.register_email(&format!("ada@{domain}")).await;
}
