//! One error type for every HTTP answer that is not a success, rendered in the docs/api.md §3
//! Errors shape: `{"error": {"code", "message", "user_message"?, "details"?}, "request_id"}`.
//! 5xx bodies stay opaque; their cause is logged with the request id.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_core::ratelimit::Decision;
use keygate_store::{Conflict, StoreError};
use serde_json::{Value, json};

use crate::request_id;

/// An error answer. Boxed: handlers, extractors and the authenticator pass it up inside
/// `Result`s, and an inline error (≥ 136 bytes) would make every such `Result` — and every
/// future holding one — that large on the success path too. Its fields read through `Deref`.
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorFields>);

/// What an `ApiError` says (see `ApiError`).
#[derive(Debug, Clone)]
pub struct ErrorFields {
    pub(crate) status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub(crate) user_message: Option<Cow<'static, str>>,
    pub details: Option<Value>,
    /// Set on rate-limit answers: `Retry-After` and `RateLimit-*` headers.
    pub(crate) rate: Option<Decision>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl std::ops::Deref for ApiError {
    type Target = ErrorFields;

    fn deref(&self) -> &ErrorFields {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorFields {
        &mut self.0
    }
}

macro_rules! simple {
    ($($fn:ident => $status:ident, $code:literal, $msg:literal;)*) => {
        $(pub fn $fn() -> Self { Self::new(StatusCode::$status, $code, $msg) })*
    };
}

impl ApiError {
    /// Each field problem of `details` (`[{field, message}]`) as (field, message), for the
    /// front ends that word them their own way (the dashboard's labels, the shell's flags).
    pub fn field_problems(&self) -> impl Iterator<Item = (&str, &str)> {
        self.details
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| Some((i["field"].as_str()?, i["message"].as_str()?)))
    }

    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError(Box::new(ErrorFields {
            status,
            code,
            message: message.into(),
            user_message: None,
            details: None,
            rate: None,
        }))
    }

    simple! {
        missing_credentials => UNAUTHORIZED, "missing_credentials", "No credentials were sent: use X-API-Key or Authorization: Bearer.";
        invalid_credentials => UNAUTHORIZED, "invalid_credentials", "The credentials are not valid.";
        api_key_revoked => UNAUTHORIZED, "api_key_revoked", "This API key was revoked.";
        api_key_expired => UNAUTHORIZED, "api_key_expired", "This API key has expired.";
        api_key_inactive => UNAUTHORIZED, "api_key_inactive", "This API key is not active yet.";
        session_expired => UNAUTHORIZED, "session_expired", "The session has expired or was ended; sign in again.";
        login_error => UNAUTHORIZED, "login_error", "The email or password is wrong.";
        account_id_required => BAD_REQUEST, "account_id_required", "This call needs an account: pass account_id (or X-Account-Id at the gateway).";
        user_credential_required => FORBIDDEN, "user_credential_required", "This endpoint acts for a user: use a user key or a session token, not an org key.";
        insufficient_authority => FORBIDDEN, "insufficient_authority", "Your authority in this account is too low for this action.";
        plan_required => FORBIDDEN, "plan_required", "The account's plan does not include API access.";
        ip_not_allowed => FORBIDDEN, "ip_not_allowed", "This API key may not be used from this address.";
        not_found => NOT_FOUND, "not_found", "No such resource.";
        method_not_allowed => METHOD_NOT_ALLOWED, "method_not_allowed", "This method is not allowed on this path.";
        key_revoked => CONFLICT, "key_revoked", "This API key was revoked; a revoked key cannot be changed.";
        key_rolled => CONFLICT, "key_rolled", "This API key was already rolled: it has a successor, and a key is rolled once.";
        last_owner => CONFLICT, "last_owner", "The account's last owner cannot leave or be demoted; promote another owner first.";
        key_limit_reached => CONFLICT, "key_limit_reached", "The account's plan allows no more live API keys; revoke one first.";
        payload_too_large => PAYLOAD_TOO_LARGE, "payload_too_large", "The request body is larger than allowed.";
        usage_exceeded => TOO_MANY_REQUESTS, "usage_exceeded", "This API key's usage limit is spent.";
        unavailable => SERVICE_UNAVAILABLE, "unavailable", "The service cannot reach its storage right now; try again shortly.";
        upstream_unavailable => BAD_GATEWAY, "upstream_unavailable", "The upstream API could not be reached.";
        upstream_timeout => GATEWAY_TIMEOUT, "upstream_timeout", "The upstream API did not answer in time.";
        signup_disabled => FORBIDDEN, "signup_disabled", "Sign-up is disabled on this deployment.";
    }

