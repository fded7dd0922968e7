//! What the management API's handlers share: path extraction with the contract's 404, the
//! `?account_id=` query, PATCH's `null`-or-absent fields and the OpenAPI error shape. The input
//! rules the services also need (ids, URLs, field errors) are `service::input`'s.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use keygate_core::id::IdKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::service::input::check_id;

/// Path segments. A segment that cannot even be decoded answers 404 (like an unknown id), in
/// the contract's shape rather than axum's plain text.
#[derive(Debug, Clone)]
pub(crate) struct PathIds<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathIds<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(t)| PathIds(t)).map_err(|_| ApiError::not_found())
    }
}

/// `?account_id=` for account-scoped calls made with a session token.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountQuery {
    /// The account to act in (sessions only; an API key carries its own).
    pub(crate) account_id: Option<String>,
}

/// Checks the shape of an `account_id` from a query or body: malformed → 404.
pub(crate) fn check_account_param(account_id: Option<&str>) -> Result<(), ApiError> {
    match account_id {
        Some(a) => check_id(IdKind::Account, a),
        None => Ok(()),
    }
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent: lets a PATCH clear a field.
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The OpenAPI shape of every error answer (docs/api.md §3 Errors).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    /// `{code, message, user_message?, details?}`
    #[schema(value_type = Object)]
    pub(crate) error: serde_json::Value,
    pub(crate) request_id: String,
}
