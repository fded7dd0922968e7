//! What the identity half of the management API shares: id checks, path extraction with the
//! contract's 404, field validation and small response shapes.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use keygate_core::id::{IdKind, looks_like};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Path segments. A segment that cannot even be decoded answers 404 (like an unknown id), in
/// the contract's shape rather than axum's plain text.
#[derive(Debug, Clone)]
pub struct PathIds<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathIds<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(t)| PathIds(t)).map_err(|_| ApiError::not_found())
    }
}

/// A malformed id is answered 404 at once, without asking storage.
pub fn check_id(kind: IdKind, id: &str) -> Result<(), ApiError> {
    if looks_like(kind, id) { Ok(()) } else { Err(ApiError::not_found()) }
}

/// `?account_id=` for account-scoped calls made with a session token.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// The account to act in (sessions only; an API key carries its own).
    pub account_id: Option<String>,
}

/// Checks the shape of an `account_id` from a query or body: malformed → 404.
pub fn check_account_param(account_id: Option<&str>) -> Result<(), ApiError> {
    match account_id {
        Some(a) => check_id(IdKind::Account, a),
        None => Ok(()),
    }
}

/// Collects field problems so one answer lists all of them (`details`).
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary = self.0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ");
        let mut e = ApiError::invalid_request(format!("Invalid request: {summary}."));
        e.details = Some(json!(self.0.iter().map(|(f, m)| json!({ "field": f, "message": m })).collect::<Vec<_>>()));
        Err(e)
    }
}

/// An account's website: an `http(s)://` URL or a bare host with a company domain, at most
/// 2048 characters, no spaces or control characters. Answers it trimmed.
pub fn parse_url(raw: &str) -> Result<String, &'static str> {
    let url = raw.trim();
    let scheme_ok = match url.split_once("://") {
        Some((scheme, _)) => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
        None => true,
    };
    if url.is_empty()
        || url.len() > 2048
        || !scheme_ok
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
        || keygate_core::validate::company_domain(url).is_none()
    {
        return Err("must be an http(s) URL or a domain such as https://acme.com");
    }
    Ok(url.to_owned())
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent: lets a PATCH clear a field.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The OpenAPI shape of every error answer (SPEC §3).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// `{code, message, user_message?, details?}`
    #[schema(value_type = Object)]
    pub error: serde_json::Value,
    pub request_id: String,
}
