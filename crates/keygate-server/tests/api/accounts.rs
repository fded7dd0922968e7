//! Accounts, members and data roles over HTTP: authority rules, cross-account isolation, and
//! changes that must reach keys at once.

use keygate_core::Authority;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn token_cannot_reach_another_account() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let bob_role = app
        .post(
            &format!("/v1/accounts/{}/roles", bob.account_id),
            Cred::Bearer(&bob.token),
            json!({ "name": "intake", "permissions": ["leads:create"] }),
        )
        .await;
    assert_eq!(bob_role.status, StatusCode::CREATED, "{}", bob_role.text);
    let role_id = bob_role.body["id"].as_str().expect("role id").to_owned();
    let b = &bob.account_id;
    let probes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/accounts/{b}"), None),
        (Method::PATCH, format!("/v1/accounts/{b}"), Some(json!({ "name": "pwned" }))),
        (Method::DELETE, format!("/v1/accounts/{b}"), None),
        (Method::GET, format!("/v1/accounts/{b}/members"), None),
        (
            Method::POST,
            format!("/v1/accounts/{b}/members"),
            Some(json!({ "email": alice.email, "authority": "owner" })),
        ),
        (Method::PATCH, format!("/v1/accounts/{b}/members/{}", bob.user_id), Some(json!({ "authority": "user" }))),
        (Method::DELETE, format!("/v1/accounts/{b}/members/{}", bob.user_id), None),
        (Method::GET, format!("/v1/accounts/{b}/roles"), None),
        (Method::GET, format!("/v1/accounts/{b}/roles/{role_id}"), None),
        (Method::PATCH, format!("/v1/accounts/{b}/roles/{role_id}"), Some(json!({ "permissions": ["*:*"] }))),
        (Method::DELETE, format!("/v1/accounts/{b}/roles/{role_id}"), None),
        (Method::GET, format!("/v1/audit?account_id={b}"), None),
        (Method::GET, format!("/v1/audit/verify?account_id={b}"), None),
    ];
    let alice_key = insert_key(&app, &alice.account_id, Some(&alice.user_id), Authority::Owner, &["*:*"]).await;
    let alice_org = insert_key(&app, &alice.account_id, None, Authority::Owner, &["*:*"]).await;
    for (method, path, body) in &probes {
        for cred in [Cred::Bearer(&alice.token), Cred::ApiKey(&alice_key.secret), Cred::ApiKey(&alice_org.secret)] {
            let a = app.call(method.clone(), path, cred, body.clone()).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {path}: {}", a.text);
            assert_eq!(a.code(), "not_found");
        }
    }
    // The answer for another account is the answer for an account that does not exist.
    let ghost = app.get("/v1/accounts/acc_0000000000000000000A", Cred::Bearer(&alice.token)).await;
    assert_eq!(
        ghost.body["error"],
        app.get(&format!("/v1/accounts/{b}"), Cred::Bearer(&alice.token)).await.body["error"]
    );
    // Malformed ids are 404 too, never 400 or 500.
    for path in
        ["/v1/accounts/not-an-id", "/v1/accounts/acc_%00", "/v1/accounts/acc_x/roles/rol_y", "/v1/accounts/%FF%FE"]
    {
        let a = app.get(path, Cred::Bearer(&alice.token)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text);
    }
    // Bob's account is untouched.
    let mine = app.get(&format!("/v1/accounts/{b}"), Cred::Bearer(&bob.token)).await;
    assert_eq!(mine.body["name"], "Test Co");
    assert_eq!(
        app.get(&format!("/v1/accounts/{b}/roles/{role_id}"), Cred::Bearer(&bob.token)).await.status,
        StatusCode::OK
    );
}

/// An owner and an administrator in the owner's account.
async fn owner_and_admin(app: &TestApp) -> (Registered, Registered) {
    let owner = app.register().await;
    let admin = app.register().await;
    add_member(app, &owner.token, &owner.account_id, &admin.email, "administrator").await;
    (owner, admin)
}

