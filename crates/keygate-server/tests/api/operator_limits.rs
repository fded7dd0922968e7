//! Issue 17: the operator overrides an account's plan limits (`PATCH /v1/admin/accounts/{id}`
//! `{plan?, overrides?}`), and the account object shows the effective limits.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const OPERATOR: &str = "operator-token-of-the-override-tests";

async fn operator_app() -> TestApp {
    spawn_app_with(|s| {
        s.admin_token = OPERATOR.to_owned().into();
        let trial = s.plans.get_mut("trial").expect("trial plan");
        trial.max_keys = Some(3);
        trial.rate_limits =
            vec![keygate_core::NamedRateLimit { name: "minute".into(), limit: 1000, window_seconds: 60, burst: None }];
    })
    .await
}

fn path(account_id: &str) -> String {
    format!("/v1/admin/accounts/{account_id}")
}

#[tokio::test]
async fn overrides_replace_the_plans_limits_and_the_account_shows_the_result() {
    let app = operator_app().await;
    let u = app.register().await;
    let mine = app.get(&format!("/v1/accounts/{}", u.account_id), Cred::Bearer(&u.token)).await;
    let plan_limits = json!({
        "rate_limits": [{ "name": "minute", "limit": 1000, "window_seconds": 60 }],
        "quota": null, "max_keys": 3, "key_rate_limit_max": { "limit": 600, "window_seconds": 60 },
    });
    assert_eq!(mine.body["limits"], plan_limits, "{}", mine.text);
    let overrides = json!({ "overrides": {
        "rate_limits": [{ "name": "second", "limit": 50, "window_seconds": 1 }],
        "quota": { "requests": 1000, "period": "day" },
        "max_keys": 10,
    }});
    let set = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), overrides).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["limits"]["rate_limits"], json!([{ "name": "second", "limit": 50, "window_seconds": 1 }]));
    assert_eq!(set.body["limits"]["quota"], json!({ "requests": 1000, "period": "day" }));
    assert_eq!((set.body["limits"]["max_keys"].clone(), set.body["plan"].clone()), (json!(10), json!("trial")));
    let listed = app.get("/v1/admin/accounts", Cred::Bearer(OPERATOR)).await;
    let item =
        listed.body["items"].as_array().and_then(|i| i.iter().find(|a| a["id"] == u.account_id.as_str())).cloned();
    assert_eq!(item.map(|a| a["limits"]["max_keys"].clone()), Some(json!(10)), "the operator's list shows them");
    // `null` removes one override: the plan's value is back; the others stay.
    let back = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), json!({ "overrides": { "quota": null } })).await;
    assert_eq!(
        (back.body["limits"]["quota"].clone(), back.body["limits"]["max_keys"].clone()),
        (Value::Null, json!(10))
    );
    let cleared = json!({ "plan": "trial", "overrides": { "rate_limits": null, "max_keys": null } });
    let c = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), cleared).await;
    assert_eq!(c.body["limits"], plan_limits, "{}", c.text);
    // Audited, actor operator, with the overrides before and after.
    let audit = app
        .get(&format!("/v1/audit?account_id={}&action=account.limits_overridden", u.account_id), Cred::Bearer(&u.token))
        .await;
    let items = audit.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{}", audit.text);
    assert_eq!(items[2]["actor"]["type"], "operator");
    assert_eq!(items[2]["details"]["to"]["max_keys"], 10);
}

