//! The web dashboard over HTTP, as a browser would speak to it: cookies, CSRF tokens, the
//! security headers, and the same rules and 404s as the API. (The real-browser test that
//! clicks through it is `crates/keygate/tests/browser.rs`.)

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SESSION: &str = "__Host-keygate_session";

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().into_iter().find(|c| c.starts_with(&format!("{name}=")))
    }

    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of the first `name="csrf"` field.
    fn csrf(&self) -> String {
        self.field("csrf")
    }

    /// The value of the first hidden field called `name`.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.html.find(&marker).unwrap_or_else(|| panic!("a {name} field"));
        let rest = &self.html[at + marker.len()..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }
}

fn value_of(set_cookie: &str) -> &str {
    set_cookie.split(';').next().and_then(|p| p.split_once('=')).map(|(_, v)| v).unwrap_or("")
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> Page {
    let r = app.client.get(format!("{}{path}", app.base)).header("cookie", cookie).send().await.expect("get");
    Page { status: r.status(), headers: r.headers().clone(), html: r.text().await.unwrap_or_default() }
}

async fn post(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut rb = app
        .client
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("post");
    Page { status: r.status(), headers: r.headers().clone(), html: r.text().await.unwrap_or_default() }
}

/// A user registered through the API, signed in to the dashboard with the same kind of token.
async fn signed_in(app: &TestApp) -> (Registered, String, String) {
    let u = app.register().await;
    let cookie = format!("{SESSION}={}", u.token);
    let page = get(app, &format!("/app/a/{}/keys", u.account_id), &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let csrf = page.csrf();
    (u, cookie, csrf)
}

/// Creates a personal key through the form; answers its secret from the page.
async fn create_key(app: &TestApp, u: &Registered, cookie: &str, csrf: &str, name: &str) -> String {
    let page = post(
        app,
        &format!("/app/a/{}/keys", u.account_id),
        cookie,
        &[("csrf", csrf), ("name", name), ("class", "user"), ("authority", "user"), ("scopes", "*:*")],
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("you won't see it again"), "{}", page.html);
    let at = page.html.find("id=\"new-key-secret\" class=\"secret\">").expect("secret shown");
    let rest = &page.html[at + "id=\"new-key-secret\" class=\"secret\">".len()..];
    rest[..rest.find('<').expect("end")].to_owned()
}

#[tokio::test]
async fn sign_up_sets_a_host_prefixed_secure_httponly_strict_session_cookie() {
    let app = spawn_app().await;
    let form = get(&app, "/app/signup", "").await;
    assert_eq!(form.status, StatusCode::OK);
    let pre = form.cookie("__Host-keygate_csrf").expect("pre-session CSRF cookie");
    let cookie = format!("__Host-keygate_csrf={}", value_of(&pre));
    let email = format!("ada@{}.example-corp.com", unique("dash"));
    let fields =
        [("csrf", form.csrf()), ("name", "Ada".into()), ("email", email.clone()), ("password", PASSWORD.into())];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = post(&app, "/app/signup", &cookie, &fields, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert!(done.location().starts_with("/app/a/acc_") && done.location().ends_with("/keys"));
    let session = done.cookie(SESSION).expect("session cookie");
    let token = value_of(&session).to_owned();
    assert!(token.starts_with("kgs_"), "an ordinary keygate session token");
    assert_eq!(session, format!("{SESSION}={token}; Path=/; HttpOnly; SameSite=Strict; Secure"));
    // The same session works against the API, and signing out of the dashboard ends it there too.
    assert_eq!(app.get("/v1/user", Cred::Bearer(&token)).await.status, StatusCode::OK);
    let cookie = format!("{SESSION}={token}");
    let csrf = get(&app, done.location(), &cookie).await.csrf();
    let out = post(&app, "/app/logout", &cookie, &[("csrf", &csrf)], &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.cookie(SESSION).expect("cleared").contains("Max-Age=0"));
    assert_eq!(app.get("/v1/user", Cred::Bearer(&token)).await.code(), "session_expired");
    assert_eq!(get(&app, "/app/a/acc_x/keys", &cookie).await.location(), "/app/login");
}

#[tokio::test]
async fn plain_http_setting_drops_secure_and_the_host_prefix() {
    let app = spawn_app_with(|s| s.dashboard.secure_cookies = false).await;
    let u = app.register().await;
    let form = get(&app, "/app/login", "").await;
    let pre = form.cookie("keygate_csrf").expect("pre-session cookie");
    assert!(!pre.contains("Secure"));
    let fields = [("csrf", form.csrf()), ("email", u.email.clone()), ("password", PASSWORD.to_owned())];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = post(&app, "/app/login", &format!("keygate_csrf={}", value_of(&pre)), &fields, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let session = done.cookie("keygate_session").expect("session cookie");
    assert_eq!(session, format!("keygate_session={}; Path=/; HttpOnly; SameSite=Strict", value_of(&session)));
}

#[tokio::test]
async fn pages_have_a_strict_csp_and_no_inline_script_or_style() {
    let app = spawn_app().await;
    let (u, cookie, _) = signed_in(&app).await;
    for path in [
        "/app/login".to_owned(),
        "/app/signup".into(),
        format!("/app/a/{}/keys", u.account_id),
        format!("/app/a/{}/keys/new", u.account_id),
        format!("/app/a/{}/org-keys", u.account_id),
        format!("/app/a/{}/members", u.account_id),
        format!("/app/a/{}/audit", u.account_id),
    ] {
        let p = get(&app, &path, &cookie).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.html);
        let h = |n: &str| p.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(h("content-security-policy"), CSP, "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert_eq!(h("cache-control"), "no-store");
        assert!(!p.html.contains(" style=") && !p.html.contains("<style"), "{path}: inline style");
        assert!(
            !p.html.contains("<script>")
                && p.html.matches("<script").count() == p.html.matches("<script src=\"/app/static/").count(),
            "{path}: inline script"
        );
        assert!(!p.html.contains(" onclick="), "{path}: inline handler");
        // Every POST form carries a CSRF token.
        assert_eq!(p.html.matches("method=\"post\"").count(), p.html.matches("name=\"csrf\"").count(), "{path}");
    }
    let css = get(&app, "/app/static/app.css", "").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"].to_str().unwrap_or("").starts_with("text/css"));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_or_from_another_site_are_refused() {
    let app = spawn_app().await;
    let (u, cookie, csrf) = signed_in(&app).await;
    let path = format!("/app/a/{}/keys", u.account_id);
    let with = |token: &str| {
        vec![("csrf".to_owned(), token.to_owned()), ("name".into(), "ci".into()), ("scopes".into(), "*:*".into())]
    };
    let send = async |fields: Vec<(String, String)>, extra: &[(&str, &str)]| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post(&app, &path, &cookie, &fields, extra).await.status
    };
    assert_eq!(send(with("")[1..].to_vec(), &[]).await, StatusCode::FORBIDDEN, "no token");
    assert_eq!(send(with("0000"), &[]).await, StatusCode::FORBIDDEN, "wrong token");
    let evil = [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
    assert_eq!(send(with(&csrf), &evil).await, StatusCode::FORBIDDEN, "cross-site");
    // Another session's token is no good either: tokens are bound to their session.
    let (_, _, other_csrf) = signed_in(&app).await;
    assert_eq!(send(with(&other_csrf), &[]).await, StatusCode::FORBIDDEN, "another session's token");
    let listed = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0), "nothing was created");
    // Sign-in without the pre-session cookie's token is refused too.
    let login = post(&app, "/app/login", "", &[("email", &u.email), ("password", PASSWORD)], &[]).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_created_key_is_shown_once_in_the_answer_and_works_until_revoked() {
    let app = spawn_app().await;
    let (u, cookie, csrf) = signed_in(&app).await;
    let page = post(
        &app,
        &format!("/app/a/{}/keys", u.account_id),
        &cookie,
        &[("csrf", &csrf), ("name", "ci"), ("scopes", "*:*")],
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "the secret is in this answer, not behind a redirect");
    assert!(page.headers.get("location").is_none());
    let secret = create_key(&app, &u, &cookie, &csrf, "second").await;
    assert!(secret.starts_with("kg_"));
    assert!(page.cookies().iter().all(|c| !c.contains("kg_")), "no secret in a cookie");
    assert_eq!(app.get("/v1/user", Cred::ApiKey(&secret)).await.status, StatusCode::OK);
    // The list shows it without its secret.
    let list = get(&app, &format!("/app/a/{}/keys", u.account_id), &cookie).await;
    assert!(list.html.contains("second") && !list.html.contains(&secret));
    let id =
        app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await.body["items"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let done = post(&app, &format!("/app/a/{}/keys/{id}/revoke", u.account_id), &cookie, &[("csrf", &csrf)], &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/app/a/{}/keys", u.account_id));
    let flash = done.cookie("__Host-keygate_flash").expect("flash");
    let after = get(&app, done.location(), &format!("{cookie}; __Host-keygate_flash={}", value_of(&flash))).await;
    assert!(after.html.contains("is revoked"), "{}", after.html);
    assert!(after.cookie("__Host-keygate_flash").is_some_and(|c| c.contains("Max-Age=0")), "shown once");
    assert_eq!(app.get("/v1/user", Cred::ApiKey(&secret)).await.code(), "api_key_revoked");
}

#[tokio::test]
async fn sending_the_new_key_form_again_mints_no_second_key() {
    let app = spawn_app().await;
    let (u, cookie, csrf) = signed_in(&app).await;
    let form_page = get(&app, &format!("/app/a/{}/keys/new", u.account_id), &cookie).await;
    let submission = form_page.field("submission");
    let send = async || {
        let fields = [
            ("csrf", csrf.as_str()),
            ("submission", &submission),
            ("name", "twice"),
            ("class", "user"),
            ("authority", "user"),
            ("scopes", "*:*"),
        ];
        post(&app, &format!("/app/a/{}/keys", u.account_id), &cookie, &fields, &[]).await
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.html);
    assert!(first.html.contains("id=\"new-key-secret\""));
    // The browser's reload (or a second click) sends the very same form.
    let again = send().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    assert_eq!(again.location(), format!("/app/a/{}/keys", u.account_id));
    assert!(!again.html.contains("new-key-secret"));
    let keys = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await;
    assert_eq!(keys.body["items"].as_array().map(Vec::len), Some(1), "{}", keys.text);
    // A fresh form is a new key.
    let next = get(&app, &format!("/app/a/{}/keys/new", u.account_id), &cookie).await.field("submission");
    assert_ne!(next, submission);
    // A form refused for bad input can be corrected and sent with its token.
    let refused = post(
        &app,
        &format!("/app/a/{}/keys", u.account_id),
        &cookie,
        &[("csrf", &csrf), ("submission", &next), ("name", "x"), ("scopes", "nonsense")],
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    let fixed = post(
        &app,
        &format!("/app/a/{}/keys", u.account_id),
        &cookie,
        &[("csrf", &csrf), ("submission", &next), ("name", "x"), ("scopes", "*:*")],
        &[],
    )
    .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.html);
}

#[tokio::test]
async fn another_accounts_pages_and_keys_are_404() {
    let app = spawn_app().await;
    let (a, a_cookie, a_csrf) = signed_in(&app).await;
    let b = app.register().await;
    let b_key = app.mint(&b.token, &b.account_id, json!({ "name": "theirs" })).await;
    let b_key_id = b_key["id"].as_str().expect("id");
    for path in ["keys", "org-keys", "members", "audit", "keys/new"] {
        let p = get(&app, &format!("/app/a/{}/{path}", b.account_id), &a_cookie).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
    }
    let revoke =
        post(&app, &format!("/app/a/{}/keys/{b_key_id}/revoke", b.account_id), &a_cookie, &[("csrf", &a_csrf)], &[])
            .await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);
    // Their key through my own account's path is just as unknown.
    let revoke =
        post(&app, &format!("/app/a/{}/keys/{b_key_id}/revoke", a.account_id), &a_cookie, &[("csrf", &a_csrf)], &[])
            .await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/user", Cred::ApiKey(b_key["key"].as_str().expect("key"))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn member_rules_and_errors_are_the_apis() {
    let app = spawn_app().await;
    let (owner, owner_cookie, owner_csrf) = signed_in(&app).await;
    let (member, member_cookie, _) = signed_in(&app).await;
    add_member(&app, &owner.token, &owner.account_id, &member.email, "user").await;
    // A plain user sees no organization keys or audit log, and cannot add members.
    let base = format!("/app/a/{}", owner.account_id);
    assert_eq!(get(&app, &format!("{base}/org-keys"), &member_cookie).await.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&app, &format!("{base}/audit"), &member_cookie).await.status, StatusCode::FORBIDDEN);
    let page = get(&app, &format!("{base}/members"), &member_cookie).await;
    let member_csrf = page.csrf();
    let refused = post(
        &app,
        &format!("{base}/members"),
        &member_cookie,
        &[("csrf", &member_csrf), ("email", &owner.email), ("authority", "user")],
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let flash = refused.cookie("__Host-keygate_flash").expect("flash");
    assert!(value_of(&flash).starts_with("e:"), "an error message: {flash}");
    // The last owner cannot demote themself.
    let own = post(
        &app,
        &format!("{base}/members/{}/authority", owner.user_id),
        &owner_cookie,
        &[("csrf", &owner_csrf), ("authority", "user")],
        &[],
    )
    .await;
    assert!(
        own.cookie("__Host-keygate_flash").is_some_and(|c| value_of(&c).starts_with("e:") && c.contains("owner")),
        "{:?}",
        own.cookies()
    );
    // The owner promotes the member; the API sees it.
    let ok = post(
        &app,
        &format!("{base}/members/{}/authority", member.user_id),
        &owner_cookie,
        &[("csrf", &owner_csrf), ("authority", "administrator")],
        &[],
    )
    .await;
    assert!(ok.cookie("__Host-keygate_flash").is_some_and(|c| value_of(&c).starts_with("n:")));
    let members = app.get(&format!("/v1/accounts/{}/members", owner.account_id), Cred::Bearer(&owner.token)).await;
    assert!(members.text.contains("\"administrator\""), "{}", members.text);
    // The audit log page shows the change, filtered by action.
    let audit = get(&app, &format!("{base}/audit?action=member.*"), &owner_cookie).await;
    assert!(audit.html.contains("member.updated") && !audit.html.contains("user.registered"), "{}", audit.html);
}

#[tokio::test]
async fn sign_in_throttle_is_shared_with_the_api() {
    let app = spawn_app_with(|s| s.login.backoff_base_seconds = 60).await;
    let u = app.register().await;
    for _ in 0..10 {
        let a = app.post("/v1/login", Cred::None, json!({ "email": u.email, "password": "not the password" })).await;
        assert_eq!(a.code(), "login_error");
    }
    let form = get(&app, "/app/login", "").await;
    let pre = form.cookie("__Host-keygate_csrf").expect("cookie");
    let csrf = form.csrf();
    let done = post(
        &app,
        "/app/login",
        &format!("__Host-keygate_csrf={}", value_of(&pre)),
        &[("csrf", &csrf), ("email", &u.email), ("password", PASSWORD)],
        &[],
    )
    .await;
    assert_eq!(done.status, StatusCode::TOO_MANY_REQUESTS, "even the right password: {}", done.html);
    assert!(done.headers.get("retry-after").is_some());
    assert!(done.cookie(SESSION).is_none());
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_and_a_disabled_dashboard_is_gone() {
    let app = spawn_app().await;
    let p = get(&app, "/app/a/acc_x/keys", "").await;
    assert_eq!((p.status, p.location()), (StatusCode::SEE_OTHER, "/app/login"));
    let p = get(&app, "/app/a/acc_x/keys", &format!("{SESSION}=kgs_not_a_real_session")).await;
    assert_eq!(p.location(), "/app/login");
    assert!(p.cookie(SESSION).is_some_and(|c| c.contains("Max-Age=0")), "a dead cookie is dropped");
    let off = spawn_app_with(|s| s.dashboard.enabled = false).await;
    assert_eq!(get(&off, "/app/login", "").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rolling_shows_the_new_secret_once_and_the_old_keys_end() {
    let app = spawn_app().await;
    let (u, cookie, csrf) = signed_in(&app).await;
    let old_secret = create_key(&app, &u, &cookie, &csrf, "rolling").await;
    let id =
        app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await.body["items"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    // Without JavaScript the Roll button is a link to a confirmation page with the same form.
    let confirm = get(&app, &format!("/app/a/{}/keys/{id}/roll", u.account_id), &cookie).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.html.contains("name=\"old_expires_in_seconds\""));
    let page = post(
        &app,
        &format!("/app/a/{}/keys/{id}/roll", u.account_id),
        &cookie,
        &[("csrf", &csrf), ("old_expires_in_seconds", "3600")],
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("keeps working until"), "the old key's end is shown");
    let at = page.html.find("class=\"secret\">").expect("secret") + "class=\"secret\">".len();
    let new_secret = &page.html[at..at + page.html[at..].find('<').expect("end")];
    assert_ne!(new_secret, old_secret);
    assert_eq!(app.get("/v1/user", Cred::ApiKey(new_secret)).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/user", Cred::ApiKey(&old_secret)).await.status,
        StatusCode::OK,
        "the overlap keeps it working"
    );
    // A revoked key cannot be rolled: the API's 409, as a message on the list.
    let succ = app.get(&format!("/v1/keys?account_id={}", u.account_id), Cred::Bearer(&u.token)).await.body["items"][0]
        ["id"]
        .as_str()
        .expect("successor id")
        .to_owned();
    let _ = post(&app, &format!("/app/a/{}/keys/{succ}/revoke", u.account_id), &cookie, &[("csrf", &csrf)], &[]).await;
    let again =
        post(&app, &format!("/app/a/{}/keys/{succ}/roll", u.account_id), &cookie, &[("csrf", &csrf)], &[]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(again.cookie("__Host-keygate_flash").is_some_and(|c| value_of(&c).starts_with("e:")));
}

#[tokio::test]
async fn reloading_the_rolled_key_page_rolls_nothing_more() {
    let app = spawn_app().await;
    let (u, cookie, csrf) = signed_in(&app).await;
    create_key(&app, &u, &cookie, &csrf, "reloaded").await;
    let keys = format!("/v1/keys?account_id={}", u.account_id);
    let id = app.get(&keys, Cred::Bearer(&u.token)).await.body["items"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/app/a/{}/keys/{id}/roll", u.account_id);
    let form = [("csrf", csrf.as_str()), ("old_expires_in_seconds", "3600")];
    let first = post(&app, &path, &cookie, &form, &[]).await;
    assert!(first.html.contains("id=\"new-key-secret\""), "{}", first.html);
    // The browser's reload sends the same form again: a notice, no second successor.
    let again = post(&app, &path, &cookie, &form, &[]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    assert!(!again.html.contains("new-key-secret"));
    assert!(again.cookie("__Host-keygate_flash").is_some_and(|c| value_of(&c).starts_with("n:")));
    let items = app.get(&keys, Cred::Bearer(&u.token)).await.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.iter().filter(|k| k["status"] == "active").count(), 2, "old key in its overlap + one successor");
    let list = get(&app, &format!("/app/a/{}/keys", u.account_id), &cookie).await;
    assert!(!list.html.contains(&format!("href=\"{path}\"")), "a rolled key offers no Roll button");
}

#[tokio::test]
async fn organization_keys_need_an_administrator_and_are_listed_apart() {
    let app = spawn_app().await;
    let (owner, cookie, csrf) = signed_in(&app).await;
    let path = format!("/app/a/{}/keys", owner.account_id);
    let page = post(
        &app,
        &path,
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "shared"),
            ("class", "org"),
            ("scopes", "companies:read"),
            ("rate_limit", "100"),
            ("rate_window", "60"),
        ],
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains(">kg_org_"), "an org key");
    let org = get(&app, &format!("/app/a/{}/org-keys", owner.account_id), &cookie).await;
    assert!(org.html.contains("shared"));
    assert!(!get(&app, &path, &cookie).await.html.contains("shared"), "not among the personal keys");
    let listed =
        app.get(&format!("/v1/keys?account_id={}&class=org", owner.account_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(listed.body["items"][0]["rate_limit"]["limit"], 100);
    assert_eq!(listed.body["items"][0]["scopes"], json!(["companies:read"]));
    // A plain member is refused an org key with the API's error, shown on the form.
    let (member, member_cookie, member_csrf) = signed_in(&app).await;
    add_member(&app, &owner.token, &owner.account_id, &member.email, "user").await;
    let refused =
        post(&app, &path, &member_cookie, &[("csrf", &member_csrf), ("name", "mine"), ("class", "org")], &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("authority"), "{}", refused.html);
    // Bad input comes back on the form, with what was entered.
    let bad = post(&app, &path, &cookie, &[("csrf", &csrf), ("name", "typo"), ("scopes", "Companies:read")], &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("Scopes:") && bad.html.contains("value=\"typo\""), "{}", bad.html);
}

#[tokio::test]
async fn a_password_change_through_the_api_ends_the_dashboard_session() {
    let app = spawn_app().await;
    let (u, cookie, _) = signed_in(&app).await;
    let changed = app
        .patch(
            "/v1/user",
            Cred::Bearer(&u.token),
            json!({ "current_password": PASSWORD, "new_password": "another long passphrase" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let p = get(&app, &format!("/app/a/{}/keys", u.account_id), &cookie).await;
    assert_eq!((p.status, p.location()), (StatusCode::SEE_OTHER, "/app/login"));
}

/// Issue 17: the dashboard has no key edit page; its one way to set a key's limits is the new
/// key form, and that goes through the API's rule: past the plan's ceiling is refused on the
/// form (for the owner too), and no key is made.
#[tokio::test]
async fn the_new_key_forms_rate_limit_is_held_to_the_plans_ceiling() {
    let app = spawn_app().await;
    let (owner, cookie, csrf) = signed_in(&app).await;
    let path = format!("/app/a/{}/keys", owner.account_id);
    let form =
        [("csrf", csrf.as_str()), ("name", "greedy"), ("scopes", "*:*"), ("rate_limit", "601"), ("rate_window", "60")];
    let refused = post(&app, &path, &cookie, &form, &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(
        refused.html.contains("looser than the plan&#39;s key_rate_limit_max"),
        "the API's rule, on the form: {}",
        refused.html
    );
    let listed = app.get(&format!("/v1/keys?account_id={}", owner.account_id), Cred::Bearer(&owner.token)).await;
    assert_eq!(listed.body["items"], json!([]), "no key was made");
}
