//! Reading the audit log, shared by `GET /v1/audit` and the dashboard's Audit log page.
//!
//! Who may read: a session or a user key of an administrator+ (a user key also needs the scope
//! `audit:read`), or an org key whose scopes include `audit:read` (a `*:read` key does).

use keygate_core::{Authority, CredentialKind};
use keygate_store::{AuditEntry, AuditFilter, Page, PageRequest};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn require_reader(caller: &Caller) -> ApiResult<()> {
    match caller.kind {
        CredentialKind::Session => caller.require_authority(Authority::Administrator),
        CredentialKind::OrgKey => caller.require_scope("audit", "read"),
        CredentialKind::UserKey => {
            caller.require_scope("audit", "read")?;
            caller.require_authority(Authority::Administrator)
        }
    }
}

/// Entries newest first; `action` is an action (`key.created`) or a family (`member.*`),
/// `actor` a user or key id.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    action: Option<String>,
    actor: Option<String>,
    page: &PageRequest,
) -> ApiResult<Page<AuditEntry>> {
    require_reader(caller)?;
    let bounded = |field: &str, v: Option<String>| -> ApiResult<Option<String>> {
        match v {
            Some(s) if s.is_empty() || s.len() > 100 => {
                Err(ApiError::invalid_field(field, "must be 1 to 100 characters"))
            }
            other => Ok(other),
        }
    };
    let filter = AuditFilter { action: bounded("action", action)?, actor: bounded("actor", actor)? };
    Ok(state.store.list_audit(&caller.account.id, &filter, page).await?)
}
