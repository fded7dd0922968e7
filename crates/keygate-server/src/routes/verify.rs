//! `POST /v1/keys/verify` (SPEC §5): the authenticator's decision for a key, always 200 for a
//! well-formed request. A verify counts as a use of the key.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use keygate_core::Scope;
use keygate_core::ratelimit;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::spend::Applied;
use crate::auth::verifier::VerifyCaller;
use crate::auth::{Accept, AuthContext, Authenticated, CachedKey, Requirements, Verdict};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, request_client_ip};
use crate::limits::QuotaDecision;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The API key to check.
    key: String,
    /// Every one of these `resource:action` permissions is required.
    permissions: Option<Vec<String>>,
    /// Only user keys pass (org keys get USER_CREDENTIAL_REQUIRED).
    user_scoped: Option<bool>,
    /// Units of rate limits, quota and usage to spend (0–1000, default 1).
    cost: Option<u32>,
    /// The end client's address, when the caller forwards requests: for IP allowlists and the
    /// throttle of unknown keys. Believed only from a caller with a verifier (or operator)
    /// token; ignored from an anonymous caller. Default: the verify caller's own address.
    ip: Option<String>,
}

/// The path the router serves verify on, and the one `HotPaths` sends past it.
pub const PATH: &str = "/v1/keys/verify";

/// The decision for a key: `{valid, code, key_id, account_id, user_id, class, authority,
/// scopes, role_id, expires_at, metadata, plan, ratelimit, ratelimits, quota, usage_remaining}`.
/// `ratelimit` is the tightest limit that applied; `ratelimits` every one
/// (`[{name, scope, limit, remaining, reset}]`), `quota` the account's (`{limit, remaining,
/// reset}`, null without one).
///
/// Callers from `[verify] anonymous_from` (default loopback) need no credential; any other
/// sends `Authorization: Bearer <verifier token>`. Only a token's caller's `ip` is believed.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "keys", request_body = VerifyBody,
    security((), ("verifier_token" = [])),
    responses((status = 200, description = "the decision; `code` is VALID, NOT_FOUND, REVOKED, EXPIRED, INACTIVE, RATE_LIMITED, QUOTA_EXCEEDED, USAGE_EXCEEDED, IP_NOT_ALLOWED, INSUFFICIENT_SCOPE, USER_CREDENTIAL_REQUIRED or PLAN_REQUIRED"),
        (status = 400, description = "malformed request"),
        (status = 401, description = "missing_credentials: no verifier token from outside `[verify] anonymous_from`; invalid_credentials: a wrong one"),
        (status = 503, description = "storage unreachable: no decision")))]
async fn verify(State(state): State<AppState>, req: Request) -> Response {
    serve(&state, req).await
}

/// One verify request, from the router or straight from `routes::HotPaths` (verify is the
/// hot path of customers who call it instead of the gateway; the router's matching and
/// handler plumbing cost ≈ 3k instructions per call). Extracts what the handler needs with
/// the same extractors a handler would use.
pub async fn serve(state: &AppState, req: Request) -> Response {
    let peer = request_client_ip(&req, state);
    // Who may ask comes first: a caller that may not gets 401 before its body is read.
    let caller = match state.verify_callers.identify(req.headers(), peer) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match Json::<VerifyBody>::from_request(req, state).await {
        Ok(Json(body)) => decide(state, peer, caller, body).await.unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    }
}