    pub(crate) fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 with `details: [{field, message}]`.
    pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::invalid_request(format!("{field}: {message}"));
        e.details = Some(json!([{ "field": field, "message": message }]));
        e
    }

    pub(crate) fn insufficient_scope(required: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("The credential's permissions do not include `{required}`."),
        )
    }

    /// 400: a key's rate limit looser than the plan's ceiling (docs/api.md §7 Keys).
    pub(crate) fn limit_exceeds_plan(ceiling: &keygate_core::RateLimit) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "limit_exceeds_plan",
            format!(
                "rate_limit is looser than the account's plan allows: at most {} requests per {} s, burst {}.",
                ceiling.limit,
                ceiling.window_seconds,
                ceiling.burst()
            ),
        );
        e.details = Some(json!([{ "field": "rate_limit", "message": "looser than the plan's key_rate_limit_max" }]));
        e
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub(crate) fn rate_limited(decision: Decision) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; retry after the time in Retry-After.",
        );
        e.rate = Some(decision);
        e
    }

    /// The account's plan quota is spent: `Retry-After` until its period resets, and the
    /// quota's numbers in `RateLimit-*` (`limits::QuotaDecision::as_rate`).
    pub(crate) fn quota_exceeded(quota: keygate_core::ratelimit::Decision) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            "The account's request quota for this period is spent; retry after the time in Retry-After.",
        );
        e.rate = Some(quota);
        e
    }

    pub(crate) fn login_throttled(retry_after_seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many sign-in attempts; retry after the time in Retry-After.",
        );
        e.rate = Some(Decision {
            allowed: false,
            limit: 0,
            remaining: 0,
            reset_seconds: retry_after_seconds,
            retry_after_seconds: retry_after_seconds.max(1),
        });
        e
    }

    pub(crate) fn with_user_message(mut self, m: impl Into<Cow<'static, str>>) -> Self {
        self.user_message = Some(m.into());
        self
    }

    /// An unexpected failure: logged here with its cause, answered as an opaque 500.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %request_id::current(), error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side.")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use keygate_core::authority::MemberRuleViolation as V;
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(Conflict::Email) => {
                ApiError::conflict("email_taken", "An account with this email already exists.")
            }
            StoreError::Conflict(Conflict::Domain) => {
                ApiError::conflict("domain_taken", "An account for this company domain already exists.")
                    .with_user_message(
                        "Your company already uses this service: ask one of its administrators to invite you.",
                    )
            }
            StoreError::Conflict(Conflict::KeyRevoked) => ApiError::key_revoked(),
            StoreError::Conflict(Conflict::KeyRolled) => ApiError::key_rolled(),
            StoreError::Conflict(Conflict::Member) => {
                ApiError::conflict("member_exists", "This user is already a member of the account.")
            }
            StoreError::Conflict(Conflict::RoleName) => {
                ApiError::conflict("role_name_taken", "A role with this name already exists in the account.")
            }
            StoreError::Conflict(other @ Conflict::KeyPart) => {
                ApiError::conflict("conflict", format!("Conflict on {other}."))
            }
            StoreError::Rule(V::InsufficientAuthority) => ApiError::insufficient_authority(),
            StoreError::Rule(V::LastOwner) => ApiError::last_owner(),
            StoreError::KeyLimitReached => ApiError::key_limit_reached(),
            StoreError::Unavailable(cause) => {
                tracing::warn!(request_id = %request_id::current(), %cause, "storage unavailable");
                ApiError::unavailable()
            }
            StoreError::Other(cause) => ApiError::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(m) = &self.user_message {
            error["user_message"] = json!(m);
        }
        if let Some(d) = &self.details {
            error["details"] = d.clone();
        }
        let body = json!({ "error": error, "request_id": request_id::current() });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(d) = self.rate {
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_seconds.max(1)));
            if d.limit > 0 {
                insert_rate_headers(h, &d);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// `RateLimit-Limit`, `-Remaining` and `-Reset` of a decision: on every gateway answer, on
/// verify's, and on a 429 (docs/api.md §5 Gateway).
pub fn insert_rate_headers(h: &mut HeaderMap, d: &Decision) {
    h.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    h.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    h.insert(RATELIMIT_RESET, HeaderValue::from(d.reset_seconds));
}
