//! `POST /v1/keys/verify` (SPEC §5): the authenticator's decision for a key, always 200 for a
//! well-formed request. A verify counts as a use of the key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_core::Scope;
use keygate_core::ratelimit;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::resolved::ResolvedKey;
use crate::auth::{AuthContext, Requirements};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json};
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
    /// Units of rate limit and usage to spend (0–1000, default 1).
    cost: Option<u32>,
    /// The end client's address, when the caller forwards requests (for IP allowlists);
    /// default: the address of the verify call.
    ip: Option<String>,
}

/// The decision for a key: `{valid, code, key_id, account_id, user_id, class, authority,
/// scopes, role_id, expires_at, ratelimit, usage_remaining}`.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "keys", request_body = VerifyBody,
    responses((status = 200, description = "the decision; `code` is VALID, NOT_FOUND, REVOKED, EXPIRED, INACTIVE, RATE_LIMITED, USAGE_EXCEEDED, IP_NOT_ALLOWED, INSUFFICIENT_SCOPE, USER_CREDENTIAL_REQUIRED or PLAN_REQUIRED"),
        (status = 400, description = "malformed request"), (status = 503, description = "storage unreachable: no decision")))]
async fn verify(State(state): State<AppState>, ClientIp(peer): ClientIp, Json(body): Json<VerifyBody>) -> ApiResult<Response> {
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
    let ip = match body.ip.as_deref() {
        Some(s) => s.parse().map_err(|_| ApiError::invalid_field("ip", "must be an IPv4 or IPv6 address"))?,
        None => peer,
    };
    let ctx = AuthContext {
        ip,
        requirements: Requirements { permissions, user_scoped: body.user_scoped.unwrap_or(false), kinds: Vec::new() },
        cost,
        extra_limit: None,
    };
    let (code, key, rate, usage_remaining) = match state.auth.authenticate_key(body.key.trim(), &ctx).await {
        Ok(g) => ("VALID", Some(g.key), g.rate, g.usage_remaining),
        Err(Ok(refused)) => {
            let rate = match &refused.refusal {
                crate::auth::Refusal::RateLimited(d) => Some(*d),
                _ => None,
            };
            (refused.refusal.verify_code(), refused.key, rate, None)
        }
        Err(Err(e)) => return Err(e),
    };
    let out = Decision::new(code, key.as_deref(), rate.as_ref(), usage_remaining);
    let mut headers = HeaderMap::new();
    if let Some(d) = &rate {
        crate::auth::headers::insert_rate_headers(&mut headers, d);
    }
    Ok((StatusCode::OK, headers, axum::Json(out)).into_response())
}

/// The answer's body, serialised straight from borrowed fields (no intermediate JSON tree:
/// verify is the hot path). Every field is always present; `null` when it does not apply.
#[derive(Serialize)]
struct Decision<'a> {
    valid: bool,
    code: &'static str,
    key_id: Option<&'a str>,
    account_id: Option<&'a str>,
    user_id: Option<&'a str>,
    class: Option<&'static str>,
    authority: Option<&'static str>,
    scopes: Option<&'a [String]>,
    role_id: Option<&'a str>,
    expires_at: Option<String>,
    ratelimit: Option<RateLimitView>,
    usage_remaining: Option<i64>,
}

#[derive(Serialize)]
struct RateLimitView {
    limit: u32,
    remaining: u32,
    reset: u64,
}

impl<'a> Decision<'a> {
    /// A NOT_FOUND decision names no key, even when the lookup found one to refuse.
    /// `usage_remaining` is the count a granted use just left; otherwise the key's own.
    fn new(code: &'static str, key: Option<&'a ResolvedKey>, rate: Option<&ratelimit::Decision>, usage_remaining: Option<i64>) -> Self {
        let key = key.filter(|_| code != "NOT_FOUND");
        let k = key.map(|k| &k.key);
        Decision {
            valid: code == "VALID",
            code,
            key_id: k.map(|k| k.id.as_str()),
            account_id: k.map(|k| k.account_id.as_str()),
            user_id: k.and_then(|k| k.user_id.as_deref()),
            class: k.map(|k| k.class.as_str()),
            authority: key.map(|k| k.effective_authority().as_str()),
            scopes: k.map(|k| k.scopes.as_slice()),
            role_id: k.and_then(|k| k.role_id.as_deref()),
            expires_at: k.and_then(|k| k.expires_at).map(crate::views::time),
            ratelimit: rate.map(|d| RateLimitView { limit: d.limit, remaining: d.remaining, reset: d.reset_seconds }),
            usage_remaining: k.and_then(|k| usage_remaining.or_else(|| k.usage_remaining())),
        }
    }
}
