//! Issue 15 (attack review): a key is rolled once, and a member can tighten a key but only an
//! administrator can loosen it, never past the plan's ceiling (docs/api.md §7 Keys).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn roll_path(id: &str) -> String {
    format!("/v1/keys/{id}/roll")
}

async fn live_keys(app: &TestApp, u: &Registered) -> Vec<serde_json::Value> {
    let list = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    list.body["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|k| k["status"] == "active").collect()
}

#[tokio::test]
async fn rolling_a_rolled_key_again_is_refused_and_mints_nothing() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "ci" })).await;
    let id = k["id"].as_str().expect("id");
    let body = json!({ "account_id": u.account_id, "old_expires_in_seconds": 3600 });
    let first = app.post(&roll_path(id), Cred::Bearer(&u.token), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let successor = first.body["id"].as_str().expect("successor id");
    assert_eq!(first.body["previous_key"]["rolled_to"], successor, "{}", first.text);
    // The same request again (a retry, a reloaded page): 409, and no third live key.
    for _ in 0..2 {
        let again = app.post(&roll_path(id), Cred::Bearer(&u.token), body.clone()).await;
        assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "key_rolled"), "{}", again.text);
        assert!(!again.text.contains("\"key\""), "no secret in the refusal");
    }
    let got = app.get(&format!("/v1/keys/{id}?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!((got.body["status"].as_str(), got.body["rolled_to"].as_str()), (Some("active"), Some(successor)));
    assert_eq!(live_keys(&app, &u).await.len(), 2, "the old key (in its overlap) and one successor");
    // Rolled with an API key as the caller, too.
    let as_key = app.post(&roll_path(id), Cred::ApiKey(k["key"].as_str().expect("k")), json!({})).await;
    assert_eq!(as_key.code(), "key_rolled");
}

#[tokio::test]
async fn concurrent_rolls_of_one_key_mint_exactly_one_successor() {
    let app = spawn_app().await;
    let u = app.register().await;
    let k = app.mint(&u.token, &u.account_id, json!({ "name": "raced" })).await;
    let id = k["id"].as_str().expect("id").to_owned();
    let body = json!({ "account_id": u.account_id, "old_expires_in_seconds": 3600 });
    let path = roll_path(&id);
    let tries = (0..6).map(|_| app.post(&path, Cred::Bearer(&u.token), body.clone()));
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{:?}", answers.iter().map(|a| (a.status, a.code().to_owned())).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.status == StatusCode::CREATED || a.code() == "key_rolled"));
    assert_eq!(live_keys(&app, &u).await.len(), 2);
}
