//! `keygate demo`: the whole product in one process. A temporary SQLite database, the sample
//! upstream on a loopback port, gateway routes for it, and demo data created over HTTP
//! through keygate's own management API (the same code paths a customer uses), then the
//! credentials and ready-to-paste `curl` lines.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keygate_server::Settings;
use keygate_server::config::RouteSettings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;

const EMAIL: &str = "ada@acme.example";
/// The rate-limited key's allowance, small enough to hit by hand.
const DEMO_LIMIT: u32 = 5;
/// The demo plan's account-wide limit a minute, shared by every key of the account.
const ACCOUNT_PER_MINUTE: u32 = 30;
/// The sandbox plan's daily quota, small enough to spend by hand.
const SANDBOX_QUOTA: u64 = 10;

/// The demo's plans (docs/api.md §7 "Plan limits"): `demo` for Acme (a per-minute account
/// limit and a daily quota), `sandbox` for a second account whose small quota a loop spends.
fn plans(settings: &mut Settings) {
    use keygate_core::quota::{Quota, QuotaPeriod};
    use keygate_core::ratelimit::NamedRateLimit;
    use keygate_server::config::PlanSettings;
    let minute = NamedRateLimit { name: "minute".into(), limit: ACCOUNT_PER_MINUTE, window_seconds: 60, burst: None };
    let plan = |requests| PlanSettings {
        max_keys: Some(100),
        rate_limits: vec![minute.clone()],
        quota: Some(Quota { requests, period: QuotaPeriod::Day }),
        ..PlanSettings::default()
    };
    settings.plans.insert("demo".into(), plan(1000));
    settings.plans.insert("sandbox".into(), plan(SANDBOX_QUOTA));
    settings.signup.default_plan = "demo".into();
}

fn route(prefix: &str, upstream: &str, resource: &str) -> RouteSettings {
    RouteSettings { timeout_seconds: 10, ..RouteSettings::new(prefix, upstream, resource) }
}

/// companies: any credential; lists: user-scoped; leads: `POST` is the action `create`.
fn routes(upstream: &str) -> Vec<RouteSettings> {
    vec![
        route("/v1/companies", upstream, "companies"),
        RouteSettings {
            credentials: vec!["user_key".into(), "session".into()],
            ..route("/v1/lists", upstream, "lists")
        },
        RouteSettings {
            actions: [("POST".to_owned(), "create".to_owned())].into_iter().collect(),
            ..route("/v1/leads", upstream, "leads")
        },
    ]
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir =
        tempfile::Builder::new().prefix("keygate-demo-").tempdir().context("cannot create a temporary directory")?;
    let upstream = crate::demo_upstream::start().await.context("cannot start the sample upstream")?;
    let mut settings = Settings {
        listen: args.listen.clone(),
        database_url: format!("sqlite://{}", dir.path().join("keygate-demo.db").display()),
        ..Settings::default()
    };
    // The demo speaks plain HTTP on loopback: `Secure` cookies would never come back.
    settings.dashboard.secure_cookies = false;
    settings.gateway.routes = routes(&format!("http://{upstream}"));
    // A verifier token, for the verify call of a backend on another host (loopback needs none):
    // the configuration holds its digest only, as a deployment's should.
    let (verifier_token, verifier_digest) = keygate_server::auth::verifier::new_token();
    settings.verify.tokens = vec![verifier_digest.into()];
    plans(&mut settings);
    // The operator token, only to put the sandbox account on its plan; never printed.
    let operator = keygate_core::base62::random(40);
    settings.admin_token = operator.clone().into();
    settings.validate()?;

    let listeners = crate::cli::bind(&settings)?;
    let addr = listeners.local_addr();
    let app = keygate_server::build(settings).await?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(app.serve(listeners, async move {
        tokio::select! {
            _ = keygate_server::shutdown_signal() => {}
            _ = stopped.cancelled() => {}
        }
    }));

    let base = format!("http://{addr}");
    match seed(&base, &operator).await {
        Ok(demo) => print(&base, &upstream.to_string(), &demo, verifier_token.expose()),
        Err(e) => {
            stop.cancel();
            let _ = server.await;
            return Err(e.context("could not create the demo data"));
        }
    }
    server.await.context("the server task failed")??;
    drop(dir);
    Ok(())
}

struct Demo {
    password: String,
    token: String,
    account_id: String,
    user_key: String,
    org_key: String,
    lead_key: Option<String>,
    limited_key: String,
    /// Two keys of the sandbox account (its plan's daily quota is `SANDBOX_QUOTA`).
    sandbox_keys: [String; 2],
}

