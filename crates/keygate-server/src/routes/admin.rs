//! The operator API (docs/api.md §4 Operator API): `/v1/admin/…` with the deployment's
//! `admin_token`.
//!
//! The token is compared in constant time (SHA-256 of both sides, then `subtle`), so neither
//! its content nor its length leaks through timing. With no `admin_token` configured the
//! operator API does not exist: every path answers 404. What the operator may do is
//! `service::operator`'s, which `keygate admin` calls too.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{ErrorBody, PathIds, double_option};
use crate::auth::headers::{Presented, presented};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, Query, page_request};
use crate::service::operator;
use crate::state::AppState;
use crate::views::{AccountView, ListView};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_accounts)).routes(routes!(set_plan))
}

/// The operator, authenticated by `Authorization: Bearer <admin_token>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

fn token_matches(sent: &str, expected: &str) -> bool {
    let a = Sha256::digest(sent.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = state.settings.admin_token.expose_secret();
        if expected.is_empty() {
            return Err(ApiError::not_found());
        }
        // Only the Authorization header: an operator token is not an API key.
        let sent = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => return Err(ApiError::missing_credentials()),
            Some(_) => match presented(&parts.headers) {
                Presented::Credential(c) => c,
                Presented::None => return Err(ApiError::missing_credentials()),
                Presented::Malformed => return Err(ApiError::invalid_credentials()),
            },
        };
        if token_matches(sent, expected) {
            Ok(Operator)
        } else {
            tracing::debug!("operator API: wrong token");
            Err(ApiError::invalid_credentials())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminListQuery {
    /// 1–100, default 50.
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// Every account of the deployment, newest first.
#[utoipa::path(get, path = "/v1/admin/accounts", tag = "operator", security(("bearer" = [])), params(AdminListQuery), responses(
    (status = 200, description = "`{items: [account…], next_cursor}`", body = inline(ListView<AccountView>)),
    (status = 401, description = "missing_credentials or invalid_credentials (wrong operator token)", body = ErrorBody),
    (status = 404, description = "the operator API is disabled (no admin_token)", body = ErrorBody),
))]
async fn list_accounts(
    State(state): State<AppState>,
    _: Operator,
    Query(q): Query<AdminListQuery>,
) -> ApiResult<axum::Json<ListView<AccountView>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = operator::list_accounts(&state.services, &page).await?;
    Ok(axum::Json(ListView::from_page(found, |a| AccountView::new(&a, &state.services.plans))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetAccountBody {
    /// One of the plans under `[plans.*]` in the configuration.
    #[schema(example = "trial")]
    pub(crate) plan: Option<String>,
    /// Overrides of the plan's limits for this account; each `null` removes that override.
    pub(crate) overrides: Option<OverridesBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverridesBody {
    /// Replaces the plan's account-wide `rate_limits` (the whole list; `[]`: none).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) rate_limits: Option<Option<Vec<keygate_core::NamedRateLimit>>>,
    /// `{requests, period: "day" | "month"}`, replaces the plan's quota.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub(crate) quota: Option<Option<keygate_core::Quota>>,
    /// Replaces the plan's `max_keys`.
    #[serde(default, deserialize_with = "double_option")]
    pub(crate) max_keys: Option<Option<u32>>,
}

/// Sets an account's plan and/or overrides of its limits. The account's keys follow at once.
#[utoipa::path(patch, path = "/v1/admin/accounts/{id}", tag = "operator", security(("bearer" = [])),
    params(("id" = String, Path, description = "account id (`acc_…`)")),
    request_body = SetAccountBody,
    responses(
        (status = 200, description = "the account, with its effective `limits`", body = AccountView),
        (status = 400, description = "invalid_request: not a configured plan, an invalid override, or nothing to change", body = ErrorBody),
        (status = 401, description = "missing_credentials or invalid_credentials", body = ErrorBody),
        (status = 404, description = "not_found (or the operator API is disabled)", body = ErrorBody),
    ))]
async fn set_plan(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    _: Operator,
    PathIds(id): PathIds<String>,
    Json(body): Json<SetAccountBody>,
) -> ApiResult<axum::Json<AccountView>> {
    let input = operator::AccountLimitsInput {
        plan: body.plan,
        overrides: body.overrides.map(|o| operator::OverridesInput {
            rate_limits: o.rate_limits,
            quota: o.quota,
            max_keys: o.max_keys,
            clear: false,
        }),
    };
    let account = operator::set_limits(&state.services, Some(ip), &id, input).await?;
    Ok(axum::Json(AccountView::new(&account, &state.services.plans)))
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches("s3cret-operator-token", "s3cret-operator-token"));
        assert!(!token_matches("s3cret-operator-toke", "s3cret-operator-token"));
        assert!(!token_matches("", "s3cret-operator-token"));
    }
}
