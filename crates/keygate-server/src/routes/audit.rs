//! The audit log (SPEC §4): read newest first, and verify the hash chain.
//!
//! Who may read: a session or a user key of an administrator+ (a user key also needs the scope
//! `audit:read`), or an org key whose scopes include `audit:read` (a `*:read` key does).

use axum::extract::State;
use keygate_core::audit::GENESIS;
use keygate_store::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::common::{AccountQuery, ErrorBody, check_account_param};
use crate::auth::{Caller, Principal};
use crate::error::ApiResult;
use crate::extract::{Query, page_request};
use crate::service::audit as service;
use crate::state::AppState;
use crate::views::{AuditEntryView, ListView};

/// Entries read per storage round trip while verifying.
const VERIFY_BATCH: u32 = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify_audit))
}

async fn audit_reader(state: &AppState, principal: &Principal, account_id: Option<&str>) -> ApiResult<Caller> {
    check_account_param(account_id)?;
    let caller = principal.in_account(state, account_id).await?;
    service::require_reader(&caller)?;
    Ok(caller)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The account (sessions only; an API key reads its own).
    pub account_id: Option<String>,
    /// An action (`key.created`), or a family ending in `.*` (`member.*`).
    pub action: Option<String>,
    /// A user id or key id that acted.
    pub actor: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The account's audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(AuditQuery), responses(
    (status = 200, description = "`{items: [entry…], next_cursor}`", body = inline(ListView<AuditEntryView>)),
    (status = 400, description = "account_id_required or invalid_request", body = ErrorBody),
    (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<ListView<AuditEntryView>>> {
    let caller = audit_reader(&state, &principal, q.account_id.as_deref()).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = service::list(&state, &caller, q.action, q.actor, &page).await?;
    Ok(axum::Json(ListView::from_page(found, AuditEntryView::from)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// Whether every entry's hash, its link to the previous entry and the sequence hold.
    pub valid: bool,
    /// Entries checked (up to and including the first broken one).
    pub entries_checked: u64,
    /// The seq of the first entry that does not hold, when `valid` is false.
    pub first_invalid_seq: Option<i64>,
}

/// Checks one entry against the previous hash and the expected seq.
fn entry_holds(e: &AuditEntry, prev_hash: &str, expected_seq: i64) -> bool {
    e.seq == expected_seq && e.prev_hash == prev_hash && e.expected_hash(prev_hash).as_deref() == Some(e.hash.as_str())
}

/// Recomputes the account's whole hash chain.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(AccountQuery), responses(
    (status = 200, description = "`{valid, entries_checked, first_invalid_seq}`", body = AuditVerification),
    (status = 400, description = "account_id_required", body = ErrorBody),
    (status = 403, description = "insufficient_authority or insufficient_scope", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AccountQuery>,
) -> ApiResult<axum::Json<AuditVerification>> {
    let caller = audit_reader(&state, &principal, q.account_id.as_deref()).await?;
    let account_id = &caller.account.id;
    let mut prev_hash = GENESIS.to_owned();
    let mut last_seq = 0i64;
    let mut checked = 0u64;
    loop {
        let batch = state.store.audit_chain(account_id, last_seq, VERIFY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let full = batch.len() == VERIFY_BATCH as usize;
        for e in batch {
            checked += 1;
            if e.account_id != *account_id || !entry_holds(&e, &prev_hash, last_seq + 1) {
                tracing::warn!(account_id = %account_id, seq = e.seq, "audit chain does not verify");
                return Ok(axum::Json(AuditVerification {
                    valid: false,
                    entries_checked: checked,
                    first_invalid_seq: Some(e.seq),
                }));
            }
            last_seq = e.seq;
            prev_hash = e.hash;
        }
        if !full {
            break;
        }
    }
    Ok(axum::Json(AuditVerification { valid: true, entries_checked: checked, first_invalid_seq: None }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::audit::{ChainedFields, entry_hash};
    use keygate_store::{Actor, ActorType};
    use serde_json::json;

    fn chained(prev: &str, seq: i64) -> AuditEntry {
        let mut e = AuditEntry {
            id: format!("aud_{seq}"),
            seq,
            at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + seq).expect("time"),
            account_id: "acc_1".into(),
            actor: Actor { kind: ActorType::User, user_id: Some("usr_1".into()), key_id: None },
            action: "role.created".into(),
            target_type: "role".into(),
            target_id: "rol_1".into(),
            ip: Some("127.0.0.1".into()),
            details: json!({ "name": "x" }),
            prev_hash: prev.to_owned(),
            hash: String::new(),
        };
        let actor = serde_json::to_value(&e.actor).expect("actor");
        let target = json!({ "type": e.target_type, "id": e.target_id });
        e.hash = entry_hash(
            prev,
            &ChainedFields {
                id: &e.id,
                seq,
                at: e.at.timestamp_millis(),
                account_id: &e.account_id,
                actor: &actor,
                action: &e.action,
                target: &target,
                ip: e.ip.as_deref(),
                details: &e.details,
            },
        );
        e
    }

    #[test]
    fn a_chain_holds_and_any_change_breaks_it() {
        let a = chained(GENESIS, 1);
        let b = chained(&a.hash, 2);
        assert!(entry_holds(&a, GENESIS, 1));
        assert!(entry_holds(&b, &a.hash, 2));
        assert!(!entry_holds(&b, GENESIS, 2), "wrong link");
        assert!(!entry_holds(&b, &a.hash, 3), "gap in seq");
        let mut tampered = b.clone();
        tampered.details = json!({ "name": "y" });
        assert!(!entry_holds(&tampered, &a.hash, 2));
    }
}