async fn decide(state: &AppState, peer: IpAddr, caller: VerifyCaller, body: VerifyBody) -> ApiResult<Response> {
    let permissions = body
        .permissions
        .unwrap_or_default()
        .iter()
        .map(|p| Scope::parse(p).map_err(|e| ApiError::invalid_field("permissions", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let cost = body.cost.unwrap_or(1);
    if cost > 1000 {
        return Err(ApiError::invalid_field("cost", "must be 0 to 1000"));
    }
    if body.key.len() > 512 {
        return Err(ApiError::invalid_field("key", "is too long to be a key"));
    }
    // The sender (allowlists, the unknown-key throttle, always applied): the body's `ip` from a
    // verifier, else the caller itself. An anonymous caller's `ip` is ignored, so nobody can
    // spend another address's allowance by naming it (docs/api.md, "Verify callers").
    let ip = match (caller, body.ip.as_deref()) {
        (VerifyCaller::Verifier, Some(s)) => {
            s.parse().map_err(|_| ApiError::invalid_field("ip", "must be an IPv4 or IPv6 address"))?
        }
        _ => peer,
    };
    let requirements = Requirements { permissions, user_scoped: body.user_scoped.unwrap_or(false), kinds: Vec::new() };
    let ctx = AuthContext { ip, requirements: &requirements, cost, extra_limit: None, report_limits: true };
    let verdict = match state.auth.authenticate(body.key.trim(), Accept::KeysOnly, &ctx).await? {
        Authenticated::Key(verdict) => verdict,
        Authenticated::Session(_) | Authenticated::Unreadable => state.auth.refused_offline(),
    };
    let (code, key, rate, usage_remaining, limits) = match verdict {
        Verdict::Granted(g) => {
            ("VALID", Some(g.key), g.rate, g.usage_remaining, Limits { all: g.limits, quota: g.quota })
        }
        Verdict::Refused(refused) => {
            let (rate, quota) = match &refused.refusal {
                crate::auth::Refusal::RateLimited(d) => (Some(*d), None),
                crate::auth::Refusal::QuotaExceeded(q) => (Some(q.as_rate()).filter(|d| d.limit > 0), Some(*q)),
                _ => (None, None),
            };
            let limits = Limits { all: refused.limit.into_iter().collect(), quota };
            let code = refused.refusal.verify_code();
            // Exact at the time of the answer (docs/api.md, "Verify"): a refusal spent nothing,
            // so the count is read, for keys that have one (not from the cached key).
            let usage_remaining = match &refused.key {
                Some(k) if code != "NOT_FOUND" => state.auth.usage_remaining_now(k).await,
                _ => None,
            };
            (code, refused.key, rate, usage_remaining, limits)
        }
    };
    let body = answer(code, key.as_deref(), rate.as_ref(), &limits, usage_remaining);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(d) = &rate {
        crate::auth::headers::insert_rate_headers(resp.headers_mut(), d);
    }
    Ok(resp)
}

/// The limits an answer lists: every rate limit that applied (`ratelimits`; for a refusal,
/// the one that refused) and the account's quota.
#[derive(Default)]
struct Limits {
    all: Vec<Applied>,
    quota: Option<QuotaDecision>,
}

/// The answer's body: `{valid, code, key_id, account_id, user_id, class, authority, scopes,
/// role_id, expires_at, metadata, plan, ratelimit, ratelimits, quota, usage_remaining}`, every
/// field always present, `null` (`[]` for `ratelimits`) when it does not apply. A NOT_FOUND
/// decision names no key, even when the lookup found one to refuse.
/// The key's own fields are rendered once per cached key (`CachedKey::verify_fields`); only
/// the decision, the limit and the count are written per request.
fn answer(
    code: &'static str,
    key: Option<&CachedKey>,
    rate: Option<&ratelimit::Decision>,
    limits: &Limits,
    usage_remaining: Option<i64>,
) -> Vec<u8> {
    let key = key.filter(|_| code != "NOT_FOUND");
    let fields: &str = match key {
        Some(k) => k.verify_fields.get_or_init(|| KeyFields::of(k).render()),
        None => &NO_KEY_FIELDS,
    };
    // The count a granted use just left, or the one read for a refusal; never the cached key's.
    let usage_remaining = key.and(usage_remaining);
    let ratelimit = rate.map(|d| RateLimitView { limit: d.limit, remaining: d.remaining, reset: d.reset_seconds });
    let mut out = Vec::with_capacity(fields.len() + 160);
    out.extend_from_slice(if code == "VALID" { br#"{"valid":true,"code":""# } else { br#"{"valid":false,"code":""# });
    // Codes are `&'static str` constants of upper-case ASCII: nothing to escape.
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(br#","ratelimit":"#);
    write_json(&mut out, &ratelimit);
    let named: Vec<NamedLimitView> = limits
        .all
        .iter()
        .map(|a| NamedLimitView {
            name: &a.name,
            scope: a.scope.as_str(),
            limit: a.decision.limit,
            remaining: a.decision.remaining,
            reset: a.decision.reset_seconds,
        })
        .collect();
    out.extend_from_slice(br#","ratelimits":"#);
    write_json(&mut out, &named);
    let quota = limits.quota.filter(|_| key.is_some()).map(|q| QuotaView {
        limit: q.limit,
        remaining: q.remaining,
        reset: q.reset_seconds,
    });
    out.extend_from_slice(br#","quota":"#);
    write_json(&mut out, &quota);
    out.extend_from_slice(br#","usage_remaining":"#);
    write_json(&mut out, &usage_remaining);
    out.push(b'}');
    out
}

/// `"key_id":null,…,"expires_at":null`: the fields of an answer that names no key.
static NO_KEY_FIELDS: std::sync::LazyLock<Box<str>> = std::sync::LazyLock::new(|| KeyFields::default().render());

static EMPTY_OBJECT: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::Value::Object(serde_json::Map::new()));

/// The fields of the answer that depend only on the key (and its account's plan).
#[derive(Serialize, Default)]
struct KeyFields<'a> {
    key_id: Option<&'a str>,
    account_id: Option<&'a str>,
    user_id: Option<&'a str>,
    class: Option<&'static str>,
    authority: Option<&'static str>,
    scopes: Option<&'a [String]>,
    role_id: Option<&'a str>,
    expires_at: Option<String>,
    /// The key's metadata (`{}` when it has none), for the company's API.
    metadata: Option<&'a serde_json::Value>,
    /// The account's plan: a cached key's account never changes, so it renders once too.
    plan: Option<&'a str>,
}

impl<'a> KeyFields<'a> {
    fn of(resolved: &'a CachedKey) -> Self {
        let k = &resolved.key;
        KeyFields {
            key_id: Some(&k.id),
            account_id: Some(&k.account_id),
            user_id: k.user_id.as_deref(),
            class: Some(k.class.as_str()),
            authority: Some(resolved.effective_authority().as_str()),
            scopes: Some(&k.scopes),
            role_id: k.role_id.as_deref(),
            expires_at: k.expires_at.map(crate::views::time),
            metadata: Some(k.metadata.as_ref().unwrap_or(&EMPTY_OBJECT)),
            plan: resolved.account.as_deref().map(|a| a.plan.as_str()),
        }
    }

    /// The members without the object's braces, to be spliced into the answer.
    fn render(&self) -> Box<str> {
        let object = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        object.get(1..object.len().saturating_sub(1)).unwrap_or_default().into()
    }
}

/// Numbers and `null` into a `Vec`: cannot fail, and `null` keeps the JSON whole if it did.
fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// One entry of `ratelimits`.
#[derive(Serialize)]
struct NamedLimitView<'a> {
    name: &'a str,
    /// `key`, `route` or `account`: whose limit it is.
    scope: &'static str,
    limit: u32,
    remaining: u32,
    reset: u64,
}

#[derive(Serialize)]
struct QuotaView {
    limit: u64,
    remaining: u64,
    reset: u64,
}

#[derive(Serialize)]
struct RateLimitView {
    limit: u32,
    remaining: u32,
    reset: u64,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::auth::cached_key::sample_auth;

    fn parsed(body: Vec<u8>) -> Value {
        serde_json::from_slice(&body).expect("the answer is JSON")
    }

    #[test]
    fn the_answer_has_every_field_with_the_key_rendered_once() {
        let mut stored = sample_auth("key_1");
        stored.key.scopes = vec!["leads:read".into(), "lists:*".into()];
        stored.key.usage_limit = Some(10);
        stored.key.usage_used = 4;
        let key = CachedKey::from_auth(stored, Arc::new);
        let rate =
            ratelimit::Decision { allowed: true, limit: 100, remaining: 99, reset_seconds: 60, retry_after_seconds: 0 };
        let expected = json!({
            "valid": true, "code": "VALID", "key_id": "key_1", "account_id": "acc_1", "user_id": null,
            "class": "org", "authority": "user", "scopes": ["leads:read", "lists:*"], "role_id": null,
            "expires_at": null, "metadata": { "team": "data" }, "plan": "free",
            "ratelimit": { "limit": 100, "remaining": 99, "reset": 60 },
            "ratelimits": [], "quota": null, "usage_remaining": 5,
        });
        assert_eq!(parsed(answer("VALID", Some(&key), Some(&rate), &Limits::default(), Some(5))), expected);
        assert!(key.verify_fields.get().is_some(), "rendered on first use");
        // A refusal reuses the rendering, and the count it was given, not the cached key's 6.
        let revoked = parsed(answer("REVOKED", Some(&key), None, &Limits::default(), Some(2)));
        assert_eq!(revoked["valid"], false);
        assert_eq!(revoked["key_id"], "key_1");
        assert_eq!((revoked["ratelimit"].clone(), revoked["usage_remaining"].clone()), (Value::Null, json!(2)));
        assert_eq!(
            parsed(answer("REVOKED", Some(&key), None, &Limits::default(), None))["usage_remaining"],
            Value::Null
        );
    }

    #[test]
    fn not_found_names_no_key_even_when_one_was_refused() {
        let key = CachedKey::from_auth(sample_auth("key_1"), Arc::new);
        for key in [None, Some(&*key)] {
            let got = parsed(answer("NOT_FOUND", key, None, &Limits::default(), Some(3)));
            let fields = [
                "key_id",
                "account_id",
                "user_id",
                "class",
                "authority",
                "scopes",
                "role_id",
                "expires_at",
                "metadata",
                "plan",
                "ratelimit",
                "quota",
                "usage_remaining",
            ];
            for f in fields {
                assert_eq!(got[f], Value::Null, "{f}");
            }
            assert_eq!((got["valid"].clone(), got["code"].clone()), (json!(false), json!("NOT_FOUND")));
            assert_eq!(got["ratelimits"], json!([]));
            assert_eq!(got.as_object().map(|o| o.len()), Some(fields.len() + 3), "every field present");
        }
    }
}
