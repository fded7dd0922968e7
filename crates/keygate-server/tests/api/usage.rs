//! Usage by outcome over HTTP (docs/api.md, "Usage"): refusals of a known key count, per key
//! by day and hour and per account by day and key, as JSON or CSV, for those who may read.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const OUTCOMES: [&str; 12] = [
    "VALID",
    "RATE_LIMITED",
    "QUOTA_EXCEEDED",
    "USAGE_EXCEEDED",
    "INSUFFICIENT_SCOPE",
    "IP_NOT_ALLOWED",
    "EXPIRED",
    "REVOKED",
    "INACTIVE",
    "PLAN_REQUIRED",
    "USER_CREDENTIAL_REQUIRED",
    "CREDENTIAL_NOT_ACCEPTED",
];

/// The sum of `outcome` (or of `requests` when `None`) over a series.
fn sum(series: &Value, outcome: Option<&str>) -> i64 {
    series
        .as_array()
        .map(|s| {
            s.iter()
                .map(|p| match outcome {
                    Some(o) => p["outcomes"][o].as_i64().unwrap_or(0),
                    None => p["requests"].as_i64().unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(-1)
}

#[tokio::test]
async fn refusals_of_a_known_key_are_counted_by_outcome() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "scopes": ["leads:read"] })).await;
    let (secret, id) = (key_of(&k), k["id"].as_str().expect("id").to_owned());
    for _ in 0..3 {
        assert_eq!(app.verify(&secret, json!({})).await["code"], "VALID");
    }
    assert_eq!(app.verify(&secret, json!({ "permissions": ["leads:create"] })).await["code"], "INSUFFICIENT_SCOPE");
    app.delete(&format!("/v1/keys/{id}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    for _ in 0..2 {
        assert_eq!(app.verify(&secret, json!({})).await["code"], "REVOKED");
    }
    // An unknown key has nothing to count against.
    let other = app.mint(&u.token, &u.account_id, json!({})).await;
    let unknown = format!("{}x", &key_of(&other)[..key_of(&other).len() - 1]);
    app.verify(&unknown, json!({})).await;

    let path = format!("/v1/keys/{id}?account_id={}", u.account_id);
    let counted =
        eventually(3.0, async || app.get(&path, Cred::Bearer(&u.token)).await.body["request_count"] == 6).await;
    assert!(counted, "request_count counts refused requests too");
    let key = app.get(&path, Cred::Bearer(&u.token)).await;
    assert_eq!(key.body["success_count"], 3, "{}", key.text);
    assert!(key.body["last_used_at"].is_string());

    for granularity in ["day", "hour"] {
        let usage = app
            .get(
                &format!("/v1/keys/{id}/usage?account_id={}&granularity={granularity}", u.account_id),
                Cred::Bearer(&u.token),
            )
            .await;
        assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
        let series = &usage.body["series"];
        assert_eq!(series.as_array().map(Vec::len), Some(if granularity == "day" { 30 } else { 24 }));
        assert_eq!(sum(series, None), 6, "{granularity}: {}", usage.text);
        assert_eq!(
            (sum(series, Some("VALID")), sum(series, Some("INSUFFICIENT_SCOPE")), sum(series, Some("REVOKED"))),
            (3, 1, 2)
        );
        for o in OUTCOMES {
            assert!(series[0]["outcomes"][o].is_i64(), "every outcome is listed, zeros too: {o}");
        }
        assert_eq!(usage.body["granularity"], granularity);
        // The first edition's `daily` stays, for days.
        assert_eq!(usage.body["daily"].is_array(), granularity == "day", "{}", usage.text);
    }
}

#[tokio::test]
async fn key_usage_ranges_are_checked() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({})).await;
    let base = format!("/v1/keys/{}/usage?account_id={}", k["id"].as_str().expect("id"), u.account_id);
    for (query, status) in [
        ("&from=2026-03-02&to=2026-03-01", StatusCode::BAD_REQUEST),
        ("&from=2025-03-01&to=2026-03-03", StatusCode::BAD_REQUEST),
        ("&from=2025-03-01&to=2026-03-02", StatusCode::OK),
        ("&from=2025-03-01&to=2026-03-01", StatusCode::OK),
        ("&granularity=hour&from=2026-03-01T00:00:00Z&to=2026-03-09T01:00:00Z", StatusCode::BAD_REQUEST),
        ("&granularity=hour&from=2026-03-01T00:00:00Z&to=2026-03-09T00:00:00Z", StatusCode::OK),
        ("&granularity=hour&from=2026-03-01T05:00:00Z&to=2026-03-01T04:00:00Z", StatusCode::BAD_REQUEST),
        ("&granularity=week", StatusCode::BAD_REQUEST),
        ("&granularity=hour&from=noon", StatusCode::BAD_REQUEST),
    ] {
        let a = app.get(&format!("{base}{query}"), Cred::Bearer(&u.token)).await;
        assert_eq!(a.status, status, "{query}: {}", a.body["error"]);
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(a.code(), "invalid_request", "{query}");
        }
    }
    let hours = app
        .get(
            &format!("{base}&granularity=hour&from=2026-03-01T00:30:00Z&to=2026-03-01T02:00:00Z"),
            Cred::Bearer(&u.token),
        )
        .await;
    let starts: Vec<&str> =
        hours.body["series"].as_array().expect("series").iter().filter_map(|p| p["start"].as_str()).collect();
    assert_eq!(starts, ["2026-03-01T00:00:00.000Z", "2026-03-01T01:00:00.000Z", "2026-03-01T02:00:00.000Z"]);
}

