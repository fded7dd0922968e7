//! `trait Store`: the one seam between keygate and its database. Handlers and the authenticator
//! hold an `Arc<dyn Store>`; SQLite and PostgreSQL implement it with the same behaviour, which
//! `tests/conformance.rs` checks on both.
//!
//! Rules every implementation keeps:
//! - every method that changes something and takes `audit` appends those entries (hash-chained
//!   per account) in the same transaction as the change; nothing is half written;
//! - lookups of account-owned rows take the `account_id` and answer `NotFound` for rows of
//!   another account (BOLA safety lives here as well as in the handlers);
//! - soft-deleted accounts are invisible to every lookup.

use async_trait::async_trait;
use keygate_core::Authority;

use crate::error::StoreResult;
use crate::model::*;
use crate::usage::*;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip: `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // ---- users and sessions ----

    /// Creates the user, their default account and the owner membership, plus `audit`
    /// (`user.registered` in the new account). `Conflict::Email` / `Conflict::Domain`.
    async fn register(&self, user: User, account: Account, audit: Vec<NewAudit>) -> StoreResult<()>;
    /// Case-insensitive: callers pass the normalised (lower-case) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, user_id: &str) -> StoreResult<Option<User>>;
    async fn update_user_name(&self, user_id: &str, name: &str, audit: Vec<NewAudit>) -> StoreResult<User>;
    /// Sets the new hash, revokes every session of the user, creates `new_session`, one transaction.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        new_session: Session,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()>;
    /// The user's accounts (not deleted), oldest membership first.
    async fn user_memberships(&self, user_id: &str) -> StoreResult<Vec<UserMembership>>;

    async fn create_session(&self, session: Session, audit: Vec<NewAudit>) -> StoreResult<()>;
    /// The session (revoked or not) and its user.
    async fn session_by_digest(&self, digest: &str) -> StoreResult<Option<SessionAuth>>;
    async fn touch_session(&self, session_id: &str, at: Time) -> StoreResult<()>;
    async fn revoke_session(&self, session_id: &str, at: Time) -> StoreResult<()>;

    // ---- accounts ----

    /// Creates the account with `owner_user_id` as owner. `Conflict::Domain`.
    async fn create_account(&self, account: Account, owner_user_id: &str, audit: Vec<NewAudit>) -> StoreResult<()>;
    async fn account_by_id(&self, account_id: &str) -> StoreResult<Option<Account>>;
    async fn update_account(
        &self,
        account_id: &str,
        name: Option<&str>,
        url: Option<Option<&str>>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account>;
    /// Soft delete: the account and everything in it disappear from every lookup; the audit log stays.
    async fn delete_account(&self, account_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<()>;
    async fn set_plan(&self, account_id: &str, plan: &str, audit: Vec<NewAudit>) -> StoreResult<Account>;
    /// The operator's change of an account's limits, one write: `plan` when given, and the
    /// limit overrides when given (replacing the stored ones; empty = none). `NotFound`.
    async fn set_account_limits(
        &self,
        account_id: &str,
        plan: Option<&str>,
        overrides: Option<&LimitOverrides>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account>;
    /// Every account (operator view), newest first.
    async fn list_accounts(&self, page: &PageRequest) -> StoreResult<Page<Account>>;

    // ---- members ----

    async fn membership(&self, account_id: &str, user_id: &str) -> StoreResult<Option<Membership>>;
    async fn list_members(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Member>>;
    /// `Conflict::Member` when already a member.
    async fn add_member(
        &self,
        account_id: &str,
        user_id: &str,
        authority: Authority,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member>;
    /// Reads the target's authority and the owner count inside the transaction and applies
    /// `keygate_core::authority::may_change(actor, current, new, owners)`; `Rule(..)` when refused.
    async fn change_member_authority(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        new: Authority,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member>;
    /// Same, with `keygate_core::authority::may_remove(actor, target, is_self, owners)`.
    async fn remove_member(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        is_self: bool,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()>;

    // ---- data roles ----

    /// `Conflict::RoleName` for a duplicate name in the account.
    async fn create_role(&self, role: Role, audit: Vec<NewAudit>) -> StoreResult<()>;
    async fn role(&self, account_id: &str, role_id: &str) -> StoreResult<Option<Role>>;
    async fn list_roles(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Role>>;
    async fn update_role(
        &self,
        account_id: &str,
        role_id: &str,
        name: Option<&str>,
        permissions: Option<&[String]>,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Role>;
    /// Keys that referenced the role keep the reference and get no permissions (fail closed).
    async fn delete_role(&self, account_id: &str, role_id: &str, audit: Vec<NewAudit>) -> StoreResult<()>;

    // ---- API keys ----

    /// Inserts the key. With `max_live_keys`, counts the account's keys that are not revoked
    /// or expired inside the transaction and answers `KeyLimitReached` when full.
    async fn create_key(&self, key: NewKey, max_live_keys: Option<u32>, audit: Vec<NewAudit>) -> StoreResult<ApiKey>;
    /// By `id` (`key_…`) or `key_part`, within the account.
    async fn key_by_handle(&self, account_id: &str, handle: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(
        &self,
        account_id: &str,
        filter: &KeyFilter,
        now: Time,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>>;
    /// `Conflict::KeyRevoked` on a revoked key.
    async fn update_key(
        &self,
        account_id: &str,
        key_id: &str,
        patch: &KeyPatch,
        audit: Vec<NewAudit>,
    ) -> StoreResult<ApiKey>;
    /// Sets `revoked_at` (kept when already revoked) and answers the key.
    async fn revoke_key(&self, account_id: &str, key_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<ApiKey>;
    /// Inserts `successor` and ends the old key: revoked at `at` when `old_expires_at` is `None`,
    /// otherwise its `expires_at` becomes the earlier of the two, and its `rolled_to` names the
    /// successor. A key is rolled once: `Conflict::KeyRolled` when it already has a successor
    /// (of concurrent rolls exactly one wins), `Conflict::KeyRevoked` when revoked.
    /// Credits are handed over, never refilled: the successor starts with the old key's
    /// `usage_used`; an old key kept through an overlap has none left.
    /// Answers (successor, old key).
    async fn roll_key(
        &self,
        account_id: &str,
        key_id: &str,
        successor: NewKey,
        old_expires_at: Option<Time>,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<(ApiKey, ApiKey)>;
    /// The hot path's one read on a cache miss: the key with its role, account and the
    /// user's membership, by digest.
    async fn key_auth_by_digest(&self, digest: &str) -> StoreResult<Option<KeyAuth>>;
    /// Atomically spends `cost` units of the key's `usage_limit`: answers the remaining units,
    /// or `None` when that would exceed the limit (nothing spent). Exact under concurrency,
    /// across nodes too. Keys without a limit answer `Some(i64::MAX)`. A refill due at `now`
    /// (a period boundary passed since `refilled_at`) happens in the same write.
    async fn consume_usage(&self, key_id: &str, cost: i64, now: Time) -> StoreResult<Option<i64>>;

    // ---- usage by outcome (docs/api.md, "Usage") ----

    /// Adds each delta as increments: `request_count` by every outcome, `success_count` by
    /// `VALID`, and the key's hour, the key's day and its account's day by outcome;
    /// `last_used_*` move forward only. Deltas of unknown keys are skipped.
    async fn record_usage(&self, deltas: &[UsageDelta]) -> StoreResult<()>;
    /// The key's buckets with any count whose start lies in `[from, to]`, oldest first.
    /// Hours older than the pruning horizon are gone.
    async fn key_usage(
        &self,
        account_id: &str,
        key_id: &str,
        granularity: Granularity,
        from: Time,
        to: Time,
    ) -> StoreResult<Vec<UsageBucket>>;
    /// The account's UTC days with any count in `[from, to]`, summed over its keys, oldest first.
    async fn account_usage_by_day(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<UsageBucket>>;
    /// Each key of the account with any count on the days in `[from, to]`, with its totals,
    /// ordered by key id.
    async fn account_usage_by_key(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<KeyUsageTotal>>;
    /// Deletes at most `limit` hourly rows of hours that began before `before`, oldest first;
    /// answers how many went (the pruner calls again while a batch comes back full).
    async fn prune_usage_hours(&self, before: Time, limit: u32) -> StoreResult<u64>;

    // ---- sign-in throttle (shared by every node that shares the database) ----

    /// The failure runs of `email_key` (a digest, never the address itself) and of `ip`, and
    /// whether `ip` has signed in to `email_key` before.
    async fn login_failures(&self, email_key: &str, ip: &str) -> StoreResult<LoginFailures>;
    /// One failed attempt: both runs grow by one and end at `at`, atomically (nodes may
    /// record failures for the same subjects at once).
    async fn record_login_failure(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()>;
    /// A successful sign-in: the email's run ends; the pair is remembered as of `at`.
    async fn record_login_success(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()>;
    /// Forgets runs last grown before `runs_before` and pairs last seen before `pairs_before`;
    /// answers how many rows went.
    async fn prune_login_failures(&self, runs_before: Time, pairs_before: Time) -> StoreResult<u64>;

    // ---- invalidations made by another process (the admin CLI next to a SQLite server) ----

    /// Records that cached decisions described by `payload` (the server's own encoding) went
    /// stale; answers the entry's sequence number, greater than every earlier one.
    async fn append_invalidation(&self, payload: &str, at: Time) -> StoreResult<i64>;
    /// The newest sequence number, 0 when there is none: where a starting poller begins.
    async fn last_invalidation(&self) -> StoreResult<i64>;
    /// Entries with `seq > after_seq`, oldest first, at most `limit`: `(seq, payload)`.
    async fn invalidations_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<(i64, String)>>;
    /// Forgets entries recorded before `before`; answers how many went.
    async fn prune_invalidations(&self, before: Time) -> StoreResult<u64>;

    // ---- audit ----

    async fn append_audit(&self, audit: Vec<NewAudit>) -> StoreResult<()>;
    async fn list_audit(
        &self,
        account_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;
    /// Entries with `seq > after_seq`, oldest first, at most `limit` (for chain verification).
    async fn audit_chain(&self, account_id: &str, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;
}