#[tokio::test]
async fn administrator_cannot_demote_owner() {
    let app = spawn_app().await;
    let (owner, admin) = owner_and_admin(&app).await;
    let acc = &owner.account_id;
    for authority in ["user", "administrator"] {
        let a = app
            .patch(
                &format!("/v1/accounts/{acc}/members/{}", owner.user_id),
                Cred::Bearer(&admin.token),
                json!({ "authority": authority }),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert_eq!(a.code(), "insufficient_authority");
    }
    let a = app.delete(&format!("/v1/accounts/{acc}/members/{}", owner.user_id), Cred::Bearer(&admin.token)).await;
    assert_eq!(a.code(), "insufficient_authority");
    // Not with an API key either.
    let key = insert_key(&app, acc, Some(&admin.user_id), Authority::Administrator, &["*:*"]).await;
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", owner.user_id),
            Cred::ApiKey(&key.secret),
            json!({ "authority": "user" }),
        )
        .await;
    assert_eq!(a.code(), "insufficient_authority", "{}", a.text);
    let members = app.get(&format!("/v1/accounts/{acc}/members"), Cred::Bearer(&owner.token)).await;
    let owner_row =
        members.body["items"].as_array().expect("items").iter().find(|m| m["user_id"] == json!(owner.user_id)).cloned();
    assert_eq!(owner_row.expect("owner listed")["authority"], "owner");
}

