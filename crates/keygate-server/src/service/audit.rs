//! Reading the audit log, shared by `GET /v1/audit` and the dashboard's Audit log page, and
//! verifying its hash chain (`GET /v1/audit/verify`).
//!
//! Who may read: a session or a user key of an administrator+ (a user key also needs the scope
//! `audit:read`), or an org key whose scopes include `audit:read` (a `*:read` key does).

use keygate_core::audit::GENESIS;
use keygate_core::{Authority, CredentialKind};
use keygate_store::{AuditEntry, AuditFilter, Page, PageRequest};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::service::Services;

/// Entries read per storage round trip while verifying.
const VERIFY_BATCH: u32 = 500;

pub(crate) fn require_reader(caller: &Caller) -> ApiResult<()> {
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
pub(crate) async fn list(
    svc: &Services,
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
    Ok(svc.store.list_audit(&caller.account.id, &filter, page).await?)
}

/// What a walk over the hash chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainCheck {
    /// Whether every entry's hash, its link to the previous entry and the sequence hold.
    pub(crate) valid: bool,
    /// Entries checked (up to and including the first broken one).
    pub(crate) entries_checked: u64,
    /// The seq of the first entry that does not hold, when `valid` is false.
    pub(crate) first_invalid_seq: Option<i64>,
}

/// Checks one entry against the previous hash and the expected seq.
fn entry_holds(e: &AuditEntry, prev_hash: &str, expected_seq: i64) -> bool {
    e.seq == expected_seq && e.prev_hash == prev_hash && e.expected_hash(prev_hash).as_deref() == Some(e.hash.as_str())
}

/// Recomputes the caller's account's whole hash chain, in batches, stopping at the first
/// entry that does not hold.
pub(crate) async fn verify_chain(svc: &Services, caller: &Caller) -> ApiResult<ChainCheck> {
    require_reader(caller)?;
    let account_id = &caller.account.id;
    let mut prev_hash = GENESIS.to_owned();
    let mut last_seq = 0i64;
    let mut checked = 0u64;
    loop {
        let batch = svc.store.audit_chain(account_id, last_seq, VERIFY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let full = batch.len() == VERIFY_BATCH as usize;
        for e in batch {
            checked += 1;
            if e.account_id != *account_id || !entry_holds(&e, &prev_hash, last_seq + 1) {
                tracing::warn!(account_id = %account_id, seq = e.seq, "audit chain does not verify");
                return Ok(ChainCheck { valid: false, entries_checked: checked, first_invalid_seq: Some(e.seq) });
            }
            last_seq = e.seq;
            prev_hash = e.hash;
        }
        if !full {
            break;
        }
    }
    Ok(ChainCheck { valid: true, entries_checked: checked, first_invalid_seq: None })
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
