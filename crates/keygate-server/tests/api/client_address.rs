//! The client address behind trusted proxies (docs/api.md, "Client address"). The test plays
//! a proxy on loopback (`trusted_proxies = ["127.0.0.1/32"]`) that, like HAProxy's
//! `option forwardfor`, appends its own `X-Forwarded-For` line naming the real client after
//! whatever the client sent: a forged first line must change nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// The client's real address, in the line the proxy appended.
const REAL: &str = "203.0.113.66";
/// What the client claims in a line of its own, sent first.
const FORGED: &str = "198.51.100.9";
/// Both lines as the proxy passes them on.
const FORGED_THEN_REAL: [(&str, &str); 2] = [("x-forwarded-for", FORGED), ("x-forwarded-for", REAL)];

fn behind_a_local_proxy(s: &mut keygate_server::Settings) {
    s.trusted_proxies = vec!["127.0.0.1/32".into()];
}

#[tokio::test]
async fn forged_first_forwarded_line_cannot_bypass_the_allowlist() {
    let (app, _) = gateway_app_with(|_| {}, behind_a_local_proxy).await;
    let u = app.register().await;
    let only_forged = key_of(&app.mint(&u.token, &u.account_id, json!({ "ip_allowlist": [FORGED] })).await);
    let only_real = key_of(&app.mint(&u.token, &u.account_id, json!({ "ip_allowlist": [REAL] })).await);

    let at_gateway =
        async |key: &str| app.call_with(Method::GET, "/v1/companies", Cred::ApiKey(key), None, &FORGED_THEN_REAL).await;
    let refused = at_gateway(&only_forged).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "ip_not_allowed"), "{}", refused.text);
    assert_eq!(at_gateway(&only_real).await.status, StatusCode::OK, "the appended line is the client");

    let verify = async |key: &str| {
        let body = json!({ "key": key });
        // A caller from a forwarded (non-loopback) address is a verifier with a token; without
        // `ip` in the body its own address, read from the forwarding lines, is the sender.
        app.call_with(Method::POST, "/v1/keys/verify", Cred::Bearer(TEST_VERIFIER), Some(body), &FORGED_THEN_REAL)
            .await
            .body
    };
    assert_eq!(verify(&only_forged).await["code"], "IP_NOT_ALLOWED");
    assert_eq!(verify(&only_real).await["code"], "VALID");

    // A `Forwarded` header the proxy does not write, forged by the client, wins nothing: the
    // two headers disagree, so the client is unknown (0.0.0.0), in neither allowlist.
    let mixed = [("x-forwarded-for", REAL), ("forwarded", "for=198.51.100.9")];
    let body = json!({ "key": only_forged });
    let answer = app.call_with(Method::POST, "/v1/keys/verify", Cred::Bearer(TEST_VERIFIER), Some(body), &mixed).await;
    assert_eq!(answer.body["code"], "IP_NOT_ALLOWED", "{}", answer.text);
    let answer = app.call_with(Method::GET, "/v1/companies", Cred::ApiKey(&only_forged), None, &mixed).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
}

#[tokio::test]
async fn last_used_ip_and_audit_ip_are_the_address_the_proxy_appended() {
    let app = spawn_app_with(behind_a_local_proxy).await;
    let u = app.register().await;
    let minted = app
        .call_with(
            Method::POST,
            "/v1/keys",
            Cred::Bearer(&u.token),
            Some(json!({ "account_id": u.account_id, "name": "k" })),
            &FORGED_THEN_REAL,
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    let key = key_of(&minted.body);
    let used = app.call_with(Method::GET, "/v1/user", Cred::ApiKey(&key), None, &FORGED_THEN_REAL).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.text);

    let path = format!("/v1/keys/{}?account_id={}", minted.body["id"].as_str().expect("id"), u.account_id);
    let flushed =
        eventually(3.0, async || app.get(&path, Cred::Bearer(&u.token)).await.body["request_count"] == 1).await;
    assert!(flushed, "usage flushed");
    assert_eq!(app.get(&path, Cred::Bearer(&u.token)).await.body["last_used_ip"], REAL);

    let log =
        app.get(&format!("/v1/audit?account_id={}&action=key.created", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert_eq!(log.body["items"][0]["ip"], REAL, "{}", log.text);

    // IPv6 through RFC 7239 `Forwarded`, quoted, in brackets, with a port.
    let v6 = [("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#)];
    let key2 = app.mint(&u.token, &u.account_id, json!({})).await;
    let used = app.call_with(Method::GET, "/v1/user", Cred::ApiKey(&key_of(&key2)), None, &v6).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.text);
    let path = format!("/v1/keys/{}?account_id={}", key2["id"].as_str().expect("id"), u.account_id);
    let flushed =
        eventually(3.0, async || app.get(&path, Cred::Bearer(&u.token)).await.body["request_count"] == 1).await;
    assert!(flushed, "usage flushed");
    assert_eq!(app.get(&path, Cred::Bearer(&u.token)).await.body["last_used_ip"], "2001:db8:cafe::17");
}

#[tokio::test]
async fn a_new_forged_first_line_per_sign_up_does_not_evade_the_address_throttle() {
    let app = spawn_app_with(|s| {
        behind_a_local_proxy(s);
        s.signup.max_per_address_per_hour = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = json!({ "email": company_email("a"), "password": PASSWORD, "name": "Co" });
        let forged = format!("198.51.100.{}", 10 + i);
        let lines = [("x-forwarded-for", forged.as_str()), ("x-forwarded-for", REAL)];
        statuses.push(app.call_with(Method::POST, "/v1/register", Cred::None, Some(body), &lines).await.status);
    }
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS]);
}

#[tokio::test]
async fn the_gateway_forwards_every_hop_and_the_peer() {
    let (app, _) = gateway_app_with(|_| {}, behind_a_local_proxy).await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({})).await);
    let lines =
        [("x-forwarded-for", FORGED), ("x-forwarded-for", "203.0.113.66, 10.0.0.3"), ("forwarded", "for=6.6.6.6")];
    let r = app.call_with(Method::GET, "/v1/companies", Cred::ApiKey(&key), None, &lines).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.body["headers"];
    assert_eq!(h["x-forwarded-for"], "198.51.100.9, 203.0.113.66, 10.0.0.3, 127.0.0.1", "one line: every hop, then us");
    assert_eq!(h["forwarded"], "for=6.6.6.6, for=127.0.0.1");
}