#[tokio::test]
async fn administrator_cannot_grant_owner() {
    let app = spawn_app().await;
    let (owner, admin) = owner_and_admin(&app).await;
    let carol = app.register().await;
    let acc = &owner.account_id;
    let a = app
        .post(
            &format!("/v1/accounts/{acc}/members"),
            Cred::Bearer(&admin.token),
            json!({ "email": carol.email, "authority": "owner" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.code(), "insufficient_authority");
    add_member(&app, &admin.token, acc, &carol.email, "user").await;
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", carol.user_id),
            Cred::Bearer(&admin.token),
            json!({ "authority": "owner" }),
        )
        .await;
    assert_eq!(a.code(), "insufficient_authority");
    // An administrator cannot make themself owner either.
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", admin.user_id),
            Cred::Bearer(&admin.token),
            json!({ "authority": "owner" }),
        )
        .await;
    assert_eq!(a.code(), "insufficient_authority");
    // Up to their own authority is fine.
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", carol.user_id),
            Cred::Bearer(&admin.token),
            json!({ "authority": "administrator" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["authority"], "administrator");
    // A member with authority `user` cannot add anyone.
    let dave = app.register().await;
    let eve = app.register().await;
    add_member(&app, &owner.token, acc, &dave.email, "user").await;
    let a = app
        .post(
            &format!("/v1/accounts/{acc}/members"),
            Cred::Bearer(&dave.token),
            json!({ "email": eve.email, "authority": "user" }),
        )
        .await;
    assert_eq!(a.code(), "insufficient_authority");
    // Adding someone twice, or someone who has not signed up.
    let a = app
        .post(
            &format!("/v1/accounts/{acc}/members"),
            Cred::Bearer(&owner.token),
            json!({ "email": dave.email, "authority": "user" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = app
        .post(
            &format!("/v1/accounts/{acc}/members"),
            Cred::Bearer(&owner.token),
            json!({ "email": "nobody@nowhere-corp.com", "authority": "user" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = app
        .post(
            &format!("/v1/accounts/{acc}/members"),
            Cred::Bearer(&owner.token),
            json!({ "email": eve.email, "authority": "superuser" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn last_owner_cannot_leave_or_be_demoted() {
    let app = spawn_app().await;
    let (owner, admin) = owner_and_admin(&app).await;
    let acc = &owner.account_id;
    let me = format!("/v1/accounts/{acc}/members/{}", owner.user_id);
    let a = app.delete(&me, Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "last_owner");
    let a = app.patch(&me, Cred::Bearer(&owner.token), json!({ "authority": "administrator" })).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.code(), "last_owner");
    // With a second owner, the first may step down or leave.
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", admin.user_id),
            Cred::Bearer(&owner.token),
            json!({ "authority": "owner" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = app.delete(&me, Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    // Now the admin-turned-owner is the last one.
    let a = app.delete(&format!("/v1/accounts/{acc}/members/{}", admin.user_id), Cred::Bearer(&admin.token)).await;
    assert_eq!(a.code(), "last_owner");
    // The one who left no longer sees the account.
    assert_eq!(app.get(&format!("/v1/accounts/{acc}"), Cred::Bearer(&owner.token)).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removed_member_loses_access_at_once() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let member = app.register().await;
    let acc = &owner.account_id;
    add_member(&app, &owner.token, acc, &member.email, "administrator").await;
    let key = insert_key(&app, acc, Some(&member.user_id), Authority::Administrator, &["*:*"]).await;
    // Warm every cache: the key, the session's membership.
    let path = format!("/v1/accounts/{acc}");
    assert_eq!(app.get(&path, Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);
    assert_eq!(app.get(&path, Cred::Bearer(&member.token)).await.status, StatusCode::OK);

    // Demoted: the key is capped to the member's new authority at once.
    let a = app
        .patch(
            &format!("/v1/accounts/{acc}/members/{}", member.user_id),
            Cred::Bearer(&owner.token),
            json!({ "authority": "user" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let got = app.get(&path, Cred::ApiKey(&key.secret)).await;
    assert_eq!(got.body["authority"], "user", "{}", got.text);
    let a = app.patch(&path, Cred::ApiKey(&key.secret), json!({ "name": "renamed by a demoted key" })).await;
    assert_eq!(a.code(), "insufficient_authority");

    // Removed: the key stops and the session no longer sees the account, at once.
    let a = app.delete(&format!("/v1/accounts/{acc}/members/{}", member.user_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    let k = app.get(&path, Cred::ApiKey(&key.secret)).await;
    assert_eq!(k.status, StatusCode::UNAUTHORIZED, "{}", k.text);
    let s = app.get(&path, Cred::Bearer(&member.token)).await;
    assert_eq!(s.status, StatusCode::NOT_FOUND, "{}", s.text);
    let me = app.get("/v1/user", Cred::Bearer(&member.token)).await;
    assert!(me.body["memberships"].as_array().expect("memberships").iter().all(|m| m["account_id"] != json!(acc)));
    let log = app.get(&format!("/v1/audit?account_id={acc}&action=member.*"), Cred::Bearer(&owner.token)).await;
    let actions: Vec<&str> =
        log.body["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["member.removed", "member.updated", "member.added"]);
}

#[tokio::test]
async fn any_member_may_leave_but_not_remove_others() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let a = app.register().await;
    let b = app.register().await;
    let acc = &owner.account_id;
    add_member(&app, &owner.token, acc, &a.email, "user").await;
    add_member(&app, &owner.token, acc, &b.email, "user").await;
    let r = app.delete(&format!("/v1/accounts/{acc}/members/{}", b.user_id), Cred::Bearer(&a.token)).await;
    assert_eq!(r.code(), "insufficient_authority");
    let r = app.delete(&format!("/v1/accounts/{acc}/members/{}", a.user_id), Cred::Bearer(&a.token)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app.delete(&format!("/v1/accounts/{acc}/members/{}", a.user_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "already gone");
}

#[tokio::test]
async fn accounts_are_created_listed_renamed_and_deleted() {
    let app = spawn_app().await;
    let u = app.register().await;
    let created = app
        .post(
            "/v1/accounts",
            Cred::Bearer(&u.token),
            json!({ "name": "Second workspace", "url": "https://second.example-corp.com" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["authority"], "owner");
    assert_eq!(created.body["plan"], "trial");
    let second = created.body["id"].as_str().expect("id").to_owned();
    let third = app.post("/v1/accounts", Cred::Bearer(&u.token), json!({ "name": "Third" })).await;
    let third = third.body["id"].as_str().expect("id").to_owned();

    // Listed with the caller's authority, default account first, page by page.
    let all = app.get("/v1/accounts", Cred::Bearer(&u.token)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let ids: Vec<&str> = all.body["items"].as_array().expect("items").iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, vec![u.account_id.as_str(), second.as_str(), third.as_str()]);
    assert!(all.body["items"].as_array().expect("items").iter().all(|a| a["authority"] == "owner"));
    assert!(all.body["next_cursor"].is_null());
    let p1 = app.get("/v1/accounts?limit=2", Cred::Bearer(&u.token)).await;
    assert_eq!(p1.body["items"].as_array().map(Vec::len), Some(2));
    let cursor = p1.body["next_cursor"].as_str().expect("cursor");
    let p2 = app.get(&format!("/v1/accounts?limit=2&cursor={cursor}"), Cred::Bearer(&u.token)).await;
    assert_eq!(p2.body["items"][0]["id"], json!(third));
    assert!(p2.body["next_cursor"].is_null());
    assert_eq!(app.get("/v1/accounts?limit=0", Cred::Bearer(&u.token)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/v1/accounts?limit=101", Cred::Bearer(&u.token)).await.status, StatusCode::BAD_REQUEST);

    // Rename, clear the url; bad input is 400; an empty patch is 400.
    let path = format!("/v1/accounts/{second}");
    let a = app.patch(&path, Cred::Bearer(&u.token), json!({ "name": "Renamed", "url": null })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "Renamed");
    assert!(a.body["url"].is_null());
    assert_eq!(app.patch(&path, Cred::Bearer(&u.token), json!({})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.patch(&path, Cred::Bearer(&u.token), json!({ "name": "" })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.patch(&path, Cred::Bearer(&u.token), json!({ "url": "ftp://x.com" })).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get(&path, Cred::Bearer(&u.token)).await.body["name"], "Renamed");

    // Only an owner deletes; deletion stops the account's keys at once.
    let admin = app.register().await;
    add_member(&app, &u.token, &second, &admin.email, "administrator").await;
    assert_eq!(app.delete(&path, Cred::Bearer(&admin.token)).await.code(), "insufficient_authority");
    let key = insert_key(&app, &second, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    let org = insert_key(&app, &second, None, Authority::Administrator, &["*:*"]).await;
    assert_eq!(app.get(&path, Cred::ApiKey(&key.secret)).await.status, StatusCode::OK);
    assert_eq!(app.get(&path, Cred::ApiKey(&org.secret)).await.status, StatusCode::OK);
    assert_eq!(app.delete(&path, Cred::Bearer(&u.token)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, Cred::ApiKey(&key.secret)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&path, Cred::ApiKey(&org.secret)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&path, Cred::Bearer(&u.token)).await.status, StatusCode::NOT_FOUND);
    let after = app.get("/v1/accounts", Cred::Bearer(&u.token)).await;
    assert_eq!(after.body["items"].as_array().map(Vec::len), Some(2));
    // Only sessions create and list accounts.
    let own = insert_key(&app, &u.account_id, Some(&u.user_id), Authority::Owner, &["*:*"]).await;
    assert_eq!(app.get("/v1/accounts", Cred::ApiKey(&own.secret)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.post("/v1/accounts", Cred::ApiKey(&own.secret), json!({ "name": "x" })).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn keys_need_management_scopes() {
    let app = spawn_app().await;
    let u = app.register().await;
    let acc = &u.account_id;
    let read_only = insert_key(&app, acc, Some(&u.user_id), Authority::Owner, &["*:read"]).await;
    let path = format!("/v1/accounts/{acc}");
    assert_eq!(app.get(&path, Cred::ApiKey(&read_only.secret)).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{path}/members"), Cred::ApiKey(&read_only.secret)).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{path}/roles"), Cred::ApiKey(&read_only.secret)).await.status, StatusCode::OK);
    let a = app.patch(&path, Cred::ApiKey(&read_only.secret), json!({ "name": "x" })).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "insufficient_scope");
    let a = app
        .post(&format!("{path}/roles"), Cred::ApiKey(&read_only.secret), json!({ "name": "r", "permissions": [] }))
        .await;
    assert_eq!(a.code(), "insufficient_scope");
    let narrow = insert_key(&app, acc, Some(&u.user_id), Authority::Owner, &["companies:read"]).await;
    assert_eq!(app.get(&path, Cred::ApiKey(&narrow.secret)).await.code(), "insufficient_scope");
    assert_eq!(app.get(&format!("{path}/roles"), Cred::ApiKey(&narrow.secret)).await.code(), "insufficient_scope");
    let roles_writer =
        insert_key(&app, acc, Some(&u.user_id), Authority::Administrator, &["roles:write", "roles:read"]).await;
    let a = app
        .post(
            &format!("{path}/roles"),
            Cred::ApiKey(&roles_writer.secret),
            json!({ "name": "r", "permissions": ["leads:create"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // A key naming its own account in account_id is fine; another is 404.
    let other = app.register().await;
    assert_eq!(
        app.get(&format!("/v1/audit?account_id={acc}"), Cred::ApiKey(&read_only.secret)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/audit?account_id={}", other.account_id), Cred::ApiKey(&read_only.secret)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn data_roles_are_validated_and_managed_by_administrators() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let member = app.register().await;
    let acc = &owner.account_id;
    add_member(&app, &owner.token, acc, &member.email, "user").await;
    let roles = format!("/v1/accounts/{acc}/roles");
    let a = app
        .post(
            &roles,
            Cred::Bearer(&owner.token),
            json!({ "name": "lead-intake", "permissions": ["leads:create", "leads:create", "companies:read"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["permissions"], json!(["leads:create", "companies:read"]));
    assert_eq!(a.body["account_id"], json!(acc));
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("rol_"));
    // Validation: bad scopes are listed; names are 1–100 characters; names are unique.
    let bad = app
        .post(&roles, Cred::Bearer(&owner.token), json!({ "name": "x", "permissions": ["Leads:Create", "no-colon"] }))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["details"].as_array().map(Vec::len), Some(2), "{}", bad.text);
    let long =
        app.post(&roles, Cred::Bearer(&owner.token), json!({ "name": "n".repeat(101), "permissions": [] })).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    let dup = app.post(&roles, Cred::Bearer(&owner.token), json!({ "name": "lead-intake", "permissions": [] })).await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text);
    // Members read; only administrators write.
    let list = app.get(&roles, Cred::Bearer(&member.token)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    assert!(list.body.get("next_cursor").is_some());
    let one = format!("{roles}/{id}");
    assert_eq!(app.get(&one, Cred::Bearer(&member.token)).await.body["name"], "lead-intake");
    assert_eq!(
        app.patch(&one, Cred::Bearer(&member.token), json!({ "name": "mine" })).await.code(),
        "insufficient_authority"
    );
    assert_eq!(app.delete(&one, Cred::Bearer(&member.token)).await.code(), "insufficient_authority");
    assert_eq!(
        app.post(&roles, Cred::Bearer(&member.token), json!({ "name": "m", "permissions": [] })).await.code(),
        "insufficient_authority"
    );
    let a = app.patch(&one, Cred::Bearer(&owner.token), json!({ "permissions": ["*:read"] })).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["permissions"], json!(["*:read"]));
    assert_eq!(a.body["name"], "lead-intake");
    assert_eq!(app.patch(&one, Cred::Bearer(&owner.token), json!({})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.delete(&one, Cred::Bearer(&owner.token)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&one, Cred::Bearer(&owner.token)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("{roles}/rol_bad"), Cred::Bearer(&owner.token)).await.status, StatusCode::NOT_FOUND);
    let log = app.get(&format!("/v1/audit?account_id={acc}&action=role.*"), Cred::Bearer(&owner.token)).await;
    let actions: Vec<&str> =
        log.body["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["role.deleted", "role.updated", "role.created"]);
}