#[tokio::test]
async fn bad_overrides_and_empty_bodies_are_refused() {
    let app = operator_app().await;
    let u = app.register().await;
    for (body, why) in [
        (json!({}), "nothing to change"),
        (json!({ "overrides": {} }), "no override named"),
        (
            json!({ "overrides": { "rate_limits": [{ "name": "Bad Name", "limit": 1, "window_seconds": 1 }] } }),
            "a bad name",
        ),
        (json!({ "overrides": { "quota": { "requests": 0, "period": "day" } } }), "an empty quota"),
        (json!({ "overrides": { "quota": { "requests": 10, "period": "week" } } }), "an unknown period"),
        (json!({ "overrides": { "max_keys": -1 } }), "a negative count"),
        (json!({ "overrides": { "nope": 1 } }), "an unknown override"),
    ] {
        let a = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{why}: {}", a.text);
    }
    let mine = app.get(&format!("/v1/accounts/{}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(mine.body["limits"]["max_keys"], 3, "nothing changed");
}

#[tokio::test]
async fn a_max_keys_override_holds_at_mint_at_once() {
    let app = operator_app().await;
    let u = app.register().await;
    let first = app.mint(&u.token, &u.account_id, json!({ "name": "one" })).await;
    let key = key_of(&first);
    let lowered =
        app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), json!({ "overrides": { "max_keys": 1 } })).await;
    assert_eq!(lowered.status, StatusCode::OK, "{}", lowered.text);
    // Minted by the key itself, whose account (with its limits) was cached before the change.
    let by_key = app.post("/v1/keys", Cred::ApiKey(&key), json!({ "name": "two" })).await;
    assert_eq!((by_key.status, by_key.code()), (StatusCode::CONFLICT, "key_limit_reached"), "{}", by_key.text);
    let raised =
        app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), json!({ "overrides": { "max_keys": 5 } })).await;
    assert_eq!(raised.status, StatusCode::OK);
    for n in 0..4 {
        let m = app
            .post("/v1/keys", Cred::Bearer(&u.token), json!({ "account_id": u.account_id, "name": format!("k{n}") }))
            .await;
        assert_eq!(m.status, StatusCode::CREATED, "above the plan's 3, within the override's 5: {}", m.text);
    }
    let sixth =
        app.post("/v1/keys", Cred::Bearer(&u.token), json!({ "account_id": u.account_id, "name": "six" })).await;
    assert_eq!(sixth.code(), "key_limit_reached");
}

#[tokio::test]
async fn overridden_quota_and_rate_limits_are_what_requests_spend() {
    let app = operator_app().await;
    let u = app.register().await;
    let key = key_of(&app.mint(&u.token, &u.account_id, json!({ "name": "metered" })).await);
    // Cached with its account before the override: the change must still apply at once.
    let before = app.verify(&key, json!({})).await;
    assert_eq!((before["code"].clone(), before["quota"].clone()), (json!("VALID"), Value::Null), "{before}");
    let quota = json!({ "overrides": { "quota": { "requests": 2, "period": "day" } } });
    let set = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), quota).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    for remaining in [1, 0] {
        let answer = app.verify(&key, json!({})).await;
        assert_eq!(answer["code"], "VALID", "{answer}");
        assert_eq!(answer["quota"]["limit"], 2, "the override's quota, not the plan's none: {answer}");
        assert_eq!(answer["quota"]["remaining"], remaining, "{answer}");
    }
    let third = app.verify(&key, json!({})).await;
    assert_eq!(third["code"], "QUOTA_EXCEEDED", "the 3rd of a 2-a-day quota: {third}");
    // A `rate_limits` override replaces the plan's named account limits in enforcement too.
    let limits = json!({ "overrides": { "quota": null,
        "rate_limits": [{ "name": "hourly", "limit": 1, "window_seconds": 3600 }] } });
    let set = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), limits).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let first = app.verify(&key, json!({})).await;
    assert_eq!(first["code"], "VALID", "the quota override is gone: {first}");
    let names: Vec<Value> = first["ratelimits"]
        .as_array()
        .map(|l| l.iter().filter(|l| l["scope"] == "account").map(|l| l["name"].clone()).collect())
        .unwrap_or_default();
    assert!(names.contains(&json!("hourly")) && !names.contains(&json!("minute")), "{first}");
    let second = app.verify(&key, json!({})).await;
    assert_eq!(second["code"], "RATE_LIMITED", "1 an hour, account-wide: {second}");
    // `default` stays the plan's unnamed limit: an override may not take its name.
    let clash = json!({ "overrides": { "rate_limits": [{ "name": "default", "limit": 5, "window_seconds": 60 }] } });
    let refused = app.patch(&path(&u.account_id), Cred::Bearer(OPERATOR), clash).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
}