#[tokio::test]
async fn account_usage_by_day_and_by_key_as_json_and_csv() {
    let app = spawn_app().await;
    let u = app.register().await;
    let acc = &u.account_id;
    let a = app.mint(&u.token, acc, json!({ "name": "Billing, \"prod\"" })).await;
    let b =
        app.mint(&u.token, acc, json!({ "name": "=HYPERLINK(\"http://x\")", "ip_allowlist": ["10.0.0.0/8"] })).await;
    for _ in 0..4 {
        app.verify(&key_of(&a), json!({})).await;
    }
    assert_eq!(app.verify(&key_of(&b), json!({})).await["code"], "IP_NOT_ALLOWED");
    let by_day = format!("/v1/usage?account_id={acc}");
    let counted =
        eventually(3.0, async || app.get(&by_day, Cred::Bearer(&u.token)).await.body["totals"]["requests"] == 5).await;
    assert!(counted, "the account's totals include the refusal");

    let days = app.get(&by_day, Cred::Bearer(&u.token)).await;
    assert_eq!(days.body["group_by"], "day");
    assert_eq!(days.body["series"].as_array().map(Vec::len), Some(30));
    assert_eq!((sum(&days.body["series"], Some("VALID")), sum(&days.body["series"], Some("IP_NOT_ALLOWED"))), (4, 1));
    assert_eq!(days.body["totals"]["outcomes"]["VALID"], 4);

    let keys = app.get(&format!("{by_day}&group_by=key"), Cred::Bearer(&u.token)).await;
    let rows = keys.body["series"].as_array().expect("series");
    let row = |k: &Value| rows.iter().find(|r| r["key_id"] == k["id"]).cloned().unwrap_or(Value::Null);
    assert_eq!((row(&a)["requests"].clone(), row(&a)["name"].clone()), (json!(4), json!("Billing, \"prod\"")));
    assert_eq!(row(&b)["outcomes"]["IP_NOT_ALLOWED"], 1);

    let csv = app.get(&format!("{by_day}&group_by=key&format=csv"), Cred::Bearer(&u.token)).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.text.split("\r\n").collect();
    assert_eq!(lines[0], format!("start,key_id,requests,{},name", OUTCOMES.join(",")));
    let a_line = lines.iter().find(|l| l.contains(a["id"].as_str().expect("id"))).expect("a's line");
    assert!(a_line.ends_with(",4,0,0,0,0,0,0,0,0,0,0,0,\"Billing, \"\"prod\"\"\""), "{a_line}");
    let b_line = lines.iter().find(|l| l.contains(b["id"].as_str().expect("id"))).expect("b's line");
    assert!(b_line.ends_with(",\"'=HYPERLINK(\"\"http://x\"\")\""), "a formula is defused: {b_line}");
    assert!(!csv.text.contains(&key_of(&a)) && !csv.text.contains(&key_of(&b)), "no secrets");
    assert_eq!(lines.len(), 4, "header, two keys, and the final line break");

    let day_csv = app.get(&format!("{by_day}&format=csv"), Cred::Bearer(&u.token)).await;
    assert_eq!(day_csv.text.split("\r\n").filter(|l| !l.is_empty()).count(), 31, "header and 30 days");

    for bad in ["&group_by=week", "&format=xml", "&from=2026-03-02&to=2026-03-01", "&from=2024-01-01&to=2026-01-01"] {
        let a = app.get(&format!("{by_day}{bad}"), Cred::Bearer(&u.token)).await;
        assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "invalid_request"), "{bad}: {}", a.text);
    }
}

#[tokio::test]
async fn account_usage_is_for_administrators_and_read_scoped_org_keys() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let acc = &owner.account_id;
    let member = app.register().await;
    add_member(&app, &owner.token, acc, &member.email, "user").await;
    let path = format!("/v1/usage?account_id={acc}");

    assert_eq!(app.get(&path, Cred::Bearer(&owner.token)).await.status, StatusCode::OK);
    let refused = app.get(&path, Cred::Bearer(&member.token)).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "insufficient_authority"));
    let reader = app.mint(&owner.token, acc, json!({ "class": "org", "scopes": ["*:read"] })).await;
    let own = app.get("/v1/usage", Cred::ApiKey(&key_of(&reader))).await;
    assert_eq!(own.status, StatusCode::OK, "an org key reads its own account: {}", own.text);
    assert_eq!(own.body["account_id"], json!(acc));
    let keys_only = app.mint(&owner.token, acc, json!({ "class": "org", "scopes": ["keys:read"] })).await;
    let a = app.get("/v1/usage", Cred::ApiKey(&key_of(&keys_only))).await;
    assert_eq!((a.status, a.code()), (StatusCode::FORBIDDEN, "insufficient_scope"));
    let a = app.get("/v1/usage", Cred::Bearer(&owner.token)).await;
    assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "account_id_required"));
    let a = app.get(&format!("/v1/usage?account_id={}", member.account_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "another account's usage: {}", a.text);
}

#[tokio::test]
async fn openapi_describes_usage() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Cred::None).await.body;
    let usage = &doc["paths"]["/v1/usage"]["get"];
    assert!(usage.is_object(), "GET /v1/usage is documented");
    assert!(usage["responses"]["200"]["content"]["text/csv"].is_object(), "{usage}");
    let params: Vec<&str> =
        usage["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
    for p in ["account_id", "from", "to", "group_by", "format"] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["KeyView"]["properties"]["success_count"].is_object());
    for o in OUTCOMES {
        assert!(schemas["OutcomesView"]["properties"][o].is_object(), "{o}");
    }
    let key_usage = &doc["paths"]["/v1/keys/{key}/usage"]["get"];
    let params: Vec<&str> =
        key_usage["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(params.contains(&"granularity"), "{params:?}");
}
