//! The JSON shapes of docs/api.md §4 Management API, built from store rows. Times are RFC 3339 UTC,
//! millisecond precision. Nothing secret is ever part of a view except the one-time `key`/`token`
//! fields of creation responses, which are added by the handlers that create them.

use chrono::{DateTime, SecondsFormat, Utc};
use keygate_core::RateLimit;
use keygate_store as store;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

/// `{"items": […], "next_cursor": null|"…"}`
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListView<T: Serialize> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

impl<T: Serialize> ListView<T> {
    pub(crate) fn from_page<S>(page: store::Page<S>, f: impl Fn(S) -> T) -> Self {
        ListView { items: page.items.into_iter().map(f).collect(), next_cursor: page.next_cursor }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MembershipView {
    pub(crate) account_id: String,
    pub(crate) account_name: String,
    #[schema(value_type = String, example = "owner")]
    pub(crate) authority: keygate_core::Authority,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) created_at: String,
    pub(crate) memberships: Vec<MembershipView>,
}

impl UserView {
    pub(crate) fn new(u: &store::User, memberships: Vec<store::UserMembership>) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            created_at: time(u.created_at),
            memberships: memberships
                .into_iter()
                .map(|m| MembershipView {
                    account_id: m.account_id,
                    account_name: m.account_name,
                    authority: m.authority,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) url: Option<String>,
    pub(crate) plan: String,
    pub(crate) api_access: bool,
    pub(crate) trial_ends_at: Option<String>,
    pub(crate) created_at: String,
    /// The limits the account lives under: its plan's with the operator's overrides applied.
    pub(crate) limits: crate::plans::EffectiveLimits,
    /// The caller's authority in the account, when listed under a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) authority: Option<keygate_core::Authority>,
}

impl AccountView {
    pub(crate) fn new(a: &store::Account, plans: &crate::plans::Plans) -> Self {
        AccountView {
            id: a.id.clone(),
            name: a.name.clone(),
            url: a.url.clone(),
            plan: a.plan.clone(),
            api_access: plans.access(a, Utc::now()).api_access,
            trial_ends_at: opt_time(a.trial_ends_at),
            created_at: time(a.created_at),
            limits: plans.limits(a),
            authority: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberView {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    #[schema(value_type = String)]
    pub(crate) authority: keygate_core::Authority,
    pub(crate) created_at: String,
}

impl From<store::Member> for MemberView {
    fn from(m: store::Member) -> Self {
        MemberView {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            authority: m.authority,
            created_at: time(m.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RoleView {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) name: String,
    pub(crate) permissions: Vec<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<store::Role> for RoleView {
    fn from(r: store::Role) -> Self {
        RoleView {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            permissions: r.permissions,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RateLimitView {
    pub(crate) limit: u32,
    pub(crate) window_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) burst: Option<u32>,
}

impl From<RateLimit> for RateLimitView {
    fn from(r: RateLimit) -> Self {
        RateLimitView { limit: r.limit, window_seconds: r.window_seconds, burst: r.burst }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    pub(crate) id: String,
    pub(crate) key_part: String,
    pub(crate) class: String,
    pub(crate) name: String,
    pub(crate) account_id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) authority: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) role_id: Option<String>,
    /// active | inactive | expired | revoked
    pub(crate) status: String,
    pub(crate) created_at: String,
    pub(crate) created_by: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) starts_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) last_used_at: Option<String>,
    pub(crate) last_used_ip: Option<String>,
    /// Every request made with the key, refused ones too (docs/api.md, Usage)
    pub(crate) request_count: i64,
    /// The granted ones (verify code VALID)
    pub(crate) success_count: i64,
    pub(crate) usage_limit: Option<i64>,
    /// Credits left now (a refill due since the last use included).
    pub(crate) usage_remaining: Option<i64>,
    /// `{amount, interval: "day" | "month"}`: at each start of the interval (UTC) the credits
    /// left become `amount`.
    #[schema(value_type = Option<Object>)]
    pub(crate) refill: Option<keygate_core::Refill>,
    /// The unnamed limit (the plan's per-key default applies when null).
    pub(crate) rate_limit: Option<RateLimitView>,
    /// Named limits `[{name, limit, window_seconds, burst?}]`, each on top of `rate_limit`.
    #[schema(value_type = Vec<Object>)]
    pub(crate) rate_limits: Vec<keygate_core::NamedRateLimit>,
    pub(crate) ip_allowlist: Vec<String>,
    #[schema(value_type = Object)]
    pub(crate) metadata: Value,
    /// The successor's id once the key was rolled (a key is rolled once; docs/api.md §7 Keys)
    pub(crate) rolled_to: Option<String>,
}

impl KeyView {
    pub(crate) fn new(k: store::ApiKey, now: DateTime<Utc>) -> Self {
        KeyView {
            status: k.status(now).as_str().to_owned(),
            usage_remaining: k.usage_remaining_at(now),
            id: k.id,
            key_part: k.key_part,
            class: k.class.as_str().to_owned(),
            name: k.name,
            account_id: k.account_id,
            user_id: k.user_id,
            authority: k.authority.as_str().to_owned(),
            scopes: k.scopes,
            role_id: k.role_id,
            created_at: time(k.created_at),
            created_by: k.created_by,
            expires_at: opt_time(k.expires_at),
            starts_at: opt_time(k.starts_at),
            revoked_at: opt_time(k.revoked_at),
            last_used_at: opt_time(k.last_used_at),
            last_used_ip: k.last_used_ip,
            request_count: k.request_count,
            success_count: k.success_count,
            usage_limit: k.usage_limit,
            refill: k.refill,
            rate_limit: k.rate_limit.map(Into::into),
            rate_limits: k.rate_limits,
            ip_allowlist: k.ip_allowlist,
            metadata: k.metadata,
            rolled_to: k.rolled_to,
        }
    }
}

/// A key with its secret: only in the answer that creates it (mint, roll).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedKeyView {
    /// The full key. Shown this once; keygate keeps only its SHA-256 digest.
    pub(crate) key: String,
    #[serde(flatten)]
    pub(crate) view: KeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEntryView {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) at: String,
    pub(crate) account_id: String,
    #[schema(value_type = Object)]
    pub(crate) actor: store::Actor,
    pub(crate) action: String,
    #[schema(value_type = Object)]
    pub(crate) target: Value,
    pub(crate) ip: Option<String>,
    #[schema(value_type = Object)]
    pub(crate) details: Value,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl From<store::AuditEntry> for AuditEntryView {
    fn from(e: store::AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            seq: e.seq,
            at: time(e.at),
            account_id: e.account_id,
            actor: e.actor,
            action: e.action,
            target: serde_json::json!({ "type": e.target_type, "id": e.target_id }),
            ip: e.ip,
            details: e.details,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}