/// A small JSON client for keygate's own API.
struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
        let resp = self.client.request(req).await.with_context(|| format!("{path}: no answer"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn created(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call(Method::POST, path, token, body).await?;
        if status != StatusCode::CREATED {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}

fn text(v: &Value, field: &str) -> anyhow::Result<String> {
    v[field].as_str().map(str::to_owned).with_context(|| format!("the answer has no `{field}`: {v}"))
}

async fn seed(base: &str, operator: &str) -> anyhow::Result<Demo> {
    let api = Api { base: base.to_owned(), client: Client::builder(TokioExecutor::new()).build_http() };
    let password = keygate_core::base62::random(20);
    let reg = api
        .created(
            "/v1/register",
            None,
            json!({ "email": EMAIL, "password": password, "name": "Acme", "url": "https://acme.example" }),
        )
        .await?;
    let token = text(&reg, "token")?;
    let account_id = text(&reg, "default_account_id")?;
    let t = Some(token.as_str());
    let mint = |body: Value| {
        let mut body = body;
        body["account_id"] = json!(account_id);
        api.created("/v1/keys", t, body)
    };
    let user_key = text(&mint(json!({ "name": "demo user key" })).await?, "key")?;
    let org_key =
        text(&mint(json!({ "name": "demo read-only org key", "class": "org", "scopes": ["*:read"] })).await?, "key")?;
    let limited = json!({ "name": "demo rate-limited key", "scopes": ["companies:read"], "rate_limit": { "limit": DEMO_LIMIT, "window_seconds": 60 } });
    let limited_key = text(&mint(limited).await?, "key")?;
    let role = api
        .created(
            &format!("/v1/accounts/{account_id}/roles"),
            t,
            json!({ "name": "lead-intake", "permissions": ["leads:create"] }),
        )
        .await;
    // The create-only example needs data roles; everything else works without them.
    let lead_key = match role.and_then(|r| text(&r, "id")) {
        Ok(role_id) => {
            Some(text(&mint(json!({ "name": "lead intake form", "class": "org", "role_id": role_id })).await?, "key")?)
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no lead-intake role: the create-only example is left out");
            None
        }
    };
    let sandbox_keys = sandbox(&api, &token, operator).await?;
    Ok(Demo { password, token, account_id, user_key, org_key, lead_key, limited_key, sandbox_keys })
}

/// A second account, "Acme Sandbox", on the `sandbox` plan, with two keys.
async fn sandbox(api: &Api, token: &str, operator: &str) -> anyhow::Result<[String; 2]> {
    let account = api.created("/v1/accounts", Some(token), json!({ "name": "Acme Sandbox" })).await?;
    let id = text(&account, "id")?;
    let path = format!("/v1/admin/accounts/{id}");
    let (status, answer) = api.call(Method::PATCH, &path, Some(operator), json!({ "plan": "sandbox" })).await?;
    if status != StatusCode::OK {
        bail!("PATCH /v1/admin/accounts answered {status}: {answer}");
    }
    let mut keys = Vec::new();
    for name in ["sandbox key 1", "sandbox key 2"] {
        let minted = api.created("/v1/keys", Some(token), json!({ "account_id": id, "name": name })).await?;
        keys.push(text(&minted, "key")?);
    }
    let [a, b]: [String; 2] = keys.try_into().map_err(|_| anyhow::anyhow!("two sandbox keys"))?;
    Ok([a, b])
}

fn print(base: &str, upstream: &str, d: &Demo, verifier_token: &str) {
    let json_h = "-H 'Content-Type: application/json'";
    let mut out = format!(
        "listening: {base}\nemail: {EMAIL}\npassword: {}\nuser key: {}\norg key: {}\n",
        d.password, d.user_key, d.org_key
    );
    if let Some(k) = &d.lead_key {
        out.push_str(&format!("lead-intake key: {k}\n"));
    }
    out.push_str(&format!(
        "rate-limited key: {}\naccount id: {}\nsession token: {}\nverifier token: {verifier_token}\n",
        d.limited_key, d.account_id, d.token
    ));
    out.push_str(&format!("sandbox keys: {} {}\n", d.sandbox_keys[0], d.sandbox_keys[1]));
    out.push_str(&format!(
        "\nThe sample API listens on http://{upstream} (no auth of its own); keygate guards it at {base}.\n\
         Routes: /v1/companies (any credential), /v1/lists (user-scoped), /v1/leads (POST = create).\n\
         Dashboard: {base}/app (sign in as {EMAIL} with the password above). API reference: {base}/docs\n\n\
         # A read with any credential (here the read-only org key): 200, and what the API was told in seen_as\n\
         curl -s -w '\\n' {base}/v1/companies -H 'X-API-Key: {org}'\n\n\
         # User-scoped route: the org key is refused (403 user_credential_required), a user key is not\n\
         curl -s -w '\\n' {base}/v1/lists -H 'X-API-Key: {org}'\n\
         curl -s -w '\\n' -X POST {base}/v1/lists -H 'Authorization: Bearer {user}' {json_h} -d '{{\"name\":\"Prospects\"}}'\n\
         curl -s -w '\\n' {base}/v1/lists -H 'X-Api-Key: {user}'\n\n\
         # A read-only key cannot write: 403 insufficient_scope\n\
         curl -s -w '\\n' -X POST {base}/v1/companies -H 'X-API-Key: {org}' {json_h} -d '{{\"name\":\"New Co\"}}'\n\n",
        org = d.org_key,
        user = d.user_key,
    ));
    if let Some(lead) = &d.lead_key {
        out.push_str(&format!(
            "# A create-only role (lead-intake = [\"leads:create\"]): POST /v1/leads is allowed, reading them is not (403)\n\
             curl -s -w '\\n' -X POST {base}/v1/leads -H 'X-API-Key: {lead}' {json_h} -d '{{\"email\":\"jo@prospect.example\"}}'\n\
             curl -s -w '\\n' {base}/v1/leads -H 'X-API-Key: {lead}'\n\n"
        ));
    }
    out.push_str(&format!(
        "# A rate limit of {DEMO_LIMIT} a minute: the next requests get 429 with Retry-After (RateLimit-* on every answer)\n\
         for i in $(seq 1 {n}); do curl -s -o /dev/null -w '%{{http_code}}\\n' {base}/v1/companies -H 'X-API-Key: {limited}'; done\n\n\
         # Plan limits are the account's: its {per_minute} a minute are shared by all its keys (429 rate_limited past them)\n\
         for i in $(seq 1 {half}); do for k in {user} {org}; do curl -s -o /dev/null -w '%{{http_code}} ' {base}/v1/companies -H \"X-API-Key: $k\"; done; done; echo\n\n\
         # The sandbox account's plan allows {quota} requests a day across its keys: then 429 quota_exceeded, Retry-After until 00:00 UTC\n\
         for i in $(seq 1 {quota_half}); do for k in {sandbox_a} {sandbox_b}; do curl -s -o /dev/null -w '%{{http_code}} ' {base}/v1/companies -H \"X-API-Key: $k\"; done; done; echo\n\
         curl -s -i {base}/v1/companies -H 'X-API-Key: {sandbox_a}' | grep -iE '^(HTTP|retry-after)|quota_exceeded'\n\n\
         # A session token at the gateway names its account with X-Account-Id\n\
         curl -s -w '\\n' {base}/v1/lists -H 'Authorization: Bearer {token}' -H 'X-Account-Id: {acc}'\n\n\
         # Or ask keygate directly, for an API that does not sit behind the gateway\n\
         curl -s -w '\\n' -X POST {base}/v1/keys/verify {json_h} -d '{{\"key\":\"{user}\",\"permissions\":[\"lists:write\"]}}'\n\n\
         # A backend on another host calls verify with a verifier token, and may then name the end client's ip\n\
         curl -s -w '\\n' -X POST {base}/v1/keys/verify -H 'Authorization: Bearer {verifier_token}' {json_h} -d '{{\"key\":\"{user}\",\"ip\":\"203.0.113.7\"}}'\n\n\
         Everything lives in a temporary database that is deleted on exit. Stop with ctrl-c.\n",
        n = DEMO_LIMIT + 2,
        per_minute = ACCOUNT_PER_MINUTE,
        half = ACCOUNT_PER_MINUTE / 2 + 1,
        quota = SANDBOX_QUOTA,
        quota_half = SANDBOX_QUOTA / 2 + 1,
        sandbox_a = d.sandbox_keys[0],
        sandbox_b = d.sandbox_keys[1],
        org = d.org_key,
        limited = d.limited_key,
        token = d.token,
        acc = d.account_id,
        user = d.user_key,
    ));
    print!("{out}");
    // Scripts read these lines from a pipe: make sure they are out now, not at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}
