//! Control characters in every string a client sends, on SQLite and (when configured) on
//! PostgreSQL, whose text type cannot hold NUL at all: a query parameter holding one is 400
//! `invalid_request`; a JSON string holding NUL is 400 `invalid_request`; a path segment
//! holding one names nothing (404, as any malformed id). Never a 500 (docs/api.md, Input).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::{drop_db, fresh_db, node_with};
use crate::helpers::*;

/// NUL, a C0 control, DEL, a C1 control (NEL): as a string and percent-encoded.
const CONTROLS: &[(&str, &str)] = &[("\u{0}", "%00"), ("\u{1}", "%01"), ("\u{7f}", "%7F"), ("\u{85}", "%C2%85")];

struct Fixture {
    u: Registered,
    key_id: String,
    role_id: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let u = app.register().await;
    let key_id = app.mint(&u.token, &u.account_id, json!({})).await["id"].as_str().expect("id").to_owned();
    let role = app
        .post(
            &format!("/v1/accounts/{}/roles", u.account_id),
            Cred::Bearer(&u.token),
            json!({ "name": unique("role-"), "permissions": ["leads:create"] }),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let role_id = role.body["id"].as_str().expect("role id").to_owned();
    Fixture { u, key_id, role_id }
}

/// Every query string parameter of every route, with `{c}` where the control goes.
fn queries(f: &Fixture) -> Vec<String> {
    let (acc, key) = (&f.u.account_id, &f.key_id);
    vec![
        format!("/v1/keys?account_id={acc}{{c}}"),
        format!("/v1/keys?account_id={acc}&cursor={{c}}"),
        format!("/v1/keys/{key}?account_id={acc}{{c}}"),
        format!("/v1/keys/{key}/usage?account_id={acc}{{c}}"),
        format!("/v1/keys/{key}/usage?account_id={acc}&from=2024-01-01{{c}}"),
        format!("/v1/audit?account_id={acc}{{c}}"),
        format!("/v1/audit?account_id={acc}&action={{c}}"),
        format!("/v1/audit?account_id={acc}&actor={{c}}"),
        format!("/v1/audit?account_id={acc}&action=key.create{{c}}&actor=usr_{{c}}"),
        format!("/v1/audit?account_id={acc}&cursor={{c}}"),
        format!("/v1/audit/verify?account_id={acc}{{c}}"),
        "/v1/accounts?cursor={c}".to_owned(),
        format!("/v1/accounts/{acc}/members?cursor={{c}}"),
        format!("/v1/accounts/{acc}/roles?cursor={{c}}"),
        "/v1/admin/accounts?cursor={c}".to_owned(),
    ]
}

/// Every path parameter.
fn paths(f: &Fixture) -> Vec<(Method, String)> {
    let (acc, key, user, role) = (&f.u.account_id, &f.key_id, &f.u.user_id, &f.role_id);
    vec![
        (Method::GET, format!("/v1/keys/{key}{{c}}?account_id={acc}")),
        (Method::GET, format!("/v1/keys/kg_{{c}}?account_id={acc}")),
        (Method::DELETE, format!("/v1/keys/{key}{{c}}?account_id={acc}")),
        (Method::GET, format!("/v1/keys/{key}{{c}}/usage?account_id={acc}")),
        (Method::GET, "/v1/accounts/acc_{c}".to_owned()),
        (Method::GET, format!("/v1/accounts/{acc}{{c}}/members")),
        (Method::DELETE, format!("/v1/accounts/{acc}/members/{user}{{c}}")),
        (Method::GET, format!("/v1/accounts/{acc}/roles/rol_{{c}}")),
        (Method::DELETE, format!("/v1/accounts/{acc}/roles/{role}{{c}}")),
    ]
}

/// Every JSON body string (one field at a time), with `{c}` where the control goes.
fn bodies(f: &Fixture) -> Vec<(Method, String, Value)> {
    let acc = &f.u.account_id;
    let c = "{c}";
    vec![
        (
            Method::POST,
            "/v1/register".into(),
            json!({ "email": format!("a{c}@x-corp.com"), "password": PASSWORD, "name": "X" }),
        ),
        (
            Method::POST,
            "/v1/register".into(),
            json!({ "email": company_email("b"), "password": format!("{PASSWORD}{c}"), "name": "X" }),
        ),
        (
            Method::POST,
            "/v1/register".into(),
            json!({ "email": company_email("c"), "password": PASSWORD, "name": format!("X{c}") }),
        ),
        (Method::POST, "/v1/login".into(), json!({ "email": format!("{}{c}", f.u.email), "password": PASSWORD })),
        (Method::POST, "/v1/login".into(), json!({ "email": f.u.email, "password": format!("x{c}") })),
        (Method::PATCH, "/v1/user".into(), json!({ "name": format!("N{c}") })),
        (Method::POST, "/v1/accounts".into(), json!({ "name": format!("A{c}") })),
        (Method::PATCH, format!("/v1/accounts/{acc}"), json!({ "name": format!("A{c}") })),
        (Method::POST, "/v1/keys".into(), json!({ "account_id": acc, "name": format!("k{c}") })),
        (Method::POST, "/v1/keys".into(), json!({ "account_id": format!("{acc}{c}"), "name": "k" })),
        (Method::POST, "/v1/keys".into(), json!({ "account_id": acc, "name": "k", "scopes": [format!("a{c}:read")] })),
        (
            Method::POST,
            "/v1/keys".into(),
            json!({ "account_id": acc, "name": "k", "metadata": { "note": format!("v{c}") } }),
        ),
        (
            Method::POST,
            "/v1/keys".into(),
            json!({ "account_id": acc, "name": "k", "metadata": { format!("n{c}"): "v" } }),
        ),
        (Method::POST, "/v1/keys".into(), json!({ "account_id": acc, "name": "k", "role_id": format!("rol_{c}") })),
        (
            Method::POST,
            "/v1/keys".into(),
            json!({ "account_id": acc, "name": "k", "ip_allowlist": [format!("10.0.0.1{c}")] }),
        ),
        (Method::PATCH, format!("/v1/keys/{}?account_id={acc}", f.key_id), json!({ "name": format!("k{c}") })),
        (Method::POST, "/v1/keys/verify".into(), json!({ "key": format!("kg_{c}") })),
        (Method::POST, "/v1/keys/verify".into(), json!({ "key": "kg_x", "ip": format!("10.0.0.1{c}") })),
        (Method::POST, "/v1/keys/verify".into(), json!({ "key": "kg_x", "scope": format!("a{c}:read") })),
        (
            Method::POST,
            format!("/v1/accounts/{acc}/members"),
            json!({ "email": format!("m{c}@x-corp.com"), "authority": "user" }),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{acc}/roles"),
            json!({ "name": format!("r{c}"), "permissions": ["a:read"] }),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{acc}/roles"),
            json!({ "name": "r", "permissions": [format!("a{c}:read")] }),
        ),
    ]
}

async fn assert_controls_refused(app: &TestApp, backend: &str) {
    let f = fixture(app).await;
    let cred = || Cred::Bearer(&f.u.token);
    let admin = [("authorization", "Bearer operator-token-for-tests-0123456789")];
    for (raw, encoded) in CONTROLS {
        for q in queries(&f) {
            let path = q.replace("{c}", encoded);
            let headers: &[(&str, &str)] = if path.starts_with("/v1/admin") { &admin } else { &[] };
            let cred = if headers.is_empty() { cred() } else { Cred::None };
            let a = app.call_with(Method::GET, &path, cred, None, headers).await;
            assert_eq!(
                (a.status, a.code()),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{backend} GET {path}: {}",
                a.text
            );
        }
        for (method, p) in paths(&f) {
            let path = p.replace("{c}", encoded);
            let a = app.call(method.clone(), &path, cred(), None).await;
            assert_eq!(
                (a.status, a.code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{backend} {method} {path}: {}",
                a.text
            );
        }
        for (method, path, body) in bodies(&f) {
            let body: Value = serde_json::from_str(
                &body.to_string().replace("{c}", &json!(raw).to_string()[1..json!(raw).to_string().len() - 1]),
            )
            .expect("body with the control");
            // Verify takes a verifier token, not a session (docs/api.md, "Verify callers").
            let c = if path == "/v1/keys/verify" { Cred::Bearer(TEST_VERIFIER) } else { cred() };
            let a = app.call(method.clone(), &path, c, Some(body.clone())).await;
            if *raw == "\u{0}" {
                assert_eq!(
                    (a.status, a.code()),
                    (StatusCode::BAD_REQUEST, "invalid_request"),
                    "{backend} {method} {path} {body}: {}",
                    a.text
                );
            } else {
                // Other controls are each field's business (a metadata value may hold one),
                // but never a server error.
                assert!(
                    a.status.is_client_error() || a.status.is_success(),
                    "{backend} {method} {path} {body}: {} {}",
                    a.status,
                    a.text
                );
            }
        }
    }
}

#[tokio::test]
async fn control_characters_in_any_parameter_are_400_never_500_on_sqlite() {
    let app = spawn_app_with(|s| s.admin_token = "operator-token-for-tests-0123456789".to_owned().into()).await;
    assert_controls_refused(&app, "sqlite").await;
}

#[tokio::test]
async fn control_characters_in_any_parameter_are_400_never_500_on_postgres() {
    let Some(pg) = std::env::var("KEYGATE_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty()) else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED: control characters on PostgreSQL need KEYGATE_TEST_POSTGRES_URL");
        return;
    };
    let db = fresh_db(&pg).await;
    let app = node_with(&db, "", keygate_server::config::FailurePolicy::FailClosed, |s| {
        s.admin_token = "operator-token-for-tests-0123456789".to_owned().into()
    })
    .await;
    assert_controls_refused(&app, "postgres").await;
    app.stop().await;
    drop_db(db).await;
}
